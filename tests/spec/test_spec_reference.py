"""docs/yaml-reference.md is generated from the schema and kept in step with it."""

from __future__ import annotations

from pathlib import Path

from ivmctl.spec.reference import render
from ivmctl.spec.schema import load_schema

DOC = Path(__file__).resolve().parents[2] / "docs" / "yaml-reference.md"


def test_committed_reference_equals_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), (
        "regenerate: python -m ivmctl.spec.reference > docs/yaml-reference.md"
    )


def test_reference_names_every_guest_field() -> None:
    text = render()
    for name in load_schema()["$defs"]["guest"]["properties"]:
        assert f"| `{name}` |" in text
