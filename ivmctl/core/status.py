"""`ivmctl status`: what each host runs, how full it is, and which guests drifted.

Capacity is computed with the same admission arithmetic the emulator enforces and the
planner predicts (rules.HostCapacity over the running guests); drift is the planner's
own per-guest diff, so status never disagrees with plan.
"""

from __future__ import annotations

from ivmctl import model
from ivmctl.errors import InsufficientResources
from ivmctl.plan.classify import demand_of, is_ignored
from ivmctl.plan.diff import diff_guest
from ivmctl.rules import HostCapacity
from ivmctl.values import frozen


@frozen
class GuestRow:
    """One guest on a host, as status shows it."""

    name: str
    state: str
    vcpus: int
    entitlement_pct: float
    memory_mb: int
    managed: bool  # declared in the configuration or owned by ivmctl
    drift: tuple[str, ...] = ()  # changed field paths, when it differs from the declared one


@frozen
class HostRow:
    """One host: hardware, what its running guests hold, and its guests."""

    name: str
    version: str
    cores: int
    memory_mb: int
    pool_mb: int
    entitlement_used_pct: float  # core-percent: 100 per fully committed core
    memory_used_mb: int
    guests: tuple[GuestRow, ...]
    overcommitted: bool = False  # running guests hold more than admission would allow


def host_rows(
    desired: model.DesiredState, actual: model.ActualState, owned: frozenset[str]
) -> list[HostRow]:
    """Status rows for every refreshed host, hosts and guests sorted by name."""
    by_host: dict[str, list[model.ActualGuest]] = {}
    for found in actual.guests.values():
        by_host.setdefault(found.guest.host, []).append(found)
    rows: list[HostRow] = []
    for name in sorted(actual.hosts):
        host = actual.hosts[name]
        hw = host.hardware or model.Hardware(cores=0, memory_mb=0)
        capacity = HostCapacity.empty(name=name, cores=hw.cores, physical_memory_mb=hw.memory_mb)
        overcommitted = False
        guests: list[GuestRow] = []
        for found in sorted(by_host.get(name, []), key=lambda g: g.guest.name):
            guest = found.guest
            if found.status.running:
                try:
                    capacity = capacity.admit(demand_of(guest))
                except InsufficientResources:
                    overcommitted = True
            guests.append(
                GuestRow(
                    name=guest.name,
                    state=found.status.state,
                    vcpus=guest.vcpus,
                    entitlement_pct=guest.entitlement.min_pct,
                    memory_mb=guest.memory_mb,
                    managed=guest.name in desired.guests or guest.address in owned,
                    drift=_drift(desired.guests.get(guest.name), found),
                )
            )
        rows.append(
            HostRow(
                name=name,
                version=host.version,
                cores=hw.cores,
                memory_mb=hw.memory_mb,
                pool_mb=capacity.pool_mb,
                entitlement_used_pct=capacity.entitlement_used_pct,
                memory_used_mb=capacity.memory_used_mb,
                guests=tuple(guests),
                overcommitted=overcommitted,
            )
        )
    return rows


def _drift(want: model.Guest | None, have: model.ActualGuest) -> tuple[str, ...]:
    if want is None:
        return ()
    power = "on" if have.status.running else "off"
    return tuple(
        d.path
        for d in diff_guest(want, have.guest, power)
        if not is_ignored(d.path, want.lifecycle.ignore_changes)
    )
