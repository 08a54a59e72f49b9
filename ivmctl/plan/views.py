"""JSON views of hosts, vswitches and guests: the `before`/`after` of a Change.

A view is a plain dict of JSON values with a stable shape, so that the plan file, the
`--json` output and the human rendering all read the same thing. MACs are spelled
`0x...` as in resource statements; memory is in MB; entitlement in percent.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from ivmctl.lazy import LazyMapping
from ivmctl.model import ActualGuest, Disk, Guest, Nic, VSwitch
from ivmctl.rules import format_mac


def disk_view(disk: Disk) -> dict[str, Any]:
    return {
        "devtype": disk.devtype,
        "backing": disk.backing,
        "path": disk.path,
        "adapter": disk.adapter,
        "size_mb": disk.size_mb,
        "shared": disk.shared,
        "address": disk.address,
    }


def nic_view(nic: Nic) -> dict[str, Any]:
    return {
        "vswitch": nic.vswitch,
        "adapter": nic.adapter,
        "vlan": nic.vlan,
        "mac": None if nic.mac is None else format_mac(nic.mac),
        "port": nic.port,
        "address": nic.address,
    }


def guest_view(guest: Guest, *, power: str | None = None) -> dict[str, Any]:
    """A guest as a dict; `power` overrides the guest's own (actual: from its run state)."""
    dyn = guest.dynamic_memory
    return {
        "name": guest.name,
        "host": guest.host,
        "os": guest.os,
        "vcpus": guest.vcpus,
        "entitlement": {"min_pct": guest.entitlement.min_pct, "max_pct": guest.entitlement.max_pct},
        "memory_mb": guest.memory_mb,
        "dynamic_memory": None
        if dyn is None
        else {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb},
        "power": guest.power if power is None else power,
        "start": guest.start,
        "label": guest.label,
        "disks": [disk_view(d) for d in guest.disks],
        "dvds": [disk_view(d) for d in guest.dvds],
        "nics": [nic_view(n) for n in guest.nics],
        "online_migration": guest.online_migration,
        "vm_type": guest.vm_type,
    }


def actual_power(actual: ActualGuest) -> str:
    """`on` when the guest runs (On (OS) or On (EFI)), else `off`."""
    return "on" if actual.status.running else "off"


def actual_guest_view(actual: ActualGuest) -> dict[str, Any]:
    view = guest_view(actual.guest, power=actual_power(actual))
    view["state"] = actual.status.state
    return view


def vswitch_view(vswitch: VSwitch, *, actual: bool = False) -> dict[str, Any]:
    view: dict[str, Any] = {"name": vswitch.name, "host": vswitch.host, "nic": vswitch.nic}
    if actual:
        view["state"] = vswitch.state
    return view


class LazyView(LazyMapping[str, Any]):
    """A view built the first time it is read, then kept: the same mapping as the dict
    its builder returns (and pickled as that dict).

    For the guests a plan finds unchanged, most guests of a large fleet: their views are
    part of the plan (the plan file, `--json`, `--show-unchanged`), but a no-op plan that
    prints a summary never reads them, and building both took a quarter of planning
    10,000 guests. Code that needs a plain dict (JSON) calls `dict(view)`.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(self.built())

    def __reduce__(self) -> tuple[type[dict[str, Any]], tuple[dict[str, Any]]]:
        return dict, (dict(self.built()),)


def lazy_guest_view(guest: Guest) -> LazyView:
    """`guest_view(guest)`, built when first read."""
    return LazyView(partial(guest_view, guest))


def lazy_actual_guest_view(actual: ActualGuest) -> LazyView:
    """`actual_guest_view(actual)`, built when first read."""
    return LazyView(partial(actual_guest_view, actual))
