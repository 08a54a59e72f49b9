"""A command costs the same in a big world as in a small one (no whole-world reads)."""

from __future__ import annotations

import time
from pathlib import Path

from ivmctl.runtime import World


def _batch(world: World, start: int, count: int) -> float:
    began = time.perf_counter()
    for i in range(start, start + count):
        name = f"g{i}"
        world.execute("h1", ["hpvmdevmgmt", "-S", "1G", f"/ivm/{name}.img"])
        result = world.execute(
            "h1", ["hpvmcreate", "-P", name, "-r", "1G", "-a",
                   f"disk:avio_stor::file:/ivm/{name}.img"],
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        world.execute("h1", ["hpvmstatus", "-M", "-P", name])
        world.execute("h1", ["hpvmstart", "-P", name])
    return time.perf_counter() - began


def test_commands_do_not_slow_down_as_the_world_grows(tmp_path: Path) -> None:
    world = World.open(tmp_path / "w.db", sleep=lambda s: None)
    try:
        world.add_host(name="h1", cores=64, memory_mb=4 * 1024 * 1024)
        first = _batch(world, 0, 200)
        _batch(world, 200, 1000)
        last = _batch(world, 1200, 200)
        # 800 commands each; generous bounds so a loaded CI machine does not flake
        assert first < 10 and last < 10
        assert last < first * 3 + 0.5, (first, last)
    finally:
        world.close()
