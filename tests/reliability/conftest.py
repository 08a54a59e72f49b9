"""Reliability fixtures: the real CLI as a subprocess, fleets, snapshots, and the figures.

Every figure quoted in docs/reliability.md is counted here while the tests run (kill
points tried and survived, concurrent runs, fuzz examples, bad inputs) and written at
the end of the session to `.ivmctl/reliability-figures.json` in the repository (ignored
by git; `IVMCTL_RELIABILITY_FIGURES` overrides the path), and printed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIGURES_PATH = Path(
    os.environ.get("IVMCTL_RELIABILITY_FIGURES", ROOT / ".ivmctl" / "reliability-figures.json")
)
_FIGURES: dict[str, dict[str, Any]] = {}

Run = Callable[..., subprocess.CompletedProcess[str]]


class Figures:
    """Counters by section, e.g. figures.add("crash", "kill_points_tried")."""

    def add(self, section: str, name: str, count: int = 1) -> None:
        values = _FIGURES.setdefault(section, {})
        values[name] = values.get(name, 0) + count

    def note(self, section: str, name: str, value: Any) -> None:
        _FIGURES.setdefault(section, {})[name] = value


@pytest.fixture(scope="session")
def figures() -> Figures:
    return Figures()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    body = {
        "command": "pytest " + " ".join(sys.argv[1:]),
        "figures": {k: dict(sorted(v.items())) for k, v in sorted(_FIGURES.items())},
    }
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    FIGURES_PATH.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    terminalreporter.section("reliability figures")
    terminalreporter.write_line(f"written to {FIGURES_PATH}")
    terminalreporter.write_line(json.dumps(body["figures"], indent=2))


def environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_")}
    env["COLUMNS"] = "200"
    env.pop("FORCE_COLOR", None)
    env.update(extra)
    return env


def ivmctl(
    *args: str,
    cwd: Path,
    check: int | None = 0,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run `python -m ivmctl ARGS...` in `cwd`; assert its exit status unless check is None."""
    proc = subprocess.run(
        [sys.executable, "-m", "ivmctl", *args],
        cwd=cwd,
        env=env or environ(),
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


@pytest.fixture
def config(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    return directory


@pytest.fixture
def run(config: Path) -> Run:
    def invoke(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return ivmctl(*args, cwd=kwargs.pop("cwd", config), **kwargs)

    return invoke


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[str]]]:
    """Background processes a test starts; killed (by their own handle) if left running."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def world_dump(db: Path) -> list[tuple[Any, ...]]:
    """Every row of every table of an emulator world, the command log included."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]  # fmt: skip
        return [
            (table, *row)
            for table in tables
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")
        ]
    finally:
        conn.close()


def snapshot(config: Path) -> tuple[list[tuple[Any, ...]], bytes | None, bool]:
    """The world's rows, the state file's bytes and whether a lock file exists."""
    state_dir = config / ".ivmctl"
    db = state_dir / "emulator.db"
    state = state_dir / "state.json"
    return (
        world_dump(db) if db.exists() else [],
        state.read_bytes() if state.exists() else None,
        (state_dir / "state.lock").exists(),
    )


FLEET_V1 = """\
apiVersion: ivmctl/v1
hosts:
  hosta:
    version: "6.3"
    hardware: {cores: 8, memory: 32G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
  hostb:
    version: "6.3"
    hardware: {cores: 8, memory: 32G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
guests:
  app01:
    host: hosta
    os: hpux
    vcpus: 2
    memory: 4G
    disks: [{backing: disk, path: /dev/rdisk/disk10}]
    nics: [{vswitch: vsw1}]
  app02:
    host: hosta
    os: hpux
    memory: 2G
    disks: [{backing: file, path: /ivm/app02/root.img, size: 8G}]
    nics: [{vswitch: vsw1, vlan: 10}]
  db01:
    host: hostb
    os: hpux
    memory: 4G
    disks: [{backing: file, path: /ivm/db01/root.img, size: 8G}]
    nics: [{vswitch: vsw1}]
  old01:
    host: hostb
    os: linux
    power: off
    disks: [{backing: lv, path: /dev/vg01/rlvol_old01}]
"""

# From V1: app01 migrates online to hostb, app02 restarts with 2 vCPUs, db01 changes its
# label online, old01 is deleted, new01 and new02 are created (one running, one off).
FLEET_V2 = (
    FLEET_V1.replace("  app01:\n    host: hosta", "  app01:\n    host: hostb")
    .replace("    os: hpux\n    memory: 2G", "    os: hpux\n    vcpus: 2\n    memory: 2G")
    .replace("  db01:\n    host: hostb\n", "  db01:\n    host: hostb\n    label: primary\n")
    .replace(
        """  old01:
    host: hostb
    os: linux
    power: off
    disks: [{backing: lv, path: /dev/vg01/rlvol_old01}]
""",
        """  new01:
    host: hosta
    os: hpux
    disks: [{backing: file, path: /ivm/new01/root.img, size: 4G}]
    nics: [{vswitch: vsw1, vlan: 20}]
  new02:
    host: hostb
    os: linux
    power: off
    disks: [{backing: lv, path: /dev/vg01/rlvol_new02}]
""",
    )
)


@pytest.fixture
def fleet(config: Path) -> Path:
    """A two-host fleet (FLEET_V1) written to the config directory, not applied yet."""
    (config / "fleet.yaml").write_text(FLEET_V1, encoding="utf-8")
    return config
