"""The planner at scale: 1,000 hosts and 10,000 guests plan to the right changes, and the
work grows linearly with the fleet.

No clock: linearity is checked by counting the lines the planner executes (a trace
function) for ten times the fleet, which grow about tenfold; a quadratic loop would make
them grow a hundredfold. How long plans take is measured by `make bench`
(docs/performance.md), not asserted here.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from plan_fleets import no_op_fleet

import ivmctl
from ivmctl.model import ActualState, DesiredState, Entitlement
from ivmctl.plan.model import Action, Inventory
from ivmctl.plan.planner import make_plan

HOSTS, GUESTS = 1000, 10000
FLEET = no_op_fleet(HOSTS, GUESTS)


def test_a_no_op_plan_of_ten_thousand_guests_changes_nothing() -> None:
    desired, actual, inventory = FLEET
    plan = make_plan(desired, actual, inventory)
    assert plan.actionable == ()
    assert len(plan.changes) == GUESTS + HOSTS


def _changed(
    fleet: tuple[DesiredState, ActualState, Inventory], n_hosts: int = HOSTS
) -> tuple[DesiredState, ActualState, Inventory]:
    """A tenth of the guests updated online, a hundredth restarted, a hundredth moved."""
    desired, actual, inventory = fleet
    guests = dict(desired.guests)
    for j in range(0, len(guests), 10):
        guests[f"g{j}"] = dataclasses.replace(
            guests[f"g{j}"], label="x", entitlement=Entitlement(min_pct=15)
        )
    for j in range(1, len(guests), 100):
        guests[f"g{j}"] = dataclasses.replace(guests[f"g{j}"], vcpus=2)
    for j in range(2, len(guests), 100):
        guests[f"g{j}"] = dataclasses.replace(guests[f"g{j}"], host=f"h{(j + 1) % n_hosts}")
    return dataclasses.replace(desired, guests=guests), actual, inventory


def test_changing_a_tenth_of_ten_thousand_guests_plans_each_change() -> None:
    plan = make_plan(*_changed(FLEET))
    actions = {c.action for c in plan.actionable}
    assert actions == {Action.UPDATE, Action.RESTART, Action.MIGRATE}
    assert len(plan.actionable) == 1200


_IVMCTL = str(Path(ivmctl.__file__).parent)


def _lines_run(fleet: tuple[DesiredState, ActualState, Inventory]) -> int:
    """How many lines of ivmctl one plan executes (the planner, the model, the rules): a
    clock-free measure of work."""
    count = 0

    def line(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        count += event == "line"
        return line

    def call(frame: FrameType, event: str, arg: Any) -> Any:
        return line if frame.f_code.co_filename.startswith(_IVMCTL) else None

    previous = sys.gettrace()
    sys.settrace(call)
    try:
        make_plan(*fleet)
    finally:
        sys.settrace(previous)
    return count


@pytest.mark.parametrize("changed", [False, True], ids=["no-op", "a tenth changed"])
def test_planning_work_grows_linearly_with_the_fleet(changed: bool) -> None:
    small, big = no_op_fleet(10, 100), no_op_fleet(100, 1000)
    if changed:
        small, big = _changed(small, 10), _changed(big, 100)
    small_lines, big_lines = _lines_run(small), _lines_run(big)
    # Ten times the fleet: ~10x the lines when linear, ~100x when something is quadratic.
    assert big_lines < 15 * small_lines, f"{big_lines} lines vs {small_lines} for a tenth"
