"""Rows of the emulator's world as typed values, and the few indexed queries that read them.

Every query here touches only the rows of one host, guest or vswitch, so a command costs
the same in a world of ten guests as in one of ten thousand.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import fields
from typing import Any

from ivmctl.resources import NetworkResource, StorageResource
from ivmctl.values import frozen

# Host NIC MACs use HP's universally administered prefix, so they can never collide with
# a guest MAC, which must be locally administered [R20].
HOST_NIC_MAC_BASE = 0x001A4B000000


@frozen
class Host:
    """A VM Host row: hardware, fault settings and the running guests' aggregate."""

    id: int
    name: str
    version: str
    cores: int
    memory_mb: int
    mhz: int
    nics: tuple[str, ...]
    boot_delay: float  # seconds a start spends in On (EFI)
    fail_starts: int  # fault: the next N starts fail
    abort_migrations: int  # fault: the next N migrations abort
    unreachable: bool  # fault: every command fails like a dead SSH connection
    core_used: tuple[float, ...]  # entitlement committed per physical core
    mem_used_mb: int  # memory (with overhead) held by running guests
    next_vm_number: int
    next_vswitch_number: int

    def nic_mac(self, nic: str) -> int:
        return HOST_NIC_MAC_BASE | (self.id << 8) | int(nic.removeprefix("lan"))


@frozen
class Guest:
    """A guest's configuration and run state on one host."""

    id: int
    host_id: int
    name: str
    number: int
    uuid: str
    label: str
    os: str  # lower case: hpux, linux, windows, openvms, unknown
    vcpus: int
    ent_min: float  # percent of one core per vCPU
    ent_max: float
    memory_mb: int
    start_attr: str  # auto | manual
    vm_type: str  # shared | vpar
    dyn_type: str  # none | any | driver
    dyn_min: int | None
    dyn_max: int | None
    dyn_target: int | None
    runnable: bool
    modifiable: bool
    visible: bool
    registered: bool
    online_migration: bool
    state: str  # On | Off | Invalid
    started_at: float | None
    cores: tuple[int, ...]  # physical cores its vCPUs hold while running
    footprint_mb: int | None  # memory held while running

    @property
    def not_runnable(self) -> bool:
        return not (self.runnable and self.registered)

    def boot_ends(self, host: Host) -> float | None:
        """When a started guest leaves On (EFI) for On (OS) on `host`; None for a guest
        that is not On or was never started (nothing about it changes with time)."""
        if self.state != "On" or self.started_at is None:
            return None
        return self.started_at + host.boot_delay

    def values(self) -> dict[str, Any]:
        """Column values for an INSERT/UPDATE (without the id)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "id":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool):
                value = int(value)
            elif f.name == "cores":
                value = ",".join(str(c) for c in value) if value else None
            out[f.name] = value
        return out


@frozen
class Storage:
    """A virtual storage device of a guest (always fully addressed)."""

    id: int | None
    devtype: str
    adapter: str
    bus: int
    slot: int
    target: int
    backing: str
    path: str

    def resource(self) -> StorageResource:
        return StorageResource(
            devtype=self.devtype,
            adapter=self.adapter,
            backing=self.backing,
            path=self.path,
            bus=self.bus,
            slot=self.slot,
            target=self.target,
        )


@frozen
class Nic:
    """A virtual NIC of a guest, on a port of a vswitch of the guest's host."""

    id: int | None
    adapter: str
    bus: int
    slot: int
    mac: int
    vswitch: str
    port: int

    def resource(self) -> NetworkResource:
        return NetworkResource(
            adapter=self.adapter,
            vswitch=self.vswitch,
            bus=self.bus,
            slot=self.slot,
            mac=self.mac,
            port=self.port,
        )


@frozen
class VSwitch:
    """A vswitch of a host; `nic` None for localnet and host-local switches."""

    id: int
    name: str
    number: int
    nic: str | None
    state: str  # Up | Down


@frozen
class DevEntry:
    """An entry of a host's device database (hpvmdevmgmt)."""

    id: int
    klass: str  # gdev | rdev | server | env
    name: str
    aliases: tuple[str, ...]
    attrs: dict[str, str]
    uid: str


# --------------------------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------------------------
# read by position, like the guests (see GUEST_COLUMNS); every command reads its host
_HOSTS = (
    "SELECT id, name, version, cores, memory_mb, mhz, nics, boot_delay, fail_starts, "
    "abort_migrations, unreachable, core_used, mem_used_mb, next_vm_number, "
    "next_vswitch_number FROM hosts"
)


def host_from_row(row: Sequence[Any]) -> Host:
    (
        id_, name, version, cores, memory_mb, mhz, nics, boot_delay, fail_starts,
        abort_migrations, unreachable, core_used, mem_used_mb, next_vm_number,
        next_vswitch_number,
    ) = row  # fmt: skip
    return Host(
        id=id_,
        name=name,
        version=version,
        cores=cores,
        memory_mb=memory_mb,
        mhz=mhz,
        nics=tuple(filter(None, nics.split(","))),
        boot_delay=boot_delay,
        fail_starts=fail_starts,
        abort_migrations=abort_migrations,
        unreachable=bool(unreachable),
        core_used=tuple(map(float, filter(None, core_used.split(",")))),
        mem_used_mb=mem_used_mb,
        next_vm_number=next_vm_number,
        next_vswitch_number=next_vswitch_number,
    )


def host_by_name(conn: sqlite3.Connection, name: str) -> Host | None:
    row = conn.execute(f"{_HOSTS} WHERE name=?", (name,)).fetchone()
    return None if row is None else host_from_row(row)


def host_by_id(conn: sqlite3.Connection, host_id: int) -> Host | None:
    row = conn.execute(f"{_HOSTS} WHERE id=?", (host_id,)).fetchone()
    return None if row is None else host_from_row(row)


def all_hosts(conn: sqlite3.Connection) -> list[Host]:
    return [host_from_row(r) for r in conn.execute(f"{_HOSTS} ORDER BY name")]


def update_host(conn: sqlite3.Connection, host_id: int, **values: Any) -> None:
    if "core_used" in values:
        values["core_used"] = ",".join(f"{v:g}" for v in values["core_used"])
    cols = ", ".join(f"{k}=?" for k in values)
    conn.execute(f"UPDATE hosts SET {cols} WHERE id=?", (*values.values(), host_id))


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------
# The guests' columns in the order `guest_from_row` unpacks them: rows are read by
# position, as a name lookup in a sqlite3.Row scans its columns (most of a listing's
# cost at fleet scale).
GUEST_COLUMNS = (
    "id, host_id, name, number, uuid, label, os, vcpus, ent_min, ent_max, memory_mb, "
    "start_attr, vm_type, dyn_type, dyn_min, dyn_max, dyn_target, runnable, modifiable, "
    "visible, registered, online_migration, state, started_at, cores, footprint_mb"
)
_GUESTS = f"SELECT {GUEST_COLUMNS} FROM guests"


def guest_from_row(row: Sequence[Any]) -> Guest:
    """A Guest from a row of GUEST_COLUMNS."""
    (
        id_, host_id, name, number, uuid, label, os, vcpus, ent_min, ent_max, memory_mb,
        start_attr, vm_type, dyn_type, dyn_min, dyn_max, dyn_target, runnable, modifiable,
        visible, registered, online_migration, state, started_at, cores, footprint_mb,
    ) = row  # fmt: skip
    return Guest(
        id=id_,
        host_id=host_id,
        name=name,
        number=number,
        uuid=uuid,
        label=label,
        os=os,
        vcpus=vcpus,
        ent_min=ent_min,
        ent_max=ent_max,
        memory_mb=memory_mb,
        start_attr=start_attr,
        vm_type=vm_type,
        dyn_type=dyn_type,
        dyn_min=dyn_min,
        dyn_max=dyn_max,
        dyn_target=dyn_target,
        runnable=bool(runnable),
        modifiable=bool(modifiable),
        visible=bool(visible),
        registered=bool(registered),
        online_migration=bool(online_migration),
        state=state,
        started_at=started_at,
        cores=tuple(int(c) for c in cores.split(",") if c) if cores else (),
        footprint_mb=footprint_mb,
    )


def guest_by_name(conn: sqlite3.Connection, host_id: int, name: str) -> Guest | None:
    row = conn.execute(f"{_GUESTS} WHERE host_id=? AND name=?", (host_id, name)).fetchone()
    return None if row is None else guest_from_row(row)


def guest_by_number(conn: sqlite3.Connection, host_id: int, number: int) -> Guest | None:
    row = conn.execute(f"{_GUESTS} WHERE host_id=? AND number=?", (host_id, number)).fetchone()
    return None if row is None else guest_from_row(row)


def guests_of(conn: sqlite3.Connection, host_id: int) -> list[Guest]:
    rows = conn.execute(f"{_GUESTS} WHERE host_id=? ORDER BY number", (host_id,))
    return [guest_from_row(r) for r in rows]


def guests_started_since(conn: sqlite3.Connection, host_id: int, since: float) -> list[Guest]:
    """The host's guests started after `since` (an index range: few, whatever the host)."""
    rows = conn.execute(f"{_GUESTS} WHERE host_id=? AND started_at > ?", (host_id, since))
    return [guest_from_row(r) for r in rows]


def insert_guest(conn: sqlite3.Connection, guest: Guest) -> int:
    values = guest.values()
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    cur = conn.execute(f"INSERT INTO guests ({cols}) VALUES ({marks})", tuple(values.values()))
    assert cur.lastrowid is not None
    return cur.lastrowid


def update_guest(conn: sqlite3.Connection, guest: Guest) -> None:
    values = guest.values()
    cols = ", ".join(f"{k}=?" for k in values)
    conn.execute(f"UPDATE guests SET {cols} WHERE id=?", (*values.values(), guest.id))


def device_counts(conn: sqlite3.Connection, host_id: int) -> dict[int, tuple[int, int]]:
    """guest id -> (storage devices, network devices), for every guest of a host."""
    counts: dict[int, list[int]] = {}
    for row in conn.execute(
        "SELECT guest_id, COUNT(*) FROM storage WHERE host_id=? GROUP BY guest_id", (host_id,)
    ):
        counts.setdefault(row[0], [0, 0])[0] = row[1]
    for row in conn.execute(
        "SELECT n.guest_id, COUNT(*) FROM nics n JOIN guests g ON g.id = n.guest_id "
        "WHERE g.host_id=? GROUP BY n.guest_id",
        (host_id,),
    ):
        counts.setdefault(row[0], [0, 0])[1] = row[1]
    return {k: (v[0], v[1]) for k, v in counts.items()}


# --------------------------------------------------------------------------------------------
# Devices
# --------------------------------------------------------------------------------------------
# Device rows are read by position too (see GUEST_COLUMNS); each query below selects
# the columns its reader unpacks, the owning guest's id first.
_STORAGE = "SELECT guest_id, id, devtype, adapter, bus, slot, target, backing, path FROM storage"
_NICS = (
    "SELECT n.guest_id, n.id, n.adapter, n.bus, n.slot, n.mac, v.name, n.port FROM nics n "
    "JOIN vswitches v ON v.id = n.vswitch_id"
)


def _storage_from_row(r: Sequence[Any]) -> Storage:
    _, id_, devtype, adapter, bus, slot, target, backing, path = r
    return Storage(
        id=id_,
        devtype=devtype,
        adapter=adapter,
        bus=bus,
        slot=slot,
        target=target,
        backing=backing,
        path=path,
    )


def _nic_from_row(r: Sequence[Any]) -> Nic:
    _, id_, adapter, bus, slot, mac, vswitch, port = r
    return Nic(id=id_, adapter=adapter, bus=bus, slot=slot, mac=mac, vswitch=vswitch, port=port)


def storage_of(conn: sqlite3.Connection, guest_id: int) -> list[Storage]:
    rows = conn.execute(f"{_STORAGE} WHERE guest_id=? ORDER BY bus, slot, target", (guest_id,))
    return [_storage_from_row(r) for r in rows]


def nics_of(conn: sqlite3.Connection, guest_id: int) -> list[Nic]:
    rows = conn.execute(f"{_NICS} WHERE n.guest_id=? ORDER BY n.bus, n.slot", (guest_id,))
    return [_nic_from_row(r) for r in rows]


def devices_of(
    conn: sqlite3.Connection, host_id: int, guests: Sequence[Guest]
) -> dict[int, tuple[list[Storage], list[Nic]]]:
    """guest id -> (storage, NICs), each in address order, for `guests` of one host.

    Two queries for the whole host (a listing of every guest's devices would otherwise
    cost two per guest).
    """
    if len(guests) == 1:
        (g,) = guests
        return {g.id: (storage_of(conn, g.id), nics_of(conn, g.id))}
    found: dict[int, tuple[list[Storage], list[Nic]]] = {g.id: ([], []) for g in guests}
    for r in conn.execute(
        f"{_STORAGE} WHERE host_id=? ORDER BY guest_id, bus, slot, target", (host_id,)
    ):
        if r[0] in found:
            found[r[0]][0].append(_storage_from_row(r))
    for r in conn.execute(
        f"{_NICS} JOIN guests g ON g.id = n.guest_id "
        "WHERE g.host_id=? ORDER BY n.guest_id, n.bus, n.slot",
        (host_id,),
    ):
        if r[0] in found:
            found[r[0]][1].append(_nic_from_row(r))
    return found


def users_of_path(conn: sqlite3.Connection, host_id: int, path: str) -> list[Guest]:
    """Guests of a host whose storage uses `path`, by name."""
    columns = ", ".join(f"g.{c}" for c in GUEST_COLUMNS.split(", "))
    rows = conn.execute(
        f"SELECT DISTINCT {columns} FROM storage s JOIN guests g ON g.id = s.guest_id "
        "WHERE s.host_id=? AND s.path=? ORDER BY g.name",
        (host_id, path),
    )
    return [guest_from_row(r) for r in rows]


def save_devices(
    conn: sqlite3.Connection,
    host_id: int,
    guest_id: int,
    before_storage: Sequence[Storage],
    storage: Sequence[Storage],
    before_nics: Sequence[Nic],
    nics: Sequence[Nic],
) -> None:
    """Write a guest's new device lists, touching only rows that changed."""
    keep = {d.id for d in storage if d.id is not None}
    for old in before_storage:
        if old.id not in keep:
            conn.execute("DELETE FROM storage WHERE id=?", (old.id,))
    old_by_id = {d.id: d for d in before_storage}
    for dev in storage:
        vals = (dev.devtype, dev.adapter, dev.bus, dev.slot, dev.target, dev.backing, dev.path)
        if dev.id is None:
            conn.execute(
                "INSERT INTO storage (guest_id, host_id, devtype, adapter, bus, slot, target, "
                "backing, path) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (guest_id, host_id, *vals),
            )
        elif old_by_id.get(dev.id) != dev:
            conn.execute(
                "UPDATE storage SET devtype=?, adapter=?, bus=?, slot=?, target=?, backing=?, "
                "path=? WHERE id=?",
                (*vals, dev.id),
            )
    keep = {n.id for n in nics if n.id is not None}
    for old_nic in before_nics:
        if old_nic.id not in keep:
            conn.execute("DELETE FROM nics WHERE id=?", (old_nic.id,))
    old_nics = {n.id: n for n in before_nics}
    for nic in nics:
        vs_id = vswitch_id(conn, host_id, nic.vswitch)
        vals2 = (nic.adapter, nic.bus, nic.slot, nic.mac, vs_id, nic.port)
        if nic.id is None:
            conn.execute(
                "INSERT INTO nics (guest_id, adapter, bus, slot, mac, vswitch_id, port) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (guest_id, *vals2),
            )
        elif old_nics.get(nic.id) != nic:
            conn.execute(
                "UPDATE nics SET adapter=?, bus=?, slot=?, mac=?, vswitch_id=?, port=? WHERE id=?",
                (*vals2, nic.id),
            )


# --------------------------------------------------------------------------------------------
# vswitches
# --------------------------------------------------------------------------------------------
def _vswitch(row: sqlite3.Row) -> VSwitch:
    return VSwitch(
        id=row["id"], name=row["name"], number=row["number"], nic=row["nic"], state=row["state"]
    )


def vswitch_by_name(conn: sqlite3.Connection, host_id: int, name: str) -> VSwitch | None:
    row = conn.execute(
        "SELECT * FROM vswitches WHERE host_id=? AND name=?", (host_id, name)
    ).fetchone()
    return None if row is None else _vswitch(row)


def vswitch_id(conn: sqlite3.Connection, host_id: int, name: str) -> int:
    found = vswitch_by_name(conn, host_id, name)
    assert found is not None, f"vswitch {name} vanished"
    return found.id


def vswitches_of(conn: sqlite3.Connection, host_id: int) -> list[VSwitch]:
    rows = conn.execute("SELECT * FROM vswitches WHERE host_id=? ORDER BY number", (host_id,))
    return [_vswitch(r) for r in rows]


def used_ports(conn: sqlite3.Connection, vswitch: int) -> set[int]:
    return {r[0] for r in conn.execute("SELECT port FROM nics WHERE vswitch_id=?", (vswitch,))}


# --------------------------------------------------------------------------------------------
# Device database
# --------------------------------------------------------------------------------------------
def _attrs(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in text.split(","):
        if "=" in item:
            key, _, value = item.partition("=")
            out[key] = value
    return out


def format_attrs(attrs: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in attrs.items())


_DEVDB = "SELECT id, class, name, aliases, attrs, uid FROM devdb"  # read by position


def _entry(row: Sequence[Any]) -> DevEntry:
    id_, klass, name, aliases, attrs, uid = row
    return DevEntry(
        id=id_,
        klass=klass,
        name=name,
        aliases=tuple(a for a in aliases.split(",") if a) if aliases else (),
        attrs=_attrs(attrs),
        uid=uid,
    )


def dev_entry(conn: sqlite3.Connection, host_id: int, name: str) -> DevEntry | None:
    row = conn.execute(f"{_DEVDB} WHERE host_id=? AND name=?", (host_id, name)).fetchone()
    return None if row is None else _entry(row)


def dev_entries(conn: sqlite3.Connection, host_id: int, klass: str | None) -> list[DevEntry]:
    if klass is None:
        rows = conn.execute(f"{_DEVDB} WHERE host_id=? ORDER BY name", (host_id,))
    else:
        rows = conn.execute(f"{_DEVDB} WHERE host_id=? AND class=? ORDER BY name", (host_id, klass))
    return [_entry(r) for r in rows]


def dependents(conn: sqlite3.Connection, host_id: int, path: str) -> list[str]:
    """Names of the guests of a host whose storage uses `path`, sorted."""
    return all_dependents(conn, host_id, path=path).get(path, [])


def all_dependents(
    conn: sqlite3.Connection, host_id: int, *, path: str | None = None
) -> dict[str, list[str]]:
    """path -> `dependents` of that path, for every path a guest of the host uses (or
    only `path`)."""
    found: dict[str, list[str]] = {}
    query = (
        "SELECT DISTINCT s.path, g.name FROM storage s JOIN guests g ON g.id = s.guest_id "
        "WHERE s.host_id=?"
    )
    # one path: a lookup in the (host_id, path) index, not a scan of the host's storage
    rows = (
        conn.execute(query + " ORDER BY g.name", (host_id,))
        if path is None
        else conn.execute(query + " AND s.path=? ORDER BY g.name", (host_id, path))
    )
    for used, name in rows:
        found.setdefault(used, []).append(name)
    return found


def file_size(conn: sqlite3.Connection, host_id: int, path: str) -> int | None:
    row = conn.execute(
        "SELECT size_mb FROM files WHERE host_id=? AND path=?", (host_id, path)
    ).fetchone()
    return None if row is None else int(row[0])


def is_unpresented(conn: sqlite3.Connection, host_id: int, path: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM unpresented WHERE host_id=? AND path=?", (host_id, path)
    ).fetchone()
    return row is not None


def names_in(items: Iterable[Guest]) -> list[str]:
    return [g.name for g in items]
