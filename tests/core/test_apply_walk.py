"""The apply walk: dependencies, parallelism, per-host serialisation, failures, stops."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pytest

from ivmctl.core.apply import ApplyEvent, EventKind, StepFailed, apply_plan
from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan


@dataclass(frozen=True)
class FakeStep:
    host: str
    description: str
    kind: OpKind


@dataclass(frozen=True)
class FakeOutcome:
    ok: bool
    output: str = ""


@dataclass
class FakeExecutor:
    """Records what ran, concurrently, and fails what it is told to fail."""

    fail: set[str] = field(default_factory=set)
    delay: float = 0.0
    mismatches: dict[str, list[str]] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    active_starts: dict[str, int] = field(default_factory=dict)
    max_parallel_starts: dict[str, int] = field(default_factory=dict)
    running: int = 0
    max_running: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def steps(self, operation: Operation) -> Sequence[FakeStep]:
        name = operation.params.get("name", "")
        return [FakeStep(operation.host, f"{operation.kind.value} {name}", operation.kind)]

    def execute(self, step: FakeStep) -> FakeOutcome:  # type: ignore[override]
        with self.lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            if step.kind is OpKind.GUEST_START:
                count = self.active_starts.get(step.host, 0) + 1
                self.active_starts[step.host] = count
                self.max_parallel_starts[step.host] = max(
                    self.max_parallel_starts.get(step.host, 0), count
                )
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
            if step.kind is OpKind.GUEST_START:
                self.active_starts[step.host] -= 1
            self.log.append(step.description)
        return FakeOutcome(ok=step.description not in self.fail, output="hpvmstart: ERROR")

    def verify(self, change: Change) -> Sequence[str]:
        return self.mismatches.get(change.address, [])


CREATE_AND_START = (OpKind.GUEST_CREATE, OpKind.GUEST_START)


def guest(
    name: str, host: str = "h1", *, after: Sequence[str] = (),
    kinds: Sequence[OpKind] = CREATE_AND_START,
) -> Change:  # fmt: skip
    return Change(
        address=f"guest.{name}",
        action=Action.CREATE,
        host=host,
        after={"name": name},
        operations=tuple(Operation(kind=k, host=host, params={"name": name}) for k in kinds),
        depends_on=tuple(f"guest.{a}" for a in after),
    )


def test_every_change_runs_once_and_dependencies_run_first() -> None:
    executor = FakeExecutor()
    plan = Plan(changes=(guest("a"), guest("b", after=["a"]), guest("c", after=["b"])))
    result = apply_plan(plan, executor, parallelism=4)
    assert result.ok and result.done == ("guest.a", "guest.b", "guest.c")
    assert executor.log == [
        "guest.create a", "guest.start a", "guest.create b", "guest.start b",
        "guest.create c", "guest.start c",
    ]  # fmt: skip


def test_independent_changes_run_in_parallel_up_to_the_limit() -> None:
    executor = FakeExecutor(delay=0.05)
    plan = Plan(changes=tuple(guest(f"g{i}", host=f"h{i}", kinds=[OpKind.GUEST_CREATE])
                              for i in range(8)))  # fmt: skip
    result = apply_plan(plan, executor, parallelism=3)
    assert result.ok and len(result.done) == 8
    assert executor.max_running == 3


def test_starts_on_one_host_never_overlap_but_other_hosts_proceed() -> None:
    executor = FakeExecutor(delay=0.03)
    changes = [guest(f"a{i}", host="h1", kinds=[OpKind.GUEST_START]) for i in range(4)]
    changes += [guest(f"b{i}", host="h2", kinds=[OpKind.GUEST_START]) for i in range(4)]
    result = apply_plan(Plan(changes=tuple(changes)), executor, parallelism=8)
    assert result.ok
    assert executor.max_parallel_starts == {"h1": 1, "h2": 1}
    assert executor.max_running == 2


def test_a_failure_skips_its_dependents_and_lets_independent_work_finish() -> None:
    executor = FakeExecutor(fail={"guest.start a"})
    plan = Plan(changes=(guest("a"), guest("b", after=["a"]), guest("c", after=["b"]),
                         guest("d", host="h2")))  # fmt: skip
    result = apply_plan(plan, executor, parallelism=2)
    assert not result.ok
    assert list(result.failed) == ["guest.a"]
    assert "guest.start a failed on h1: hpvmstart: ERROR" in result.failed["guest.a"]
    assert result.skipped == ("guest.b", "guest.c")
    assert result.done == ("guest.d",)


def test_fail_fast_starts_nothing_after_the_first_failure() -> None:
    executor = FakeExecutor(fail={"guest.create a"})
    plan = Plan(changes=(guest("a"), guest("b", after=["a"]), guest("c", after=["a"])))
    result = apply_plan(plan, executor, parallelism=1, fail_fast=True)
    assert list(result.failed) == ["guest.a"]
    assert set(result.skipped) == {"guest.b", "guest.c"}
    assert not result.interrupted


def test_a_stop_request_lets_running_changes_finish_and_starts_nothing_new() -> None:
    executor = FakeExecutor(delay=0.02)
    stop = threading.Event()
    plan = Plan(changes=tuple(guest(f"g{i}", after=[f"g{i - 1}"] if i else [])
                              for i in range(5)))  # fmt: skip

    def on_done(change: Change) -> None:
        if change.address == "guest.g1":
            stop.set()

    result = apply_plan(plan, executor, on_change_done=on_done, stop_requested=stop.is_set)
    assert result.interrupted and not result.ok
    assert result.done == ("guest.g0", "guest.g1")
    assert result.skipped == ("guest.g2", "guest.g3", "guest.g4")


def test_each_finished_change_is_recorded_as_it_completes() -> None:
    recorded: list[str] = []
    events: list[ApplyEvent] = []
    plan = Plan(changes=(guest("a"), guest("b", after=["a"])))
    apply_plan(plan, FakeExecutor(), on_change_done=lambda c: recorded.append(c.address),
               on_event=events.append)  # fmt: skip
    assert recorded == ["guest.a", "guest.b"]
    kinds = [e.kind for e in events if e.address == "guest.a"]
    assert kinds[0] is EventKind.CHANGE_STARTED and kinds[-1] is EventKind.CHANGE_DONE


def test_a_verification_mismatch_is_reported_as_an_inconsistency() -> None:
    executor = FakeExecutor(mismatches={"guest.a": ["vcpus: planned 2, runtime has 1"]})
    result = apply_plan(Plan(changes=(guest("a"),)), executor)
    assert not result.ok
    assert result.inconsistent == {"guest.a": ("vcpus: planned 2, runtime has 1",)}


def test_parallelism_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        apply_plan(Plan(), FakeExecutor(), parallelism=0)


def test_a_change_that_fails_part_way_reports_the_operations_that_completed() -> None:
    partial: list[tuple[str, tuple[OpKind, ...]]] = []
    executor = FakeExecutor(fail={"guest.start a"})
    apply_plan(
        Plan(changes=(guest("a"),)),
        executor,
        on_change_failed=lambda c, ops: partial.append((c.key, tuple(o.kind for o in ops))),
    )
    assert partial == [("guest.a", (OpKind.GUEST_CREATE,))]


def test_a_stop_skips_ready_changes_that_have_not_started() -> None:
    executor = FakeExecutor(delay=0.01)
    stop = threading.Event()
    plan = Plan(changes=tuple(guest(f"g{i}", host=f"h{i}") for i in range(20)))
    result = apply_plan(
        plan, executor, parallelism=1, on_change_done=lambda c: stop.set(),
        stop_requested=stop.is_set,
    )  # fmt: skip
    assert result.interrupted
    assert len(result.done) == 1 and len(result.skipped) == 19


def test_fail_fast_skips_independent_ready_changes_too() -> None:
    executor = FakeExecutor(fail={"guest.create g0"})
    plan = Plan(changes=tuple(guest(f"g{i}", host=f"h{i}") for i in range(10)))
    result = apply_plan(plan, executor, parallelism=1, fail_fast=True)
    assert list(result.failed) == ["guest.g0"] and len(result.skipped) == 9


def test_workers_go_to_other_hosts_instead_of_queueing_behind_one_hosts_starts() -> None:
    executor = FakeExecutor(delay=0.03)
    changes = [guest(f"{h}{i}", host=h, kinds=[OpKind.GUEST_START]) for i in range(3)
               for h in ("a", "b", "c", "d")]  # fmt: skip
    result = apply_plan(Plan(changes=tuple(sorted(changes, key=lambda c: c.host))), executor,
                        parallelism=4)  # fmt: skip
    assert result.ok
    assert executor.max_parallel_starts == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert executor.max_running == 4


def test_the_operation_hook_runs_before_each_operation_and_a_failure_there_stops_it() -> None:
    executor = FakeExecutor()
    seen: list[tuple[str, OpKind, int]] = []

    def starting(change: Change, operation: Operation) -> None:
        seen.append((change.address, operation.kind, len(executor.log)))
        if change.address == "guest.b" and operation.kind is OpKind.GUEST_START:
            raise StepFailed("cannot record the intent: disk full")

    plan = Plan(changes=(guest("a"), guest("b", host="h2"), guest("c", after=["b"])))
    partial: list[tuple[OpKind, ...]] = []
    result = apply_plan(plan, executor, parallelism=1, on_operation_starting=starting,
                        on_change_failed=lambda c, ops: partial.append(
                            tuple(o.kind for o in ops)))  # fmt: skip
    create, start = OpKind.GUEST_CREATE, OpKind.GUEST_START
    assert seen == [("guest.a", create, 0), ("guest.a", start, 1),
                    ("guest.b", create, 2), ("guest.b", start, 3)]  # fmt: skip
    assert executor.log == ["guest.create a", "guest.start a", "guest.create b"]
    assert result.failed == {"guest.b": "cannot record the intent: disk full"}
    assert partial == [(OpKind.GUEST_CREATE,)]
    assert result.skipped == ("guest.c",)


def test_events_and_completions_reach_the_caller_on_its_own_thread_in_order() -> None:
    caller = threading.get_ident()
    threads: set[int] = set()
    events: list[ApplyEvent] = []

    def on_event(event: ApplyEvent) -> None:
        threads.add(threading.get_ident())
        events.append(event)

    plan = Plan(changes=tuple(guest(f"g{i}", host=f"h{i % 3}") for i in range(9)))
    result = apply_plan(plan, FakeExecutor(delay=0.005), parallelism=4, on_event=on_event,
                        on_change_done=lambda c: threads.add(threading.get_ident()))  # fmt: skip
    assert result.ok and threads == {caller}
    for i in range(9):
        kinds = [e.kind for e in events if e.address == f"guest.g{i}"]
        assert kinds == [EventKind.CHANGE_STARTED] + [EventKind.STEP_STARTED,
                         EventKind.STEP_FINISHED] * 2 + [EventKind.CHANGE_DONE]  # fmt: skip


def test_a_large_plan_keeps_every_rule_with_thousands_of_ready_changes() -> None:
    executor = FakeExecutor()
    hosts = [f"h{i}" for i in range(30)]
    vswitches = [Change(address=f"vswitch.{h}.v", action=Action.CREATE, host=h,
                        after={"name": "v"},
                        operations=(Operation(kind=OpKind.VSWITCH_CREATE, host=h,
                                              params={"name": f"v{h}"}),))
                 for h in hosts]  # fmt: skip
    guests = [
        replace(guest(f"g{i}", host=hosts[i % 30]), depends_on=(f"vswitch.{hosts[i % 30]}.v",))
        for i in range(1500)
    ]
    plan = Plan(changes=(*vswitches, *guests))
    result = apply_plan(plan, executor, parallelism=10)
    assert result.ok and len(result.done) == 1530
    assert executor.max_running <= 10
    assert set(executor.max_parallel_starts.values()) == {1}
    assert executor.log.count("guest.start g1499") == 1


def test_a_step_that_timed_out_is_reported_with_the_operations_that_may_have_completed() -> None:
    partial: list[tuple[OpKind, ...]] = []

    def on_failed(change: Change, ops: tuple[Operation, ...]) -> None:
        partial.append(tuple(o.kind for o in ops))

    plan = Plan(changes=(guest("a", kinds=[OpKind.GUEST_CREATE]),))
    apply_plan(plan, FakeExecutor(delay=0.5), step_timeout=0.01, on_change_failed=on_failed)
    assert partial == [(OpKind.GUEST_CREATE,)]
