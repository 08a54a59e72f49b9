"""A fleet the planner finds unchanged: `no_op_fleet(hosts, guests)` gives the desired
state, the runtime that matches it and the inventory that owns it (planner tests at
scale, and wherever one unchanged guest is enough)."""

from __future__ import annotations

import dataclasses

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
from ivmctl.plan.model import Inventory


def no_op_fleet(n_hosts: int, n_guests: int) -> tuple[DesiredState, ActualState, Inventory]:
    """Hosts h0.. with vswitch vsw, guests g0.. spread over them, each with a disk and a
    NIC; the runtime has what a host fills in (addresses, MAC, port)."""
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
