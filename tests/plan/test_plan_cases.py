"""The planner's behaviour as data: one directory per case under tests/plan/cases/.

Each case holds `desired.json` and `actual.json` (the normalised model, see
plan_codec), `inventory.json` (owned and prevent_destroy addresses), optionally
`options.json` (allow_restart, targets, refresh_only) and `expected.json`: either
{"plan": <plan_to_dict>} or {"error": {"type", "summary", "detail"}}.

`UPDATE_EXPECTED=1 pytest tests/plan` rewrites the expectations; review the diff
before committing it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import plan_codec
import pytest
from plan_sim import Sim

from ivmctl.errors import IvmctlError
from ivmctl.plan.model import Action, Inventory, Plan
from ivmctl.plan.planfile import plan_to_dict
from ivmctl.plan.planner import make_plan

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES = sorted(p for p in CASES_DIR.iterdir() if p.is_dir())
UPDATE = os.environ.get("UPDATE_EXPECTED") == "1"


def _read(case: Path, name: str, default: Any = None) -> Any:
    path = case / name
    if not path.exists():
        return default
    return json.loads(path.read_text(encoding="utf-8"))


def load(case: Path) -> tuple[Any, Any, Inventory, dict[str, Any]]:
    desired = plan_codec.desired_from(_read(case, "desired.json"))
    actual = plan_codec.actual_from(_read(case, "actual.json"))
    inventory = plan_codec.inventory_from(_read(case, "inventory.json", {}))
    options = _read(case, "options.json", {})
    return desired, actual, inventory, options


def plan_case(case: Path) -> Plan:
    desired, actual, inventory, options = load(case)
    return make_plan(
        desired,
        actual,
        inventory,
        allow_restart=frozenset(options.get("allow_restart", ())),
        targets=frozenset(options.get("targets", ())),
        refresh_only=bool(options.get("refresh_only", False)),
        state_serial=int(options.get("state_serial", 0)),
        state_lineage=str(options.get("state_lineage", "")),
    )


def outcome(case: Path) -> dict[str, Any]:
    try:
        plan = plan_case(case)
    except IvmctlError as exc:
        return {"error": {"type": type(exc).__name__, "summary": exc.summary, "detail": exc.detail}}
    return {"plan": plan_to_dict(plan)}


def test_there_are_at_least_forty_planner_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_planner_case_gives_the_expected_plan(case: Path) -> None:
    got = outcome(case)
    path = case / "expected.json"
    if UPDATE or not path.exists():
        path.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert got == expected


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_planning_the_same_case_twice_gives_identical_json(case: Path) -> None:
    first = json.dumps(outcome(case), sort_keys=True)
    assert json.dumps(outcome(case), sort_keys=True) == first


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_applying_a_case_plan_succeeds_step_by_step_and_the_next_plan_is_empty(
    case: Path,
) -> None:
    desired, actual, inventory, options = load(case)
    if options.get("targets") or options.get("refresh_only"):
        pytest.skip("a partial plan does not converge in one apply")
    try:
        plan = plan_case(case)
    except IvmctlError:
        pytest.skip("the case expects a refusal")
    after = Sim.of(actual).apply(plan)
    deleted = {c.address for c in plan.changes if c.action is Action.DELETE}
    owned = (set(inventory.owned) | {c.address for c in plan.changes}) - deleted
    protected = {g.address for g in desired.guests.values() if g.lifecycle.prevent_destroy} | set(
        inventory.prevent_destroy
    )
    again = make_plan(
        desired,
        after,
        Inventory(owned=frozenset(owned), prevent_destroy=frozenset(protected - deleted)),
        allow_restart=frozenset(options.get("allow_restart", ())),
    )
    assert [(c.key, c.action.value, c.reasons) for c in again.actionable] == []


def test_plans_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "dump.py"
    script.write_text(
        "import json, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n"
        "from test_plan_cases import CASES, outcome\n"
        "print(json.dumps({c.name: outcome(c) for c in CASES}, sort_keys=True))\n",
        encoding="utf-8",
    )
    outputs = {
        subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            check=True,
            text=True,
        ).stdout
        for seed in ("1", "4242")
    }
    assert len(outputs) == 1
