"""The spare worker started with a command (`ivmctl.runtime.spare`): started only for the
commands that read the runtime, taken by the first worker a pool starts and then serving
exactly as a worker started then, and never left behind when nobody takes it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ivmctl.cli import COMMANDS
from ivmctl.runtime import World, spare
from ivmctl.runtime.workers import WorkerPool

LISTINGS = [["hpvmstatus", "-M"], ["hpvmnet"], ["hpvmdevmgmt", "-l", "all"]]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _no_spare_left(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(spare.ENV, raising=False)
    yield
    spare.discard()


@pytest.fixture
def world_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    with World.open(path) as world:
        world.add_host(name="h1", cores=4, memory_mb=16384, nics=("lan0",))
        assert world.execute("h1", ["hpvmnet", "-c", "-S", "vsw1", "-n", "0"]).exit_code == 0
    return path


@pytest.mark.parametrize(
    ("argv", "cpus", "setting", "started"),
    [
        (["plan"], 2, None, True),
        (["-C", "fleet", "apply", "--auto-approve"], 4, None, True),
        (["drift"], 2, None, True),
        (["plan"], 1, None, False),  # its start-up would take ivmctl's only CPU
        (["plan"], 2, "0", False),  # turned off
        (["plan"], 2, "1", True),
        (["validate"], 2, None, False),  # reads no runtime
        (["--help"], 2, None, False),
        (["fmt", "plan.yaml"], 2, None, False),
        ([], 2, None, False),
    ],
)
def test_a_spare_is_wanted_only_for_commands_that_read_the_runtime(
    argv: list[str], cpus: int, setting: str | None, started: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if setting is not None:
        monkeypatch.setenv(spare.ENV, setting)
    assert spare.wanted(argv, cpus=cpus) is started


def test_every_reading_command_is_a_command() -> None:
    assert spare.READING_COMMANDS.issubset(COMMANDS)


def test_a_pool_takes_the_spare_and_it_serves_as_a_new_worker_would(world_path: Path) -> None:
    spare.start(["plan"])
    started = spare._spare
    assert started is not None
    pool = WorkerPool(world_path, processes=1)
    try:
        with World.open(world_path, create=False) as world:
            expected = world.execute_many("h1", LISTINGS)
        assert pool.read("h1", LISTINGS) == expected
        (worker,) = pool._workers
        assert worker.process is started  # no second process was started
        assert spare._spare is None  # taken once: the next worker is a new one
        # as every worker: out of the terminal's process group, deaf to Ctrl-C
        assert os.getpgid(started.pid) != os.getpgid(0)
        os.kill(started.pid, signal.SIGINT)
        assert pool.read("h1", LISTINGS) == expected
    finally:
        pool.close()
    assert started.returncode == 0


def test_a_spare_that_died_is_not_taken_and_the_pool_starts_a_worker(world_path: Path) -> None:
    spare.start(["plan"])
    dead = spare._spare
    assert dead is not None
    dead.kill()
    dead.wait()
    pool = WorkerPool(world_path, processes=1)
    try:
        assert pool.read("h1", LISTINGS) is not None
        (worker,) = pool._workers
        assert worker.process is not dead
    finally:
        pool.close()


def test_a_spare_nobody_takes_is_killed_and_one_whose_input_closes_exits() -> None:
    spare.start(["plan"])
    unused = spare._spare
    assert unused is not None
    spare.discard()
    assert unused.returncode == -signal.SIGKILL
    assert spare._spare is None
    # ivmctl killed before it took the spare: the spare's input closes and it exits 0
    spare.start(["plan"])
    orphan = spare._spare
    assert orphan is not None and orphan.stdin is not None
    orphan.stdin.close()
    assert orphan.wait(timeout=60) == 0


def test_the_kill_seam_is_not_passed_to_a_spare() -> None:
    environ = spare.worker_environment(
        {"IVMCTL_TEST_KILL_AT": "inside hpvmcreate", "IVMCTL_TEST_KILL_TRACE": "t", "A": "b"}
    )
    assert environ == {"A": "b"}


def _processes_marked(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if f"IVMCTL_TEST_MARKER={marker}".encode() in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="lists processes by /proc")
@pytest.mark.parametrize("processes", [None, 1], ids=["spare-unused", "spare-taken"])
def test_the_command_leaves_no_process_behind(tmp_path: Path, processes: int | None) -> None:
    """The real executable, on a small fleet: with no `processes` no reader is started
    and the spare is killed at exit; with `processes: 1` the first worker is the spare."""
    config = tmp_path / "fleet"
    config.mkdir()
    options = f", processes: {processes}" if processes else ""
    (config / "fleet.yaml").write_text(
        "apiVersion: ivmctl/v1\n"
        f"provider: {{name: emulator, options: {{path: .ivmctl/emulator.db{options}}}}}\n"
        "hosts:\n  h1:\n    hardware: {cores: 4, memory: 16G, nics: [lan0]}\n"
        "guests:\n  g1: {host: h1, vcpus: 1, memory: 1G}\n"
    )
    marker = uuid.uuid4().hex
    env = {**os.environ, "IVMCTL_TEST_MARKER": marker, spare.ENV: "1"}
    out = tmp_path / "out.txt"
    for argv, expected in (
        (["apply", "--auto-approve"], "Apply complete"),
        (["plan"], "No changes"),
    ):
        # into a file, not a pipe: the run ends as ivmctl exits, not once every process
        # that inherited the pipe has
        with out.open("w") as output:
            done = subprocess.run(
                [sys.executable, "-m", "ivmctl", "-C", str(config), *argv],
                env=env,
                cwd=ROOT,
                stdout=output,
                stderr=subprocess.STDOUT,
                timeout=120,
            )
        assert done.returncode == 0, out.read_text()
        assert expected in out.read_text()
        # at once: the pool waits for its readers' exit, and a spare nobody took is
        # killed (left to itself, it would exit only once its imports were done)
        assert _processes_marked(marker) == []
