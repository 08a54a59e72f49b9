"""What the runtime has, written as ivmctl/v1 YAML (`ivmctl export`).

`export_document` turns actual hosts and guests into the plain data of one configuration
file; `export_text` writes it in the canonical style of `ivmctl fmt` (it goes through
`fmt.format_text`, so key order and indentation have one home). Small leaf objects
(vswitches, disks, NICs, entitlement ranges) are written in flow style, as the examples
are.

What is written: every host with its version, hardware and vswitches; every runnable
guest with every field the configuration decides, spelled explicitly (so `defaults:` or
profiles of the configuration it is pasted into cannot change its meaning). What is left
out: values the runtime chose and the configuration never pins (MAC, vswitch port, PCI
bus/slot, file sizes, which are never read back) and `Off (NR)` copies a migration left
behind, which are not guests. Memory is `4G` when it is whole gigabytes, else `4160M`.
The result loads back into the same guests, so it plans to no change against the runtime
it came from.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from ivmctl.model import ActualGuest, Disk, Guest, Host, Nic, ProviderConfig
from ivmctl.rules import (
    DEFAULT_ENTITLEMENT_MAX_PCT,
    canonical_adapter,
    format_memory_arg,
    format_percent,
)
from ivmctl.spec.fmt import format_text

API_VERSION = "ivmctl/v1"


def _flow(mapping: Mapping[str, Any]) -> CommentedMap:
    node = CommentedMap(mapping)
    node.fa.set_flow_style()
    return node


def _flow_list(items: Iterable[Any]) -> CommentedSeq:
    node = CommentedSeq(items)
    node.fa.set_flow_style()
    return node


def _percent(pct: float) -> str:
    return f"{format_percent(pct)}%"


def _memory(mb: int) -> str:
    return format_memory_arg(mb)


def host_document(host: Host) -> CommentedMap:
    """One host: version, hardware (when known) and its vswitches (localnet is implicit)."""
    out = CommentedMap()
    out["version"] = host.version
    hw = host.hardware
    if hw is not None:
        hardware = CommentedMap()
        hardware["cores"] = hw.cores
        hardware["memory"] = _memory(hw.memory_mb)
        hardware["nics"] = _flow_list(hw.nics)
        if hw.mhz is not None:
            hardware["mhz"] = hw.mhz
        out["hardware"] = hardware
    vswitches = CommentedMap()
    for name in sorted(host.vswitches):
        vswitch = host.vswitches[name]
        vswitches[name] = _flow({"nic": vswitch.nic} if vswitch.nic else {})
    out["vswitches"] = vswitches
    return out


def _device(disk: Disk) -> CommentedMap:
    out: dict[str, Any] = {"backing": disk.backing, "path": disk.path}
    adapter = canonical_adapter(disk.adapter)
    if adapter != "avio_stor":
        out["adapter"] = adapter
    if disk.shared:
        out["shared"] = True
    return _flow(out)


def _nic(nic: Nic) -> CommentedMap:
    out: dict[str, Any] = {"vswitch": nic.vswitch}
    if nic.vlan is not None:
        out["vlan"] = nic.vlan
    adapter = canonical_adapter(nic.adapter)
    if adapter != "avio_lan":
        out["adapter"] = adapter
    return _flow(out)


def guest_document(guest: Guest, *, power: str) -> CommentedMap:
    """One guest with every configurable field; `power` is `on` when it runs."""
    out = CommentedMap()
    out["host"] = guest.host
    out["os"] = guest.os
    out["vcpus"] = guest.vcpus
    ent = guest.entitlement
    if ent.max_pct == DEFAULT_ENTITLEMENT_MAX_PCT:
        out["entitlement"] = _percent(ent.min_pct)
    else:
        out["entitlement"] = _flow({"min": _percent(ent.min_pct), "max": _percent(ent.max_pct)})
    out["memory"] = _memory(guest.memory_mb)
    dyn = guest.dynamic_memory
    if dyn is not None:
        out["dynamic_memory"] = _flow(
            {
                "min": _memory(dyn.min_mb),
                "max": _memory(dyn.max_mb),
                "target": _memory(dyn.target_mb),
            }
        )
    out["power"] = power
    out["start"] = guest.start
    out["label"] = guest.label
    out["disks"] = CommentedSeq(_device(d) for d in guest.disks)
    out["dvds"] = CommentedSeq(_device(d) for d in guest.dvds)
    out["nics"] = CommentedSeq(_nic(n) for n in guest.nics)
    out["online_migration"] = guest.online_migration
    out["vm_type"] = guest.vm_type
    return out


def export_document(
    hosts: Sequence[Host],
    guests: Sequence[ActualGuest],
    *,
    provider: ProviderConfig | None = None,
) -> CommentedMap:
    """The configuration of `hosts` and the runnable `guests` among `guests`, as YAML data."""
    doc = CommentedMap()
    doc["apiVersion"] = API_VERSION
    if provider is not None:
        block = CommentedMap()
        block["name"] = provider.name
        if provider.options:
            block["options"] = _flow(dict(sorted(provider.options.items())))
        doc["provider"] = block
    doc["hosts"] = CommentedMap((h.name, host_document(h)) for h in sorted(hosts, key=_name))
    runnable = sorted((g for g in guests if g.status.runnable), key=lambda g: g.guest.name)
    doc["guests"] = CommentedMap(
        (g.guest.name, guest_document(g.guest, power="on" if g.status.running else "off"))
        for g in runnable
    )
    return doc


def _name(host: Host) -> str:
    return host.name


def export_text(
    hosts: Sequence[Host],
    guests: Sequence[ActualGuest],
    *,
    provider: ProviderConfig | None = None,
    header: Sequence[str] = (),
) -> str:
    """`export_document` as canonical YAML text, with `header` lines as leading comments."""
    yaml = YAML(typ="rt")
    yaml.width = 4096
    stream = io.StringIO()
    for line in header:
        stream.write(f"# {line}\n" if line else "#\n")
    yaml.dump(export_document(hosts, guests, provider=provider), stream)
    return format_text(stream.getvalue())
