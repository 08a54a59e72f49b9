"""Property tests: for random worlds, a plan is either refused with a reason, or its
steps run in order without a refusal (capacity included) and the next plan is empty."""

from __future__ import annotations

import dataclasses

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_sim import Sim

from ivmctl.errors import PlanError
from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Entitlement,
    Guest,
    GuestStatus,
    Hardware,
    Host,
    Lifecycle,
    Nic,
    VSwitch,
)
from ivmctl.plan.model import Action, Inventory
from ivmctl.plan.planner import make_plan
from ivmctl.rules import Demand, HostCapacity

HOSTS = ("h1", "h2")


@st.composite
def worlds(draw: st.DrawFn) -> tuple[DesiredState, ActualState, Inventory]:
    versions = {"h1": "6.3", "h2": draw(st.sampled_from(["6.3", "6.3", "6.2", "4.0"]))}
    hosts = {}
    for name in HOSTS:
        hosts[name] = Host(
            name=name,
            version=versions[name],
            hardware=Hardware(
                cores=draw(st.sampled_from([2, 4, 8])),
                memory_mb=draw(st.sampled_from([8192, 16384])),
            ),
            vswitches={"vsw": VSwitch(host=name, name="vsw", nic="lan0")},
        )
    caps = {
        n: HostCapacity.empty(
            name=n, cores=h.hardware.cores, physical_memory_mb=h.hardware.memory_mb
        )  # type: ignore[union-attr]
        for n, h in hosts.items()
    }
    actual_guests: dict[str, ActualGuest] = {}
    count = draw(st.integers(0, 4))
    for i in range(count):
        name = f"g{i}"
        guest = Guest(
            name=name,
            host=draw(st.sampled_from(HOSTS)),
            vcpus=draw(st.integers(1, 4)),
            memory_mb=draw(st.sampled_from([1024, 2048, 4096])),
            entitlement=Entitlement(min_pct=draw(st.sampled_from([10.0, 25.0, 50.0]))),
            nics=(
                Nic(
                    vswitch="vsw",
                    port=i + 1,
                    mac=0x020000000100 + i,
                    address="0,5",
                    vlan=draw(st.sampled_from([None, 100, 200])),
                ),
            ),
        )
        state = "Off"
        if draw(st.booleans()):
            demand = Demand(
                name=name,
                vcpus=guest.vcpus,
                entitlement_pct=guest.entitlement.min_pct,
                memory_mb=guest.memory_mb,
            )
            if not caps[guest.host].problems(demand):
                caps[guest.host] = caps[guest.host].admit(demand)
                state = "On (OS)"
        vlan = guest.nics[0].vlan
        if vlan is not None:
            vsw = hosts[guest.host].vswitches["vsw"]
            hosts[guest.host] = dataclasses.replace(
                hosts[guest.host],
                vswitches={
                    "vsw": dataclasses.replace(vsw, port_vlans={**vsw.port_vlans, i + 1: vlan})
                },
            )
        actual_guests[name] = ActualGuest(
            guest=dataclasses.replace(guest, power="on" if state != "Off" else "off"),
            status=GuestStatus(state=state, vm_number=i + 1),
        )
    desired_guests: dict[str, Guest] = {}
    for name, item in actual_guests.items():
        if draw(st.integers(0, 5)) == 0:
            continue  # no longer declared: deleted
        guest = dataclasses.replace(
            item.guest,
            nics=(Nic(vswitch="vsw", vlan=draw(st.sampled_from([item.guest.nics[0].vlan, 300]))),),
            power="on" if item.status.running else "off",
        )
        if draw(st.booleans()):
            guest = dataclasses.replace(
                guest,
                host=draw(st.sampled_from(HOSTS)),
                vcpus=draw(st.integers(1, 4)),
                memory_mb=draw(st.sampled_from([1024, 2048, 4096])),
                entitlement=Entitlement(min_pct=draw(st.sampled_from([10.0, 25.0, 50.0]))),
                power=draw(st.sampled_from(["on", "off"])),
                label=draw(st.sampled_from(["", "x"])),
                lifecycle=Lifecycle(restart=draw(st.sampled_from(["allow", "deny"]))),
            )
        desired_guests[name] = guest
    for i in range(draw(st.integers(0, 2))):
        name = f"n{i}"
        desired_guests[name] = Guest(
            name=name,
            host=draw(st.sampled_from(HOSTS)),
            vcpus=draw(st.integers(1, 2)),
            memory_mb=draw(st.sampled_from([1024, 2048])),
            power=draw(st.sampled_from(["on", "off"])),
            nics=(Nic(vswitch="vsw", vlan=draw(st.sampled_from([None, 100]))),),
        )
    owned = frozenset([f"guest.{n}" for n in actual_guests] + [f"vswitch.{h}.vsw" for h in HOSTS])
    return (
        DesiredState(hosts=hosts, guests=desired_guests, digest="d"),
        ActualState(hosts=hosts, guests=actual_guests, generation="1"),
        Inventory(owned=owned),
    )


def _declared_as_is(actual: ActualState) -> DesiredState:
    guests = {
        n: dataclasses.replace(
            a.guest,
            power="on" if a.status.running else "off",
            nics=tuple(
                dataclasses.replace(nic, mac=None, port=None, address=None) for nic in a.guest.nics
            ),
        )
        for n, a in actual.guests.items()
    }
    return DesiredState(hosts=dict(actual.hosts), guests=guests)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_declaring_the_runtime_as_it_is_plans_no_actionable_change(world) -> None:  # type: ignore[no-untyped-def]
    _, actual, inventory = world
    plan = make_plan(_declared_as_is(actual), actual, inventory)
    assert plan.actionable == ()
    assert all(change.reasons for change in plan.changes)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_a_plan_is_refused_with_a_reason_or_applies_step_by_step_and_converges(world) -> None:  # type: ignore[no-untyped-def]
    desired, actual, inventory = world
    try:
        plan = make_plan(desired, actual, inventory)
    except PlanError as exc:
        assert exc.summary
        return
    assert make_plan(desired, actual, inventory) == plan  # deterministic
    keys = [c.key for c in plan.changes]
    assert len(keys) == len(set(keys))
    position = {k: i for i, k in enumerate(keys)}
    for change in plan.changes:
        assert all(position[d] < position[change.key] for d in change.depends_on)
        assert change.reasons, change.key
    after = Sim.of(actual).apply(plan)  # raises SimRefused on any refused step
    deleted = {c.address for c in plan.changes if c.action is Action.DELETE}
    owned = (inventory.owned | {c.address for c in plan.changes}) - deleted
    again = make_plan(desired, after, Inventory(owned=frozenset(owned)))
    assert [(c.key, c.reasons) for c in again.actionable] == []
