"""Per-object comparison of a desired guest with the actual one, as dotted field paths.

Each guest is turned into a *comparable* dict: only what the configuration decides,
with values the runtime chooses left out wherever the desired side leaves them None
(MAC, port, PCI address, file size). Disks and DVDs are matched by (devtype, path),
NICs by position. Most guests of a plan are unchanged, so `diff_guest` first asks
`plainly_equal`, which compares the two guests' attributes in place (no dict is built); only
when that cannot tell are the comparable dicts built and compared, and deepdiff (this is its
only home) runs only on the sub-objects that differ, and is imported only then.

Spellings that mean the same never differ: adapter aliases (`aviostor` is
`avio_stor`), the case of OS types and backings, integer and float entitlements.

Paths read like the configuration: `vcpus`, `entitlement.min_pct`, `dynamic_memory`,
`disks[/ivm/web01/root.img].adapter`, `dvds[/iso]`, `nics[0].vswitch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ivmctl.model import Disk, Guest, Nic
from ivmctl.rules import canonical_adapter, format_mac
from ivmctl.values import frozen

DEVICE_MAPS = ("disks", "dvds")


@frozen
class FieldDiff:
    """One differing field: its dotted path, the key path it came from, and both values.

    `keys` is the path as a list (`["nics", 0, "vswitch"]`); a value missing on one side
    is None there (a device added or removed).
    """

    path: str
    keys: tuple[str | int, ...]
    before: Any
    after: Any


def _device_map(disks: Sequence[Disk], dvds: Sequence[Disk]) -> dict[str, dict[str, Disk]]:
    maps: dict[str, dict[str, Disk]] = {"disks": {}, "dvds": {}}
    for disk in (*disks, *dvds):
        maps["dvds" if disk.devtype == "dvd" else "disks"][disk.path] = disk
    return maps


def _disk_fields(disk: Disk, pinned: Disk | None) -> dict[str, Any]:
    """What is compared of a disk; `pinned` is the desired disk deciding what counts."""
    fields: dict[str, Any] = {
        "backing": disk.backing.lower(),
        "adapter": canonical_adapter(disk.adapter),
    }
    reference = pinned or disk
    if reference.shared:
        fields["shared"] = disk.shared
    if reference.address is not None:
        fields["address"] = disk.address
    return fields


def _nic_fields(nic: Nic, pinned: Nic | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "vswitch": nic.vswitch,
        "adapter": canonical_adapter(nic.adapter),
        "vlan": nic.vlan,
    }
    reference = pinned or nic
    for name in ("mac", "port", "address"):
        if getattr(reference, name) is not None:
            fields[name] = getattr(nic, name)
    if fields.get("mac") is not None:
        fields["mac"] = format_mac(fields["mac"])
    return fields


def _scalars(guest: Guest, power: str) -> dict[str, Any]:
    dyn = guest.dynamic_memory
    return {
        "os": guest.os.lower(),
        "vcpus": guest.vcpus,
        "memory_mb": guest.memory_mb,
        "entitlement": {
            "min_pct": round(float(guest.entitlement.min_pct), 1),
            "max_pct": round(float(guest.entitlement.max_pct), 1),
        },
        "dynamic_memory": None
        if dyn is None
        else {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb},
        "power": power,
        "start": guest.start,
        "label": guest.label,
        "online_migration": guest.online_migration,
        "vm_type": guest.vm_type,
    }


def comparable(
    desired: Guest, actual: Guest, actual_power: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two dicts to compare; the host is compared by the planner (it means a move)."""
    left = _scalars(actual, actual_power)
    right = _scalars(desired, desired.power)
    want = _device_map(desired.disks, desired.dvds)
    have = _device_map(actual.disks, actual.dvds)
    for kind in DEVICE_MAPS:
        right[kind] = {path: _disk_fields(d, d) for path, d in want[kind].items()}
        left[kind] = {path: _disk_fields(d, want[kind].get(path)) for path, d in have[kind].items()}
    right["nics"] = {i: _nic_fields(n, n) for i, n in enumerate(desired.nics)}
    left["nics"] = {
        i: _nic_fields(n, desired.nics[i] if i < len(desired.nics) else None)
        for i, n in enumerate(actual.nics)
    }
    return left, right


def dotted(keys: Sequence[str | int]) -> str:
    """`["nics", 0, "vswitch"]` -> `nics[0].vswitch`; device paths go in brackets."""
    out = ""
    previous: str | int | None = None
    for key in keys:
        if isinstance(key, int) or previous in (*DEVICE_MAPS, "nics"):
            out += f"[{key}]"
        else:
            out += f".{key}" if out else str(key)
        previous = key
    return out


def _present(value: Any) -> Any:
    return None if type(value).__name__ == "NotPresent" else value


def diff_dicts(before: dict[str, Any], after: dict[str, Any]) -> list[FieldDiff]:
    """Field differences of two comparable dicts, sorted by path; [] when equal."""
    if before == after:
        return []
    found: list[FieldDiff] = []
    for top in sorted({*before, *after}):
        old, new = before.get(top), after.get(top)
        if old == new:
            continue
        if not (isinstance(old, dict) and isinstance(new, dict)):
            found.append(FieldDiff(path=dotted([top]), keys=(top,), before=old, after=new))
            continue
        # Only the differing sub-objects go through deepdiff, which is thorough but slow,
        # and slow to import (~35 ms): a plan with nothing to change never loads it.
        from deepdiff import DeepDiff

        tree = DeepDiff(old, new, view="tree", threshold_to_diff_deeper=0)
        for items in tree.values():
            for item in items:
                keys = (top, *item.path(output_format="list"))
                found.append(
                    FieldDiff(
                        path=dotted(keys),
                        keys=keys,
                        before=_present(item.t1),
                        after=_present(item.t2),
                    )
                )
    found.sort(key=lambda f: _sort_key(f.keys))
    return found


def _sort_key(keys: Sequence[str | int]) -> tuple[tuple[int, str], ...]:
    return tuple((k, "") if isinstance(k, int) else (-1, k) for k in keys)


def _same_text(want: str, have: str) -> bool:
    return want == have or want.lower() == have.lower()


def _same_adapter(want: str, have: str) -> bool:
    return want == have or canonical_adapter(want) == canonical_adapter(have)


def plainly_equal(desired: Guest, actual: Guest, actual_power: str) -> bool:
    """True only if `comparable` would give two equal dicts, without building them.

    A sufficient test, not a second definition of a difference: it holds when every
    attribute `comparable` reads is equal as it stands (devices in the same order, values
    the runtime chooses equal where the configuration pins them). When it does not hold,
    `comparable` decides; a test checks that it never says equal where `comparable` differs.

    Each kind of device is compared pairwise with its own kind only (no tuple of both is
    built): a guest with as many devices in all but not of each kind is left to
    `comparable`. Most guests of a plan come here: the pairs go through `map`, not a
    strict zip, and the helpers' equal case is written out (below).
    """
    if not (
        desired.vcpus == actual.vcpus
        and desired.memory_mb == actual.memory_mb
        and desired.entitlement == actual.entitlement
        and desired.dynamic_memory == actual.dynamic_memory
        and desired.power == actual_power
        and desired.start == actual.start
        and desired.label == actual.label
        and desired.online_migration == actual.online_migration
        and desired.vm_type == actual.vm_type
        and (desired.os == actual.os or _same_text(desired.os, actual.os))
    ):
        return False
    disks, had = desired.disks, actual.disks
    if len(disks) != len(had) or not all(map(_same_disk, disks, had)):
        return False
    dvds, had = desired.dvds, actual.dvds
    if len(dvds) != len(had) or (dvds and not all(map(_same_disk, dvds, had))):
        return False
    nics, had_nics = desired.nics, actual.nics
    return len(nics) == len(had_nics) and all(map(_same_nic, nics, had_nics))


# The equal case of `_same_text` and `_same_adapter` (their first test) is written out, as
# is "a value the runtime chooses counts only when the configuration pins it" (None, or
# equal): the helpers are called only when that fails. A device's comparison is most of
# a no-op plan's per-guest work, and the calls were about a twelfth of planning.


def _same_disk(want: Disk, have: Disk) -> bool:
    return (
        want.path == have.path
        and want.devtype == have.devtype
        and (want.backing == have.backing or _same_text(want.backing, have.backing))
        and (want.adapter == have.adapter or _same_adapter(want.adapter, have.adapter))
        and (have.shared or not want.shared)
        and (want.address is None or want.address == have.address)
    )


def _same_nic(want: Nic, have: Nic) -> bool:
    return (
        want.vswitch == have.vswitch
        and want.vlan == have.vlan
        and (want.adapter == have.adapter or _same_adapter(want.adapter, have.adapter))
        and (want.mac is None or want.mac == have.mac)
        and (want.port is None or want.port == have.port)
        and (want.address is None or want.address == have.address)
    )


def diff_guest(desired: Guest, actual: Guest, actual_power: str) -> list[FieldDiff]:
    """What differs between a desired guest and the actual one (host excluded)."""
    if plainly_equal(desired, actual, actual_power):
        return []
    before, after = comparable(desired, actual, actual_power)
    return diff_dicts(before, after)
