"""Fixtures of the gitops and docs tests: ivmctl run in-process in a scratch config directory."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ivmctl.cli import main

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"


@dataclass(frozen=True, kw_only=True)
class Ran:
    code: int
    out: str
    err: str


Ivmctl = Callable[..., Ran]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No IVMCTL_* variables from the caller's environment; a wide, colourless terminal."""
    import os

    for name in list(os.environ):
        if name.startswith("IVMCTL_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture
def ivmctl(clean_env: None, capsys: pytest.CaptureFixture[str]) -> Ivmctl:
    """Run `ivmctl ARGS...` in this process (as the console script does); returns the result."""

    def run(*args: str, expect: int | None = 0) -> Ran:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        code = exited.value.code
        ran = Ran(code=code if isinstance(code, int) else (0 if code is None else 1), out=out,
                  err=err)  # fmt: skip
        if expect is not None and ran.code != expect:
            raise AssertionError(
                f"ivmctl {' '.join(args)} exited {ran.code}, expected {expect}\n"
                f"--- stdout\n{out}\n--- stderr\n{err}"
            )
        return ran

    return run


@pytest.fixture
def quickstart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of examples/quickstart, made the current directory."""
    target = tmp_path / "quickstart"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".ivmctl"))
    monkeypatch.chdir(target)
    return target
