"""Every example configuration validates, plans, applies and then plans to no changes."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIRS = sorted(
    p for p in (ROOT / "examples").iterdir()
    if p.is_dir() and any(p.glob("*.yaml")) | any(p.glob("*.yaml.j2"))
)  # fmt: skip

Run = Callable[..., subprocess.CompletedProcess[str]]


def test_there_are_examples_to_check() -> None:
    assert {p.name for p in EXAMPLE_DIRS} >= {"quickstart", "consolidation"}


@pytest.mark.parametrize("example", EXAMPLE_DIRS, ids=lambda p: p.name)
def test_example_validates_plans_applies_and_converges(
    example: Path, run: Run, tmp_path: Path
) -> None:
    shutil.copytree(example, tmp_path / "config", ignore=shutil.ignore_patterns(".ivmctl"))
    run("validate")
    assert "Plan:" in run("plan").stdout
    run("apply", "--auto-approve")
    assert "No changes." in run("plan", "--detailed-exitcode").stdout
