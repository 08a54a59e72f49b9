"""Apply: walk a plan's change graph and execute it, as the plan says and nothing else.

The walk follows `Change.depends_on` (graphlib), runs up to `parallelism` changes at
once, and serialises starts and migrations per host as Integrity VM requires (one
start or incoming migration at a time [R10]). A failed change stops its dependents
and lets independent work finish (or everything stops with `fail_fast`); an
interrupt stops starting new work and lets running changes finish. Every finished
change is reported through `on_change_done` at once, so ownership is recorded as
changes complete, not only at the end. Apply never re-decides: it only executes the
operations of each change and verifies the result. With `step_timeout`, a step that runs
longer is reported as failed (the command may still finish on the host: the next plan
shows what it did) and apply moves on; nothing is retried.

Every apply event is also a crash point of the reliability tests' seam
(runtime/crashpoints.py: `IVMCTL_TEST_KILL_AT=N` kills the process there); unset, it
does nothing.
"""

from __future__ import annotations

import heapq
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import field
from enum import StrEnum
from graphlib import TopologicalSorter
from typing import Protocol

from ivmctl.errors import IvmctlError, ProviderError
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan
from ivmctl.runtime.crashpoints import crash_point
from ivmctl.values import frozen


class StepLike(Protocol):
    """What apply needs of a provider's step."""

    @property
    def host(self) -> str: ...

    @property
    def description(self) -> str: ...


class StepOutcome(Protocol):
    """What apply needs of a step's result."""

    @property
    def ok(self) -> bool: ...

    @property
    def output(self) -> str: ...


class Executor(Protocol):
    """The provider side of apply: expand operations into steps, run them, verify."""

    def steps(self, operation: Operation) -> Sequence[StepLike]: ...

    def execute(self, step: StepLike) -> StepOutcome: ...

    def verify(self, change: Change) -> Sequence[str]: ...


class EventKind(StrEnum):
    CHANGE_STARTED = "change_started"
    STEP_STARTED = "step_started"
    STEP_FINISHED = "step_finished"
    CHANGE_DONE = "change_done"
    CHANGE_FAILED = "change_failed"
    CHANGE_SKIPPED = "change_skipped"
    INCONSISTENT = "inconsistent"


@frozen
class ApplyEvent:
    """One thing that happened during apply, for progress displays and JSON logs."""

    kind: EventKind
    address: str
    message: str = ""
    elapsed: float = 0.0  # seconds since the change started


@frozen
class ApplyResult:
    """What apply did, by change key. `failed` maps a key to its root cause, reported once."""

    done: tuple[str, ...] = ()
    failed: dict[str, str] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()  # dependents of a failure, or not started after a stop
    inconsistent: dict[str, tuple[str, ...]] = field(default_factory=dict)
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.inconsistent and not self.interrupted


class StepFailed(ProviderError):
    """A step of a change failed; the message carries the command's own words."""


class StepTimedOut(StepFailed):
    """A step ran longer than the step timeout; it may still complete on the host."""


def _execute_within(executor: Executor, step: StepLike, timeout: float | None) -> StepOutcome:
    """Run one step; with a timeout, in a daemon thread that is abandoned if it overruns."""
    if timeout is None:
        return executor.execute(step)
    box: dict[str, object] = {}

    def target() -> None:
        try:
            box["outcome"] = executor.execute(step)
        except BaseException as exc:  # reported by the waiting thread, or dropped if abandoned
            box["error"] = exc

    worker = threading.Thread(target=target, name="apply-step", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise StepTimedOut(
            f"{step.description} did not finish within the step timeout ({timeout:g} s) "
            f"on {step.host}: abandoned, not retried",
            detail="It may still complete on the host; run `ivmctl plan` to see what it "
            "did, or raise --step-timeout.",
        )
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["outcome"]  # type: ignore[return-value]


class _Incomplete(Exception):
    """A change stopped part-way: its root cause and the operations that did (or, timed
    out, may) complete."""

    def __init__(self, cause: BaseException, completed: tuple[Operation, ...]) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.completed = completed


_SERIALISED = frozenset({OpKind.GUEST_START, OpKind.GUEST_MIGRATE})


class _HostLocks:
    """One lock per host for starts and migrations (source and target)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def for_hosts(self, hosts: Sequence[str]) -> list[threading.Lock]:
        with self._guard:
            # Sorted, so two migrations in opposite directions cannot deadlock.
            return [self._locks.setdefault(h, threading.Lock()) for h in sorted(set(hosts))]


def _hosts_held(operation: Operation) -> list[str]:
    if operation.kind not in _SERIALISED:
        return []
    hosts = [operation.host]
    target = operation.params.get("target")
    if isinstance(target, str):
        hosts.append(target)
    return hosts


def _step_event(kind: EventKind, change: Change, step: StepLike, elapsed: float) -> ApplyEvent:
    return ApplyEvent(kind=kind, address=change.key, message=step.description, elapsed=elapsed)


def apply_plan(
    plan: Plan,
    executor: Executor,
    *,
    parallelism: int = 10,
    fail_fast: bool = False,
    on_event: Callable[[ApplyEvent], None] = lambda event: None,
    on_operation_starting: Callable[[Change, Operation], None] = lambda change, op: None,
    on_change_done: Callable[[Change], None] = lambda change: None,
    on_change_failed: Callable[[Change, tuple[Operation, ...]], None] = lambda change, ops: None,
    stop_requested: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    step_timeout: float | None = None,
) -> ApplyResult:
    """Execute `plan`; returns what was done, failed and skipped.

    `on_change_failed` receives the operations that completed before the failure, and the
    failing one too if its step timed out (it may still complete on the host).
    `on_event` and the `on_change_done`/`on_change_failed` callbacks are called from the
    calling thread only, in order; `on_operation_starting` is called in the worker before
    each operation of a change (an exception there fails the change at that operation).
    `step_timeout` (seconds) fails a step that runs longer; None waits for every step.
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    if step_timeout is not None and not step_timeout > 0:
        raise ValueError("step_timeout must be a positive number of seconds")
    # Graph nodes are change keys: an address, or address#phase for a preparatory change.
    changes = {c.key: c for c in plan.actionable}
    graph = TopologicalSorter({a: [d for d in c.depends_on if d in changes]
                               for a, c in changes.items()})  # fmt: skip
    graph.prepare()
    order = {address: index for index, address in enumerate(changes)}
    locks = _HostLocks()
    # Workers hand their events and their finished futures to the calling thread through
    # one queue: no lock is held around the progress display, and the caller wakes up for
    # each of them instead of polling.
    inbox: queue.SimpleQueue[ApplyEvent | Future[tuple[str, ...]]] = queue.SimpleQueue()

    def tell(event: ApplyEvent) -> None:  # calling thread
        on_event(event)
        crash_point(f"{event.kind.value} {event.address} {event.message}".rstrip())

    def emit(event: ApplyEvent) -> None:  # workers
        inbox.put(event)
        crash_point(f"{event.kind.value} {event.address} {event.message}".rstrip())

    def run(change: Change) -> tuple[str, ...]:
        started = clock()
        emit(ApplyEvent(kind=EventKind.CHANGE_STARTED, address=change.key))
        completed: list[Operation] = []
        try:
            for operation in change.operations:
                on_operation_starting(change, operation)
                try:
                    _run_operation(change, operation, started)
                except StepTimedOut:
                    completed.append(operation)  # it may still complete on the host
                    raise
                completed.append(operation)
        except Exception as exc:
            raise _Incomplete(exc, tuple(completed)) from exc
        if change.action is Action.DELETE:
            return ()
        try:
            return tuple(executor.verify(change))
        except IvmctlError as exc:
            return (f"could not re-read it to verify: {exc}",)

    def _run_operation(change: Change, operation: Operation, started: float) -> None:
        for step in executor.steps(operation):
            held = locks.for_hosts(_hosts_held(operation))
            for lock in held:
                lock.acquire()
            try:
                emit(_step_event(EventKind.STEP_STARTED, change, step, clock() - started))
                outcome = _execute_within(executor, step, step_timeout)
            finally:
                for lock in reversed(held):
                    lock.release()
            emit(_step_event(EventKind.STEP_FINISHED, change, step, clock() - started))
            if not outcome.ok:
                raise StepFailed(
                    f"{step.description} failed on {step.host}: "
                    + (outcome.output.strip() or "no output")
                )

    done: list[str] = []
    failed: dict[str, str] = {}
    skipped: set[str] = set()
    inconsistent: dict[str, tuple[str, ...]] = {}
    blocked: set[str] = set()  # failed or skipped: their dependents are skipped
    stopping = False
    running: dict[Future[tuple[str, ...]], Change] = {}

    # Hosts whose start/migration lock each change needs: a worker is never handed a
    # change that would only queue behind another running change's start on that host
    # while changes for other hosts wait to start. Running changes hold disjoint hosts.
    serial_hosts = {
        key: tuple(sorted({h for op in change.operations for h in _hosts_held(op)}))
        for key, change in changes.items()
    }
    ready: list[tuple[int, str]] = []  # heap by plan order: ready, not started
    waiting: dict[str, list[tuple[int, str]]] = {}  # ready, but a host they need is busy
    busy: set[str] = set()  # hosts held by running changes

    def skip(keys: list[str]) -> None:
        why = "apply is stopping" if stopping else "a change it depends on failed"
        for key in sorted(keys, key=order.__getitem__):
            skipped.add(key)
            blocked.add(key)
            tell(ApplyEvent(kind=EventKind.CHANGE_SKIPPED, address=key,
                            message=f"not started: {why}"))  # fmt: skip
            graph.done(key)

    def take_ready() -> None:
        """Move what became ready onto the heap; skip it if it cannot run."""
        while newly := graph.get_ready():
            cannot = []
            for key in newly:
                if stopping or any(d in blocked for d in changes[key].depends_on):
                    cannot.append(key)
                else:
                    heapq.heappush(ready, (order[key], key))
            skip(cannot)

    def finish(future: Future[tuple[str, ...]]) -> None:
        change = running.pop(future)
        for host in serial_hosts[change.key]:
            busy.discard(host)
            for item in waiting.pop(host, ()):
                heapq.heappush(ready, item)
        try:
            mismatches = future.result()
        except _Incomplete as incomplete:
            cause = incomplete.cause
            failed[change.key] = (
                str(cause) if isinstance(cause, IvmctlError) else f"internal error: {cause!r}"
            )
            on_change_failed(change, incomplete.completed)
            blocked.add(change.key)
            tell(ApplyEvent(kind=EventKind.CHANGE_FAILED, address=change.key,
                            message=failed[change.key]))  # fmt: skip
        else:
            done.append(change.key)
            on_change_done(change)
            if mismatches:
                inconsistent[change.key] = mismatches
                tell(ApplyEvent(kind=EventKind.INCONSISTENT, address=change.key,
                                message="; ".join(mismatches)))  # fmt: skip
            tell(ApplyEvent(kind=EventKind.CHANGE_DONE, address=change.key))
        graph.done(change.key)

    def receive(item: ApplyEvent | Future[tuple[str, ...]]) -> None:
        if isinstance(item, ApplyEvent):
            on_event(item)
        else:
            finish(item)

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
        while graph.is_active():
            if not stopping and (stop_requested() or (fail_fast and failed)):
                stopping = True
                queued = [key for _, key in ready]
                queued += [key for items in waiting.values() for _, key in items]
                ready.clear()
                waiting.clear()
                skip(queued)
            take_ready()
            while ready and len(running) < parallelism:
                item = heapq.heappop(ready)
                hosts = serial_hosts[item[1]]
                clash = next((h for h in hosts if h in busy), None)
                if clash is not None:
                    waiting.setdefault(clash, []).append(item)
                    continue
                change = changes[item[1]]
                busy.update(hosts)
                future = pool.submit(run, change)
                running[future] = change
                future.add_done_callback(inbox.put)
            if not running:
                continue
            try:
                receive(inbox.get(timeout=0.2))
                while True:
                    receive(inbox.get_nowait())
            except queue.Empty:
                pass
        while not inbox.empty():  # events of changes that finished last
            receive(inbox.get_nowait())
    return ApplyResult(
        done=tuple(done),
        failed=failed,
        skipped=tuple(sorted(skipped, key=order.__getitem__)),
        inconsistent=inconsistent,
        interrupted=stopping and not (fail_fast and failed),
    )
