"""Every hook has a one-line docstring, a section in docs/plugins.md and a test that calls it."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from ivmctl.providers import hookspecs

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"
TESTS = Path(__file__).resolve().parent

SPECS = {
    name: function
    for name, function in vars(hookspecs).items()
    if inspect.isfunction(function) and hasattr(function, "ivmctl_spec")
}


def signature_in_docs(name: str) -> str:
    params = ", ".join(inspect.signature(SPECS[name]).parameters)
    return f"### `{name}({params})`"


def test_the_hook_list_matches_the_specifications() -> None:
    assert sorted(SPECS) == sorted(hookspecs.HOOK_NAMES)
    assert len(SPECS) == 6


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_has_a_one_line_docstring(name: str) -> None:
    doc = inspect.getdoc(SPECS[name]) or ""
    assert doc and "\n" not in doc, f"{name} needs a one-line docstring"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_under_its_exact_signature(name: str) -> None:
    heading = signature_in_docs(name)
    assert heading in DOCS.read_text(encoding="utf-8").splitlines(), (
        f"docs/plugins.md lacks the section {heading!r}"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_called_by_a_test(name: str) -> None:
    call = re.compile(rf"\.hook\.{name}\(")
    callers = [p.name for p in TESTS.glob("test_providers_*.py") if call.search(p.read_text())]
    assert callers, f"no test in tests/providers calls pm.hook.{name}(...)"
