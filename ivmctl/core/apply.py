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

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from graphlib import TopologicalSorter
from typing import Protocol

from ivmctl.errors import IvmctlError, ProviderError
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan
from ivmctl.runtime.crashpoints import crash_point


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


@dataclass(frozen=True, kw_only=True)
class ApplyEvent:
    """One thing that happened during apply, for progress displays and JSON logs."""

    kind: EventKind
    address: str
    message: str = ""
    elapsed: float = 0.0  # seconds since the change started


@dataclass(frozen=True, kw_only=True)
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
    """A change stopped part-way: its root cause and the operations that did complete."""

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
    on_change_done: Callable[[Change], None] = lambda change: None,
    on_change_failed: Callable[[Change, tuple[Operation, ...]], None] = lambda change, ops: None,
    stop_requested: Callable[[], bool] = lambda: False,
    clock: Callable[[], float] = time.monotonic,
    step_timeout: float | None = None,
) -> ApplyResult:
    """Execute `plan`; returns what was done, failed and skipped.

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
    emit_lock = threading.Lock()

    def emit(event: ApplyEvent) -> None:
        with emit_lock:
            on_event(event)
        crash_point(f"{event.kind.value} {event.address} {event.message}".rstrip())

    def run(change: Change) -> tuple[str, ...]:
        started = clock()
        emit(ApplyEvent(kind=EventKind.CHANGE_STARTED, address=change.key))
        completed: list[Operation] = []
        try:
            for operation in change.operations:
                _run_operation(change, operation, started)
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
    # while changes for other hosts wait to start.
    serial_hosts = {
        key: frozenset(h for op in change.operations for h in _hosts_held(op))
        for key, change in changes.items()
    }
    pending: list[str] = []  # ready, not started yet, in plan order

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
        while graph.is_active():
            if not stopping and (stop_requested() or (fail_fast and failed)):
                stopping = True
            pending = sorted({*pending, *graph.get_ready()}, key=order.__getitem__)
            startable: list[str] = []
            for address in pending:
                change = changes[address]
                if stopping or any(d in blocked for d in change.depends_on):
                    skipped.add(address)
                    blocked.add(address)
                    why = "apply is stopping" if stopping else "a change it depends on failed"
                    emit(ApplyEvent(kind=EventKind.CHANGE_SKIPPED, address=address,
                                    message=f"not started: {why}"))  # fmt: skip
                    graph.done(address)
                    continue
                startable.append(address)
            pending = startable
            while pending and len(running) < parallelism:
                busy = frozenset().union(*(serial_hosts[c.key] for c in running.values()))
                pick = next((a for a in pending if not serial_hosts[a] & busy), None)
                if pick is None:
                    if running:
                        break  # everything ready waits for a busy host; keep workers free
                    pick = pending[0]
                pending.remove(pick)
                running[pool.submit(run, changes[pick])] = changes[pick]
            if not running:
                continue
            finished, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                change = running.pop(future)
                try:
                    mismatches = future.result()
                except _Incomplete as incomplete:
                    cause = incomplete.cause
                    failed[change.key] = (
                        str(cause)
                        if isinstance(cause, IvmctlError)
                        else f"internal error: {cause!r}"
                    )
                    on_change_failed(change, incomplete.completed)
                    blocked.add(change.key)
                    emit(ApplyEvent(kind=EventKind.CHANGE_FAILED, address=change.key,
                                    message=failed[change.key]))  # fmt: skip
                else:
                    done.append(change.key)
                    on_change_done(change)
                    if mismatches:
                        inconsistent[change.key] = mismatches
                        emit(ApplyEvent(kind=EventKind.INCONSISTENT, address=change.key,
                                        message="; ".join(mismatches)))  # fmt: skip
                    emit(ApplyEvent(kind=EventKind.CHANGE_DONE, address=change.key))
                graph.done(change.key)
    return ApplyResult(
        done=tuple(done),
        failed=failed,
        skipped=tuple(sorted(skipped, key=order.__getitem__)),
        inconsistent=inconsistent,
        interrupted=stopping and not (fail_fast and failed),
    )
