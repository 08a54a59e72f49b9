"""Views of unchanged guests are built when first read (`LazyView`): a no-op plan that
prints a summary builds none, and whatever reads them (the plan file, `--json`, the state's
digests, pickles) sees the same dict as before."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from ivmctl.core.recording import view_digest
from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Disk,
    Guest,
    GuestStatus,
    Hardware,
    Host,
    Nic,
    VSwitch,
)
from ivmctl.plan import views
from ivmctl.plan.model import Action, Inventory
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


def _fleet() -> tuple[DesiredState, ActualState, Inventory]:
    host = Host(
        name="h1",
        version="6.3",
        hardware=Hardware(cores=16, memory_mb=65536),
        vswitches={"vsw": VSwitch(host="h1", name="vsw", nic="lan0")},
    )
    want = Guest(
        name="g1",
        host="h1",
        memory_mb=2048,
        disks=(Disk(backing="lv", path="/dev/vg/l1"),),
        nics=(Nic(vswitch="vsw"),),
    )
    have = Guest(
        name="g1",
        host="h1",
        memory_mb=2048,
        disks=(Disk(backing="lv", path="/dev/vg/l1", address="0,1,0"),),
        nics=(Nic(vswitch="vsw", mac=0x020000000001, port=0, address="0,5"),),
    )
    actual = ActualGuest(guest=have, status=GuestStatus(state="On (OS)", vm_number=1))
    return (
        DesiredState(hosts={"h1": host}, guests={"g1": want}),
        ActualState(hosts={"h1": host}, guests={"g1": actual}),
        Inventory(owned=frozenset({"guest.g1", "vswitch.h1.vsw"})),
    )


def test_a_no_op_plan_builds_no_guest_view_until_one_is_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    desired, actual, inventory = _fleet()
    after, before = guest_view(desired.guests["g1"]), actual_guest_view(actual.guests["g1"])
    built: list[str] = []
    original = views.guest_view

    def counted(guest: Guest, *, power: str | None = None) -> dict[str, Any]:
        built.append(guest.name)
        return original(guest, power=power)

    monkeypatch.setattr(views, "guest_view", counted)
    plan = make_plan(desired, actual, inventory)
    (change,) = [c for c in plan.changes if c.address == "guest.g1"]
    assert change.action is Action.NOOP and plan.actionable == ()
    assert built == []
    assert (change.after, change.before) == (after, before)
    assert built == ["g1", "g1"]
    encoded = plan_to_dict(plan)["changes"]
    (written,) = [c for c in encoded if c["address"] == "guest.g1"]
    assert json.loads(json.dumps(written["after"])) == after
