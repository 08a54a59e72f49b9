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
    DynamicMemory,
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


@st.composite
def rich_worlds(draw: st.DrawFn) -> tuple[DesiredState, ActualState, Inventory]:
    """Small, full hosts; dynamic memory; vswitches that come and go; unmanaged guests."""
    hw = Hardware(cores=draw(st.sampled_from([2, 4])), memory_mb=8192)
    actual_vsw = {h: draw(st.sampled_from([("vsw",), ("vsw", "vsw2")])) for h in HOSTS}
    desired_vsw = {h: draw(st.sampled_from([("vsw",), ("vsw", "vsw2")])) for h in HOSTS}

    def host(name: str, names: tuple[str, ...]) -> Host:
        return Host(
            name=name,
            version="6.3",
            hardware=hw,
            vswitches={v: VSwitch(host=name, name=v, nic="lan0") for v in names},
        )

    caps = {
        h: HostCapacity.empty(name=h, cores=hw.cores, physical_memory_mb=hw.memory_mb)
        for h in HOSTS
    }
    actual_guests: dict[str, ActualGuest] = {}
    for i in range(draw(st.integers(0, 4))):
        name = f"g{i}"
        where = draw(st.sampled_from(HOSTS))
        dyn = None
        memory = draw(st.sampled_from([1024, 2048, 3072]))
        if draw(st.booleans()):
            dyn = DynamicMemory(min_mb=512, max_mb=memory + 2048, target_mb=memory)
        guest = Guest(
            name=name,
            host=where,
            vcpus=draw(st.integers(1, 2)),
            memory_mb=memory,
            dynamic_memory=dyn,
            entitlement=Entitlement(min_pct=draw(st.sampled_from([10.0, 50.0]))),
            nics=(
                Nic(
                    vswitch=draw(st.sampled_from(actual_vsw[where])),
                    port=i + 1,
                    mac=0x020000000200 + i,
                ),
            ),
        )
        demand = Demand(
            name=name,
            vcpus=guest.vcpus,
            entitlement_pct=guest.entitlement.min_pct,
            memory_mb=memory,
        )
        state = "Off"
        if draw(st.booleans()) and not caps[where].problems(demand):
            caps[where] = caps[where].admit(demand)
            state = "On (OS)"
        actual_guests[name] = ActualGuest(
            guest=guest, status=GuestStatus(state=state, vm_number=i + 1)
        )
    owned_guests = {n for n in actual_guests if draw(st.integers(0, 4)) > 0}
    desired_guests: dict[str, Guest] = {}
    for name, item in actual_guests.items():
        if draw(st.integers(0, 4)) == 0:
            continue
        where = draw(st.sampled_from(HOSTS))
        desired_guests[name] = dataclasses.replace(
            item.guest,
            host=where,
            nics=(Nic(vswitch=draw(st.sampled_from(desired_vsw[where]))),),
            power=draw(st.sampled_from(["on", "off"])),
            lifecycle=Lifecycle(restart=draw(st.sampled_from(["allow", "allow", "deny"]))),
        )
    owned = frozenset(
        [f"guest.{n}" for n in owned_guests]
        + [f"vswitch.{h}.{v}" for h in HOSTS for v in actual_vsw[h]]
    )
    return (
        DesiredState(hosts={h: host(h, desired_vsw[h]) for h in HOSTS}, guests=desired_guests),
        ActualState(hosts={h: host(h, actual_vsw[h]) for h in HOSTS}, guests=actual_guests),
        Inventory(owned=owned),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rich_worlds())
def test_plans_of_full_hosts_with_vswitch_changes_apply_and_converge(world) -> None:  # type: ignore[no-untyped-def]
    desired, actual, inventory = world
    try:
        plan = make_plan(desired, actual, inventory)
    except PlanError as exc:
        assert exc.summary
        return
    unmanaged = {a.removeprefix("guest.") for a in plan.unmanaged if a.startswith("guest.")}
    for change in plan.changes:
        for op in change.operations:
            assert op.guest not in unmanaged, f"{change.key} touches unmanaged {op.guest}"
    after = Sim.of(actual).apply(plan)
    deleted = {c.address for c in plan.changes if c.action is Action.DELETE}
    owned = (inventory.owned | {c.address for c in plan.changes}) - deleted
    again = make_plan(desired, after, Inventory(owned=frozenset(owned)))
    assert [(c.key, c.reasons) for c in again.actionable] == []


@st.composite
def swaps(draw: st.DrawFn) -> tuple[DesiredState, ActualState, Inventory]:
    """Big guests trading places between nearly full hosts, sometimes with a bystander."""
    hw = Hardware(cores=4, memory_mb=8192)
    hosts = {
        h: Host(name=h, version="6.3", hardware=hw, vswitches={"vsw": VSwitch(host=h, name="vsw")})
        for h in HOSTS
    }
    actual: dict[str, ActualGuest] = {}
    desired: dict[str, Guest] = {}
    for i, (here, there) in enumerate([("h1", "h2"), ("h2", "h1"), ("h1", "h1")]):
        if i == 2 and not draw(st.booleans()):
            break
        name = "abc"[i]
        guest = Guest(
            name=name,
            host=here,
            vcpus=draw(st.integers(1, 4)),
            memory_mb=draw(st.sampled_from([1024, 2048, 3072, 4096, 5120])),
            entitlement=Entitlement(min_pct=draw(st.sampled_from([10.0, 50.0, 100.0]))),
            nics=(Nic(vswitch="vsw", port=i + 1),),
        )
        actual[name] = ActualGuest(guest=guest, status=GuestStatus(state="On (OS)", vm_number=i))
        desired[name] = dataclasses.replace(
            guest,
            host=there if draw(st.booleans()) or i < 2 else here,
            nics=(Nic(vswitch="vsw"),),
            entitlement=Entitlement(
                min_pct=draw(st.sampled_from([guest.entitlement.min_pct, 10.0, 50.0]))
            ),
            memory_mb=draw(st.sampled_from([guest.memory_mb, 2048])),
            lifecycle=Lifecycle(restart=draw(st.sampled_from(["allow", "deny"]))),
        )
    # The actual placement must be one the hosts admit.
    caps = {h: HostCapacity.empty(name=h, cores=4, physical_memory_mb=8192) for h in HOSTS}
    for item in sorted(actual.values(), key=lambda a: a.status.vm_number):
        demand = Demand(
            name=item.guest.name,
            vcpus=item.guest.vcpus,
            entitlement_pct=item.guest.entitlement.min_pct,
            memory_mb=item.guest.memory_mb,
        )
        if caps[item.guest.host].problems(demand):
            actual[item.guest.name] = dataclasses.replace(
                item, status=GuestStatus(state="Off", vm_number=item.status.vm_number)
            )
        else:
            caps[item.guest.host] = caps[item.guest.host].admit(demand)
    owned = frozenset([f"guest.{n}" for n in actual] + [f"vswitch.{h}.vsw" for h in HOSTS])
    return (
        DesiredState(hosts=hosts, guests=desired),
        ActualState(hosts=hosts, guests=actual),
        Inventory(owned=owned),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(swaps())
def test_swaps_between_full_hosts_are_ordered_or_refused_with_a_capacity_report(world) -> None:  # type: ignore[no-untyped-def]
    desired, actual, inventory = world
    try:
        plan = make_plan(desired, actual, inventory)
    except PlanError as exc:
        assert exc.summary
        if "no order" in exc.summary:
            assert "Capacity per host" in (exc.detail or "")
        return
    after = Sim.of(actual).apply(plan)
    again = make_plan(desired, after, Inventory(owned=inventory.owned))
    assert [(c.key, c.reasons) for c in again.actionable] == []
