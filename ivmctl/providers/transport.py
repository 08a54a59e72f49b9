"""How a provider reaches a VM Host: run one hpvm* argument list there, get its output.

`Transport` is the whole interface: the emulator's transport implements it here (in
ivmctl's process, or through the emulator's worker processes), and an SSH transport to
real hosts implements the same `run` (argument lists are quoted by the transport that
needs a shell, never earlier). Latency is simulated here, so a demo against the emulator
feels like a network round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

from ivmctl.errors import IvmctlError, ProviderError
from ivmctl.values import frozen

if TYPE_CHECKING:
    from ivmctl.runtime import World
    from ivmctl.runtime.workers import TakenBack, WorkerPool


@frozen
class CommandOutput:
    """What a command printed and how it ended."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0  # seconds, as measured by the transport


class Transport(Protocol):
    """Runs commands on VM Hosts.

    `run` returns the command's own exit status and output, also when it fails; it
    raises ProviderError only when the host cannot be reached at all.
    """

    def run(self, host: str, argv: Sequence[str]) -> CommandOutput: ...

    def close(self) -> None: ...


def run_many(
    transport: Transport, host: str, argvs: Sequence[Sequence[str]]
) -> list[CommandOutput]:
    """Run read-only command lines on one host in one round trip where the transport can.

    A transport may offer `run_many(host, argvs)` (an SSH transport would send the lines
    as one script over one connection; the emulator runs them on one read snapshot);
    otherwise the lines run one by one through `run`.
    """
    many = getattr(transport, "run_many", None)
    if many is not None:
        outputs: list[CommandOutput] = many(host, argvs)
        return outputs
    return [transport.run(host, argv) for argv in argvs]


Pending = Callable[[], list[CommandOutput]]


def submit_many(transport: Transport, host: str, argvs: Sequence[Sequence[str]]) -> Pending:
    """Start read-only lines on one host; calling the result returns their outputs.

    A transport that can answer later (`submit_many(host, argvs)`) lets the caller parse
    one host while the next one is read; otherwise the lines run now.
    """
    submit = getattr(transport, "submit_many", None)
    if submit is not None:
        pending: Pending = submit(host, argvs)
        return pending
    return _now(run_many(transport, host, argvs))


class EmulatorTransport:
    """Runs hpvm* commands in an `ivmctl.runtime` world: in this process, or, once
    `start_workers` was called, on the world's worker processes (`runtime/workers.py`).

    The world is opened by `opener` on first use, so building a provider touches no
    file. The world is safe to share between threads, so commands run concurrently, as
    they would on several SSH connections. `latency` seconds are added to every command.
    """

    def __init__(
        self,
        opener: Callable[[], World],
        *,
        latency: float = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._opener = opener
        self._world: World | None = None
        self._workers: WorkerPool | None = None
        self.latency = latency
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.RLock()

    @property
    def world(self) -> World:
        """The emulator world, opened on first use."""
        with self._lock:
            if self._world is None:
                self._world = self._opener()
            return self._world

    def run(self, host: str, argv: Sequence[str]) -> CommandOutput:
        (output,) = self.run_many(host, [argv])
        return output

    def start_workers(self, readers: int) -> None:
        """Answer commands from worker processes from now on (see
        `ivmctl.runtime.workers`): listings from `readers` of them, changes from one
        more, which declines them while the world simulates delays (they run in this
        process then, whose locks keep one start at a time per host while a start waits)."""
        from ivmctl.runtime.workers import WorkerPool

        with self._lock:
            if self._workers is None and readers > 0:
                self._workers = WorkerPool(self.world.path, readers)
            elif self._workers is not None:
                self._workers.allow(readers)  # an apply after a refresh may want more

    def readers_idle(self) -> None:
        """No more listings for now (a refresh is over): reader processes write their log
        rows meanwhile, not when they are closed, and those of the listings this process
        read (`WorkerPool.idle`), while it plans."""
        readers, world = self._workers, self._world
        if readers is not None:
            handed = world.take_pending() if world is not None else None
            left = readers.idle(handed)
            if left is not None and world is not None:
                world.add_pending(left)  # written as this world closes, as before

    def submit_tasks(
        self, hosts: Sequence[str], task: Callable[[World, str], object], *, ahead: bool = False
    ) -> list[Callable[[], object | None]] | None:
        """Have reader processes call `task(world, host)` for each of `hosts` on their own
        world (`WorkerPool.submit_tasks`, asked `ahead` of need or not); None when no
        readers run."""
        readers = self._workers
        return None if readers is None else readers.submit_tasks(hosts, task, ahead=ahead)

    def submit_task(
        self, host: str, task: Callable[[World, str], object]
    ) -> Callable[[], object | None] | None:
        """Have the least busy reader process call `task(world, host)` now
        (`WorkerPool.submit_task`); None when no readers run."""
        readers = self._workers
        return None if readers is None else readers.submit_task(host, task)

    def rebalance(self) -> None:
        """The caller now waits for the tasks it asked ahead: idle readers take a share
        (`WorkerPool.rebalance`)."""
        readers = self._workers
        if readers is not None:
            readers.rebalance()

    def take_back(self, share: float) -> TakenBack:
        """This process reads the hosts taken back itself: the later `share` of the tasks
        the busiest reader has not begun (`WorkerPool.take_back`); none without readers."""
        from ivmctl.runtime.workers import TakenBack

        readers = self._workers
        return TakenBack() if readers is None else readers.take_back(share)

    @property
    def reader_processes(self) -> int:
        readers = self._workers
        return 0 if readers is None else readers.processes

    def run_many(self, host: str, argvs: Sequence[Sequence[str]]) -> list[CommandOutput]:
        """Several lines in one session: one latency, one read snapshot for listings."""
        return self.submit_many(host, argvs)()

    def submit_many(self, host: str, argvs: Sequence[Sequence[str]]) -> Pending:
        """`run_many`, answered later when a worker process takes the batch: a reader
        for listings, the writer for changes (which hands them back while the world
        simulates delays). A change sent to a writer that dies before it answers is
        `_lost`, never run again."""
        started = self._clock()
        if self.latency:
            self._sleep(self.latency)
        first = argvs[0][0] if argvs and argvs[0] else "a command"
        workers = self._workers
        waiting, changes = None, False
        if workers is not None:
            if workers.can_read(argvs):
                waiting = workers.submit(host, argvs)
            else:
                waiting, changes = workers.submit_change(host, argvs), True

        def outputs() -> list[CommandOutput]:
            try:
                results = None
                if waiting is not None:
                    from ivmctl.runtime.workers import ChangeDeclined

                    try:
                        results = waiting()
                    except ChangeDeclined:  # the world simulates delays: run it here
                        pass
                    else:
                        if results is None and changes:  # sent, then the writer died
                            return [_lost(host, argv, self._clock() - started) for argv in argvs]
                if results is None:  # no worker ran them (listings may be read again)
                    results = self.world.execute_many(host, [list(argv) for argv in argvs])
            except IvmctlError as exc:
                raise ProviderError(
                    f"the emulator could not run {first} on {host}: {exc.summary}",
                    detail=exc.detail,
                ) from exc
            duration = self._clock() - started
            return [
                CommandOutput(
                    exit_code=r.exit_code, stdout=r.stdout, stderr=r.stderr, duration=duration
                )
                for r in results
            ]

        return outputs if waiting is not None else _now(outputs())

    def close(self) -> None:
        with self._lock:
            if self._workers is not None:
                self._workers.close()  # first: their log rows go to the world file
                self._workers = None
            if self._world is not None:
                self._world.close()
            self._world = None


def _lost(host: str, argv: Sequence[str], duration: float) -> CommandOutput:
    """What a change sent to a worker process that died before it answered gives: exit
    255, as ssh reports a connection lost mid-command. Whether it ran is unknown, so it is
    not run again (steps are never retried); the next refresh shows what it did."""
    return CommandOutput(
        exit_code=255,
        stderr=f"{argv[0] if argv else 'command'}: the emulator process running it on {host} "
        "exited before it answered; whether it ran is unknown: run `ivmctl plan` to see. "
        "Later commands run in ivmctl's own process (`processes: 0` in the provider block "
        "keeps every command there).\n",
        duration=duration,
    )


def _now(outputs: list[CommandOutput]) -> Pending:
    return lambda: outputs
