"""The planner at scale: 1,000 hosts and 10,000 guests plan in seconds, not minutes.

Budgets are generous (shared CI machines); a quadratic loop would blow them by far.
"""

from __future__ import annotations

import dataclasses
import time

from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Disk,
    Entitlement,
    Guest,
    GuestStatus,
    Hardware,
    Host,
    Nic,
    VSwitch,
)
from ivmctl.plan.model import Action, Inventory
from ivmctl.plan.planner import make_plan

HOSTS, GUESTS = 1000, 10000


def _fleet(
    n_hosts: int = HOSTS, n_guests: int = GUESTS
) -> tuple[DesiredState, ActualState, Inventory]:
    hosts = {
        f"h{i}": Host(
            name=f"h{i}",
            version="6.3",
            hardware=Hardware(cores=16, memory_mb=262144),
            vswitches={"vsw": VSwitch(host=f"h{i}", name="vsw", nic="lan0")},
        )
        for i in range(n_hosts)
    }
    desired: dict[str, Guest] = {}
    actual: dict[str, ActualGuest] = {}
    for j in range(n_guests):
        guest = Guest(
            name=f"g{j}",
            host=f"h{j % n_hosts}",
            memory_mb=2048,
            disks=(Disk(backing="lv", path=f"/dev/vg/l{j}"),),
            nics=(Nic(vswitch="vsw"),),
        )
        desired[guest.name] = guest
        have = dataclasses.replace(
            guest,
            disks=(Disk(backing="lv", path=f"/dev/vg/l{j}", address="0,1,0"),),
            nics=(Nic(vswitch="vsw", mac=0x020000000000 + j, port=j // n_hosts, address="0,5"),),
        )
        actual[guest.name] = ActualGuest(
            guest=have, status=GuestStatus(state="On (OS)", vm_number=j)
        )
    owned = frozenset(
        [f"guest.g{j}" for j in range(n_guests)] + [f"vswitch.h{i}.vsw" for i in range(n_hosts)]
    )
    return (
        DesiredState(hosts=hosts, guests=desired),
        ActualState(hosts=hosts, guests=actual),
        Inventory(owned=owned),
    )


FLEET = _fleet()


def test_a_no_op_plan_of_ten_thousand_guests_takes_seconds() -> None:
    desired, actual, inventory = FLEET
    started = time.perf_counter()
    plan = make_plan(desired, actual, inventory)
    elapsed = time.perf_counter() - started
    assert plan.actionable == ()
    assert len(plan.changes) == GUESTS + HOSTS
    assert elapsed < 20, f"a no-op plan took {elapsed:.1f} s"


def test_changing_a_tenth_of_ten_thousand_guests_takes_seconds() -> None:
    desired, actual, inventory = FLEET
    guests = dict(desired.guests)
    for j in range(0, GUESTS, 10):
        guests[f"g{j}"] = dataclasses.replace(
            guests[f"g{j}"], label="x", entitlement=Entitlement(min_pct=15)
        )
    for j in range(1, GUESTS, 100):
        guests[f"g{j}"] = dataclasses.replace(guests[f"g{j}"], vcpus=2)
    for j in range(2, GUESTS, 100):
        guests[f"g{j}"] = dataclasses.replace(guests[f"g{j}"], host=f"h{(j + 1) % HOSTS}")
    started = time.perf_counter()
    plan = make_plan(dataclasses.replace(desired, guests=guests), actual, inventory)
    elapsed = time.perf_counter() - started
    actions = {c.action for c in plan.actionable}
    assert actions == {Action.UPDATE, Action.RESTART, Action.MIGRATE}
    assert len(plan.actionable) == 1200
    assert elapsed < 40, f"a plan of 1,200 changes took {elapsed:.1f} s"


def _time_no_op(fleet: tuple[DesiredState, ActualState, Inventory]) -> float:
    started = time.perf_counter()
    make_plan(*fleet)
    return time.perf_counter() - started


def test_planning_time_grows_linearly_with_the_fleet() -> None:
    small = _fleet(HOSTS // 10, GUESTS // 10)
    small_time = min(_time_no_op(small) for _ in range(3))
    big_time = _time_no_op(FLEET)
    # Ten times the fleet: ~10x when linear, ~100x when something is quadratic.
    assert big_time < 30 * small_time, f"{big_time:.2f} s vs {small_time:.3f} s for a tenth"
