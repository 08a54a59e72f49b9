"""Apply: walk a plan's change graph and execute it, as the plan says and nothing else.

The walk follows `Change.depends_on` (graphlib), runs up to `parallelism` changes at
once, and serialises starts and migrations per host as Integrity VM requires (one
start or incoming migration at a time [R10]). A failed change stops its dependents
and lets independent work finish (or everything stops with `fail_fast`); an
interrupt stops starting new work and lets running changes finish. Every finished
change is reported through `on_change_done` at once, so ownership is recorded as
changes complete, not only at the end. Apply never re-decides: it only executes the
operations of each change and verifies the result.
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
) -> ApplyResult:
    """Execute `plan`; returns what was done, failed and skipped."""
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
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
                outcome = executor.execute(step)
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

    with ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="apply") as pool:
        while graph.is_active():
            if not stopping and (stop_requested() or (fail_fast and failed)):
                stopping = True
            for address in sorted(graph.get_ready(), key=order.__getitem__):
                change = changes[address]
                if stopping or any(d in blocked for d in change.depends_on):
                    skipped.add(address)
                    blocked.add(address)
                    why = "apply is stopping" if stopping else "a change it depends on failed"
                    emit(ApplyEvent(kind=EventKind.CHANGE_SKIPPED, address=address,
                                    message=f"not started: {why}"))  # fmt: skip
                    graph.done(address)
                    continue
                running[pool.submit(run, change)] = change
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
