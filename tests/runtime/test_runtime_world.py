"""The World API and its SQLite store: versions, corruption, atomicity, generation, threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from ivmctl.errors import EmulatorError, RuleViolation
from ivmctl.runtime import World, commands
from ivmctl.runtime.kinds import is_read_only
from ivmctl.runtime.store import SCHEMA_VERSION

Session = Any  # the fixture type of conftest.py (conftest is not importable in importlib mode)


def test_a_missing_world_is_refused_without_create(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="no emulator world"):
        World.open(tmp_path / "none.db", create=False)


def test_a_world_is_created_with_its_parent_directory(tmp_path: Path) -> None:
    path = tmp_path / ".ivmctl" / "emulator.db"
    World.open(path).close()
    assert path.exists()


def test_a_newer_schema_is_refused_naming_both_versions(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    World.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    with pytest.raises(EmulatorError) as info:
        World.open(path)
    assert "99" in str(info.value) and f"version {SCHEMA_VERSION}" in str(info.value)


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    path.write_bytes(b"this is not a database, just some text " * 10)
    before = path.read_bytes()
    with pytest.raises(EmulatorError, match="not a usable emulator world"):
        World.open(path, create=True)
    assert path.read_bytes() == before


def test_another_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    with pytest.raises(EmulatorError, match="not an ivmctl emulator database"):
        World.open(path)


def test_the_world_uses_wal(session: Session) -> None:
    with sqlite3.connect(session.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_hosts_are_listed_with_their_hardware(session: Session) -> None:
    names = [
        (h.name, h.cores, h.memory_mb, h.nics, h.version, h.mhz) for h in session.world.hosts()
    ]
    assert names[0] == ("vmhost01", 8, 65536, ("lan0", "lan1"), "6.3", 1600)


def test_a_duplicate_host_is_refused(session: Session) -> None:
    with pytest.raises(EmulatorError, match="already exists"):
        session.world.add_host(name="vmhost01", cores=1, memory_mb=1024)


def test_an_unknown_version_is_refused(session: Session) -> None:
    with pytest.raises(RuleViolation, match="unknown Integrity VM version"):
        session.world.add_host(name="h9", cores=1, memory_mb=1024, version="9.9")


def test_bad_nic_names_are_refused(session: Session) -> None:
    with pytest.raises(EmulatorError, match="invalid NIC"):
        session.world.add_host(name="h9", cores=1, memory_mb=1024, nics=("eth0",))


def test_a_host_with_guests_cannot_be_removed(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g")
    with pytest.raises(EmulatorError, match="still has 1 guest"):
        session.world.remove_host("vmhost01")
    session.ok("vmhost01", "hpvmremove -P g")
    session.world.remove_host("vmhost01")
    assert [h.name for h in session.world.hosts()] == ["vmhost02"]


def test_an_unknown_host_raises_an_emulator_error(session: Session) -> None:
    with pytest.raises(EmulatorError, match="no host 'nowhere'"):
        session.run("nowhere", "hpvmstatus")


def test_every_change_bumps_the_generation_and_reads_do_not(session: Session) -> None:
    start = session.world.generation
    session.ok("vmhost01", "hpvmstatus")
    session.ok("vmhost01", "hpvmstatus -M")
    assert session.world.generation == start
    session.ok("vmhost01", "hpvmcreate -P g")
    assert session.world.generation == start + 1
    session.run("vmhost01", "hpvmcreate -P g")  # refused: nothing changed
    assert session.world.generation == start + 1
    session.ok("vmhost01", "hpvmstart -P g")
    assert session.world.generation == start + 2


def test_every_command_is_logged_with_time_and_exit_code(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g")
    session.clock.now += 10
    session.run("vmhost01", "hpvmcreate -P g")
    log = session.world.log("vmhost01")
    assert [(e.argv, e.exit_code) for e in log] == [
        (("hpvmcreate", "-P", "g"), 0),
        (("hpvmcreate", "-P", "g"), 1),
    ]
    assert log[1].time == log[0].time + 10
    assert session.world.log("vmhost02") == []


def test_a_command_that_crashes_midway_leaves_nothing_behind(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash_after_writing(ctx: commands.Ctx, args: object) -> None:
        ctx.conn.execute("UPDATE hosts SET cores = 1")
        raise KeyboardInterrupt  # the process is killed in the middle of the command

    monkeypatch.setitem(commands.HANDLERS, "hpvmcreate", crash_after_writing)
    generation = session.world.generation
    with pytest.raises(KeyboardInterrupt):
        session.run("vmhost01", "hpvmcreate -P g")
    assert session.world.hosts()[0].cores == 8
    assert session.world.generation == generation


def test_changes_in_a_group_commit_together_and_a_refusal_rolls_back_alone(
    session: Session,
) -> None:
    world, other = session.world, World.open(session.path, create=False)
    try:
        start = world.generation
        with world.grouped():
            assert world.execute("vmhost01", ["hpvmcreate", "-P", "g1"]).exit_code == 0
            assert world.execute("vmhost01", ["hpvmcreate", "-P", "g1"]).exit_code == 1
            assert world.execute("vmhost01", ["hpvmcreate", "-P", "g2"]).exit_code == 0
            # another connection sees none of it until the group commits
            assert other.execute("vmhost01", ["hpvmstatus", "-M"]).stdout == ""
        listed = other.execute("vmhost01", ["hpvmstatus", "-M"]).stdout.splitlines()
        assert [line.split(":")[0] for line in listed] == ["g1", "g2"]
        assert world.generation == start + 2  # the refusal changed nothing
        assert [e.exit_code for e in world.log("vmhost01")] == [0, 1, 0]
    finally:
        other.close()


def test_a_group_that_raises_makes_none_of_its_changes(session: Session) -> None:
    world = session.world
    generation = world.generation
    with pytest.raises(KeyboardInterrupt), world.grouped():
        assert world.execute("vmhost01", ["hpvmcreate", "-P", "g1"]).exit_code == 0
        raise KeyboardInterrupt
    assert session.ok("vmhost01", "hpvmstatus -M").stdout == ""
    assert world.generation == generation
    assert world.execute("vmhost01", ["hpvmcreate", "-P", "g1"]).exit_code == 0  # usable again


def test_a_command_that_crashes_in_a_group_leaves_the_others_to_commit(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash_after_writing(ctx: commands.Ctx, args: object) -> None:
        ctx.conn.execute("UPDATE hosts SET cores = 1")
        raise ValueError("a handler's bug")

    world = session.world
    with world.grouped():
        assert world.execute("vmhost01", ["hpvmcreate", "-P", "g1"]).exit_code == 0
        with monkeypatch.context() as patched:
            patched.setitem(commands.HANDLERS, "hpvmcreate", crash_after_writing)
            with pytest.raises(ValueError, match="a handler's bug"):
                world.execute("vmhost01", ["hpvmcreate", "-P", "g2"])
        assert world.execute("vmhost01", ["hpvmcreate", "-P", "g3"]).exit_code == 0
    assert world.hosts()[0].cores == 8
    listed = session.ok("vmhost01", "hpvmstatus -M").stdout.splitlines()
    assert [line.split(":")[0] for line in listed] == ["g1", "g3"]


def test_a_second_process_sees_the_same_world(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g")
    other = World.open(session.path, create=False)
    try:
        assert other.execute("vmhost01", ["hpvmstatus", "-M"]).stdout.startswith("g:1::")
    finally:
        other.close()


def test_threads_can_create_guests_concurrently(session: Session) -> None:
    errors: list[str] = []

    def create(start: int) -> None:
        for i in range(start, start + 20):
            result = session.world.execute("vmhost01", ["hpvmcreate", "-P", f"g{i}"])
            if result.exit_code:
                errors.append(result.stderr)

    threads = [threading.Thread(target=create, args=(n * 100,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    lines = session.ok("vmhost01", "hpvmstatus -M").stdout.splitlines()
    assert len(lines) == 120
    assert sorted(int(line.split(":")[1]) for line in lines) == list(range(1, 121))


def test_latency_is_slept_before_the_command(session: Session) -> None:
    session.world.set_faults("vmhost01", latency={"start": 2.5, "*": 0.5})
    session.ok("vmhost01", "hpvmcreate -P g")
    session.ok("vmhost01", "hpvmstart -P g")
    assert session.clock.slept == [0.5, 2.5]


def test_a_hang_delays_only_the_next_command_of_its_kind(session: Session) -> None:
    session.world.set_faults("vmhost01", hangs={"hpvmstatus": 30})
    session.ok("vmhost01", "hpvmstatus")
    session.ok("vmhost01", "hpvmstatus")
    assert session.clock.slept == [30]


def test_faults_are_listed_and_cleared(session: Session) -> None:
    session.world.set_faults("vmhost01", fail_starts=2, unreachable=True, latency={"start": 1})
    info = session.world.faults("vmhost01")[0]
    assert (info.fail_starts, info.unreachable, dict(info.latency)) == (2, True, {"hpvmstart": 1})
    info = session.world.set_faults("vmhost01", clear=True)
    assert (info.fail_starts, info.unreachable, dict(info.latency)) == (0, False, {})


def test_an_unreachable_host_logs_nothing(session: Session) -> None:
    session.world.set_faults("vmhost01", unreachable=True)
    assert session.run("vmhost01", "hpvmstatus").exit_code == 255
    assert session.world.log("vmhost01") == []


def test_faults_do_not_bump_the_generation(session: Session) -> None:
    generation = session.world.generation
    session.world.set_faults("vmhost01", fail_starts=1)
    session.ok("vmhost01", "hpvmcreate -P g")
    session.run("vmhost01", "hpvmstart -P g")
    assert session.world.generation == generation + 1


def test_only_one_migration_per_host_at_a_time(tmp_path: Path) -> None:
    """With latency, a second migration involving a busy host is refused."""
    gate = threading.Event()
    entered = threading.Event()

    def slow_sleep(seconds: float) -> None:
        entered.set()
        gate.wait(5)

    world = World.open(tmp_path / "w.db", sleep=slow_sleep)
    try:
        for name in ("h1", "h2"):
            world.add_host(name=name, cores=4, memory_mb=16384)
        for guest in ("a", "b"):
            assert world.execute("h1", ["hpvmcreate", "-P", guest]).exit_code == 0
        world.set_faults("h1", latency={"migrate": 1})
        results = []
        first = threading.Thread(
            target=lambda: results.append(
                world.execute("h1", ["hpvmmigrate", "-P", "a", "-h", "h2"])
            )
        )
        first.start()
        assert entered.wait(5)
        second = world.execute("h2", ["hpvmstatus"])  # other commands are not blocked
        assert second.exit_code == 0
        busy = world.execute("h1", ["hpvmmigrate", "-P", "b", "-h", "h2"])
        gate.set()
        first.join()
        assert busy.exit_code == 1
        assert "A migration is already in progress on VM Host" in busy.stderr
        assert results[0].exit_code == 0
    finally:
        world.close()


def test_starts_on_one_host_are_serialised(tmp_path: Path) -> None:
    active = 0
    peak = 0
    guard = threading.Lock()

    def sleep(seconds: float) -> None:
        nonlocal active, peak
        with guard:
            active += 1
            peak = max(peak, active)
        threading.Event().wait(0.02)
        with guard:
            active -= 1

    world = World.open(tmp_path / "w.db", sleep=sleep)
    try:
        world.add_host(name="h1", cores=8, memory_mb=65536)
        for i in range(4):
            world.execute("h1", ["hpvmcreate", "-P", f"g{i}"])
        world.set_faults("h1", latency={"start": 1})
        threads = [
            threading.Thread(target=world.execute, args=("h1", ["hpvmstart", "-P", f"g{i}"]))
            for i in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert peak == 1
        assert world.execute("h1", ["hpvmstatus", "-M"]).stdout.count(":On:") == 4
    finally:
        world.close()


def test_a_directory_is_not_a_world(tmp_path: Path) -> None:
    with pytest.raises(EmulatorError, match="it is a directory"):
        World.open(tmp_path)


def test_a_world_held_too_long_by_another_writer_is_reported_as_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivmctl.runtime import store

    monkeypatch.setattr(store, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "w.db"
    world = World.open(path)
    world.add_host(name="h1", cores=1, memory_mb=1024)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(EmulatorError, match="is busy"):
            world.execute("h1", ["hpvmcreate", "-P", "g"])
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        world.close()


KILLED_CHILD = """
import sys, time
from pathlib import Path
from ivmctl.runtime import World, commands

def slow_create(ctx, args):
    ctx.conn.execute("UPDATE hosts SET cores = 1")
    ctx.conn.execute("INSERT INTO files (host_id, path, size_mb) VALUES (1, '/half', 1)")
    Path(sys.argv[2]).write_text("inside")
    time.sleep(60)

commands.HANDLERS["hpvmcreate"] = slow_create
World.open(sys.argv[1], create=False).execute("h1", ["hpvmcreate", "-P", "g"])
"""


def test_a_process_killed_inside_a_command_leaves_nothing_behind(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    path = tmp_path / "w.db"
    marker = tmp_path / "marker"
    world = World.open(path)
    world.add_host(name="h1", cores=8, memory_mb=8192)
    generation = world.generation
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(path), str(marker)])
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert child.poll() is None, "the child ended before it was killed"
            assert time.monotonic() < deadline, "the child never reached the command"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    assert world.hosts()[0].cores == 8
    assert world.generation == generation
    assert world.execute("h1", ["hpvmcreate", "-P", "g"]).exit_code == 0  # not left locked
    assert world.execute("h1", ["hpvmdevmgmt", "-l", "all"]).stdout == ""
    world.close()


# --- listings: read snapshots, batches, their log ------------------------------------------
@pytest.mark.parametrize(
    ("line", "read_only"),
    [
        ("hpvmstatus -M", True),
        ("hpvmstatus -d -P g", True),
        ("/opt/hpvm/bin/hpvmstatus -X", True),
        ("hpvmnet", True),
        ("hpvmnet -S vswprod", True),
        ("hpvmnet -S vswprod -b", False),
        ("hpvmnet -c -S vsw1 -n 0", False),
        ("hpvmnet -Fc", False),  # a cluster counts by every letter
        ("hpvmdevmgmt -l all", True),
        ("hpvmdevmgmt -l gdev:/ivm/a.img", True),
        ("hpvmdevmgmt -S 1G /ivm/a.img", False),
        ("hpvmdevmgmt -m gdev:/dev/x:attr:SHARE=YES", False),
        ("hpvmcreate -P g", False),
        ("hpvmstart -P g", False),
        ("nosuch", False),
    ],
)
def test_listings_are_told_apart_from_changes(line: str, read_only: bool) -> None:
    assert is_read_only(line.split()) is read_only


def test_a_listing_cannot_write_even_if_misclassified(session: Session) -> None:
    with session.world._store.snapshot() as conn, pytest.raises(sqlite3.OperationalError):
        conn.execute("UPDATE hosts SET cores = 1")
    assert session.ok("vmhost01", "hpvmstatus -s").stdout.count("cores = 8") == 1


def test_a_batch_of_listings_sees_one_state_and_logs_every_line(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g -a network:lan::vswitch:localnet")
    results = session.world.execute_many(
        "vmhost01", [["hpvmstatus", "-M"], ["hpvmstatus", "-X"], ["hpvmnet", "-S", "localnet"]]
    )
    assert [r.exit_code for r in results] == [0, 0, 0]
    assert results[0].stdout.startswith("g:1::Integrity VM:")
    assert "<network>network:lan:0,0," in results[1].stdout
    assert "Reserved" in results[2].stdout
    logged = [" ".join(e.argv) for e in session.world.log("vmhost01")]
    assert logged == [
        "hpvmcreate -P g -a network:lan::vswitch:localnet",
        "hpvmstatus -M",
        "hpvmstatus -X",
        "hpvmnet -S localnet",
    ]


def test_a_refused_listing_in_a_batch_fails_alone(session: Session) -> None:
    results = session.world.execute_many(
        "vmhost01", [["hpvmnet", "-S", "nosuch"], ["hpvmstatus", "-M"]]
    )
    assert results[0].exit_code == 1 and "does not exist" in results[0].stderr
    assert results[1].exit_code == 0


def test_a_batch_with_a_change_runs_line_by_line_in_order(session: Session) -> None:
    results = session.world.execute_many(
        "vmhost01", [["hpvmcreate", "-P", "g"], ["hpvmstatus", "-M"]]
    )
    assert [r.exit_code for r in results] == [0, 0]
    assert results[1].stdout.startswith("g:")  # the listing saw the creation


def test_a_batch_on_an_unreachable_host_fails_every_line(session: Session) -> None:
    session.world.set_faults("vmhost01", unreachable=True)
    results = session.world.execute_many("vmhost01", [["hpvmstatus", "-M"], ["hpvmnet"]])
    assert [r.exit_code for r in results] == [255, 255]
    assert session.world.log("vmhost01") == []


def test_the_latencies_of_a_batch_add_up_and_are_slept_once(session: Session) -> None:
    session.world.set_faults("vmhost01", latency={"hpvmstatus": 2, "*": 0.5})
    session.clock.slept.clear()
    session.world.execute_many("vmhost01", [["hpvmstatus", "-M"], ["hpvmnet"]])
    assert session.clock.slept == [2.5]


def test_listings_are_logged_when_the_world_closes(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with World.open(path) as world:
        world.add_host(name="h1", cores=2, memory_mb=8192)
        world.execute("h1", ["hpvmstatus", "-M"])
    with World.open(path, create=False) as world:
        assert [e.argv for e in world.log("h1")] == [("hpvmstatus", "-M")]
