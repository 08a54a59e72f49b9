"""Test-side JSON codec for the normalised model (DesiredState, ActualState, Inventory).

Case files are written by hand, so decoding fills every default the dataclasses
have; MACs may be `0x...` strings. Encoding writes only what differs from the
defaults, so generated files stay short. Independent of ivmctl.spec on purpose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Disk,
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
from ivmctl.plan.model import Inventory
from ivmctl.rules import format_mac, parse_mac

_STATUS_KEYS = ("state", "vm_number", "uuid", "runnable")


def _mac(value: Any) -> int | None:
    if value is None or isinstance(value, int):
        return value
    return parse_mac(str(value))


def nic_from(data: dict[str, Any]) -> Nic:
    return Nic(**{**data, "mac": _mac(data.get("mac"))})


def disk_from(data: dict[str, Any], devtype: str) -> Disk:
    return Disk(**{"devtype": devtype, **data})


def guest_from(name: str, data: dict[str, Any]) -> Guest:
    data = {k: v for k, v in data.items() if k not in _STATUS_KEYS}
    fields: dict[str, Any] = {"name": name, **data}
    if "entitlement" in data:
        fields["entitlement"] = Entitlement(**data["entitlement"])
    if data.get("dynamic_memory") is not None:
        fields["dynamic_memory"] = DynamicMemory(**data["dynamic_memory"])
    fields["disks"] = tuple(disk_from(d, "disk") for d in data.get("disks", ()))
    fields["dvds"] = tuple(disk_from(d, "dvd") for d in data.get("dvds", ()))
    fields["nics"] = tuple(nic_from(n) for n in data.get("nics", ()))
    if "lifecycle" in data:
        life = dict(data["lifecycle"])
        life["ignore_changes"] = tuple(life.get("ignore_changes", ()))
        fields["lifecycle"] = Lifecycle(**life)
    return Guest(**fields)


def host_from(name: str, data: dict[str, Any]) -> Host:
    hardware = data.get("hardware")
    vswitches = {
        vname: VSwitch(
            host=name,
            name=vname,
            nic=v.get("nic"),
            state=v.get("state", "Up"),
            port_vlans={int(p): int(vl) for p, vl in v.get("port_vlans", {}).items()},
        )
        for vname, v in data.get("vswitches", {}).items()
    }
    return Host(
        name=name,
        version=data.get("version", "6.3"),
        hardware=None
        if hardware is None
        else Hardware(
            cores=hardware["cores"],
            memory_mb=hardware["memory_mb"],
            nics=tuple(hardware.get("nics", ())),
            mhz=hardware.get("mhz"),
        ),
        vswitches=vswitches,
    )


def actual_guest_from(name: str, data: dict[str, Any]) -> ActualGuest:
    guest = guest_from(name, data)
    state = data.get("state", "On (OS)")
    guest = dataclasses.replace(guest, power="on" if state.startswith("On") else "off")
    status = GuestStatus(
        state=state,
        vm_number=int(data.get("vm_number", 1)),
        uuid=data.get("uuid", ""),
        runnable=bool(data.get("runnable", state != "Off (NR)")),
    )
    return ActualGuest(guest=guest, status=status)


def desired_from(data: dict[str, Any]) -> DesiredState:
    return DesiredState(
        hosts={n: host_from(n, h) for n, h in data.get("hosts", {}).items()},
        guests={n: guest_from(n, g) for n, g in data.get("guests", {}).items()},
        digest=data.get("digest", ""),
    )


def actual_from(data: dict[str, Any]) -> ActualState:
    not_runnable = {}
    for item in data.get("not_runnable", ()):
        name = item["name"]
        body = {k: v for k, v in item.items() if k != "name"}
        body.setdefault("state", "Off (NR)")
        copy = actual_guest_from(name, body)
        not_runnable[(copy.guest.host, name)] = copy
    return ActualState(
        hosts={n: host_from(n, h) for n, h in data.get("hosts", {}).items()},
        guests={n: actual_guest_from(n, g) for n, g in data.get("guests", {}).items()},
        not_runnable=not_runnable,
        generation=str(data.get("generation", "")),
    )


def inventory_from(data: dict[str, Any]) -> Inventory:
    return Inventory(
        owned=frozenset(data.get("owned", ())),
        prevent_destroy=frozenset(data.get("prevent_destroy", ())),
    )


# --------------------------------------------------------------------------------------------
# Encoding (only non-default values)
# --------------------------------------------------------------------------------------------


def _non_default(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.default is not dataclasses.MISSING and value == f.default:
            continue
        if f.default_factory is not dataclasses.MISSING and value == f.default_factory():
            continue
        out[f.name] = value
    return out


def guest_to(guest: Guest) -> dict[str, Any]:
    out = _non_default(guest)
    out.pop("name")
    if "entitlement" in out:
        out["entitlement"] = _non_default(guest.entitlement)
    if guest.dynamic_memory is not None:
        out["dynamic_memory"] = dataclasses.asdict(guest.dynamic_memory)
    for key in ("disks", "dvds"):
        if key in out:
            out[key] = [
                {k: v for k, v in _non_default(d).items() if k != "devtype"} | {"path": d.path}
                for d in out[key]
            ]
            for item, disk in zip(out[key], getattr(guest, key), strict=True):
                item["backing"] = disk.backing
    if "nics" in out:
        nics = []
        for nic in guest.nics:
            item = _non_default(nic) | {"vswitch": nic.vswitch}
            if nic.mac is not None:
                item["mac"] = format_mac(nic.mac)
            nics.append(item)
        out["nics"] = nics
    if "lifecycle" in out:
        life = _non_default(guest.lifecycle)
        if "ignore_changes" in life:
            life["ignore_changes"] = list(life["ignore_changes"])
        out["lifecycle"] = life
    return out


def host_to(host: Host, *, actual: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"version": host.version}
    if host.hardware is not None:
        hw = host.hardware
        out["hardware"] = {"cores": hw.cores, "memory_mb": hw.memory_mb, "nics": list(hw.nics)}
    vswitches = {}
    for name in sorted(host.vswitches):
        v = host.vswitches[name]
        item: dict[str, Any] = {"nic": v.nic}
        if actual and v.state != "Up":
            item["state"] = v.state
        if actual and v.port_vlans:
            item["port_vlans"] = {str(p): vl for p, vl in sorted(v.port_vlans.items())}
        vswitches[name] = item
    if vswitches:
        out["vswitches"] = vswitches
    return out


def actual_guest_to(item: ActualGuest) -> dict[str, Any]:
    out = guest_to(dataclasses.replace(item.guest, power="on"))
    out["state"] = item.status.state
    out["vm_number"] = item.status.vm_number
    return out


def desired_to(state: DesiredState) -> dict[str, Any]:
    return {
        "hosts": {n: host_to(state.hosts[n], actual=False) for n in sorted(state.hosts)},
        "guests": {n: guest_to(state.guests[n]) for n in sorted(state.guests)},
        "digest": state.digest,
    }


def actual_to(state: ActualState) -> dict[str, Any]:
    out: dict[str, Any] = {
        "hosts": {n: host_to(state.hosts[n], actual=True) for n in sorted(state.hosts)},
        "guests": {n: actual_guest_to(state.guests[n]) for n in sorted(state.guests)},
        "generation": state.generation,
    }
    if state.not_runnable:
        out["not_runnable"] = [
            {"name": name, **actual_guest_to(state.not_runnable[(host, name)])}
            for host, name in sorted(state.not_runnable)
        ]
    return out
