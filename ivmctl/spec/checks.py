"""Checks the schema cannot express: references, limits per version, uniqueness.

All run, and all findings are collected: a guest on a missing host, a NIC on a vswitch its
host lacks, AVIO on a vswitch without uplink, vCPUs and memory beyond the version's limits
or the host's cores, dynamic memory out of order or on a non-HP-UX guest, a backing path
used by two guests without `shared: true`, the same pinned MAC or vswitch port twice.
Limits come from ivmctl.rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from ivmctl import rules
from ivmctl.errors import RuleViolation, SpecError
from ivmctl.model import Guest, Host, guest_address
from ivmctl.spec.normalize import Collector, Merged
from ivmctl.spec.problems import Spot, did_you_mean
from ivmctl.spec.schema import format_field_path

_INDEX = re.compile(r"\[(\d+)\]")


def field_items(path: str) -> list[str | int]:
    """ "nics[0].mac" -> ["nics", 0, "mac"]."""
    items: list[str | int] = []
    for part in path.split("."):
        name, _, rest = part.partition("[")
        items.append(name)
        items.extend(int(i) for i in _INDEX.findall("[" + rest if rest else ""))
    return items


def _spot(out: Collector, address: str, path: str | None = None) -> Spot | None:
    """Where `address:path` was written: the longest recorded prefix of the path, extended
    by the rest; the object itself when the field was not written (a default)."""
    sources = out.all_sources()
    if path is not None:
        items = field_items(path)
        for cut in range(len(items), 0, -1):
            entry = sources.get(f"{address}:{format_field_path(items[:cut])}")
            if entry is not None:
                spot = entry[0]
                return Spot(file=spot.file, ypath=(*spot.ypath, *items[cut:]))
    entry = sources.get(address)
    return entry[0] if entry else None


def _error(
    out: Collector,
    summary: str,
    address: str,
    path: str | None,
    *,
    detail: str | None = None,
    kind: type[SpecError] | type[RuleViolation] = RuleViolation,
) -> None:
    out.error(summary, _spot(out, address, path), address, path, detail=detail, kind=kind)


def check_guest(guest: Guest, merged: Merged, hosts: Mapping[str, Host], out: Collector) -> None:
    """The checks of one guest against its host."""
    address = guest_address(guest.name)
    problem = rules.name_problem(guest.name)
    if problem:
        _error(out, f"invalid guest name: {problem}", address, None)
    profile = merged.guests[guest.name].data.get("profile")
    if profile is not None and profile not in merged.profiles:
        _error(
            out,
            f'no profile "{profile}"' + did_you_mean(profile, list(merged.profiles)),
            address,
            "profile",
            kind=SpecError,
        )
    host = hosts.get(guest.host)
    if host is None:
        if guest.host not in merged.hosts:  # declared but unreadable: reported already
            _error(
                out,
                f'no host "{guest.host}"' + did_you_mean(guest.host, list(hosts)),
                address,
                "host",
                kind=SpecError,
                detail="Declare it under hosts: or correct the name.",
            )
        return
    # Fields dropped for schema problems hold defaults, not the user's values: never judge
    # them, nor a host whose version is in doubt.
    unknown = (
        merged.dropped_fields(address)
        | merged.dropped_fields(f"profile.{profile}")
        | merged.dropped_fields("defaults.guests")
    )
    host_unknown = merged.dropped_fields(f"host.{host.name}")
    _check_dynamic_memory(guest, address, out, unknown)
    _check_nics(guest, host, address, out, merged, host_unknown)
    _check_paths(guest, address, out)
    if "version" in host_unknown:
        return
    limits = rules.limits_for(host.version)
    version = host.version
    if guest.label:
        problem = rules.label_problem(guest.label, version)
        if problem:
            _error(out, f"invalid label: {problem}", address, "label")
    if "vcpus" not in unknown and guest.vcpus > limits.max_vcpus:
        _error(
            out,
            f"{guest.vcpus} vCPUs exceed the limit of {limits.max_vcpus} per guest "
            f"on Integrity VM {version} (host {host.name})",
            address,
            "vcpus",
        )
    if "vcpus" not in unknown and host.hardware is not None and guest.vcpus > host.hardware.cores:
        _error(
            out,
            f"{guest.vcpus} vCPUs exceed the {host.hardware.cores} physical cores of "
            f"host {host.name}",
            address,
            "vcpus",
            detail="A guest can never have more vCPUs than its host has cores.",
        )
    if unknown.isdisjoint({"vm_type", "memory"}) and (
        guest.vm_type != "vpar" and guest.memory_mb > limits.max_memory_mb
    ):
        _error(
            out,
            f"{rules.format_memory_display(guest.memory_mb)} of memory exceeds the "
            f"limit of {rules.format_memory_display(limits.max_memory_mb)} per guest on "
            f"Integrity VM {version} (host {host.name})",
            address,
            "memory",
        )
    if (
        guest.entitlement.max_pct != rules.DEFAULT_ENTITLEMENT_MAX_PCT
        and not limits.entitlement_cap
    ):
        _error(
            out,
            f"an entitlement maximum needs Integrity VM 4.0 or later; host {host.name} "
            f"runs {version}",
            address,
            "entitlement.max",
        )
    if "vm_type" not in unknown and guest.vm_type == "vpar" and not limits.vm_type:
        _error(
            out, f"vPars need Integrity VM 6.x; host {host.name} runs {version}", address, "vm_type"
        )
    devices = len(guest.disks) + len(guest.dvds) + len(guest.nics)
    if devices > limits.max_devices:
        _error(
            out,
            f"{devices} devices exceed the limit of {limits.max_devices} per guest on "
            f"Integrity VM {version}",
            address,
            None,
        )


def _check_paths(guest: Guest, address: str, out: Collector) -> None:
    seen: dict[str, str] = {}
    for kind, devices_of_kind in (("disks", guest.disks), ("dvds", guest.dvds)):
        for index, disk in enumerate(devices_of_kind):
            where = f"{kind}[{index}]"
            problem = rules.backing_path_problem(disk.path)
            if problem:
                _error(
                    out,
                    f'backing path "{disk.path}" cannot be used: {problem}',
                    address,
                    f"{where}.path",
                    detail="Use a plain absolute path such as /ivm/NAME/disk.img.",
                )
            if disk.path in seen:
                _error(
                    out,
                    f'path "{disk.path}" is used twice by this guest (also {seen[disk.path]})',
                    address,
                    f"{where}.path",
                )
            seen.setdefault(disk.path, where)


def _check_dynamic_memory(guest: Guest, address: str, out: Collector, unknown: set[str]) -> None:
    dyn = guest.dynamic_memory
    if dyn is None:
        return
    if "os" not in unknown and guest.os != rules.OsType.HPUX.value:
        _error(
            out,
            f"dynamic memory needs an HP-UX guest; this guest's os is {guest.os}",
            address,
            "dynamic_memory",
            detail="Set os: hpux or remove dynamic_memory.",
        )
    if "vm_type" not in unknown and guest.vm_type == "vpar":
        _error(out, "vPars have no dynamic memory", address, "dynamic_memory")
    if not (dyn.min_mb and dyn.max_mb):
        return
    problem = rules.dynamic_memory_problem(
        min_mb=dyn.min_mb, max_mb=dyn.max_mb, target_mb=dyn.target_mb
    )
    if problem is rules.DynamicMemoryProblem.MIN_NOT_BELOW_MAX:
        _error(
            out,
            f"dynamic memory min {dyn.min_mb} MB must be below max {dyn.max_mb} MB",
            address,
            "dynamic_memory.min",
        )
    elif problem is rules.DynamicMemoryProblem.TARGET_OUTSIDE:
        _error(
            out,
            f"dynamic memory target {dyn.target_mb} MB is outside min {dyn.min_mb} MB "
            f"to max {dyn.max_mb} MB",
            address,
            "dynamic_memory.target",
        )


def _check_nics(
    guest: Guest, host: Host, address: str, out: Collector, merged: Merged, host_unknown: set[str]
) -> None:
    if "vswitches" in host_unknown:
        return
    for index, nic in enumerate(guest.nics):
        path = f"nics[{index}]"
        if (host.name, nic.vswitch) in merged.unsure_vswitches:
            continue
        if not host.has_vswitch(nic.vswitch):
            known = [*host.vswitches, rules.LOCALNET]
            _error(
                out,
                f'no vswitch "{nic.vswitch}" on host {host.name}'
                + did_you_mean(nic.vswitch, known),
                address,
                f"{path}.vswitch",
                kind=SpecError,
            )
            continue
        if nic.adapter in rules.AVIO_ADAPTERS:
            vswitch = host.vswitches.get(nic.vswitch)
            if vswitch is None or vswitch.nic is None:
                what = "localnet" if vswitch is None else "host-local (no nic)"
                _error(
                    out,
                    f'AVIO NIC on vswitch "{nic.vswitch}", which is {what}',
                    address,
                    f"{path}.vswitch",
                    detail="AVIO needs a vswitch backed by a host NIC; use adapter: lan "
                    "or a vswitch with nic:.",
                )


def check_across(guests: Mapping[str, Guest], out: Collector) -> None:
    """Uniqueness over all guests: backing paths per host, pinned MACs, pinned ports."""
    paths: dict[tuple[str, str], list[tuple[str, str, bool]]] = {}
    macs: dict[int, list[tuple[str, str]]] = {}
    ports: dict[tuple[str, str, int], list[tuple[str, str]]] = {}
    for name in sorted(guests):
        guest = guests[name]
        address = guest_address(name)
        for kind, devices in (("disks", guest.disks), ("dvds", guest.dvds)):
            for index, disk in enumerate(devices):
                if disk.backing == "null":
                    continue
                paths.setdefault((guest.host, disk.path), []).append(
                    (address, f"{kind}[{index}].path", disk.shared)
                )
        for index, nic in enumerate(guest.nics):
            if nic.mac is not None:
                macs.setdefault(nic.mac, []).append((address, f"nics[{index}].mac"))
            if nic.port is not None:
                ports.setdefault((guest.host, nic.vswitch, nic.port), []).append(
                    (address, f"nics[{index}].port")
                )
    for (host, path), uses in paths.items():
        if len(uses) < 2:  # nearly every path: one use, nothing to compare
            continue
        owners = sorted({u[0] for u in uses})
        if len(owners) > 1 and not all(shared for _, _, shared in uses):
            for address, field_path, shared in uses:
                if shared:
                    continue
                others = ", ".join(o for o in owners if o != address)
                _error(
                    out,
                    f'backing "{path}" on host {host} is also used by {others}',
                    address,
                    field_path,
                    detail="Give each guest its own backing, or mark every use shared: true.",
                )
    for mac, users in macs.items():
        if len(users) > 1:
            for address, field_path in users:
                others = _others(users, address, field_path)
                _error(
                    out,
                    f"MAC {rules.format_mac(mac)} is also pinned by {others}",
                    address,
                    field_path,
                    detail="MAC addresses must be unique.",
                )
    for (host, vswitch, port), users in ports.items():
        if len(users) > 1:
            for address, field_path in users:
                others = _others(users, address, field_path)
                _error(
                    out,
                    f"port {port} of vswitch {vswitch} on host {host} is also pinned by {others}",
                    address,
                    field_path,
                )


def _others(users: list[tuple[str, str]], address: str, field_path: str) -> str:
    return ", ".join(f"{a}:{p}" for a, p in users if (a, p) != (address, field_path))
