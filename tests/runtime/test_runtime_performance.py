"""A command costs the same in a big world as in a small one (no whole-world reads).

Cost is counted, not timed: SQLite's progress handler counts the virtual-machine
instructions every statement executes, which is deterministic and proportional to the
rows a command reads, whatever the machine's load.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ivmctl.runtime import World

TICK = 100  # instructions per progress-handler call


class _Counter:
    def __init__(self) -> None:
        self.ticks = 0

    def __call__(self) -> int:
        self.ticks += 1
        return 0  # 0 = carry on


def _instrument(world: World, counter: _Counter) -> None:
    store = world._store
    conns: list[sqlite3.Connection] = [store.conn(), store.reader()]
    for conn in conns:
        conn.set_progress_handler(counter, TICK)


def _lifecycle(world: World, start: int, count: int) -> None:
    for i in range(start, start + count):
        name = f"g{i}"
        world.execute("h1", ["hpvmdevmgmt", "-S", "1G", f"/ivm/{name}.img"])
        result = world.execute(
            "h1", ["hpvmcreate", "-P", name, "-r", "1G", "-a",
                   f"disk:avio_stor::file:/ivm/{name}.img"],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        world.execute("h1", ["hpvmstatus", "-M", "-P", name])
        world.execute("h1", ["hpvmstatus", "-d", "-P", name])
        world.execute("h2", ["hpvmstatus", "-M"])  # a small host beside a big one


def test_commands_do_not_slow_down_as_the_world_grows(tmp_path: Path) -> None:
    world = World.open(tmp_path / "w.db", sleep=lambda s: None)
    try:
        world.add_host(name="h1", cores=64, memory_mb=4 * 1024 * 1024)
        world.add_host(name="h2", cores=8, memory_mb=64 * 1024)
        counter = _Counter()
        _instrument(world, counter)
        _lifecycle(world, 0, 50)
        first = counter.ticks
        _lifecycle(world, 50, 1000)
        counter.ticks = 0
        _lifecycle(world, 1050, 50)
        last = counter.ticks
        # the same 250 commands after 1,000 more guests: B-tree depth may add a little,
        # a scan of every guest would multiply the work by about 20
        assert first > 0
        assert last < first * 2, (first, last)
    finally:
        world.close()
