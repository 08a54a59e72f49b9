"""Fixtures for the emulator tests: a fresh world with a controllable clock.

The directory is put on sys.path so test modules can share strategies
(`test_runtime_memo` drives the command strategy of `test_runtime_properties`).
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ivmctl.runtime import CommandResult, World

START = 1_800_000_000.0
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)


@dataclass
class FakeClock:
    """A clock tests move by hand; sleeps advance it instead of waiting."""

    now: float = START
    slept: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class Session:
    """A world plus shorthands used by every test module."""

    world: World
    clock: FakeClock
    path: Path

    def run(self, host: str, line: str) -> CommandResult:
        return self.world.execute(host, shlex.split(line))

    def ok(self, host: str, line: str) -> CommandResult:
        result = self.run(host, line)
        assert result.exit_code == 0, f"{line!r} failed: {result.stderr}{result.stdout}"
        return result

    def fields(self, host: str, guest: str) -> list[str]:
        line = self.ok(host, f"hpvmstatus -M -P {guest}").stdout.strip()
        return line.split(":")


def standard_hosts(world: World) -> None:
    world.add_host(name="vmhost01", cores=8, memory_mb=64 * 1024, nics=("lan0", "lan1"))
    world.add_host(name="vmhost02", cores=8, memory_mb=64 * 1024, nics=("lan0", "lan1"))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def session(tmp_path: Path, clock: FakeClock) -> Iterator[Session]:
    path = tmp_path / "world.db"
    world = World.open(path, create=True, clock=clock, sleep=clock.sleep)
    standard_hosts(world)
    yield Session(world=world, clock=clock, path=path)
    world.close()
