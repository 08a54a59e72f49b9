"""Views of unchanged guests are built when first read (`LazyView`): a no-op plan that
prints a summary builds none, and whatever reads them (the plan file, `--json`, the state's
digests, pickles) sees the same dict as before."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest
from plan_fleets import no_op_fleet

from ivmctl.core.recording import view_digest
from ivmctl.model import Guest
from ivmctl.plan import views
from ivmctl.plan.model import Action
from ivmctl.plan.planfile import plan_to_dict
from ivmctl.plan.planner import make_plan
from ivmctl.plan.views import LazyView, actual_guest_view, guest_view


def test_a_lazy_view_is_the_dict_it_builds_and_builds_it_once() -> None:
    built: list[int] = []

    def build() -> dict[str, Any]:
        built.append(1)
        return {"name": "g1", "nics": [{"vswitch": "vsw"}]}

    view = LazyView(build)
    assert built == []
    assert view == {"name": "g1", "nics": [{"vswitch": "vsw"}]}
    expected: dict[str, Any] = {"name": "g1", "nics": [{"vswitch": "vsw"}]}
    assert expected == view  # a dict on the left compares too
    assert view["name"] == "g1" and len(view) == 2 and list(view) == ["name", "nics"]
    assert dict(view) == view and repr(view) == repr(dict(view))
    assert built == [1]
    assert pickle.loads(pickle.dumps(view)) == dict(view)
    assert type(pickle.loads(pickle.dumps(view))) is dict
    assert view_digest(view) == view_digest(dict(view))


def test_a_no_op_plan_builds_no_guest_view_until_one_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desired, actual, inventory = no_op_fleet(1, 1)
    after, before = guest_view(desired.guests["g0"]), actual_guest_view(actual.guests["g0"])
    built: list[str] = []
    original = views.guest_view

    def counted(guest: Guest, *, power: str | None = None) -> dict[str, Any]:
        built.append(guest.name)
        return original(guest, power=power)

    monkeypatch.setattr(views, "guest_view", counted)
    plan = make_plan(desired, actual, inventory)
    (change,) = [c for c in plan.changes if c.address == "guest.g0"]
    assert change.action is Action.NOOP and plan.actionable == ()
    assert built == []
    assert (change.after, change.before) == (after, before)
    assert built == ["g0", "g0"]
    encoded = plan_to_dict(plan)["changes"]
    (written,) = [c for c in encoded if c["address"] == "guest.g0"]
    assert json.loads(json.dumps(written["after"])) == after
