"""Listings answered by worker processes: the same answers as in process, errors raised
where the batch was asked for, changes never sent there, their log written on close."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ivmctl.errors import EmulatorError
from ivmctl.runtime import World
from ivmctl.runtime.readers import ReaderPool

LISTINGS = [["hpvmstatus", "-M"], ["hpvmstatus", "-X"], ["hpvmnet"], ["hpvmdevmgmt", "-l", "all"]]


@pytest.fixture
def world_path(tmp_path: Path) -> Path:
    path = tmp_path / "w.db"
    with World.open(path) as world:
        world.add_host(name="h1", cores=4, memory_mb=16384, nics=("lan0",))
        for line in (
            ["hpvmnet", "-c", "-S", "vsw1", "-n", "0"],
            ["hpvmdevmgmt", "-S", "1G", "/ivm/g1.img"],
            ["hpvmcreate", "-P", "g1", "-a", "disk:avio_stor::file:/ivm/g1.img",
             "-a", "network:avio_lan::vswitch:vsw1"],
        ):  # fmt: skip
            assert world.execute("h1", line).exit_code == 0
    return path


def test_workers_answer_listings_exactly_as_the_world_does(world_path: Path) -> None:
    pool = ReaderPool(world_path, processes=2)
    try:
        with World.open(world_path, create=False) as world:
            expected = world.execute_many("h1", LISTINGS)
        assert pool.read("h1", LISTINGS) == expected
        assert pool.read("h1", [["hpvmnet", "-S", "nosuch"]])[0].exit_code == 1  # type: ignore[index]
    finally:
        pool.close()


def test_an_unknown_host_is_raised_where_the_batch_was_asked_for(world_path: Path) -> None:
    pool = ReaderPool(world_path, processes=1)
    try:
        with pytest.raises(EmulatorError, match="no host 'nosuch'"):
            pool.read("nosuch", LISTINGS)
        assert pool.read("h1", LISTINGS) is not None  # the worker keeps serving
    finally:
        pool.close()


def test_only_listings_may_go_to_the_pool() -> None:
    assert ReaderPool.can_read(LISTINGS)
    assert not ReaderPool.can_read([*LISTINGS, ["hpvmstart", "-P", "g1"]])


def test_workers_log_their_listings_when_the_pool_closes(world_path: Path) -> None:
    pool = ReaderPool(world_path, processes=1)
    pool.read("h1", [["hpvmstatus", "-M"]])
    pool.close()
    with World.open(world_path, create=False) as world:
        assert world.log("h1")[-1].argv == ("hpvmstatus", "-M")


def test_workers_log_their_listings_when_told_the_pool_is_idle(world_path: Path) -> None:
    """After `idle`, a worker writes its log rows without being closed (the parent plans
    meanwhile), and goes on answering."""
    pool = ReaderPool(world_path, processes=1)
    try:
        pool.read("h1", [["hpvmstatus", "-M"]])
        pool.idle()
        later = pool.read("h1", [["hpvmnet"]])  # answered in order: after the log is written
        assert later is not None and later[0].stdout.startswith("Name")
        with World.open(world_path, create=False) as world:
            assert ("hpvmstatus", "-M") in [entry.argv for entry in world.log("h1")]
    finally:
        pool.close()


def test_a_dead_worker_makes_the_pool_step_aside(world_path: Path) -> None:
    pool = ReaderPool(world_path, processes=1)
    try:
        assert pool.read("h1", LISTINGS) is not None
        (worker,) = pool._workers
        worker.process.kill()
        worker.process.wait()
        assert pool.read("h1", LISTINGS) is None  # the caller runs the batch itself
        assert pool.read("h1", LISTINGS) is None
    finally:
        pool.close()


def test_batches_asked_ahead_are_answered_whatever_order_they_are_collected_in(
    world_path: Path,
) -> None:
    pool = ReaderPool(world_path, processes=1)
    try:
        asked = [pool.submit("h1", [["hpvmnet", "-S", name]]) for name in ("vsw1", "nosuch")]
        asked.append(pool.submit("h1", [["hpvmstatus", "-M"]]))
        last, missing, first = asked[2](), asked[1](), asked[0]()
        assert last is not None and last[0].stdout.startswith("g1:")
        assert missing is not None and missing[0].exit_code == 1
        assert first is not None and "vsw1" in first[0].stdout
    finally:
        pool.close()


def test_a_task_runs_on_the_worker_world_and_its_error_comes_back(world_path: Path) -> None:
    """`submit_tasks` has workers call a picklable `task(world, host)`: here the world's
    own `log`, which the parent's world answers the same way."""
    pool = ReaderPool(world_path, processes=1)
    try:
        with World.open(world_path, create=False) as world:
            expected = world.log("h1")
        here, there = pool.submit_tasks(["h1", "h1"], World.log)
        assert here() == there() == expected
        with pytest.raises(EmulatorError, match="no host 'nosuch'"):
            pool.submit_tasks(["nosuch"], World.log)[0]()
        assert pool.read("h1", LISTINGS) is not None  # the worker keeps serving
    finally:
        pool.close()


def test_asking_far_ahead_without_collecting_blocks_neither_side(world_path: Path) -> None:
    """A worker takes requests in as they come and keeps the replies its parent has not
    taken yet (`serve`): a parent may send more than a pipe holds and collect nothing
    meanwhile (a prefetch while the configuration loads) without blocking, while the
    worker goes on answering all of it; every reply is there afterwards."""
    pool = ReaderPool(world_path, processes=1)
    pending: list[Any] = []
    asked = 1500

    def ask() -> None:
        pending.extend(pool.submit("h1", LISTINGS) for _ in range(asked))
        pool.idle()  # answered after the batches: the worker writes its log rows

    def answered() -> int:
        with World.open(world_path, create=False) as world:
            return sum(entry.argv == ("hpvmstatus", "-M") for entry in world.log("h1"))

    try:
        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(timeout=120)  # liveness, not a duration: it returns in about a second
        assert not asking.is_alive(), "the parent blocked on a full pipe"
        deadline = time.monotonic() + 120  # likewise: the worker is done in a few seconds
        while answered() < asked and time.monotonic() < deadline:
            time.sleep(0.2)
        assert answered() == asked, "the worker stopped answering while nobody collected"
        first = pending[0]()
        assert first is not None and pending[-1]() == first
    finally:
        pool.close()
