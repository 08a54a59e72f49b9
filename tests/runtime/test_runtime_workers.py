"""Commands answered by worker processes: listings and tasks by readers, changes by the
writer, with the same answers as in process, errors raised where the batch was asked
for, the log written, and each reply handed to its waiter as soon as it is read."""

from __future__ import annotations

import functools
import importlib
import io
import json
import os
import pickle
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivmctl.errors import EmulatorError
from ivmctl.runtime import World
from ivmctl.runtime.workers import (
    GiveAway,
    TakenBack,
    WorkerPool,
    _encoded,
    _exited,
    _Pipes,
    _Worker,
)
from ivmctl.runtime.world import PendingWrites

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
    pool = WorkerPool(world_path, processes=2)
    try:
        with World.open(world_path, create=False) as world:
            expected = world.execute_many("h1", LISTINGS)
        assert pool.read("h1", LISTINGS) == expected
        assert pool.read("h1", [["hpvmnet", "-S", "nosuch"]])[0].exit_code == 1  # type: ignore[index]
    finally:
        pool.close()


def test_an_unknown_host_is_raised_where_the_batch_was_asked_for(world_path: Path) -> None:
    pool = WorkerPool(world_path, processes=1)
    try:
        with pytest.raises(EmulatorError, match="no host 'nosuch'"):
            pool.read("nosuch", LISTINGS)
        assert pool.read("h1", LISTINGS) is not None  # the worker keeps serving
    finally:
        pool.close()


def test_only_listings_may_go_to_the_pool() -> None:
    assert WorkerPool.can_read(LISTINGS)
    assert not WorkerPool.can_read([*LISTINGS, ["hpvmstart", "-P", "g1"]])


def test_workers_log_their_listings_when_the_pool_closes(world_path: Path) -> None:
    pool = WorkerPool(world_path, processes=1)
    pool.read("h1", [["hpvmstatus", "-M"]])
    pool.close()
    with World.open(world_path, create=False) as world:
        assert world.log("h1")[-1].argv == ("hpvmstatus", "-M")


def test_workers_log_their_listings_when_told_the_pool_is_idle(world_path: Path) -> None:
    """After `idle`, a worker writes its log rows without being closed (the parent plans
    meanwhile), and goes on answering."""
    pool = WorkerPool(world_path, processes=1)
    try:
        pool.read("h1", [["hpvmstatus", "-M"]])
        pool.idle()
        later = pool.read("h1", [["hpvmnet"]])  # answered in order: after the log is written
        assert later is not None and later[0].stdout.startswith("Name")
        with World.open(world_path, create=False) as world:
            assert ("hpvmstatus", "-M") in [entry.argv for entry in world.log("h1")]
    finally:
        pool.close()


def _logged_argvs(world_path: Path) -> list[str]:
    """The log's command lines as stored, read past any World (and its pending rows)."""
    with sqlite3.connect(world_path) as conn:
        return [row[0] for row in conn.execute("SELECT argv FROM log ORDER BY id")]


def test_idle_hands_the_parents_log_rows_to_a_worker_which_writes_them(
    world_path: Path,
) -> None:
    """The listings the parent read itself are logged by a worker while the parent plans,
    so its close has nothing left to write; nothing is logged twice."""
    pool = WorkerPool(world_path, processes=1)
    parent = World.open(world_path, create=False)
    try:
        assert pool.read("h1", [["hpvmstatus", "-M"]]) is not None
        parent.execute_many("h1", [["hpvmnet"], ["hpvmdevmgmt", "-l", "all"]])
        before = _logged_argvs(world_path)
        assert pool.idle(parent.take_pending()) is None  # a worker took them
        assert pool.read("h1", [["hpvmstatus", "-X"]]) is not None  # after the log write
        logged = _logged_argvs(world_path)[len(before) :]
        assert sorted(logged) == sorted(
            json.dumps(argv)
            for argv in (["hpvmstatus", "-M"], ["hpvmnet"], ["hpvmdevmgmt", "-l", "all"])
        )
        assert parent.take_pending() == PendingWrites(log=[], kept=[])
    finally:
        parent.close()
        pool.close()
    assert _logged_argvs(world_path).count(json.dumps(["hpvmnet"])) == 1


def test_a_dead_worker_makes_the_pool_step_aside(world_path: Path) -> None:
    pool = WorkerPool(world_path, processes=1)
    try:
        assert pool.read("h1", LISTINGS) is not None
        (worker,) = pool._workers
        worker.process.kill()
        worker.process.wait()
        assert pool.read("h1", LISTINGS) is None  # the caller runs the batch itself
        assert pool.read("h1", LISTINGS) is None
        # the parent's log rows, which no worker can take now, come back to it
        handed = PendingWrites(log=[(1, 0.0, '["hpvmnet"]', 0)], kept=[])
        assert pool.idle(handed) is handed
    finally:
        pool.close()


def test_batches_asked_ahead_are_answered_whatever_order_they_are_collected_in(
    world_path: Path,
) -> None:
    pool = WorkerPool(world_path, processes=1)
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
    pool = WorkerPool(world_path, processes=1)
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
    pool = WorkerPool(world_path, processes=1)
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


def test_a_thousand_hosts_tasks_are_sent_while_the_reader_reads_nothing(
    world_path: Path,
) -> None:
    """A batch of requests is one pickle, with the task in it once: a refresh's tasks for
    1,000 hosts fit in the pipe, so the parent sends a prefetch without waiting for a
    reader still starting up (here: stopped) to read it. Sent one pickle each, they took
    more than a pipe holds."""
    pool = WorkerPool(world_path, processes=1)
    pending: list[Any] = []
    try:
        assert pool.read("h1", LISTINGS) is not None  # the reader is up
        pid = pool._workers[0].process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            sending = threading.Thread(
                target=lambda: pending.extend(pool.submit_tasks(["h1"] * 1000, World.log)),
                daemon=True,
            )
            sending.start()
            sending.join(timeout=60)  # liveness, not a duration: it returns at once
            assert not sending.is_alive(), "the parent waited for the reader to read"
        finally:
            os.kill(pid, signal.SIGCONT)
        assert pending[0]() == pending[-1]() != []
    finally:
        pool.close()


def _stop(pid: int) -> None:
    """Stop a worker, and wait until it is stopped: a worker running on another CPU
    could otherwise still take in (and begin) what is sent right after the signal."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 60  # liveness: at once
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.001)
    raise AssertionError(f"worker {pid} did not stop")


def until_posted(worker: _Worker, before: int) -> None:
    """Wait until the worker's pipe holds a request numbered `before` or later. `_post`
    numbers a batch before it writes it, and releases `_send_lock` once it is written:
    a worker let go as soon as the number moved could read the pipe before the write,
    and begin a task the test expects it to give up."""
    deadline = time.monotonic() + 60  # liveness: the request is sent at once
    while worker._next == before or worker._send_lock.locked():
        if time.monotonic() > deadline:
            raise AssertionError(f"no request numbered {before} or later was sent")
        time.sleep(0.001)


def _waiting_for_the_last(
    pool: WorkerPool, pending: list[Callable[[], Any]]
) -> tuple[threading.Thread, list[Any]]:
    """A thread that waits for the last of `pending` (its value lands in the list), once
    it waits: from then on that task is never offered to move."""
    got: list[Any] = []
    waiter = threading.Thread(target=lambda: got.append(pending[-1]()), daemon=True)
    waiter.start()
    deadline = time.monotonic() + 60  # liveness: the waiter starts at once
    while pending[-1] in pool._movable and time.monotonic() < deadline:
        time.sleep(0.01)
    return waiter, got


def _listed(world_path: Path) -> int:
    """How many `hpvmstatus -M` listings h1's log shows."""
    with World.open(world_path, create=False) as world:
        return sum(entry.argv == ("hpvmstatus", "-M") for entry in world.log("h1"))


# A task that runs a listing, so the log shows how often it ran.
LIST_MACHINES = functools.partial(World.execute, argv=["hpvmstatus", "-M"])


def test_tasks_asked_ahead_go_to_one_reader_until_the_caller_waits(world_path: Path) -> None:
    """Asked `ahead`, every task goes to the first reader; `rebalance` gives the later
    half of those it has not begun to the idle one. Each task runs once, and each value
    comes back to its waiter wherever it ran."""
    pool = WorkerPool(world_path, processes=2)
    tasks = 400
    try:
        (warm,) = pool.submit_tasks(["h1"], LIST_MACHINES, ahead=True)  # starts both
        expected = warm()
        first, second = pool._workers
        _stop(first.process.pid)  # nothing begun until rebalance asks
        try:
            pending = pool.submit_tasks(["h1"] * tasks, LIST_MACHINES, ahead=True)
            assert (first.outstanding, second.outstanding) == (tasks, 0)
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        pool.rebalance()
        assert second.outstanding > 0 and first.outstanding + second.outstanding == tasks
        assert second.outstanding <= tasks // 2  # the later half of what was not begun
        assert all(wait() == expected for wait in pending)
        assert (first.outstanding, second.outstanding) == (0, 0)
    finally:
        pool.close()
    assert _listed(world_path) == 1 + tasks  # each ran once: none lost, none twice


def test_only_tasks_nobody_waits_for_yet_are_given_away(world_path: Path) -> None:
    """A waiter keeps the worker it waits on: the task it waits for is not offered, so
    the reader never drops a task somebody already waits for on it (that waiter would
    wait for ever)."""
    pool = WorkerPool(world_path, processes=2)
    try:
        (warm,) = pool.submit_tasks(["h1"], LIST_MACHINES, ahead=True)
        expected = warm()
        first = pool._workers[0]
        _stop(first.process.pid)
        try:
            pending = pool.submit_tasks(["h1"] * 10, LIST_MACHINES, ahead=True)
            waiter, got = _waiting_for_the_last(pool, pending)
        finally:
            os.kill(first.process.pid, signal.SIGCONT)
        pool.rebalance()
        waiter.join(timeout=60)  # liveness, not a duration
        assert got == [expected], "the task waited for was given away"
        assert all(wait() == expected for wait in pending[:-1])
    finally:
        pool.close()
    assert _listed(world_path) == 11


def test_the_caller_takes_back_the_later_share_and_runs_it_itself(world_path: Path) -> None:
    """`take_back` withdraws the later share of the tasks the busiest reader has not
    begun: their waiters answer None (the caller runs them), the rest are answered, the
    task somebody already waits for stays, and no task runs twice."""
    pool = WorkerPool(world_path, processes=1)
    tasks = 300
    try:
        (warm,) = pool.submit_tasks(["h1"], LIST_MACHINES, ahead=True)
        expected = warm()
        (reader,) = pool._workers
        _stop(reader.process.pid)  # nothing begun until it is asked
        try:
            pending = pool.submit_tasks(["h1"] * tasks, LIST_MACHINES, ahead=True)
            waiter, got = _waiting_for_the_last(pool, pending)
            backs: list[TakenBack] = []
            asking = threading.Thread(target=lambda: backs.append(pool.take_back(1 / 3)))
            sent = reader._next
            asking.start()
            until_posted(reader, sent)
        finally:  # the reader reads its tasks and the request to give some back at once
            os.kill(reader.process.pid, signal.SIGCONT)
        asking.join(timeout=60)  # liveness, not a duration
        (back,) = backs
        taken = back.hosts
        assert len(taken) == (tasks - 1) // 3 and set(taken) == {"h1"}
        assert back.done == ()  # it had begun nothing
        assert reader.outstanding == tasks - len(taken)
        kept, withdrawn = pending[: -1 - len(taken)], pending[-1 - len(taken) : -1]
        assert all(wait() is None for wait in withdrawn)
        assert all(wait() == expected for wait in kept)
        waiter.join(timeout=60)  # liveness, not a duration
        assert got == [expected], "the task waited for was taken back"
        assert pool.take_back(1 / 3) == TakenBack()  # nothing left to take
    finally:
        pool.close()
    assert _listed(world_path) == 1 + tasks - len(taken)  # the rest is the caller's


def test_taking_back_names_the_tasks_the_worker_has_finished(world_path: Path) -> None:
    """Tasks the worker finished before it was asked are named `done` (their waiters
    answer at once), and none of them is taken back."""
    pool = WorkerPool(world_path, processes=1)
    try:
        pending = pool.submit_tasks(["h1"] * 20, LIST_MACHINES, ahead=True)
        expected = pending[-1]()  # replies come in order: the 19 before it are done
        back = pool.take_back(1.0)
        assert back == TakenBack(hosts=(), done=("h1",) * 19)
        assert all(wait() == expected for wait in pending[:-1])
    finally:
        pool.close()
    assert _listed(world_path) == 20


def test_a_give_away_is_answered_before_the_replies_not_yet_sent(tmp_path: Path) -> None:
    """The reply to GiveAway goes ahead of the replies waiting to be sent (but after one
    partly sent), and names the later half of the offered requests not begun, which are
    dropped."""
    inbox, _ = os.pipe()
    out_read, out_write = os.pipe()
    pipes = _Pipes(inbox, out_write)
    pipes.requests.extend((n, "h1", [], None) for n in range(10, 16))
    big = "x" * (1 << 17)  # more than the pipe holds: partly sent
    pipes.reply(1, "ok", big)
    pipes.reply(2, "ok", "queued")
    pipes._give_away(3, GiveAway(frozenset({11, 12, 13, 14, 99})))
    assert [r[0] for r in pipes.requests] == [10, 11, 12, 15]
    received = bytearray()
    while pipes._unsent:
        received += os.read(out_read, 1 << 16)
        pipes._send()
    while True:  # what the last write left in the pipe
        os.set_blocking(out_read, False)
        try:
            chunk = os.read(out_read, 1 << 16)
        except BlockingIOError:
            break
        if not chunk:
            break
        received += chunk
    replies = []
    stream = io.BytesIO(bytes(received))
    while head := stream.read(8):
        (size,) = struct.unpack("!Q", head)
        replies.append(pickle.loads(stream.read(size)))
    assert [(n, v if n != 1 else len(v)) for n, _, v in replies] == [
        (1, len(big)),
        (3, ([13, 14], 10)),  # and every request below 10 is done
        (2, "queued"),
    ]
    assert _encoded(GiveAway(frozenset())) != b""  # the request itself pickles


@pytest.mark.parametrize(
    ("waiting", "share", "dropped", "done_below"),
    [
        (range(10, 16), 1 / 3, [14, 15], 10),
        (range(10, 15), 1 / 3, [14], 10),  # rounded down
        (range(10, 12), 1 / 3, [], 10),  # too few to part with any
        (range(10, 16), 1.0, [10, 11, 12, 13, 14, 15], 30),  # none left: all before it
    ],
)
def test_a_give_away_drops_the_later_share_of_the_requests_not_begun(
    waiting: range, share: float, dropped: list[int], done_below: int
) -> None:
    inbox, _ = os.pipe()
    out_read, out_write = os.pipe()
    pipes = _Pipes(inbox, out_write)
    pipes.requests.extend((n, "h1", [], None) for n in waiting)
    pipes._give_away(30, GiveAway(frozenset(waiting), share))
    assert [r[0] for r in pipes.requests] == [n for n in waiting if n not in dropped]
    (size,) = struct.unpack("!Q", os.read(out_read, 8))
    assert pickle.loads(os.read(out_read, size)) == (30, "ok", (dropped, done_below))


def test_a_task_the_worker_cannot_import_ends_it_and_the_caller_does_the_work(
    world_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that does not unpickle on the worker (its task's module is importable here
    only) ends that worker: every request of the batch comes back None, so the caller
    reads in process, and the pool steps aside."""
    (tmp_path / "here_only.py").write_text("def task(world, host):\n    return host\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # this process's path, not the worker's
    here_only = importlib.import_module("here_only")
    pool = WorkerPool(world_path, processes=1)
    try:
        pending = pool.submit_tasks(["h1", "h1", "h1"], here_only.task)
        assert [wait() for wait in pending] == [None, None, None]
        assert pool.read("h1", LISTINGS) is None  # the caller runs listings itself now
    finally:
        pool.close()


def test_closing_waits_for_a_worker_to_exit_and_gives_up_on_one_that_does_not() -> None:
    """`_exited` reaps a process that exits (at once where Linux gives it a process fd)
    and reports one still running after the timeout, which `close` then kills."""
    quick = subprocess.Popen([sys.executable, "-c", "pass"])
    assert _exited(quick, timeout=60) and quick.returncode == 0
    stuck = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert not _exited(stuck, timeout=0.2)
        assert stuck.poll() is None
    finally:
        stuck.kill()
        stuck.wait()


CREATE_G2 = [["hpvmdevmgmt", "-S", "1G", "/ivm/g2.img"],
             ["hpvmcreate", "-P", "g2", "-a", "disk:avio_stor::file:/ivm/g2.img"]]  # fmt: skip


def _changed(pool: WorkerPool, argvs: list[list[str]]) -> list[int]:
    """The exit statuses of `argvs` run on h1 by the pool's writer."""
    pending = pool.submit_change("h1", argvs)
    assert pending is not None
    results = pending()
    assert results is not None
    return [result.exit_code for result in results]


def test_the_writer_runs_changes_on_the_world_file_and_logs_them(world_path: Path) -> None:
    pool = WorkerPool(world_path, processes=1)
    try:
        assert _changed(pool, CREATE_G2) == [0, 0]
        assert _changed(pool, [["hpvmcreate", "-P", "g2"]]) == [1]  # it exists now
        # a reader sees the writer's change at once: both work on the one world file
        listing = pool.read("h1", [["hpvmstatus", "-M"]])
        assert listing is not None and "\ng2:" in f"\n{listing[0].stdout}"
    finally:
        pool.close()
    with World.open(world_path, create=False) as world:
        argvs = [entry.argv for entry in world.log("h1")]
    assert tuple(CREATE_G2[1]) in argvs and ("hpvmcreate", "-P", "g2") in argvs


def test_a_dead_writer_takes_no_change_and_the_one_it_held_is_reported_lost(
    world_path: Path,
) -> None:
    """A dead writer's pool takes no change (None: nothing was sent, the caller may run it
    itself); a change sent before the writer died gives None from its waiter (whether it
    ran is unknown)."""
    pool = WorkerPool(world_path, processes=1)
    try:
        first = pool.submit_change("h1", [["hpvmstart", "-P", "g1"]])
        assert first is not None and first() is not None
        writer = pool._writer
        assert writer is not None
        os.kill(writer.process.pid, signal.SIGSTOP)  # it reads nothing more
        sent = pool.submit_change("h1", [["hpvmstop", "-P", "g1", "-F"]])
        assert sent is not None
        writer.process.kill()
        writer.process.wait()
        assert sent() is None
        assert pool.submit_change("h1", [["hpvmstop", "-P", "g1", "-F"]]) is None
    finally:
        pool.close()
    with World.open(world_path, create=False) as world:  # the stop never ran
        assert world.execute("h1", ["hpvmstatus", "-M"]).stdout.split(":")[10] == "On"


def test_a_reply_goes_to_its_waiter_while_another_waits_for_a_later_one(
    world_path: Path,
) -> None:
    """Replies come in order; a thread waiting for a late reply reads the pipe for
    everyone, and hands over each reply it reads at once: the earlier waiter, asleep
    until its reply is read, does not wait for the later reply too (here the early reply
    is held back 0.5 s and the late one 3 s by hangs on the worker)."""
    with World.open(world_path, create=False) as world:
        world.set_faults("h1", hangs={"hpvmnet": 0.5, "hpvmstatus": 3.0})
    pool = WorkerPool(world_path, processes=1)
    finished: list[str] = []
    try:
        early = pool.submit("h1", [["hpvmnet"]])
        late = pool.submit("h1", [["hpvmstatus", "-M"]])
        (worker,) = pool._workers

        def wait(pending: Any, name: str) -> None:
            assert pending() is not None
            finished.append(name)

        waiting_late = threading.Thread(target=wait, args=(late, "late"), daemon=True)
        waiting_late.start()
        deadline = time.monotonic() + 30  # liveness: the thread starts reading at once
        while not worker._reading and time.monotonic() < deadline:
            time.sleep(0.01)
        assert worker._reading, "the late waiter never read the pipe"
        waiting_early = threading.Thread(target=wait, args=(early, "early"), daemon=True)
        waiting_early.start()  # asleep on the condition: the late waiter holds the pipe
        for thread in (waiting_early, waiting_late):
            thread.join(timeout=60)  # liveness, not a duration
        assert finished == ["early", "late"]
    finally:
        pool.close()


def test_a_reply_that_does_not_read_ends_the_worker_for_every_waiter(
    world_path: Path,
) -> None:
    """After a failed read the pipe is out of step (where does the next reply start?):
    that waiter and every later one see the worker as gone, and the pool steps aside."""
    pool = WorkerPool(world_path, processes=1)
    try:
        first, second = pool.submit("h1", LISTINGS), pool.submit("h1", LISTINGS)
        (worker,) = pool._workers
        garbage = b"not a pickle"
        worker.process.stdout = io.BytesIO(struct.pack("!Q", len(garbage)) + garbage)  # type: ignore[assignment]
        assert first() is None and second() is None
        assert pool.read("h1", LISTINGS) is None  # the caller reads in process
    finally:
        pool.close()


def test_workers_ignore_ctrl_c_and_keep_serving(world_path: Path) -> None:
    """A Ctrl-C reaches the terminal's whole process group; apply's first one lets
    running changes finish, so the workers running them must not die of it."""
    pool = WorkerPool(world_path, processes=1)
    try:
        assert pool.read("h1", LISTINGS) is not None
        (worker,) = pool._workers
        # a terminal's Ctrl-C goes to its foreground process group: not the workers'
        assert os.getpgid(worker.process.pid) != os.getpgid(0)
        os.kill(worker.process.pid, signal.SIGINT)  # and sent to a worker itself:
        assert pool.read("h1", LISTINGS) is not None
        assert worker.process.poll() is None
    finally:
        pool.close()


def test_the_kill_seam_stops_ivmctl_not_its_workers(
    world_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`IVMCTL_TEST_KILL_AT` names a point of ivmctl's own run: a worker passing crash
    points (inside a change) must not count them or die at them."""
    monkeypatch.setenv("IVMCTL_TEST_KILL_AT", "inside hpvmcreate")
    pool = WorkerPool(world_path, processes=1)
    try:
        assert _changed(pool, CREATE_G2) == [0, 0]
    finally:
        pool.close()


def test_log_rows_handed_over_are_written_even_when_the_input_closes_first(
    world_path: Path,
) -> None:
    """A parent that closes its pool right after a refresh may close a worker's input while
    its log rows wait behind a request the worker has not begun: the request is dropped,
    the parent's rows are not (found by CI: a host's listing went missing from the log)."""
    handed = PendingWrites(log=[(1, 0.0, json.dumps(["hpvmstatus", "-X"]), 0)], kept=[])
    # in one batch: a listing (run), another (dropped: the input closes while the first
    # runs), then the parent's rows; the input is closed before the worker reads anything
    batch = [(0, "h1", [["hpvmstatus", "-M"]], None), (1, "h1", [["hpvmnet"]], None),
             (2, None, [], handed)]  # fmt: skip
    before = _logged_argvs(world_path)
    _served(world_path, batch)
    logged = _logged_argvs(world_path)[len(before) :]
    assert json.dumps(["hpvmstatus", "-X"]) in logged  # the parent's row
    assert logged.count(json.dumps(["hpvmstatus", "-X"])) == 1


def _served(world_path: Path, batch: list[Any]) -> list[tuple[int, str, Any]]:
    """The replies of a worker serving `batch` in process, its input closed after it;
    the batch is all there when the worker starts, as when changes queue behind one."""
    from ivmctl.runtime.workers import _receive, serve

    inbox_read, inbox_write = os.pipe()
    outbox_read, outbox_write = os.pipe()
    os.write(inbox_write, _encoded(batch))
    os.close(inbox_write)
    with open(inbox_read, "rb") as inbox, open(outbox_write, "wb") as outbox:
        serve(str(world_path), inbox, outbox)
    replies = []
    with open(outbox_read, "rb") as answers:
        while True:
            try:
                replies.append(_receive(answers))
            except EOFError:
                return replies


def test_changes_queued_together_commit_together_and_each_answers_for_itself(
    world_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer runs the changes waiting in its input as one transaction; each keeps
    its own outcome: a refusal, an error (an unknown host) or success."""
    groups: list[int] = []
    grouped = World.grouped

    def counted(world: World) -> Any:
        groups.append(1)
        return grouped(world)

    monkeypatch.setattr(World, "grouped", counted)
    batch = [
        (0, "h1", CREATE_G2, None),
        (1, "h1", [["hpvmcreate", "-P", "g2"]], None),  # refused: it exists by then
        (2, "nosuch", [["hpvmcreate", "-P", "g3"]], None),
        (3, "h1", [["hpvmcreate", "-P", "g4"]], None),
    ]
    replies = _served(world_path, batch)
    assert groups == [1]
    assert [(number, status) for number, status, _ in replies] == [
        (0, "ok"), (1, "ok"), (2, "error"), (3, "ok"),
    ]  # fmt: skip
    assert [r.exit_code for r in replies[0][2]] == [0, 0]
    assert [r.exit_code for r in replies[1][2]] == [1]
    assert isinstance(replies[2][2], EmulatorError)
    with World.open(world_path, create=False) as world:
        listed = world.execute("h1", ["hpvmstatus", "-M"]).stdout.splitlines()
    assert sorted(line.split(":")[0] for line in listed) == ["g1", "g2", "g4"]


def test_a_group_is_declined_whole_while_the_world_simulates_delays(world_path: Path) -> None:
    with World.open(world_path, create=False) as world:
        world.set_faults("h1", latency={"create": 1.0})
    batch = [(0, "h1", [["hpvmcreate", "-P", "g2"]], None),
             (1, "h1", [["hpvmcreate", "-P", "g3"]], None)]  # fmt: skip
    replies = _served(world_path, batch)
    assert [(n, status, type(value).__name__) for n, status, value in replies] == [
        (0, "error", "ChangeDeclined"), (1, "error", "ChangeDeclined"),
    ]  # fmt: skip
    with World.open(world_path, create=False) as world:
        assert world.execute("h1", ["hpvmstatus", "-M"]).stdout.count("\n") == 1  # g1 alone


def test_a_group_whose_commit_fails_answers_every_change_with_the_error(
    world_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody hears of a change before its group committed: when the commit fails, each
    change of the group gets the error, and none of them was made."""
    from contextlib import contextmanager

    from ivmctl.runtime.store import Store

    group = Store.group

    @contextmanager
    def failing_commit(store: Store) -> Any:
        with group(store):
            yield
            store.conn().execute("ROLLBACK")  # as SQLite does itself on a full disk

    monkeypatch.setattr(Store, "group", failing_commit)
    batch = [(0, "h1", [["hpvmcreate", "-P", "g2"]], None),
             (1, "h1", [["hpvmcreate", "-P", "g3"]], None)]  # fmt: skip
    replies = _served(world_path, batch)
    assert [(n, status) for n, status, _ in replies] == [(0, "error"), (1, "error")]
    assert "rolled back a group of changes" in str(replies[0][2])
    with World.open(world_path, create=False) as world:
        listed = world.execute("h1", ["hpvmstatus", "-M"]).stdout.splitlines()
    assert [line.split(":")[0] for line in listed] == ["g1"]


def test_many_threads_waiting_on_one_worker_each_get_their_own_reply(world_path: Path) -> None:
    """Each waiter sleeps until its own reply is read, and one of them reads on when the
    reader has its own: every thread gets the reply to what it asked, none is left."""
    pool = WorkerPool(world_path, processes=1)
    asked = [["hpvmstatus", "-P", "g1"], ["hpvmnet", "-S", "vsw1"], ["hpvmnet", "-S", "nosuch"]]
    got: dict[tuple[int, int], int] = {}
    try:

        def ask(thread: int) -> None:
            for round_ in range(30):
                line = asked[(thread + round_) % len(asked)]
                pending = pool.submit("h1", [line])
                assert pending is not None
                results = pending()
                assert results is not None
                got[(thread, round_)] = results[0].exit_code

        threads = [threading.Thread(target=ask, args=(n,), daemon=True) for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)  # liveness, not a duration
        assert not any(thread.is_alive() for thread in threads), "a waiter was never woken"
    finally:
        pool.close()
    expected = {(t, r): 1 if (t + r) % len(asked) == 2 else 0 for t in range(12) for r in range(30)}
    assert got == expected
