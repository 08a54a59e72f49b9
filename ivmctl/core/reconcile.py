"""The GitOps reconcile loop: plan on a schedule and on configuration change, apply what is safe.

A *safe* change is one a loop may apply with nobody watching, because no running guest
goes down for it and nothing is destroyed:

* its action is create, update (online), start, stop or adopt — stop and start only
  carry out a declared `power:`;
* it is not a preparatory phase of another change (a guest stopped to make room);
* none of its operations migrates, deletes or removes anything, and it stops a guest
  only when the change *is* that stop.

Restart, migrate, replace and delete are held back unless `allow_all` is set. A safe
change is kept only when every change it depends on is kept too, so the filtered plan
is still a valid graph; it goes through `Session.apply` like any plan.

The loop reads time through injected callables (`clock`, `now`, `sleep`) so tests run
it without waiting; `stop` ends it after the cycle in progress.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import field, replace
from datetime import UTC, datetime
from typing import Any

from ivmctl.core.apply import ApplyEvent
from ivmctl.core.session import Planned, PlanOptions, Session, Workspace
from ivmctl.errors import IvmctlError
from ivmctl.plan.model import Action, Change, OpKind, Plan
from ivmctl.values import frozen

SAFE_ACTIONS = frozenset({Action.CREATE, Action.UPDATE, Action.START, Action.STOP, Action.ADOPT})
UNSAFE_OPERATIONS = frozenset(
    {OpKind.GUEST_MIGRATE, OpKind.GUEST_DELETE, OpKind.GUEST_REMOVE_STALE, OpKind.VSWITCH_DELETE}
)
LOG_FORMAT_VERSION = 1


def unsafe_reason(change: Change) -> str:
    """Why a change may not be applied unattended; empty when it is safe."""
    if change.action not in SAFE_ACTIONS:
        return f"{change.action.value} needs --allow-all"
    if change.phase:
        return f"prepares another change ({change.phase})"
    for op in change.operations:
        if op.kind in UNSAFE_OPERATIONS:
            return f"runs {op.kind.value}"
        if op.kind is OpKind.GUEST_STOP and change.action is not Action.STOP:
            return "stops a running guest"
    return ""


@frozen
class Selection:
    """A plan split into what a loop applies and what it holds back (key -> reason)."""

    plan: Plan  # the kept changes only, in the original order
    held: dict[str, str] = field(default_factory=dict)


def select_safe(plan: Plan, *, allow_all: bool = False) -> Selection:
    """Keep the safe changes whose dependencies are kept; everything else is held."""
    keys = {c.key for c in plan.actionable}
    kept: list[Change] = []
    kept_keys: set[str] = set()
    held: dict[str, str] = {}
    # plan.changes is a valid execution order: a change's dependencies come before it.
    for change in plan.actionable:
        reason = "" if allow_all else unsafe_reason(change)
        if not reason:
            waiting = [d for d in change.depends_on if d in keys and d not in kept_keys]
            if waiting:
                reason = f"depends on {waiting[0]}, which is held back"
        if reason:
            held[change.key] = reason
            continue
        kept.append(change)
        kept_keys.add(change.key)
    return Selection(plan=replace(plan, changes=tuple(kept)), held=held)


def config_fingerprint(workspace: Workspace) -> str:
    """A hash of the configuration files and var files; it changes when any of them does."""
    from ivmctl.spec import config_files

    digest = hashlib.sha256()
    try:
        paths = [*config_files(workspace.config_dir), *workspace.var_files]
    except OSError as exc:
        return f"unreadable: {exc}"
    for path in sorted(paths):
        digest.update(str(path).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError as exc:
            digest.update(f"unreadable: {exc}".encode())
        digest.update(b"\0")
    return "sha256:" + digest.hexdigest()


@frozen
class ReconcileOptions:
    """How the loop runs (the CLI's reconcile flags)."""

    interval: float = 60.0  # seconds between scheduled plans
    apply: bool = False  # --auto-approve-safe: apply the safe changes; otherwise report only
    allow_all: bool = False  # also apply restarts, migrations, replacements and deletions
    max_cycles: int | None = None  # stop after this many cycles (--once is 1)
    poll: float = 1.0  # how often to look at the configuration files while waiting
    plan_options: PlanOptions = field(default_factory=PlanOptions)
    parallelism: int = 10
    lock_timeout: float = 0.0

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.poll <= 0:
            raise ValueError("interval and poll must be positive")
        if self.max_cycles is not None and self.max_cycles < 1:
            raise ValueError("max_cycles must be at least 1")


@frozen
class CycleReport:
    """One cycle, as logged: one line of text, or one JSON object."""

    cycle: int
    started_at: str  # ISO 8601, UTC
    trigger: str  # start | schedule | config-change
    changes: int = 0  # actionable changes in the plan
    applied: tuple[str, ...] = ()  # keys applied successfully
    failed: dict[str, str] = field(default_factory=dict)  # key -> root cause
    held: dict[str, str] = field(default_factory=dict)  # key -> why it was not applied
    pending: tuple[str, ...] = ()  # safe changes not applied (no --auto-approve-safe)
    error: str = ""  # the cycle could not plan or apply (lock held, invalid config, ...)
    duration: float = 0.0  # seconds

    @property
    def ok(self) -> bool:
        return not self.error and not self.failed

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": LOG_FORMAT_VERSION,
            "cycle": self.cycle,
            "started_at": self.started_at,
            "trigger": self.trigger,
            "changes": self.changes,
            "applied": list(self.applied),
            "failed": dict(sorted(self.failed.items())),
            "held": dict(sorted(self.held.items())),
            "pending": list(self.pending),
            "error": self.error,
            "duration": round(self.duration, 3),
        }

    def line(self) -> str:
        """The cycle as one log line."""
        head = f"{self.started_at} cycle {self.cycle} ({self.trigger}):"
        if self.error:
            return f"{head} error: {self.error}"
        if not self.changes:
            return f"{head} no changes"
        parts = [f"{self.changes} change{'s' if self.changes != 1 else ''}"]
        if self.applied:
            parts.append(f"applied {', '.join(self.applied)}")
        if self.failed:
            parts.append(
                "failed " + ", ".join(f"{k} ({v})" for k, v in sorted(self.failed.items()))
            )
        if self.pending:
            parts.append(f"would apply {', '.join(self.pending)} (no --auto-approve-safe)")
        if self.held:
            parts.append(
                "held back " + ", ".join(f"{k} ({v})" for k, v in sorted(self.held.items()))
            )
        return f"{head} {'; '.join(parts)}"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Reconciler:
    """Runs cycles until stopped or `max_cycles` is reached.

    `session_factory` makes the Session of one cycle (a fresh provider connection each
    time); `on_cycle` receives every CycleReport; `on_event` every apply event.
    """

    def __init__(
        self,
        workspace: Workspace,
        options: ReconcileOptions,
        *,
        session_factory: Callable[[Workspace], Session] | None = None,
        on_cycle: Callable[[CycleReport], None] = lambda report: None,
        on_event: Callable[[ApplyEvent], None] = lambda event: None,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
        sleep: Callable[[float], None] | None = None,
        fingerprint: Callable[[Workspace], str] = config_fingerprint,
    ) -> None:
        self.workspace = workspace
        self.options = options
        self.stop = stop or threading.Event()
        self.session_factory = session_factory or _default_session_factory()
        self.on_cycle = on_cycle
        self.on_event = on_event
        self.clock = clock
        self.now = now
        self.sleep = sleep or self.stop.wait
        self.fingerprint = fingerprint

    def run(self) -> list[CycleReport]:
        """Cycle until stopped; returns every cycle's report."""
        reports: list[CycleReport] = []
        trigger = "start"
        last_fingerprint = self.fingerprint(self.workspace)
        for number in itertools.count(1):
            report = self.cycle(number, trigger)
            reports.append(report)
            self.on_cycle(report)
            if self.options.max_cycles is not None and number >= self.options.max_cycles:
                break
            trigger, last_fingerprint = self._wait(last_fingerprint)
            if not trigger:
                break
        return reports

    def _wait(self, last_fingerprint: str) -> tuple[str, str]:
        """Wait for the next schedule or a configuration change; ("", ...) when stopped."""
        deadline = self.clock() + self.options.interval
        while not self.stop.is_set():
            remaining = deadline - self.clock()
            if remaining <= 0:
                return "schedule", self.fingerprint(self.workspace)
            self.sleep(min(self.options.poll, remaining))
            if self.stop.is_set():
                break
            current = self.fingerprint(self.workspace)
            if current != last_fingerprint:
                return "config-change", current
        return "", last_fingerprint

    def cycle(self, number: int, trigger: str) -> CycleReport:
        """Plan once and apply the safe part; errors are reported, never raised."""
        started = self.clock()
        started_at = self.now().isoformat(timespec="seconds").replace("+00:00", "Z")
        base = CycleReport(cycle=number, started_at=started_at, trigger=trigger)
        try:
            with self.session_factory(self.workspace) as session:
                report = self._plan_and_apply(session, base)
        except IvmctlError as exc:
            report = replace(base, error=str(exc))
        except OSError as exc:  # the directory went away, a disk filled up: try next cycle
            report = replace(base, error=f"{exc.strerror or exc}: {exc.filename or ''}".strip())
        return replace(report, duration=self.clock() - started)

    def _plan_and_apply(self, session: Session, base: CycleReport) -> CycleReport:
        opts = self.options
        with session.lock(operation="reconcile", timeout=opts.lock_timeout):
            planned = session.plan(opts.plan_options)
            selection = select_safe(planned.plan, allow_all=opts.allow_all)
            kept = tuple(c.key for c in selection.plan.changes)
            report = replace(base, changes=len(planned.plan.actionable), held=selection.held)
            if not kept:
                return report
            if not opts.apply:
                return replace(report, pending=kept)
            result = session.apply(
                Planned(
                    plan=selection.plan,
                    desired=planned.desired,
                    state=planned.state,
                    actual=planned.actual,
                    warnings=planned.warnings,
                ),
                parallelism=opts.parallelism,
                lock_timeout=opts.lock_timeout,
                on_event=self.on_event,
            )
        failed = dict(result.failed)
        failed.update({k: "; ".join(v) for k, v in result.inconsistent.items()})
        held = dict(selection.held)
        held.update({k: "skipped after a failure" for k in result.skipped})
        return replace(report, applied=tuple(result.done), failed=failed, held=held)


def _default_session_factory() -> Callable[[Workspace], Session]:
    """Sessions that share one plugin manager (plugins load once per loop, not per cycle)."""
    manager: list[Any] = []

    def make(workspace: Workspace) -> Session:
        if not manager:
            from ivmctl.providers.manager import get_plugin_manager

            manager.append(get_plugin_manager())
        return Session(workspace, plugin_manager=manager[0])

    return make
