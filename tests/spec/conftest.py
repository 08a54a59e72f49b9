"""Shared helpers of the spec tests: load a case directory and render what it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivmctl.spec import InvalidConfig, LoadResult, SpecOptions, load_spec


def _report_lines(config_dir: Path, options: SpecOptions | None = None) -> list[str]:
    """What loading reports, one line per problem (`file:line:col: address: path: summary`),
    each followed by its detail indented, then warnings as `warning: ...`; `valid` first
    when there is no error."""
    lines: list[str] = []
    try:
        result: LoadResult = load_spec(config_dir, options)
        errors: tuple = ()
        warnings = result.warnings
        lines.append("valid")
    except InvalidConfig as invalid:
        errors = invalid.errors
        warnings = invalid.warnings
    for error in errors:
        where = f"{error.location}: " if error.location and str(error.location) else ""
        lines.append(f"{where}{error.summary}")
        if error.detail:
            lines.append(f"  {error.detail}")
    for warning in warnings:
        lines.append(f"warning: {warning}")
    return lines


@pytest.fixture
def report():
    """report(config_dir, options=None) -> the report lines of loading that directory."""
    return _report_lines


@pytest.fixture
def write_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write files {name: text} into a fresh directory and make it the working directory."""

    def write(files: dict[str, str | bytes]) -> Path:
        for name, text in files.items():
            path = tmp_path / name
            if isinstance(text, bytes):
                path.write_bytes(text)
            else:
                path.write_text(text, encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        return Path(".")

    return write
