"""Commands answered by other processes, as real VM Hosts answer them on their own CPUs.

Against real hosts, the work of `hpvmstatus`, `hpvmcreate` and friends happens on each
host, in parallel, and ivmctl only waits and parses. An in-process emulator does all of
that work on ivmctl's own interpreter, under one lock: at 1,000 hosts it was half of a
refresh, and over half of an apply's CPU. `WorkerPool` moves it to worker processes
(`python -m ivmctl.runtime.workers WORLD`), each with its own connection to the world
file (WAL: readers read while a writer writes):

* **readers** answer listings (`kinds.is_read_only`), as many as asked for, so the
  parent parses one host's listings while a reader produces the next host's;
* **the writer**, one process, runs changes (`submit_change`). One, because the world's
  writes are serialised anyway (one SQLite write lock), and two processes waiting on
  that lock sleep in SQLite's busy handler; threads of one process take turns on a lock
  instead. The changes waiting in its input when it takes one run as one transaction,
  each in a savepoint of its own (`World.grouped`: BEGIN and COMMIT were a fifth of
  the writer's time), and are answered once it committed. While the world simulates
  delays it declines every change (`ChangeDeclined`), and the caller runs it itself: a
  change that waits keeps its host's start lock, which only the caller's process holds.

A reader writes its log rows when told the refresh is over (`WorkerPool.idle`: the
parent plans while they are written) and when its input closes (`World.log` orders by
time, so they land in place); the writer logs each change with the change.

A caller may also send *tasks* (`WorkerPool.submit_tasks`): a picklable callable that a
reader calls with its world and a host name, whose return value comes back. The
emulator provider sends one that reads a host and parses its listings there, so the
parsing, too, happens beside the listings instead of on ivmctl's interpreter. The task's
module is imported by the worker when it unpickles the request: this module knows
nothing of it.

Tasks asked *ahead* (a prefetch, while the caller loads the configuration on its own CPU)
all go to one reader, so the caller and that reader each have a CPU of a two-CPU machine
to themselves; with every reader busy, three processes took turns on two CPUs and the
caller's load took 40 % longer. The other readers start meanwhile and import the task's
module. When the caller is about to wait (`WorkerPool.rebalance`), each reader with
nothing to do takes the later half of the tasks the busiest one has not begun. A caller
with a CPU to spare may then take back a share of them to run itself
(`WorkerPool.take_back`), instead of waiting while the readers work through them.

Workers run in a process group of their own and ignore SIGINT, so a terminal's Ctrl-C
reaches ivmctl alone: the parent decides when to stop, and closes their input. A worker
whose input closes drops the requests it has not begun (but writes the log rows the
parent handed it), finishes the one it runs (a change is one transaction), and exits.
The parent's kill seam (`crashpoints`) is not passed on: crash points stop the process
they name, ivmctl's. An error a worker meets goes back with its traceback as a note
(shown with `--debug`).

Protocol, over the worker's stdin/stdout: length-prefixed pickles. The parent sends
requests in batches, one pickle a batch: a list of `(number, host, argvs, task)` (a task
sent for many hosts is pickled once, so a refresh's requests fit in the pipe and the
parent does not wait for workers still starting up to read them). A reply is
`(number, "ok", value)` (the batch's `[CommandResult, ...]`, or what `task(world, host)`
returned when `task` is not None) or `(number, "error", exception)`; requests are
answered in order, but for one. Requests without a host:

* `(number, None, [], None)` writes the worker's pending log rows, then checkpoints the
  world file; its reply is discarded. With `PendingWrites` in place of None, it writes
  those (the parent's, `WorkerPool.idle`) with its own;
* `(number, None, [], task)` only brings the task's module in; its reply is discarded;
* `(number, None, [], GiveAway(numbers, share))`, answered as soon as it is read and
  ahead of any reply not yet sent, drops the later `share` (rounded down) of the tasks
  among `numbers` it has not begun; the reply is the numbers it dropped and the number
  below which every request is done.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ivmctl.runtime import spare
from ivmctl.runtime.kinds import is_read_only
from ivmctl.runtime.world import CommandResult, PendingWrites, World

_SIZE = struct.Struct("!Q")
# Called on the worker with its world and a host; returns something picklable.
Task = Callable[[World, str], object]


@dataclass(frozen=True)
class GiveAway:
    """In place of a task, in a request without a host: drop the later `share` of the
    tasks among `numbers` not begun (rounded down), and say which (see the protocol
    above)."""

    numbers: frozenset[int]
    share: float = 0.5


@dataclass(frozen=True)
class TakenBack:
    """What `WorkerPool.take_back` took back (`hosts`, in the order asked), and the hosts
    of the tasks the worker had finished then (`done`), in the order asked."""

    hosts: tuple[str, ...] = ()
    done: tuple[str, ...] = ()


# (number, host, argvs, task): see the protocol above.
Request = tuple[int, str | None, list[list[str]], Task | GiveAway | PendingWrites | None]


class ChangeDeclined(Exception):
    """The writer ran nothing: the world simulates delays (a latency or a hang, checked
    as the writer takes each change), and a change that waits must run where the host's
    start lock is, in the process that asked."""


def _encoded(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _SIZE.pack(len(body)) + body


def _receive(stream: IO[bytes]) -> Any:
    head = stream.read(_SIZE.size)
    if len(head) < _SIZE.size:
        raise EOFError
    (size,) = _SIZE.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return pickle.loads(body)  # our own child's replies only


class _Worker:
    """One worker process and its pipe; requests are answered in order, each reply
    carries its request's number so any thread may collect any reply."""

    def __init__(self, path: Path) -> None:
        # the spare started with the command if there is one (`spare`), else a new one
        self.process = spare.take(path) or spare.start_worker(str(path))
        self._send_lock = threading.Lock()
        self._guard = threading.Lock()  # over the replies, the waiters and who reads
        self._reading = False  # a thread is reading the pipe (without `_guard`)
        # threads waiting for a reply, by request number: each on a lock of its own, held
        # until its reply is read, or it is to read the pipe itself, or the pipe is lost
        self._waiters: dict[int, threading.Lock] = {}
        self._lost = False  # a read failed part-way: the pipe is out of step for good
        self._next = 0
        self._replies: dict[int, tuple[str, Any]] = {}
        self._discard: set[int] = set()  # requests whose replies nobody waits for
        self.outstanding = 0  # requests sent, replies not collected (a hint for choosing)

    def write_log(self, handed: PendingWrites | None = None) -> None:
        """Ask the worker to write its pending log rows now, with those `handed` to it,
        then checkpoint the world file; nobody waits for it."""
        self._post([(None, [], handed)])

    def send(self, host: str, argvs: list[list[str]], task: Task | None = None) -> int:
        """Send a batch of command lines, or `task` for `host`."""
        (number,) = self._post([(host, argvs, task)])
        return number

    def send_tasks(self, hosts: Sequence[str], task: Task) -> list[int]:
        """Send a task for each host."""
        return self._post([(host, [], task) for host in hosts])

    def prepare(self, task: Task) -> None:
        """Have the worker import `task`'s module now, not with its first task."""
        self._post([(None, [], task)])

    def give_away(self, numbers: Sequence[int], share: float = 0.5) -> tuple[list[int], int]:
        """The numbers of the tasks the worker dropped (the later `share` of those among
        `numbers` it had not begun), and the number below which it had finished every
        request. Answered ahead of the replies it has not sent yet."""
        request = GiveAway(frozenset(numbers), share)
        (asked,) = self._post([(None, [], request)], collected=True)
        dropped, done_below = self.collect(asked)
        with self._guard:
            self.outstanding -= len(dropped)
        return dropped, done_below

    def _post(
        self,
        requests: Sequence[
            tuple[str | None, list[list[str]], Task | GiveAway | PendingWrites | None]
        ],
        *,
        collected: bool = False,
    ) -> list[int]:
        """Number `requests` and send them in one write; a request without a host (write
        the log, prepare a task) gets a reply nobody collects unless `collected`."""
        assert self.process.stdin is not None
        with self._send_lock:
            first = self._next
            self._next += len(requests)
            numbers = list(range(first, self._next))
            for number, (host, _, _) in zip(numbers, requests, strict=True):
                if host is None and not collected:
                    self._discard.add(number)
                else:
                    self.outstanding += 1
            batch = [(number, *request) for number, request in zip(numbers, requests, strict=True)]
            self.process.stdin.write(_encoded(batch))
            self.process.stdin.flush()
        return numbers

    def collect(self, number: int) -> Any:
        """The reply to request `number`. One thread at a time reads the pipe, and every
        reply it reads goes to its waiter at once: a thread that kept reading until its
        own reply came (replies come in order) made the waiters of every earlier request
        wait for it. Each waiter sleeps on a lock of its own, woken for its reply alone
        (a condition woke every waiter for each reply, with ten apply threads on one
        pipe mostly to sleep again); when the reader has its own reply, one waiter reads
        on."""
        assert self.process.stdout is not None
        while True:
            with self._guard:
                if number in self._replies:
                    status, value = self._replies.pop(number)
                    self.outstanding -= 1
                    break
                if self._lost:
                    raise EOFError
                gate = None
                if self._reading:
                    gate = self._waiters[number] = threading.Lock()
                    gate.acquire()
                else:
                    self._reading = True
            if gate is None:
                status, value = self._read_until(number)
                break
            try:
                gate.acquire()  # released by `_wake`
            except BaseException:  # interrupted: nobody may hand the pipe to this thread
                with self._guard:
                    if self._waiters.get(number) is gate:
                        del self._waiters[number]
                    elif not self._reading:
                        self._wake(next(iter(self._waiters), None))
                raise
        if status == "error":
            raise value
        return value

    def _read_until(self, number: int) -> tuple[str, Any]:
        """Read replies, each to its waiter, until the one to `number`; then hand the pipe
        to a waiter. On a read that fails, every waiter is woken to find the pipe lost."""
        assert self.process.stdout is not None
        try:
            while True:
                got, status, value = _receive(self.process.stdout)
                with self._guard:
                    if got in self._discard:
                        self._discard.discard(got)
                        continue
                    if got == number:
                        self.outstanding -= 1
                        self._reading = False
                        self._wake(next(iter(self._waiters), None))
                        return status, value
                    self._replies[got] = (status, value)
                    self._wake(got)
        except BaseException as exc:
            # EOF, or an interrupt or error after part of a reply was read: no later read
            # can find where the next reply starts
            with self._guard:
                self._lost = True
                self._reading = False
                for waiting in list(self._waiters):
                    self._wake(waiting)
            if isinstance(exc, Exception) and not isinstance(exc, EOFError):
                raise EOFError(f"a reply of the worker did not read: {exc!r}") from exc
            raise

    def _wake(self, number: int | None) -> None:
        """With `_guard` held: wake the thread waiting for reply `number`, if any."""
        gate = self._waiters.pop(number, None) if number is not None else None
        if gate is not None:
            gate.release()

    def finish(self) -> None:
        """Close the worker's input: it writes its log rows and exits (see `close`)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a worker that died has no pipe left
                self.process.stdin.close()

    def close(self) -> None:
        """Close the worker's input and wait for it to exit (killed after 30 s)."""
        self.finish()
        if not _exited(self.process, timeout=30):
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _exited(process: subprocess.Popen[bytes], *, timeout: float) -> bool:
    """Wait for `process` to exit and reap it; False if it still runs after `timeout`
    seconds. Where Linux gives a process a file descriptor, the wait ends as it exits:
    `Popen.wait` with a timeout polls, sleeping up to 50 ms past the exit, and ivmctl
    waits for its workers as it ends."""
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(process.pid)
        except OSError:  # reaped already, or no pidfd (Linux before 5.3)
            pass
        else:
            try:
                ready, _, _ = select.select([pidfd], [], [], timeout)
            finally:
                os.close(pidfd)
            if not ready:
                return False
    try:
        process.wait(timeout=timeout)  # at once when it has exited
    except subprocess.TimeoutExpired:
        return False
    return True


Pending = Callable[[], "list[CommandResult] | None"]


class _TaskReply:
    """Waits for the value of one task, where the pool sent it last: `rebalance` may move
    it to another worker until it is waited for. None if that worker died, or if the
    caller took the task back (`take_back`: it runs the task itself)."""

    def __init__(self, pool: WorkerPool, worker: _Worker, number: int, host: str, task: Task):
        self.pool, self.host, self.task = pool, host, task
        self.worker: _Worker | None = worker
        self.number = number
        with pool._moves:
            pool._movable.add(self)

    def __call__(self) -> Any:
        with self.pool._moves:  # not while it moves; from now on it stays where it is
            self.pool._movable.discard(self)
            worker, number = self.worker, self.number
        return None if worker is None else self.pool._collector(worker, number)()


class WorkerPool:
    """Worker processes on one world file: `processes` readers for listings and tasks,
    started as needed, and one writer for changes, started with the first change."""

    def __init__(self, path: Path, processes: int) -> None:
        self.processes = processes
        self._path = path
        self._workers: list[_Worker] = []  # the readers
        self._writer: _Worker | None = None
        self._guard = threading.Lock()
        self._broken = False
        self._moves = threading.Lock()  # held while tasks move (`rebalance`)
        self._movable: set[_TaskReply] = set()  # tasks sent, nobody waiting for them yet

    def allow(self, processes: int) -> None:
        """Use up to `processes` readers from now on, if more than now (started as
        needed); never fewer."""
        with self._guard:
            self.processes = max(self.processes, processes)

    @staticmethod
    def can_read(argvs: Sequence[Sequence[str]]) -> bool:
        return all(is_read_only(argv) for argv in argvs)

    def read(self, host: str, argvs: Sequence[Sequence[str]]) -> list[CommandResult] | None:
        """The batch's results, or None when the pool cannot answer (the caller then runs
        the batch itself). A refusal or an unknown host comes back as it would in process."""
        return self.submit(host, argvs)()

    def submit(self, host: str, argvs: Sequence[Sequence[str]]) -> Pending:
        """Send a batch now; the returned function waits for its results (None when the
        pool cannot answer). Lets one thread keep workers busy while it parses."""
        return self._send(self._worker(), host, argvs) or (lambda: None)

    def submit_tasks(
        self, hosts: Sequence[str], task: Task, *, ahead: bool = False
    ) -> list[Callable[[], Any]]:
        """Have workers call `task(world, host)` on their own world for each of `hosts`;
        the returned functions (in the order of `hosts`) wait for the values, None when the
        pool cannot answer (the caller then does the work itself); what a task raises is
        raised there. Hosts are spread evenly over every worker (all started now) and sent
        with one write to each: asking for 1,000 hosts wakes a worker once, not 500 times.

        Asked `ahead` (the caller works on before it waits), they all go to the first
        worker, and the others only import the task's module, until `rebalance`."""
        workers = self._started()
        if not workers:
            return [lambda: None for _ in hosts]
        pending: list[Callable[[], Any]] = [lambda: None] * len(hosts)
        if ahead:
            shares = [list(range(len(hosts)))] + [[] for _ in workers[1:]]
        else:
            shares = [list(range(i, len(hosts), len(workers))) for i in range(len(workers))]
        try:
            for worker, share in zip(workers, shares, strict=True):
                if not share:
                    worker.prepare(task)
                    continue
                numbers = worker.send_tasks([hosts[i] for i in share], task)
                for i, number in zip(share, numbers, strict=True):
                    pending[i] = _TaskReply(self, worker, number, hosts[i], task)
        except (OSError, pickle.PickleError):
            self._break()
            return [lambda: None for _ in hosts]
        return pending

    def submit_task(self, host: str, task: Task) -> Callable[[], Any]:
        """Have the least busy reader call `task(world, host)` now, as `submit` sends a
        batch: a function that waits for the value (None when the pool cannot answer;
        what the task raises is raised there). Not a task `rebalance` moves: its caller
        waits for it next."""
        return self._send(self._worker(), host, [], task) or (lambda: None)

    def rebalance(self) -> None:
        """The caller is about to wait for its tasks: each worker with nothing to do
        takes the later half of the tasks the busiest one has not begun (see the module's
        docstring). Only tasks nobody waits for yet move."""
        workers = self._readers()
        with self._moves:
            for idle in [w for w in workers if not w.outstanding]:
                try:
                    taken, _ = self._dropped_by_busiest(workers, 0.5)
                    if not taken:
                        return
                    numbers = idle.send_tasks([t.host for t in taken], taken[0].task)
                except (EOFError, OSError, pickle.PickleError):
                    self._break()  # their waiters find out: each gets None
                    return
                for moved, number in zip(taken, numbers, strict=True):
                    moved.worker, moved.number = idle, number

    def take_back(self, share: float) -> TakenBack:
        """The caller is about to wait and has a CPU of its own: it takes back the later
        `share` of the tasks the busiest worker has not begun, to run them itself. Their
        waiters answer None from now on. Only tasks nobody waits for yet are taken; of
        the others, those the worker had finished are named too (their waiters answer
        without waiting for it)."""
        workers = self._readers()
        if not workers:
            return TakenBack()
        with self._moves:
            try:
                taken, done = self._dropped_by_busiest(workers, share)
            except (EOFError, OSError, pickle.PickleError):
                self._break()  # their waiters find out: each gets None
                return TakenBack()
            for withdrawn in taken:
                withdrawn.worker = None
                self._movable.discard(withdrawn)
        return TakenBack(hosts=tuple(t.host for t in taken), done=tuple(t.host for t in done))

    def _dropped_by_busiest(
        self, workers: Sequence[_Worker], share: float
    ) -> tuple[list[_TaskReply], list[_TaskReply]]:
        """With `_moves` held: the tasks the busiest of `workers` dropped (the later
        `share` of those nobody waits for that it had not begun; their replies still name
        it), and those nobody waits for that it had finished. No request is sent when
        there are too few to drop any."""
        busiest = max(workers, key=lambda w: w.outstanding)
        movable = {t.number: t for t in self._movable if t.worker is busiest}
        if int(len(movable) * share) == 0:
            return [], []
        dropped, done_below = busiest.give_away(list(movable), share)
        taken = [movable.pop(n) for n in dropped]
        return taken, [movable[n] for n in sorted(movable) if n < done_below]

    def _readers(self) -> list[_Worker]:
        """The readers running now; none once the pool is broken."""
        with self._guard:
            return [] if self._broken else list(self._workers)

    def submit_change(self, host: str, argvs: Sequence[Sequence[str]]) -> Pending | None:
        """Send command lines that may change the world to the writer now. None when
        the pool cannot take them (nothing was sent: the caller runs them itself); else
        a function that waits for the results, which gives None if the writer died
        after they were sent (whether they ran is then unknown, and running them again
        could run them twice), and raises ChangeDeclined if the writer ran nothing
        because the world simulates delays (the caller runs them itself: one round trip
        more for a change that waits anyway)."""
        with self._guard:
            if not self._broken and self._writer is None:
                self._writer = self._spawn()
            writer = None if self._broken else self._writer
        return self._send(writer, host, argvs)

    def _send(
        self,
        worker: _Worker | None,
        host: str,
        argvs: Sequence[Sequence[str]],
        task: Task | None = None,
    ) -> Callable[[], Any] | None:
        """Send a batch (or `task` for `host`) to `worker`: a function that waits for its
        results, or None when there is no worker or it is gone (then it never read it)."""
        if worker is None:
            return None
        try:
            number = worker.send(host, [list(a) for a in argvs], task)
        except (OSError, pickle.PickleError):
            self._break()
            return None
        return self._collector(worker, number)

    def _collector(self, worker: _Worker, number: int) -> Callable[[], Any]:
        """A function that waits for the reply to request `number` of `worker` (None if
        the worker died: the pool is not used again)."""

        def result() -> Any:
            try:
                return worker.collect(number)
            except (EOFError, OSError, pickle.PickleError):
                self._break()  # a dead worker: stop using the pool
                return None

        return result

    def _worker(self) -> _Worker | None:
        """The least busy worker, started if there are fewer than `processes`."""
        with self._guard:
            if self._broken:
                return None
            idle = [w for w in self._workers if not w.outstanding]
            if not idle and len(self._workers) < self.processes:
                started = self._spawn()
                if started is not None:
                    self._workers.append(started)
                return started
            return idle[0] if idle else min(self._workers, key=lambda w: w.outstanding)

    def _started(self) -> list[_Worker]:
        """Every worker, those not running yet started; none when the pool is broken."""
        with self._guard:
            while not self._broken and len(self._workers) < self.processes:
                started = self._spawn()
                if started is not None:
                    self._workers.append(started)
            return [] if self._broken else list(self._workers)

    def _spawn(self) -> _Worker | None:
        """A new worker process (with `_guard` held); None, and the pool broken, when
        one cannot be started."""
        try:
            return _Worker(self._path)
        except OSError:
            self._broken = True
            return None

    def _break(self) -> None:
        with self._guard:
            self._broken = True

    def idle(self, handed: PendingWrites | None = None) -> PendingWrites | None:
        """The listings asked for so far are all there is for now: workers write their log
        rows while the parent works on (instead of when it closes them and waits), the
        first one with the parent's own (`handed`), and checkpoint the world file, so
        that the parent's close, the last, has little left to copy. What could not be
        handed over (no worker took it) is returned."""
        with self._guard:
            workers = list(self._workers)
        for worker in workers:
            try:
                worker.write_log(handed)
            except OSError:  # a dead worker is found when next used
                continue
            handed = None
        return handed

    def close(self) -> None:
        with self._guard:
            workers, self._workers = self._workers, []
            if self._writer is not None:
                workers.append(self._writer)
                self._writer = None
            self._broken = True
        for worker in workers:  # all of them write their log rows at once
            worker.finish()
        for worker in workers:
            worker.close()


def serve(path: str, inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """The worker's loop: answer requests until the input closes, then close the world.

    Neither side ever waits on a full pipe: requests are taken in as they arrive, and
    replies sent as far as the parent's pipe takes them (the rest kept here). So the
    parent may send every host of a refresh at once and collect the replies later (a
    prefetch while it loads the configuration) while the worker goes on. Once the
    input closes, the parent has stopped collecting: requests not yet begun are dropped
    and replies not yet sent discarded, but log rows the parent handed over are written.
    A batch that does not unpickle (a task whose module cannot be imported here) ends the
    worker: the parent then reads in process."""
    with World.open(path, create=False) as world:
        pipes = _Pipes(inbox.fileno(), outbox.fileno())
        while pipes.exchange(wait=not pipes.requests):
            if not pipes.requests:
                continue
            request = pipes.requests.popleft()
            number, host, argvs, task = request
            if host is None:  # GiveAway is answered as it arrives (`_Pipes.exchange`)
                if task is None or isinstance(task, PendingWrites):
                    if task is not None:
                        world.add_pending(task)
                    world.flush_log()
                    world.checkpoint()
                pipes.reply(number, "ok", [])  # a task's module is in: unpickled with it
                continue
            assert not isinstance(task, GiveAway | PendingWrites)
            if _is_change(request):
                pipes.exchange(wait=False)  # what else came meanwhile joins the group
                group = [(number, host, argvs), *_changes_next(pipes.requests)]
                for reply in _run_changes(world, group):
                    pipes.reply(*reply)
                continue
            if task is None and not all(map(is_read_only, argvs)) and world.simulates_delays():
                pipes.reply(number, "error", ChangeDeclined(host))
                continue
            try:
                value = world.execute_many(host, argvs) if task is None else task(world, host)
            except Exception as exc:  # sent back to be raised where it was asked for
                exc.add_note(traceback.format_exc())  # where it happened, for --debug
                pipes.reply(number, "error", exc)
            else:
                pipes.reply(number, "ok", value)
        # Dropped with the rest, the parent's log rows (`WorkerPool.idle`) would be lost:
        # it no longer has them. They are written with this worker's own as the world
        # closes (a parent that closes its pool right after a refresh has them queued
        # behind the tasks it no longer waits for).
        for _, host, _, task in pipes.requests:
            if host is None and isinstance(task, PendingWrites):
                world.add_pending(task)


_GROUP_MOST = 64  # changes committed together at most: their first waits for the last


def _is_change(request: Request) -> bool:
    """Whether `request` is command lines that all change something (a mix with a
    listing runs alone: its listing reads what is committed)."""
    _, host, argvs, task = request
    return host is not None and task is None and bool(argvs) and not any(map(is_read_only, argvs))


def _changes_next(
    requests: collections.deque[Request],
) -> list[tuple[int, str, list[list[str]]]]:
    """Take the changes at the head of `requests` (up to `_GROUP_MOST` with the one
    taken before)."""
    taken: list[tuple[int, str, list[list[str]]]] = []
    while requests and len(taken) < _GROUP_MOST - 1 and _is_change(requests[0]):
        number, host, argvs, _ = requests.popleft()
        assert host is not None
        taken.append((number, host, argvs))
    return taken


def _run_changes(
    world: World, group: Sequence[tuple[int, str, list[list[str]]]]
) -> list[tuple[int, str, object]]:
    """Run changes waiting one after another as one transaction (`World.grouped`): the
    replies, to be sent once it committed. A refusal rolls back its own command only; an
    exception in one change fails that change only; a commit that fails fails them all
    (none was made). While the world simulates delays, every change is declined."""
    replies: list[tuple[int, str, object]] = []
    try:
        with world.grouped():
            if world.simulates_delays():  # read inside: no fault can be set meanwhile
                return [(number, "error", ChangeDeclined(host)) for number, host, _ in group]
            for number, host, argvs in group:
                try:
                    replies.append((number, "ok", world.execute_many(host, argvs)))
                except Exception as exc:  # sent back to be raised where it was asked for
                    exc.add_note(traceback.format_exc())  # where it happened, for --debug
                    replies.append((number, "error", exc))
    except Exception as exc:
        exc.add_note(traceback.format_exc())
        return [(number, "error", exc) for number, _, _ in group]
    return replies


class _Pipes:
    """The worker's ends of its pipes: requests in (read when there is something to
    read, or when there is nothing else to do), replies out (non-blocking)."""

    def __init__(self, inbox: int, outbox: int) -> None:
        self._in, self._out = inbox, outbox
        os.set_blocking(outbox, False)  # the input is read only when select finds data
        self.requests: collections.deque[Request] = collections.deque()
        self._received = bytearray()
        self._unsent = bytearray()
        # the sizes of the replies in `_unsent`, the first one's as far as it is unsent
        self._sizes: collections.deque[int] = collections.deque()
        self._begun = False  # part of the first reply in `_unsent` is sent
        self._open = True

    def exchange(self, *, wait: bool) -> bool:
        """Take in the requests that arrived and send what the parent's pipe takes; with
        `wait`, first sleep until there is one or the other to do. False once the input
        closed."""
        if wait and not self._unsent:
            readable = True  # nothing else to do: a plain read waits for the parent
        else:
            ready, _, _ = select.select(
                [self._in], [self._out] if self._unsent else [], [], None if wait else 0
            )
            readable = bool(ready)
        if readable:
            data = os.read(self._in, 1 << 16)  # a pipe holds 64 KiB: larger allocates for nothing
            if not data:
                self._open = False
            self._received += data
            while len(self._received) >= _SIZE.size:
                (size,) = _SIZE.unpack_from(self._received)
                if len(self._received) < _SIZE.size + size:
                    break
                batch: list[Request] = pickle.loads(self._received[_SIZE.size : _SIZE.size + size])
                del self._received[: _SIZE.size + size]
                for request in batch:
                    if isinstance(request[3], GiveAway):
                        self._give_away(request[0], request[3])
                    else:
                        self.requests.append(request)
        self._send()
        return self._open

    def _give_away(self, number: int, asked: GiveAway) -> None:
        """Drop the later `asked.share` of the requests in `asked.numbers` not begun, and
        say which, ahead of every reply not sent yet, with the number below which every
        request is done (none runs while requests are taken in: they run in order)."""
        waiting = [request for request in self.requests if request[0] in asked.numbers]
        count = min(len(waiting), int(len(waiting) * asked.share))
        dropped = {request[0] for request in waiting[len(waiting) - count :]}
        self.requests = collections.deque(r for r in self.requests if r[0] not in dropped)
        done_below = self.requests[0][0] if self.requests else number
        self.reply(number, "ok", (sorted(dropped), done_below), first=True)

    def reply(self, number: int, status: str, value: object, *, first: bool = False) -> None:
        """Send a reply after the others not sent yet, or `first`: before them, after
        the one being sent."""
        message = _encoded((number, status, value))
        if first and self._sizes:
            at = self._sizes[0] if self._begun else 0
            self._unsent[at:at] = message
            self._sizes.insert(1 if self._begun else 0, len(message))
        else:
            self._unsent += message
            self._sizes.append(len(message))
        self._send()

    def _send(self) -> None:
        while self._unsent:
            try:
                sent = os.write(self._out, self._unsent)
            except BlockingIOError:
                return
            except OSError:  # the parent is gone: nobody to answer
                self._unsent.clear()
                self._sizes.clear()
                return
            del self._unsent[:sent]
            while sent:
                if sent < self._sizes[0]:
                    self._sizes[0] -= sent
                    self._begun = True
                    break
                sent -= self._sizes.popleft()
                self._begun = False


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us: it closes our input
    # served by the module as the parent imports it: what a reply pickles by name (such
    # as ChangeDeclined) must be found there, not in `__main__`
    from ivmctl.runtime import workers

    # a spare, started with the command (`spare`), is told the world's path later
    path = spare.await_path(sys.argv[2:]) if sys.argv[1] == "--spare" else sys.argv[1]
    workers.serve(path, sys.stdin.buffer, sys.stdout.buffer)
    # the world is closed and every reply written (`os.write`): nothing is left to
    # free that the exit would not, and the parent waits for this exit
    os._exit(0)
