"""Virtual devices: backing presence, exclusivity, addressing, MACs, ports and the device DB.

Storage presence is the emulator's model [inf]: SAN LUNs (`/dev/rdisk/*`, `/dev/rdsk/*`) are
presented to every host of the world; LVM/VxVM volumes (`/dev/<vg>/r<lv>`) exist on every
host (as if their volume groups were shared); files exist on a host only once created with
`hpvmdevmgmt -S size file` (or copied by `hpvmclone -b`); `/dev/pt/*` pass-through devices
exist everywhere. A fault can unpresent any path from one host.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace

from ivmctl.resources import NetworkResource, StorageResource
from ivmctl.rules import (
    AVIO_TARGET_RANGE,
    PCI_BUS_RANGE,
    PCI_SLOT_RANGE,
    generate_mac,
    limits_for,
    mac_problem,
    nic_port,
)
from ivmctl.runtime.context import Ctx, Refused
from ivmctl.runtime.data import (
    DevEntry,
    Guest,
    Nic,
    Storage,
    dependents,
    dev_entry,
    file_size,
    format_attrs,
    is_unpresented,
    users_of_path,
    vswitch_by_name,
)
from ivmctl.runtime.store import bump_meta

SCSI_TARGET_RANGE = range(0, 16)  # [inf] a VIO SCSI adapter carries up to 16 targets
DEVICE_KINDS = {  # devtype -> backings it accepts [R57][R58][R51]
    "disk": ("disk", "lv", "file"),
    "dvd": ("disk", "file", "null"),
    "tape": ("attach",),
    "changer": ("attach",),
    "burner": ("attach",),
}
_SAN_CHAR = ("/dev/rdisk/", "/dev/rdsk/")
_SAN_BLOCK = ("/dev/disk/", "/dev/dsk/")
_SPECIAL_DIRS = {"rdisk", "rdsk", "disk", "dsk", "pt"}


def path_kind(path: str) -> str:
    """san | san-block | lv | lv-block | pt | dev | file | relative."""
    if not path.startswith("/"):
        return "relative"
    if path.startswith(_SAN_CHAR):
        return "san"
    if path.startswith(_SAN_BLOCK):
        return "san-block"
    if path.startswith("/dev/pt/"):
        return "pt"
    if path.startswith("/dev/"):
        parts = path.split("/")
        if len(parts) == 4 and parts[2] not in _SPECIAL_DIRS and parts[3]:
            return "lv" if parts[3].startswith("r") else "lv-block"
        return "dev"
    return "file"


def is_present(conn: sqlite3.Connection, host_id: int, backing: str, path: str) -> bool:
    """Whether a backing entity exists on a host (see the module docstring)."""
    if is_unpresented(conn, host_id, path):
        return False
    return _exists(backing, path, lambda: file_size(conn, host_id, path) is not None)


def presence(conn: sqlite3.Connection, host_id: int) -> Callable[[str], bool]:
    """`is_present` for many paths of one host (backing "" as in a device-DB listing):
    the host's files and unpresented paths are read once."""
    unpresented = {
        r[0] for r in conn.execute("SELECT path FROM unpresented WHERE host_id=?", (host_id,))
    }
    files = {r[0] for r in conn.execute("SELECT path FROM files WHERE host_id=?", (host_id,))}
    return lambda path: path not in unpresented and _exists("", path, lambda: path in files)


def _exists(backing: str, path: str, file_exists: Callable[[], bool]) -> bool:
    """The presence rule for a path that is not unpresented; `file_exists` is asked only
    for a file path."""
    if backing == "null":
        return True
    kind = path_kind(path)
    if kind in ("san", "lv", "pt"):
        return True
    return kind == "file" and file_exists()


def devtype_attr(devtype: str, backing: str) -> str:
    if devtype != "disk":
        return devtype.upper()
    return {"disk": "DISK", "lv": "LV", "file": "FILE"}.get(backing, backing.upper())


def entry_uid(conn: sqlite3.Connection, path: str) -> str:
    """A SAN LUN has one WWID on every host; other entities get a world-unique id."""
    if path_kind(path) in ("san", "san-block"):
        return "0x6005" + hashlib.sha1(path.encode()).hexdigest()[:28]
    return f"id-{bump_meta(conn, 'uid_counter')}"


# --------------------------------------------------------------------------------------------
# Storage
# --------------------------------------------------------------------------------------------
def backing_refusal(ctx: Ctx, guest: str, res: StorageResource) -> Refused | None:
    """Why a storage statement's backing cannot be used on this host, or None."""
    path, backing = res.path, res.backing
    stmt = res.format()
    if res.devtype == "hba" or backing == "npiv":
        return ctx.not_implemented("NPIV (hba:...:npiv) storage")
    if backing not in DEVICE_KINDS.get(res.devtype, ()):
        return ctx.refuse(guest, f"A {res.devtype} device cannot use {backing} backing storage.")
    kind = path_kind(path)
    if kind in ("san-block", "lv-block") and backing in ("disk", "lv"):
        return Refused(
            ctx.warning(
                guest,
                "Expecting a character device file for disk backing file, "
                f"but '{path}' appears to be a block device.",
            ),
            ctx.error(guest, f"Illegal blk device '{path}' as backing device."),
            ctx.error(guest, f"Unable to add device '{path}'."),
            f"{ctx.command}: Unable to create device {stmt}.",
        )
    expected = {"disk": ("san",), "lv": ("lv",), "file": ("file",), "attach": ("pt",)}
    if backing in expected and kind not in expected[backing]:
        return ctx.refuse(
            guest,
            f"'{path}' is not a valid {backing} backing path.",
            summary=f"Unable to create device {stmt}.",
        )
    if backing == "null" and kind == "relative":
        return ctx.refuse(guest, f"'{path}' is not an absolute path.")
    if not is_present(ctx.conn, ctx.host.id, backing, path):
        what = "Backing file" if backing == "file" else "Device"
        hint = " Create it with hpvmdevmgmt -S size file." if backing == "file" else ""
        return ctx.refuse(
            guest,
            f"{what} '{path}' does not exist on this VM Host.{hint}",
            summary=f"Unable to create device {stmt}.",
        )
    return None


def sharing_refusal(
    ctx: Ctx, guest: Guest | None, name: str, path: str, *, others: bool = True
) -> Refused | None:
    """Device DB checks: restricted entries, and use by another guest without SHARE=YES."""
    entry = dev_entry(ctx.conn, ctx.host.id, path)
    if entry is not None and entry.klass != "gdev":
        return ctx.refuse(
            name,
            f"Device '{path}' is a restricted ({entry.klass}) device and cannot be used by guests.",
        )
    if not others:
        return None
    shared = entry is not None and entry.attrs.get("SHARE") == "YES"
    for user in users_of_path(ctx.conn, ctx.host.id, path):
        if guest is not None and (user.id == guest.id or user.uuid == guest.uuid):
            continue
        if not shared:
            return ctx.refuse(
                name,
                f"Device '{path}' is in use by guest '{user.name}' and is not sharable (SHARE=NO).",
            )
    return None


def _slots(storage: Sequence[Storage], nics: Sequence[Nic]) -> dict[tuple[int, int], str]:
    taken = {(d.bus, d.slot): d.adapter for d in storage}
    taken.update({(n.bus, n.slot): n.adapter for n in nics})
    return taken


def _all_slots() -> list[tuple[int, int]]:
    return [(b, s) for b in PCI_BUS_RANGE for s in PCI_SLOT_RANGE]


def place_storage(
    ctx: Ctx, guest: str, res: StorageResource, storage: Sequence[Storage], nics: Sequence[Nic]
) -> tuple[int, int, int]:
    """bus, slot, target for a new storage device: explicit parts kept, the rest chosen."""
    taken = _slots(storage, nics)
    targets = AVIO_TARGET_RANGE if res.adapter == "avio_stor" else SCSI_TARGET_RANGE

    def free_target(bus: int, slot: int) -> int | None:
        used = {d.target for d in storage if (d.bus, d.slot) == (bus, slot)}
        return next((t for t in targets if t not in used), None)

    if res.bus is not None and res.slot is not None:
        owner = taken.get((res.bus, res.slot))
        if owner is not None and owner != res.adapter:
            raise ctx.refuse(guest, f"PCI slot {res.bus},{res.slot} is used by a {owner} adapter.")
        if res.target is not None:
            if res.target not in targets:
                raise ctx.refuse(guest, f"Target {res.target} is out of range for {res.adapter}.")
            if any((d.bus, d.slot, d.target) == (res.bus, res.slot, res.target) for d in storage):
                raise ctx.refuse(guest, f"Address {res.bus},{res.slot},{res.target} is in use.")
            return res.bus, res.slot, res.target
        target = free_target(res.bus, res.slot)
        if target is None:
            raise ctx.refuse(guest, f"Adapter {res.bus},{res.slot} has no free target.")
        return res.bus, res.slot, target
    for (bus, slot), adapter in sorted(taken.items()):
        if adapter == res.adapter:
            target = free_target(bus, slot)
            if target is not None:
                return bus, slot, target
    for bus, slot in _all_slots():
        if (bus, slot) not in taken:
            return bus, slot, 0
    raise ctx.refuse(guest, "No free virtual PCI slot is left.")


def add_storage(
    ctx: Ctx,
    guest: Guest | None,
    name: str,
    res: StorageResource,
    storage: list[Storage],
    nics: Sequence[Nic],
    *,
    check_others: bool = True,
) -> Storage:
    """Validate a new storage device for a guest's draft and return it placed."""
    problem = backing_refusal(ctx, name, res)
    if problem is not None:
        raise problem
    if res.backing != "null" and any(d.path == res.path for d in storage):
        raise ctx.refuse(name, f"Device '{res.path}' is already used by this guest.")
    # an empty DVD drive (null backing) names a directory, which any guest may use
    others = check_others and res.backing != "null"
    problem = sharing_refusal(ctx, guest, name, res.path, others=others)
    if problem is not None:
        raise problem
    check_device_count(ctx, name, len(storage) + len(nics) + 1)
    bus, slot, target = place_storage(ctx, name, res, storage, nics)
    dev = Storage(
        id=None,
        devtype=res.devtype,
        adapter=res.adapter,
        bus=bus,
        slot=slot,
        target=target,
        backing=res.backing,
        path=res.path,
    )
    storage.append(dev)
    return dev


def check_device_count(ctx: Ctx, name: str, count: int) -> None:
    limit = limits_for(ctx.host.version).max_devices
    if count > limit:
        raise ctx.refuse(
            name, f"A guest may have at most {limit} devices on Integrity VM {ctx.host.version}."
        )


def find_storage(ctx: Ctx, name: str, res: StorageResource, storage: Sequence[Storage]) -> Storage:
    """The device a -d/-m statement names: by address when given, else by backing path."""
    for dev in storage:
        if res.bus is not None and res.slot is not None:
            if (dev.bus, dev.slot) != (res.bus, res.slot):
                continue
            if res.target is not None and dev.target != res.target:
                continue
            return dev
        if dev.path == res.path and dev.devtype == res.devtype:
            return dev
    raise ctx.refuse(name, f"Unable to find device '{res.format()}' on the guest.")


# --------------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------------
def mac_in_use(conn: sqlite3.Connection, mac: int, uuid: str) -> str | None:
    """The guest (host/name) that already owns `mac`, ignoring copies of the same guest."""
    row = conn.execute(
        "SELECT g.name, h.name FROM nics n JOIN guests g ON g.id = n.guest_id "
        "JOIN hosts h ON h.id = g.host_id WHERE n.mac=? AND g.uuid != ? LIMIT 1",
        (mac, uuid),
    ).fetchone()
    return None if row is None else f"{row[1]}/{row[0]}"


def new_mac(conn: sqlite3.Connection, taken: set[int]) -> int:
    """The next generated MAC that no guest in the world uses [R20]."""
    while True:
        mac = generate_mac(bump_meta(conn, "mac_counter"))
        if mac not in taken and mac_in_use(conn, mac, "") is None:
            return mac


def add_nic(
    ctx: Ctx,
    guest: Guest | None,
    name: str,
    uuid: str,
    res: NetworkResource,
    storage: Sequence[Storage],
    nics: list[Nic],
    *,
    replacing: Nic | None = None,
) -> Nic:
    """Validate a vNIC for a guest's draft (or a -m replacement) and return it placed."""
    vswitch = vswitch_by_name(ctx.conn, ctx.host.id, res.vswitch)
    if vswitch is None:
        raise ctx.refuse(name, f"The vswitch '{res.vswitch}' does not exist on this VM Host.")
    if res.adapter == "avio_lan" and vswitch.nic is None:
        raise ctx.refuse(
            name,
            f"AVIO network devices need a vswitch backed by a host NIC; '{res.vswitch}' has none.",
        )
    others = [n for n in nics if n is not replacing]
    if replacing is None:
        check_device_count(ctx, name, len(storage) + len(nics) + 1)
    # bus, slot
    taken = _slots(storage, others)
    if res.bus is not None and res.slot is not None:
        if (res.bus, res.slot) in taken:
            raise ctx.refuse(name, f"PCI slot {res.bus},{res.slot} is in use.")
        bus, slot = res.bus, res.slot
    elif replacing is not None:
        bus, slot = replacing.bus, replacing.slot
    else:
        free = next((bs for bs in _all_slots() if bs not in taken), None)
        if free is None:
            raise ctx.refuse(name, "No free virtual PCI slot is left.")
        bus, slot = free
    # MAC
    if res.mac is not None:
        problem = mac_problem(res.mac)
        if problem:
            raise ctx.refuse(name, f"Invalid MAC address: {problem}.")
        owner = mac_in_use(ctx.conn, res.mac, uuid)
        if (owner and (replacing is None or replacing.mac != res.mac)) or any(
            n.mac == res.mac for n in others
        ):
            raise ctx.refuse(
                name, "The MAC address is already in use" + (f" by {owner}." if owner else ".")
            )
        mac = res.mac
    elif replacing is not None:
        mac = replacing.mac
    else:
        mac = new_mac(ctx.conn, {n.mac for n in nics})
    # port
    in_db = {
        r[0]
        for r in ctx.conn.execute(
            "SELECT port FROM nics WHERE vswitch_id=? AND guest_id != ?",
            (vswitch.id, guest.id if guest else -1),
        )
    }
    in_draft = {n.port for n in others if n.vswitch == res.vswitch}
    used = in_db | in_draft
    if res.port is not None and res.port in used:
        raise ctx.refuse(name, f"Port {res.port} of vswitch '{res.vswitch}' is in use.")
    kept = replacing.port if replacing is not None and replacing.vswitch == res.vswitch else None
    port = nic_port(res.port, kept, used)
    if port is None:
        raise ctx.refuse(name, f"The vswitch '{res.vswitch}' has no free port.")
    nic = Nic(
        id=replacing.id if replacing else None,
        adapter=res.adapter,
        bus=bus,
        slot=slot,
        mac=mac,
        vswitch=res.vswitch,
        port=port,
    )
    if replacing is not None:
        nics[nics.index(replacing)] = nic
    else:
        nics.append(nic)
    return nic


def find_nic(
    ctx: Ctx, name: str, res: NetworkResource, nics: Sequence[Nic], *, modify: bool = False
) -> Nic:
    """The vNIC a -d (or, with `modify`, -m) statement names (`NetworkResource.names`)."""
    for nic in nics:
        if res.names(bus=nic.bus, slot=nic.slot, mac=nic.mac, vswitch=nic.vswitch, modify=modify):
            return nic
    shown = replace(res, vswitch="", mac=None) if modify else res  # what -m names a NIC by
    raise ctx.refuse(name, f"Unable to find network device '{shown.format()}' on the guest.")


# --------------------------------------------------------------------------------------------
# Device database bookkeeping [R8][R15][R16]
# --------------------------------------------------------------------------------------------
def ensure_entries(ctx: Ctx, devices: Sequence[Storage]) -> None:
    """Create the gdev entry of every backing that has none yet."""
    for dev in devices:
        if dev.backing == "null" or dev_entry(ctx.conn, ctx.host.id, dev.path) is not None:
            continue
        attrs = {"DEVTYPE": devtype_attr(dev.devtype, dev.backing), "SHARE": "NO", "PRESERVE": "NO"}
        ctx.conn.execute(
            "INSERT INTO devdb (host_id, class, name, attrs, uid) VALUES (?, 'gdev', ?, ?, ?)",
            (ctx.host.id, dev.path, format_attrs(attrs), entry_uid(ctx.conn, dev.path)),
        )


def clean_up_entries(ctx: Ctx, paths: Sequence[str]) -> None:
    """Delete gdev entries left without dependents unless PRESERVE=YES [R8]."""
    for path in sorted(set(paths)):
        entry = dev_entry(ctx.conn, ctx.host.id, path)
        if entry is None or entry.klass != "gdev" or entry.attrs.get("PRESERVE") == "YES":
            continue
        if not dependents(ctx.conn, ctx.host.id, path):
            ctx.conn.execute("DELETE FROM devdb WHERE id=?", (entry.id,))


def shared_entry(entry: DevEntry | None) -> bool:
    return entry is not None and entry.attrs.get("SHARE") == "YES"


def retarget(dev: Storage, res: StorageResource) -> Storage:
    """A device after -m: same address, new backing."""
    return replace(dev, devtype=res.devtype, backing=res.backing, path=res.path)
