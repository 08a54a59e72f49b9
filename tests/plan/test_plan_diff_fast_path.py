"""The diff's fast path: `plainly_equal` never calls equal what `comparable` calls different,
and a guest the planner calls `unchanged` gets the outcome `plan_change` would give it.

Pairs of guests are drawn close to each other (the differences a refresh really shows:
spellings, values the runtime chose, reordered devices, a changed field), so that both
answers of the fast test are exercised.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from ivmctl.model import ActualGuest, Disk, DynamicMemory, Entitlement, Guest, GuestStatus, Nic
from ivmctl.plan.classify import (
    GuestContext,
    PortAllocator,
    plan_change,
    unchanged,
    unchanged_outcome,
)
from ivmctl.plan.diff import comparable, diff_dicts, diff_guest, plainly_equal


@st.composite
def disks(draw: st.DrawFn, index: int) -> Disk:
    return Disk(
        devtype=draw(st.sampled_from(["disk", "disk", "dvd"])),
        backing=draw(st.sampled_from(["file", "lv", "disk"])),
        path=f"/dev/d{index}",
        adapter=draw(st.sampled_from(["avio_stor", "scsi"])),
        size_mb=draw(st.sampled_from([None, 1024])),
        shared=draw(st.booleans()),
        address=draw(st.sampled_from([None, "0,1,0"])),
    )


@st.composite
def nics(draw: st.DrawFn) -> Nic:
    return Nic(
        vswitch=draw(st.sampled_from(["vsw", "other"])),
        adapter=draw(st.sampled_from(["avio_lan", "lan"])),
        vlan=draw(st.sampled_from([None, 100])),
        mac=draw(st.sampled_from([None, 0x020000000001])),
        port=draw(st.sampled_from([None, 1, 2])),
        address=draw(st.sampled_from([None, "0,5"])),
    )


@st.composite
def guests(draw: st.DrawFn) -> Guest:
    count = draw(st.integers(0, 3))
    return Guest(
        name="g",
        host="h1",
        os=draw(st.sampled_from(["hpux", "linux"])),
        vcpus=draw(st.integers(1, 2)),
        memory_mb=draw(st.sampled_from([2048, 4096])),
        entitlement=Entitlement(min_pct=draw(st.sampled_from([10, 10.0, 20.0]))),
        dynamic_memory=draw(
            st.sampled_from([None, DynamicMemory(min_mb=1024, max_mb=4096, target_mb=2048)])
        ),
        power=draw(st.sampled_from(["on", "off"])),
        label=draw(st.sampled_from(["", "web"])),
        disks=tuple(draw(disks(i)) for i in range(count)),
        nics=tuple(draw(st.lists(nics(), max_size=2))),
    )


def _respell(draw: st.DrawFn, guest: Guest) -> Guest:
    """The same guest as a refresh may spell it: case, aliases, values the runtime chose."""
    disks = tuple(
        dataclasses.replace(
            d,
            backing=d.backing.upper() if draw(st.booleans()) else d.backing,
            adapter="aviostor" if d.adapter == "avio_stor" and draw(st.booleans()) else d.adapter,
            size_mb=None,
            address=d.address or draw(st.sampled_from([None, "0,2,0"])),
        )
        for d in guest.disks
    )
    if draw(st.booleans()):
        disks = tuple(reversed(disks))
    nics = tuple(
        dataclasses.replace(
            n,
            adapter="AVIOLAN" if n.adapter == "avio_lan" and draw(st.booleans()) else n.adapter,
            mac=n.mac or 0x02000000FFFF,
            port=n.port if n.port is not None else 7,
            address=n.address or "0,6",
        )
        for n in guest.nics
    )
    entitlement = Entitlement(min_pct=float(guest.entitlement.min_pct))
    return dataclasses.replace(
        guest, os=guest.os.upper(), disks=disks, nics=nics, entitlement=entitlement
    )


@st.composite
def pairs(draw: st.DrawFn) -> tuple[Guest, Guest, str]:
    desired = draw(guests())
    actual = _respell(draw, desired) if draw(st.booleans()) else desired
    if draw(st.booleans()):  # and perhaps one real difference
        actual = dataclasses.replace(actual, **draw(st.sampled_from([
            {"vcpus": 4}, {"label": "other"}, {"disks": actual.disks[1:]},
            {"nics": (*actual.nics, Nic(vswitch="vsw"))},
            {"entitlement": Entitlement(min_pct=10.04)}, {"dynamic_memory": None},
        ])))  # fmt: skip
    power = draw(st.sampled_from([desired.power, "on", "off"]))
    return desired, actual, power


@settings(max_examples=400, deadline=None)
@given(pairs())
def test_the_fast_path_says_equal_only_when_the_comparable_dicts_are_equal(pair) -> None:  # type: ignore[no-untyped-def]
    desired, actual, power = pair
    before, after = comparable(desired, actual, power)
    if plainly_equal(desired, actual, power):
        assert before == after
    assert diff_guest(desired, actual, power) == diff_dicts(before, after)


def test_a_guest_as_the_runtime_reports_it_is_plainly_equal_to_its_declaration() -> None:
    desired = Guest(
        name="g",
        host="h1",
        disks=(Disk(backing="lv", path="/dev/vg/a"),),
        nics=(Nic(vswitch="vsw", vlan=100),),
    )
    actual = dataclasses.replace(
        desired,
        disks=(Disk(backing="lv", path="/dev/vg/a", address="0,1,0"),),
        nics=(Nic(vswitch="vsw", vlan=100, mac=0x020000000001, port=3, address="0,5"),),
    )
    assert plainly_equal(desired, actual, "on")
    assert not plainly_equal(desired, dataclasses.replace(actual, label="x"), "on")
    assert not plainly_equal(desired, actual, "off")


@settings(max_examples=300, deadline=None)
@given(pairs(), st.booleans())
def test_a_guest_the_planner_calls_unchanged_gets_what_plan_change_would_give(pair, adopt) -> None:  # type: ignore[no-untyped-def]
    desired, actual, power = pair
    state = "On (OS)" if power == "on" else "Off"
    have = ActualGuest(guest=actual, status=GuestStatus(state=state, vm_number=1))
    if not unchanged(desired, have, ()):
        return
    ctx = GuestContext(host_versions={"h1": "6.3"}, restart_allowed=True)
    outcome = plan_change(desired, have, ctx, PortAllocator(), adopt=adopt)
    assert unchanged_outcome(desired.host, adopt=adopt) == outcome
