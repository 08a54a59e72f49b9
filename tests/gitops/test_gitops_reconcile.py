"""The reconcile loop: what is safe, the filtered plan, the schedule, config changes, stopping."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ivmctl.core.reconcile import (
    ReconcileOptions,
    Reconciler,
    config_fingerprint,
    select_safe,
    unsafe_reason,
)
from ivmctl.core.session import Workspace
from ivmctl.errors import LockError
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan


def change(address: str, action: Action, *ops: OpKind, deps: tuple[str, ...] = (),
           phase: str = "") -> Change:  # fmt: skip
    return Change(
        address=address,
        action=action,
        host="vmhost01",
        before=None if action is Action.CREATE else {},
        after=None if action is Action.DELETE else {},
        operations=tuple(Operation(kind=k, host="vmhost01", params={"name": "g"}) for k in ops),
        depends_on=deps,
        phase=phase,
    )


@pytest.mark.parametrize(
    "action,ops",
    [
        (Action.CREATE, (OpKind.GUEST_CREATE, OpKind.GUEST_START)),
        (Action.UPDATE, (OpKind.GUEST_MODIFY,)),
        (Action.START, (OpKind.GUEST_START,)),
        (Action.STOP, (OpKind.GUEST_STOP,)),
        (Action.ADOPT, ()),
    ],
)
def test_create_online_update_start_stop_and_adopt_are_safe(action: Action, ops: Any) -> None:
    assert unsafe_reason(change("guest.g", action, *ops)) == ""


@pytest.mark.parametrize(
    "action,ops",
    [
        (Action.RESTART, (OpKind.GUEST_STOP, OpKind.GUEST_MODIFY, OpKind.GUEST_START)),
        (Action.MIGRATE, (OpKind.GUEST_MIGRATE,)),
        (Action.REPLACE, (OpKind.GUEST_DELETE, OpKind.GUEST_CREATE)),
        (Action.DELETE, (OpKind.GUEST_DELETE,)),
    ],
)
def test_restart_migrate_replace_and_delete_are_held(action: Action, ops: Any) -> None:
    assert unsafe_reason(change("guest.g", action, *ops)) == f"{action.value} needs --allow-all"


def test_an_update_that_stops_a_guest_or_deletes_a_vswitch_is_not_safe() -> None:
    assert unsafe_reason(change("guest.g", Action.UPDATE, OpKind.GUEST_STOP, OpKind.GUEST_MODIFY))
    assert unsafe_reason(change("vswitch.h.v", Action.UPDATE, OpKind.VSWITCH_DELETE))


def test_a_make_room_stop_is_held_even_though_stops_are_safe() -> None:
    stop = change("guest.g", Action.STOP, OpKind.GUEST_STOP, phase="make-room")
    assert unsafe_reason(stop) == "prepares another change (make-room)"


def test_select_safe_keeps_safe_changes_whose_dependencies_are_kept() -> None:
    plan = Plan(
        changes=(
            change("vswitch.vmhost01.v", Action.CREATE, OpKind.VSWITCH_CREATE),
            change("guest.a", Action.RESTART, OpKind.GUEST_STOP),
            change("guest.b", Action.CREATE, OpKind.GUEST_CREATE, deps=("vswitch.vmhost01.v",)),
            change("guest.c", Action.UPDATE, OpKind.GUEST_MODIFY, deps=("guest.a",)),
            change("guest.d", Action.START, OpKind.GUEST_START, deps=("guest.c",)),
            change("guest.e", Action.NOOP, deps=()),
            change("guest.f", Action.UPDATE, OpKind.GUEST_MODIFY, deps=("guest.e",)),
        ),
        config_digest="sha256:x",
        state_serial=3,
    )
    selection = select_safe(plan)
    assert [c.key for c in selection.plan.changes] == [
        "vswitch.vmhost01.v",
        "guest.b",
        "guest.f",
    ]
    assert selection.held == {
        "guest.a": "restart needs --allow-all",
        "guest.c": "depends on guest.a, which is held back",
        "guest.d": "depends on guest.c, which is held back",
    }
    # the filtered plan keeps what apply checks it against
    assert (selection.plan.config_digest, selection.plan.state_serial) == ("sha256:x", 3)


def test_allow_all_keeps_every_actionable_change() -> None:
    plan = Plan(
        changes=(
            change("guest.a", Action.MIGRATE, OpKind.GUEST_MIGRATE),
            change("guest.b", Action.DELETE, OpKind.GUEST_DELETE, deps=("guest.a",)),
        )
    )
    selection = select_safe(plan, allow_all=True)
    assert [c.key for c in selection.plan.changes] == ["guest.a", "guest.b"]
    assert selection.held == {}


# --- the loop, with a fake clock and fake sessions -------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []
        self.on_sleep: list[Any] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        for hook in list(self.on_sleep):
            hook(self.now)


class FakeSession:
    """Plans an empty plan; raises what `fail` holds."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def __enter__(self) -> FakeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    @contextlib.contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[None]:
        if self.fail:
            raise self.fail
        yield

    def plan(self, options: Any) -> Any:
        from ivmctl.core.session import Planned
        from ivmctl.state import State

        return Planned(plan=Plan(), desired=None, state=State.new())  # type: ignore[arg-type]


def make_loop(tmp_path: Path, clock: FakeClock, fingerprints: list[str], **options: Any) -> Any:
    stop = threading.Event()
    cycles: list[Any] = []
    loop = Reconciler(
        Workspace(config_dir=tmp_path, environ={}),
        ReconcileOptions(**{"interval": 60.0, "poll": 1.0, **options}),
        session_factory=lambda ws: FakeSession(),  # type: ignore[arg-type,return-value]
        on_cycle=cycles.append,
        stop=stop,
        clock=clock,
        now=lambda: datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        sleep=clock.sleep,
        fingerprint=lambda ws: fingerprints[0],
    )
    return loop, stop, cycles


def test_the_loop_plans_on_schedule_and_stops_after_max_cycles(tmp_path: Path) -> None:
    clock = FakeClock()
    loop, _, cycles = make_loop(tmp_path, clock, ["a"], max_cycles=3)
    reports = loop.run()
    assert [r.trigger for r in reports] == ["start", "schedule", "schedule"]
    assert reports == cycles
    assert clock.now == pytest.approx(120.0)  # two waits of the interval, no more
    assert reports[0].line() == "2026-01-02T03:04:05Z cycle 1 (start): no changes"


def test_a_configuration_change_triggers_a_cycle_before_the_schedule(tmp_path: Path) -> None:
    clock = FakeClock()
    fingerprints = ["a"]
    clock.on_sleep.append(lambda now: fingerprints.__setitem__(0, "b") if now >= 5 else None)
    loop, _, _ = make_loop(tmp_path, clock, fingerprints, max_cycles=2)
    reports = loop.run()
    assert [r.trigger for r in reports] == ["start", "config-change"]
    assert clock.now == pytest.approx(5.0)


def test_a_stop_ends_the_loop_after_the_current_cycle(tmp_path: Path) -> None:
    clock = FakeClock()
    loop, stop, _ = make_loop(tmp_path, clock, ["a"])
    clock.on_sleep.append(lambda now: stop.set() if now >= 100 else None)
    reports = loop.run()
    assert [r.cycle for r in reports] == [1, 2]
    assert clock.now == pytest.approx(100.0)


def test_an_error_in_a_cycle_is_logged_and_the_loop_goes_on(tmp_path: Path) -> None:
    clock = FakeClock()
    loop, _, _ = make_loop(tmp_path, clock, ["a"], max_cycles=2)
    sessions = iter([FakeSession(LockError("the state is locked by apply")), FakeSession()])
    loop.session_factory = lambda ws: next(sessions)
    reports = loop.run()
    assert reports[0].error == "the state is locked by apply"
    assert "cycle 1 (start): error: the state is locked by apply" in reports[0].line()
    assert reports[1].ok


def test_the_fingerprint_follows_file_contents_only_of_configuration(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("x: 1\n")
    ws = Workspace(config_dir=tmp_path, environ={})
    before = config_fingerprint(ws)
    (tmp_path / "notes.txt").write_text("not configuration")
    (tmp_path / ".hidden.yaml").write_text("x: 2\n")
    assert config_fingerprint(ws) == before
    (tmp_path / "a.yaml").write_text("x: 2\n")
    assert config_fingerprint(ws) != before


# --- end to end through the CLI ---------------------------------------------------------------
def test_reconcile_once_applies_the_online_change_and_holds_the_restart(
    ivmctl, quickstart: Path
) -> None:
    ivmctl("apply", "--auto-approve")
    config = quickstart / "ivmctl.yaml"
    text = config.read_text()
    text = text.replace("entitlement: 20%\n", "entitlement: 30%\n")  # web01: online
    text = text.replace(  # web02: a second vCPU needs a restart
        "entitlement: {min: 20%, max: 60%}", "vcpus: 2\n    entitlement: {min: 20%, max: 60%}"
    )
    config.write_text(text)
    ran = ivmctl("reconcile", "--once", "--auto-approve-safe", "--json")
    cycle = json.loads(ran.out)
    assert cycle["applied"] == ["guest.web01"]
    assert cycle["held"] == {"guest.web02": "restart needs --allow-all"}
    assert cycle["changes"] == 2
    plan = ivmctl("plan").out
    assert "guest.web02 will RESTART" in plan
    assert "guest.web01" not in plan


def test_reconcile_without_auto_approve_safe_changes_nothing(ivmctl, quickstart: Path) -> None:
    ran = ivmctl("reconcile", "--once")
    assert "would apply" in ran.out and "(no --auto-approve-safe)" in ran.out
    assert "Plan: 6 to add" in ivmctl("plan").out


def test_reconcile_allow_all_needs_auto_approve_safe(ivmctl, quickstart: Path) -> None:
    ran = ivmctl("reconcile", "--once", "--allow-all", expect=64)
    assert "--allow-all only makes sense with --auto-approve-safe" in ran.err


def test_reconcile_once_exits_1_when_the_cycle_fails(ivmctl, quickstart: Path) -> None:
    (quickstart / "ivmctl.yaml").write_text("apiVersion: ivmctl/v1\nguests: {a: {host: x}}\n")
    ran = ivmctl("reconcile", "--once", expect=1)
    assert "cycle 1 (start): error:" in ran.out
