"""End-to-end fixtures: the real CLI, as a subprocess, in a temporary config directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

Run = Callable[..., subprocess.CompletedProcess[str]]


def _environ() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    env["COLUMNS"] = "200"
    env.pop("FORCE_COLOR", None)
    return env


@pytest.fixture
def run(tmp_path: Path) -> Run:
    """Run `ivmctl ARGS...` in the config directory; returns the completed process."""

    def invoke(*args: str, cwd: Path | None = None, check: int | None = 0,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        proc = subprocess.run(
            [sys.executable, "-m", "ivmctl", *args],
            cwd=cwd or tmp_path / "config",
            env=_environ(),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check is not None and proc.returncode != check:
            raise AssertionError(
                f"ivmctl {' '.join(args)} exited {proc.returncode}, expected {check}\n"
                f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
            )
        return proc

    return invoke


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    """A copy of examples/quickstart as the config directory."""
    target = tmp_path / "config"
    shutil.copytree(EXAMPLES / "quickstart", target, ignore=shutil.ignore_patterns(".ivmctl"))
    return target


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start `ivmctl ARGS...` in the background, in the config directory."""
    started: list[subprocess.Popen[str]] = []

    def invoke(*args: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ivmctl", *args],
            cwd=tmp_path / "config",
            env=_environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        started.append(proc)
        return proc

    yield invoke
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
