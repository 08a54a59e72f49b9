"""Fixtures for import/export/state: an applied quickstart and the CLI run in-process."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from inventory_helpers import QUICKSTART, Ivmctl, apply_all  # noqa: E402

from ivmctl.cli import main  # noqa: E402


@pytest.fixture(autouse=True)
def _no_ivmctl_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("IVMCTL_EMULATOR", "IVMCTL_EMULATOR_LATENCY", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    """examples/quickstart copied and applied: ivmctl owns 3 guests and 2 vswitches."""
    target = tmp_path / "config"
    shutil.copytree(QUICKSTART, target, ignore=shutil.ignore_patterns(".ivmctl"))
    apply_all(target)
    return target


@pytest.fixture
def ivmctl(capsys: pytest.CaptureFixture[str]) -> Ivmctl:
    """Run `ivmctl ARGS...` as the console script does: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        out, err = capsys.readouterr()
        return int(exited.value.code or 0), out, err

    return invoke
