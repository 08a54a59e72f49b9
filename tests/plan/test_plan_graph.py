"""The plan graph: every case plan is a DAG consistent with its order, grouped in waves."""

from __future__ import annotations

import pytest
from test_plan_cases import CASES, plan_case

from ivmctl.errors import IvmctlError
from ivmctl.plan.graph import graph_problems, waves
from ivmctl.plan.model import Action, Change, Plan


def _plans() -> list[tuple[str, Plan]]:
    found = []
    for case in CASES:
        try:
            found.append((case.name, plan_case(case)))
        except IvmctlError:
            continue
    return found


PLANS = _plans()


@pytest.mark.parametrize(("name", "plan"), PLANS, ids=[n for n, _ in PLANS])
def test_every_case_plan_is_a_dag_in_a_valid_order(name: str, plan: Plan) -> None:
    assert graph_problems(plan) == []
    flat = [key for wave in waves(plan) for key in wave]
    assert sorted(flat) == sorted(c.key for c in plan.actionable)


def test_independent_changes_share_a_wave_and_dependents_come_later() -> None:
    plan = dict(PLANS)["swap_of_two_big_guests_stops_one_first_when_restart_is_allowed"]
    assert waves(plan) == (("guest.b#make-room",), ("guest.a",), ("guest.b",))
    plan = dict(PLANS)["two_new_guests_with_vlans_get_distinct_ports"]
    assert waves(plan) == (("guest.a", "guest.b"),)


def test_graph_problems_name_duplicates_unknown_and_forward_dependencies() -> None:
    def change(address: str, *deps: str) -> Change:
        return Change(address=address, action=Action.NOOP, host="h", depends_on=deps)

    plan = Plan(changes=(change("a", "b"), change("b"), change("b"), change("c", "zzz")))
    assert graph_problems(plan) == [
        "a depends on b, which comes after it",
        "b appears twice",
        "c depends on zzz, which the plan does not have",
    ]
