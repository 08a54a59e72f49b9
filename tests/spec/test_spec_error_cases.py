"""Bad configurations as data: each directory under cases/errors holds configuration files
and `expected.txt`, the exact report (file:line:col: address: path: summary, the detail
indented below, warnings last). Set IVMCTL_UPDATE_CASES=1 to rewrite the expectations
after a deliberate change, then review the diff."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ivmctl.spec import yamlio

CASES = Path(__file__).parent / "cases"
ERROR_CASES = sorted(p for p in (CASES / "errors").iterdir() if p.is_dir())


@pytest.mark.parametrize("fast_loader", [True, False], ids=["yaml-rs", "libyaml-only"])
@pytest.mark.parametrize("case", ERROR_CASES, ids=lambda p: p.name)
def test_bad_configuration_is_reported_with_file_line_and_reason(
    case: Path, fast_loader: bool, monkeypatch: pytest.MonkeyPatch, report
) -> None:
    """The same report whether yaml-rs is installed or not."""
    if not fast_loader:
        monkeypatch.setattr(yamlio, "FAST_LOADER", None)
    monkeypatch.chdir(case)
    monkeypatch.delenv("IVMCTL_VAR_version", raising=False)
    actual = report(Path("."))
    expected_file = case / "expected.txt"
    if os.environ.get("IVMCTL_UPDATE_CASES"):
        expected_file.write_text("\n".join(actual) + "\n", encoding="utf-8")
    expected = expected_file.read_text(encoding="utf-8").splitlines()
    assert actual == expected


def test_every_error_case_has_an_expectation() -> None:
    missing = [c.name for c in ERROR_CASES if not (c / "expected.txt").exists()]
    assert not missing
