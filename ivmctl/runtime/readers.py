"""Listings answered by other processes, as real VM Hosts answer them on their own CPUs.

Against real hosts, the work of `hpvmstatus` and friends happens on each host, in
parallel, and ivmctl only waits and parses. An in-process emulator does all of that work
on ivmctl's own interpreter, under one lock: at 1,000 hosts it was half of a refresh.
`ReaderPool` moves it to worker processes (`python -m ivmctl.runtime.readers WORLD`),
each with its own connection to the world file (WAL: they read while the parent writes),
so the parent parses one host's listings while a worker produces the next host's.

Only listings (`kinds.is_read_only`) go to the pool; every change stays in the
parent's World, whose in-process locks serialise starts and migrations. A worker writes
its log rows when told the refresh is over (`ReaderPool.idle`: the parent plans while
they are written) and when its input closes (`World.log` orders by time, so they land in
place).

A caller may also send a *task* (`ReaderPool.submit_task`): a picklable callable that the
worker calls with its world and a host name, whose return value comes back. The emulator
provider sends one that reads a host and parses its listings there, so the parsing, too,
happens beside the listings instead of on ivmctl's interpreter. The task's module is
imported by the worker when it unpickles the request: this module knows nothing of it.

Protocol, over the worker's stdin/stdout: length-prefixed pickles; a request is
`(number, host, argvs, task)`, a reply `(number, "ok", value)` (the batch's
`[CommandResult, ...]`, or what `task(world, host)` returned when `task` is not None) or
`(number, "error", exception)`; requests are answered in order. A request without a host
(`(number, None, [], None)`) writes the worker's pending log rows; its reply is discarded.
"""

from __future__ import annotations

import contextlib
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ivmctl.runtime.kinds import is_read_only
from ivmctl.runtime.world import CommandResult, World

_SIZE = struct.Struct("!Q")


def _encoded(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _SIZE.pack(len(body)) + body


def _send(stream: IO[bytes], message: object) -> None:
    stream.write(_encoded(message))
    stream.flush()


def _read_body(stream: IO[bytes]) -> bytes:
    head = stream.read(_SIZE.size)
    if len(head) < _SIZE.size:
        raise EOFError
    (size,) = _SIZE.unpack(head)
    body = stream.read(size)
    if len(body) < size:
        raise EOFError
    return body


def _receive(stream: IO[bytes]) -> Any:
    return pickle.loads(_read_body(stream))  # our own child's replies only


class _Worker:
    """One worker process and its pipe; requests are answered in order, each reply
    carries its request's number so any thread may collect any reply."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ivmctl.runtime.readers", str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._send_lock = threading.Lock()
        self._receive_lock = threading.Lock()
        self._next = 0
        self._replies: dict[int, tuple[str, Any]] = {}
        self._discard: set[int] = set()  # requests whose replies nobody waits for
        self.outstanding = 0  # requests sent, replies not collected (a hint for choosing)

    def write_log(self) -> None:
        """Ask the worker to write its pending log rows now; nobody waits for it."""
        self.send(None, [])

    def send(self, host: str | None, argvs: list[list[str]], task: Task | None = None) -> int:
        """Send a batch or a task (`host` None: write the log, a reply nobody collects)."""
        assert self.process.stdin is not None
        with self._send_lock:
            number = self._next
            self._next += 1
            if host is None:
                self._discard.add(number)
            else:
                self.outstanding += 1
            _send(self.process.stdin, (number, host, argvs, task))
        return number

    def collect(self, number: int) -> Any:
        """The reply to request `number` (replies to others read on the way are kept)."""
        assert self.process.stdout is not None
        with self._receive_lock:
            while number not in self._replies:
                got, status, value = _receive(self.process.stdout)
                if got in self._discard:
                    self._discard.discard(got)
                    continue
                self._replies[got] = (status, value)
            status, value = self._replies.pop(number)
            self.outstanding -= 1
        if status == "error":
            raise value
        return value

    def finish(self) -> None:
        """Close the worker's input: it writes its log rows and exits (see `close`)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):  # a worker that died has no pipe left
                self.process.stdin.close()

    def close(self) -> None:
        self.finish()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


Pending = Callable[[], "list[CommandResult] | None"]
# Called on the worker with its world and a host; returns something picklable.
Task = Callable[[World, str], object]


class ReaderPool:
    """Worker processes that run batches of listings on one world file."""

    def __init__(self, path: Path, processes: int) -> None:
        self.processes = processes
        self._path = path
        self._workers: list[_Worker] = []
        self._guard = threading.Lock()
        self._broken = False

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
        return self._submit(host, [list(a) for a in argvs], None)

    def submit_task(self, host: str, task: Task) -> Callable[[], object | None]:
        """Have a worker call `task(world, host)` on its own world; the returned function
        waits for the value (None when the pool cannot answer: the caller then does the
        work itself). What the task raises is raised there."""
        return self._submit(host, [], task)

    def _submit(self, host: str, argvs: list[list[str]], task: Task | None) -> Callable[[], Any]:
        worker = self._worker()
        if worker is None:
            return lambda: None
        try:
            number = worker.send(host, argvs, task)
        except (OSError, pickle.PickleError):
            self._break()
            return lambda: None

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
                try:
                    self._workers.append(_Worker(self._path))
                except OSError:
                    self._broken = True
                    return None
                return self._workers[-1]
            return idle[0] if idle else min(self._workers, key=lambda w: w.outstanding)

    def _break(self) -> None:
        with self._guard:
            self._broken = True

    def idle(self) -> None:
        """The listings asked for so far are all there is for now: workers write their log
        rows while the parent works on (instead of when it closes them and waits)."""
        with self._guard:
            workers = list(self._workers)
        for worker in workers:
            with contextlib.suppress(OSError):  # a dead worker is found when next used
                worker.write_log()

    def close(self) -> None:
        with self._guard:
            workers, self._workers = self._workers, []
            self._broken = True
        for worker in workers:  # all of them write their log rows at once
            worker.finish()
        for worker in workers:
            worker.close()


def serve(path: str, inbox: IO[bytes], outbox: IO[bytes]) -> None:
    """The worker's loop: answer requests until the input closes, then close the world.

    Requests are read and replies written by threads of their own, so neither side ever
    waits on a full pipe: the parent may send every host of a refresh at once and collect
    the replies later (while it loads the configuration), and the worker goes on with the
    next request meanwhile. A request that does not unpickle (a task whose module cannot
    be imported here) ends the worker: the parent then reads in process. Once the input
    closes, requests not yet begun are dropped: the parent has stopped collecting."""
    requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    replies: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()

    closed = threading.Event()  # the parent closed our input: it collects nothing more

    def read_requests() -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                requests.put(_read_body(inbox))
        closed.set()
        requests.put(None)

    def write_replies() -> None:
        with contextlib.suppress(OSError):  # the parent is gone: nobody to answer
            while (data := replies.get()) is not None:
                outbox.write(data)
                outbox.flush()

    reader = threading.Thread(target=read_requests, daemon=True)
    writer = threading.Thread(target=write_replies, daemon=True)
    reader.start()
    writer.start()
    try:
        with World.open(path, create=False) as world:
            while (body := requests.get()) is not None:
                if closed.is_set():
                    continue  # asked ahead (a prefetch) and given up: nobody waits for it
                number, host, argvs, task = pickle.loads(body)  # our own parent's requests
                if host is None:
                    world.flush_log()
                    replies.put(_encoded((number, "ok", [])))
                    continue
                try:
                    value = world.execute_many(host, argvs) if task is None else task(world, host)
                    reply: tuple[int, str, object] = (number, "ok", value)
                except Exception as exc:  # sent back to be raised where it was asked for
                    reply = (number, "error", exc)
                replies.put(_encoded(reply))
    finally:
        replies.put(None)
        writer.join()


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
