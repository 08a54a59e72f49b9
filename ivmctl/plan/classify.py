"""Classification: from the differences of one guest to its action, reasons and operations.

Whether a field changes online or needs the guest Off is decided by
`ivmctl.rules.field_change_kind` / `device_change_kind` only. This module turns the
answer into operations (`guest.modify` online, or stop/modify/start), decides how a
move between hosts is carried out (online when the guest runs, allows it and the
versions allow it; otherwise stop, move, start), and writes a reason for every
decision, including the decision to do nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from ivmctl.errors import Location, PlanError, RuleViolation
from ivmctl.model import ActualGuest, Disk, Guest, Nic
from ivmctl.plan.diff import FieldDiff, diff_guest, plainly_equal
from ivmctl.plan.model import Action, ChangeHow, FieldChange, Operation, OpKind
from ivmctl.plan.views import actual_power
from ivmctl.resources import NetworkResource, StorageResource
from ivmctl.rules import (
    PCI_BUS_RANGE,
    PCI_SLOT_RANGE,
    PORT_RANGE,
    ChangeKind,
    Demand,
    device_change_kind,
    field_change_kind,
    first_free_port,
    held_memory_mb,
    limits_for,
    migration_device_problem,
    offline_migration_problem,
    online_migration_problem,
)
from ivmctl.values import frozen

# Model field paths -> the field names of the rule table in ivmctl.rules.
_RULE_NAMES = {
    "memory_mb": "memory",
    "entitlement.min_pct": "entitlement",
    "entitlement.max_pct": "entitlement",
    "dynamic_memory.target_mb": "dynamic_memory.target",
    "dynamic_memory.min_mb": "dynamic_memory.min",
    "dynamic_memory.max_mb": "dynamic_memory.max",
}
_HOW = {ChangeKind.ONLINE: ChangeHow.ONLINE, ChangeKind.NEEDS_OFF: ChangeHow.NEEDS_OFF}


def rule_name(path: str) -> str:
    """The rule-table name of a scalar field path (`memory_mb` -> `memory`)."""
    return _RULE_NAMES.get(path, path)


def is_ignored(path: str, ignore: Sequence[str]) -> bool:
    """True when `path` falls under an entry of lifecycle.ignore_changes.

    Entries may use the model's names or the configuration's (`memory` for `memory_mb`,
    `dynamic_memory.target` for `dynamic_memory.target_mb`), and cover sub-paths.
    """
    names = {path, rule_name(path)}
    for entry in ignore:
        for name in names:
            if name == entry or name.startswith((entry + ".", entry + "[")):
                return True
    return False


# --------------------------------------------------------------------------------------------
# Resource statements
# --------------------------------------------------------------------------------------------


def address_parts(address: str | None) -> list[int | None]:
    """bus, slot and target of a device address ("0,1" or "0,1,2"); None where not given."""
    if not address:
        return [None, None, None]
    parts: list[int | None] = [int(p) if p.strip() else None for p in address.split(",")]
    return [*parts, None, None, None][:3]


def disk_statement(disk: Disk) -> str:
    bus, slot, target = address_parts(disk.address)
    return StorageResource(
        devtype=disk.devtype,
        adapter=disk.adapter,
        backing=disk.backing,
        path=disk.path,
        bus=bus,
        slot=slot,
        target=target,
    ).format()


def nic_statement(nic: Nic, *, port: int | None = None, mac: int | None = None) -> str:
    bus, slot, _ = address_parts(nic.address)
    return NetworkResource(
        adapter=nic.adapter,
        vswitch=nic.vswitch,
        bus=bus,
        slot=slot,
        mac=nic.mac if mac is None else mac,
        port=port,
    ).format()


# --------------------------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class PortAllocator:
    """Vswitch ports in use per (host, vswitch), handing out the lowest free one.

    Seeded from the actual vswitches' port tables and the NIC ports of every actual
    guest (including Off (NR) copies), plus ports pinned in the configuration. `seed`
    yields those (host, vswitch, port) triples; `landings` then yields a (host, vswitch)
    per NIC migrating in, in a stable order, for `reserve_landing`. Both are read on the
    first allocation, so a plan that allocates no port (most plans of an existing fleet)
    never walks the fleet for them.
    """

    used: dict[tuple[str, str], set[int]] = field(default_factory=dict)
    seed: Callable[[], Iterable[tuple[str, str, int | None]]] | None = None
    landings: Callable[[], Iterable[tuple[str, str]]] | None = None
    # per (host, vswitch), a port below which every port is taken (ports are never freed)
    _floor: dict[tuple[str, str], int] = field(default_factory=dict, init=False, repr=False)

    def reserve(self, host: str, vswitch: str, port: int | None) -> None:
        if port is not None:
            self.used.setdefault((host, vswitch), set()).add(port)

    def _taken(self, host: str, vswitch: str) -> set[int]:
        if self.seed is not None:
            seed, self.seed = self.seed, None
            for triple in seed():
                self.reserve(*triple)
        if self.landings is not None:  # after the seed, before any port is handed out
            landings, self.landings = self.landings, None
            for landing in landings():
                self.reserve_landing(*landing)
        return self.used.setdefault((host, vswitch), set())

    def reserve_landing(self, host: str, vswitch: str) -> None:
        """Keep the lowest free port from 1 for a NIC migrating in, which may land there.

        A migrating NIC whose port is taken on the target gets the lowest free port
        from 1 (`rules.landing_port`). Kept before any port is handed out, one port per
        migrating NIC, these are where such NICs land (or lower, on ports nobody is
        given), so a port handed out later can never be one a migration takes first.
        """
        taken = self._taken(host, vswitch)
        port = first_free_port(taken)
        if port is not None:
            taken.add(port)

    def allocate(self, host: str, vswitch: str) -> int:
        key = (host, vswitch)
        taken = self._taken(host, vswitch)
        for port in PORT_RANGE[PORT_RANGE.index(self._floor.get(key, PORT_RANGE[0])) :]:
            if port not in taken:
                taken.add(port)
                self._floor[key] = port
                return port
        raise PlanError(
            f"vswitch {vswitch} on host {host} has no free port",
            detail=f"All {len(PORT_RANGE)} ports are in use; move NICs to another vswitch.",
            location=Location(address=f"vswitch.{host}.{vswitch}"),
        )


# --------------------------------------------------------------------------------------------
# The outcome of classifying one guest
# --------------------------------------------------------------------------------------------


@frozen
class GuestOutcome:
    """Everything the planner needs to build a guest's Change and to order it.

    `offline_alternative` is set for an online migration of a guest that may restart:
    the operations that move it offline instead (stop, migrate, start), which the
    capacity ordering uses when the online move cannot fit.
    """

    action: Action
    host: str
    fields: tuple[FieldChange, ...] = ()
    drift: tuple[FieldChange, ...] = ()
    reasons: tuple[str, ...] = ()
    operations: tuple[Operation, ...] = ()
    offline_alternative: tuple[Operation, ...] | None = None
    restart_hint: str = ""  # why a stop would help, when restarts are denied


@frozen
class GuestContext:
    """What classification needs to know beyond the guest itself."""

    host_versions: Mapping[str, str]
    restart_allowed: bool
    host_vswitches: Mapping[str, frozenset[str]] = field(default_factory=dict)  # declared
    restart_by: str = "restart allowed"  # what allows a restart, for reasons
    stale_hosts: tuple[str, ...] = ()  # hosts with an Off (NR) copy of this guest to remove
    # host -> device paths its guests use (the device database knows them)
    files_in_use: Mapping[str, frozenset[str]] = field(default_factory=dict)
    sources: Mapping[str, Location] = field(default_factory=dict)  # DesiredState.sources
    address: str = ""  # the guest's address, for `location`

    @property
    def location(self) -> Location | None:
        """Where the guest is declared; looked up only when an error needs it (a lookup
        re-reads the file, which a plan of 10,000 unchanged guests must not pay)."""
        if not self.address:
            return None
        known = self.sources.get(self.address)
        if known is None:
            return Location(address=self.address)
        return replace(known, address=self.address, path=None)


def _op(kind: OpKind, host: str, **params: Any) -> Operation:
    return Operation(kind=kind, host=host, params=params)


def demand_of(guest: Guest, *, migration: bool = False) -> Demand:
    """What `guest` holds while running; a migration needs its dynamic-memory maximum."""
    dyn = guest.dynamic_memory
    memory = held_memory_mb(guest.memory_mb, dyn.max_mb if dyn else None, migration=migration)
    return Demand(
        name=guest.name,
        vcpus=guest.vcpus,
        entitlement_pct=guest.entitlement.min_pct,
        memory_mb=memory,
        vpar=guest.vm_type == "vpar",
    )


def create_params(guest: Guest, devices: list[str]) -> dict[str, Any]:
    dyn = guest.dynamic_memory
    return {
        "name": guest.name,
        "os": guest.os,
        "vcpus": guest.vcpus,
        "entitlement": {"min": guest.entitlement.min_pct, "max": guest.entitlement.max_pct},
        "memory_mb": guest.memory_mb,
        "start": guest.start,
        "label": guest.label,
        "dynamic_memory": None
        if dyn is None
        else {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb},
        "online_migration": guest.online_migration,
        "devices": devices,
    }


def _paths(fields: Sequence[FieldChange]) -> str:
    return ", ".join(dict.fromkeys(f.path for f in fields))


def _restart_error(address: str, what: str, location: Location | None) -> PlanError:
    return PlanError(
        f"{address} must restart to {what}, but its lifecycle.restart is deny",
        detail=f"Set lifecycle.restart: allow on {address} or pass --allow-restart {address}.",
        location=location or Location(address=address),
    )


# --------------------------------------------------------------------------------------------
# Create and delete
# --------------------------------------------------------------------------------------------


def plan_create(guest: Guest, ctx: GuestContext, ports: PortAllocator) -> GuestOutcome:
    """A declared guest the runtime does not have: files, create, VLAN ports, start."""
    host = guest.host
    ops: list[Operation] = []
    reasons = [f"declared but not in the runtime: it will be created on {host}"]
    for stale in ctx.stale_hosts:
        if stale == host:
            ops.append(_op(OpKind.GUEST_REMOVE_STALE, host, name=guest.name))
            reasons.append(f"the Off (NR) copy a migration left on {host} is removed first")
    in_use = ctx.files_in_use.get(host, frozenset())
    for disk in guest.disks:
        if disk.backing == "file" and disk.size_mb is not None and disk.path not in in_use:
            ops.append(_op(OpKind.FILE_CREATE, host, path=disk.path, size_mb=disk.size_mb))
            reasons.append(f"backing file {disk.path} is created with {disk.size_mb} MB")
    # A device can be marked shareable once the device database knows it: before the
    # create when another guest already uses it, else right after this guest adds it.
    shared = [d.path for d in (*guest.disks, *guest.dvds) if d.shared]
    reasons += [f"{p} is marked shareable (SHARE=YES) in the device database" for p in shared]
    ops += [_op(OpKind.DEVICE_SHARE, host, path=p) for p in shared if p in in_use]
    devices = [disk_statement(d) for d in (*guest.disks, *guest.dvds)]
    vlan_ops: list[Operation] = []
    for nic in guest.nics:
        port = nic.port if nic.port is not None else ports.allocate(host, nic.vswitch)
        devices.append(nic_statement(nic, port=port))
        if nic.vlan is not None:
            vlan_ops.append(
                _op(OpKind.PORT_VLAN, host, vswitch=nic.vswitch, port=port, vlan=nic.vlan)
            )
    ops.append(_op(OpKind.GUEST_CREATE, host, **create_params(guest, devices)))
    ops += [_op(OpKind.DEVICE_SHARE, host, path=p) for p in shared if p not in in_use]
    ops.extend(vlan_ops)
    if guest.power == "on":
        ops.append(_op(OpKind.GUEST_START, host, name=guest.name))
        reasons.append("power: on is declared: it is started after creation")
    for stale in ctx.stale_hosts:
        if stale != host:
            ops.append(_op(OpKind.GUEST_REMOVE_STALE, stale, name=guest.name))
            reasons.append(f"the Off (NR) copy a migration left on {stale} is removed")
    return GuestOutcome(
        action=Action.CREATE, host=host, reasons=tuple(reasons), operations=tuple(ops)
    )


def plan_delete(actual: ActualGuest, stale_hosts: Sequence[str]) -> GuestOutcome:
    """An owned guest no longer declared: stop it gracefully if it runs, then delete it."""
    guest = actual.guest
    ops: list[Operation] = []
    reasons = ["in the state but no longer declared: it will be deleted"]
    if actual.status.running:
        ops.append(_op(OpKind.GUEST_STOP, guest.host, name=guest.name, graceful=True))
        reasons.append("it is running: it is stopped gracefully first")
    ops.append(_op(OpKind.GUEST_DELETE, guest.host, name=guest.name))
    for stale in stale_hosts:
        ops.append(_op(OpKind.GUEST_REMOVE_STALE, stale, name=guest.name))
        reasons.append(f"the Off (NR) copy a migration left on {stale} is removed too")
    return GuestOutcome(
        action=Action.DELETE, host=guest.host, reasons=tuple(reasons), operations=tuple(ops)
    )


# --------------------------------------------------------------------------------------------
# Update, restart, start/stop, migrate
# --------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class _Edits:
    """The modifications a guest needs, split by how they can be made."""

    fields: list[FieldChange] = field(default_factory=list)
    drift: list[FieldChange] = field(default_factory=list)
    set: dict[str, Any] = field(default_factory=dict)
    add: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    modify: list[str] = field(default_factory=list)
    shares: list[str] = field(default_factory=list)  # paths to mark shareable
    files: list[tuple[str, int]] = field(default_factory=list)  # backing files to create, MB
    nics_added: int = 0  # NIC statements at the front of `add`
    known_paths: frozenset[str] = frozenset()  # paths the host's device database already has
    vlans: list[tuple[str, int, int | None]] = field(default_factory=list)  # vswitch, port, vlan
    needs_off: list[FieldChange] = field(default_factory=list)
    power: str | None = None  # the power wanted when it differs and is not ignored

    @property
    def modifies(self) -> bool:
        return bool(self.set or self.add or self.remove or self.modify)

    @property
    def active(self) -> list[FieldChange]:
        return [f for f in self.fields if f.how is not ChangeHow.IGNORED]


@dataclass(kw_only=True)
class _SlotPicker:
    """Virtual PCI slots for NICs added to an existing guest.

    The runtime lists NICs in slot order and the planner matches NICs by position, so a
    new NIC must sit after every NIC the guest has: left to the runtime it could take a
    lower slot a removed device freed, and the NICs would swap places.
    """

    used: set[tuple[int, int]]
    last_nic: int  # index in row-major slot order of the highest NIC slot, -1 if none

    @staticmethod
    def _index(bus: int, slot: int) -> int:
        return bus * len(PCI_SLOT_RANGE) + slot

    @classmethod
    def of(cls, guest: Guest) -> _SlotPicker:
        used: set[tuple[int, int]] = set()
        last = -1
        addresses = [(d.address, False) for d in (*guest.disks, *guest.dvds)]
        addresses += [(n.address, True) for n in guest.nics]
        for address, is_nic in addresses:
            bus, slot, _ = address_parts(address)
            if bus is not None and slot is not None:
                used.add((bus, slot))
                if is_nic:
                    last = max(last, cls._index(bus, slot))
        return cls(used=used, last_nic=last)

    def after_last_nic(self) -> str | None:
        """`bus,slot` of the first free slot after the last NIC; None leaves it open."""
        for bus in PCI_BUS_RANGE:
            for slot in PCI_SLOT_RANGE:
                index = self._index(bus, slot)
                if index > self.last_nic and (bus, slot) not in self.used:
                    self.used.add((bus, slot))
                    self.last_nic = index
                    return f"{bus},{slot}"
        return None


def _field(diff: FieldDiff, how: ChangeHow) -> FieldChange:
    return FieldChange(path=diff.path, before=diff.before, after=diff.after, how=how)


def _scalar_set(
    edits: _Edits, desired: Guest, actual: Guest, diff: FieldDiff, ignore: Sequence[str]
) -> None:
    top = str(diff.keys[0])
    if top == "entitlement":
        minimum = (
            actual.entitlement.min_pct
            if is_ignored("entitlement.min_pct", ignore)
            else desired.entitlement.min_pct
        )
        maximum = (
            actual.entitlement.max_pct
            if is_ignored("entitlement.max_pct", ignore)
            else desired.entitlement.max_pct
        )
        edits.set["entitlement"] = {"min": minimum, "max": maximum}
    elif top == "dynamic_memory":
        dyn = desired.dynamic_memory
        if diff.path == "dynamic_memory.target_mb" and "dynamic_memory" not in edits.set:
            edits.set["dynamic_memory.target"] = dyn.target_mb if dyn else None
        else:
            edits.set.pop("dynamic_memory.target", None)
            edits.set["dynamic_memory"] = (
                None
                if dyn is None
                else {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb}
            )
    else:
        edits.set[top] = getattr(desired, top)


def _group(diffs: Sequence[FieldDiff], top: str) -> dict[str | int, list[FieldDiff]]:
    grouped: dict[str | int, list[FieldDiff]] = {}
    for diff in diffs:
        if diff.keys[0] == top:
            grouped.setdefault(diff.keys[1], []).append(diff)
    return grouped


def _collect_edits(
    desired: Guest,
    actual: ActualGuest,
    diffs: Sequence[FieldDiff],
    ports: PortAllocator,
    ctx: GuestContext,
) -> _Edits:
    have = actual.guest
    host = desired.host
    known = ctx.files_in_use.get(host, frozenset())
    if host == have.host:  # its own devices are known there too
        known |= {d.path for d in (*have.disks, *have.dvds)}
    edits = _Edits(known_paths=known)
    ignore = desired.lifecycle.ignore_changes
    slots: _SlotPicker | None = None  # only a NIC added needs one

    def record(diff: FieldDiff, how: ChangeHow) -> bool:
        """Add the field; False when it is ignored (reported as drift only)."""
        if is_ignored(diff.path, ignore):
            change = _field(diff, ChangeHow.IGNORED)
            edits.fields.append(change)
            edits.drift.append(change)
            return False
        change = _field(diff, how)
        edits.fields.append(change)
        if how is ChangeHow.NEEDS_OFF:
            edits.needs_off.append(change)
        return True

    for diff in diffs:
        top = diff.keys[0]
        if top == "power":
            if record(diff, ChangeHow.ONLINE):
                edits.power = desired.power
        elif top == "vm_type":
            raise PlanError(
                f"guest.{desired.name} cannot change vm_type from {diff.before} to {diff.after}",
                detail="ivmctl does not transform a VM into a vPar or back; "
                "declare a new guest instead.",
                location=ctx.location or Location(address=f"guest.{desired.name}", path="vm_type"),
            )
        elif top not in ("disks", "dvds", "nics"):
            try:
                kind = field_change_kind(rule_name(diff.path))
            except RuleViolation as exc:  # a field the rule table does not know
                raise PlanError(
                    f"guest.{desired.name}: no rule says how to change {diff.path}",
                    detail=exc.summary,
                    location=ctx.location,
                ) from None
            if record(diff, _HOW[kind]):
                _scalar_set(edits, desired, have, diff, ignore)

    # Disks and DVDs, matched by (devtype, path).
    want = {(d.devtype, d.path): d for d in (*desired.disks, *desired.dvds)}
    old = {(d.devtype, d.path): d for d in (*have.disks, *have.dvds)}
    for top in ("disks", "dvds"):
        devtype = "dvd" if top == "dvds" else "disk"
        for path, group in _group(diffs, top).items():
            key = (devtype, str(path))
            new_disk, old_disk = want.get(key), old.get(key)
            if old_disk is None and new_disk is not None:  # added
                kind = device_change_kind(new_disk.adapter)
                if all(record(d, _HOW[kind]) for d in group):
                    if new_disk.shared:
                        edits.shares.append(new_disk.path)
                    if (
                        new_disk.backing == "file"
                        and new_disk.size_mb is not None
                        and new_disk.path not in edits.known_paths
                    ):
                        edits.files.append((new_disk.path, new_disk.size_mb))
                    edits.add.append(disk_statement(new_disk))
            elif new_disk is None and old_disk is not None:  # removed
                kind = device_change_kind(old_disk.adapter)
                if all(record(d, _HOW[kind]) for d in group):
                    edits.remove.append(disk_statement(old_disk))
            elif new_disk is not None and old_disk is not None:
                changed = {str(d.keys[2]) for d in group if len(d.keys) > 2}
                if changed == {"shared"}:
                    if all(record(d, ChangeHow.ONLINE) for d in group):
                        edits.shares.append(new_disk.path)
                    continue
                kinds = {device_change_kind(new_disk.adapter), device_change_kind(old_disk.adapter)}
                how = ChangeHow.NEEDS_OFF if ChangeKind.NEEDS_OFF in kinds else ChangeHow.ONLINE
                if all([record(d, how) for d in group]):
                    if new_disk.shared and not old_disk.shared:
                        edits.shares.append(new_disk.path)
                    edits.remove.append(disk_statement(old_disk))
                    edits.add.append(disk_statement(new_disk))

    # NICs, matched by position.
    for index, group in sorted(_group(diffs, "nics").items(), key=lambda kv: int(kv[0])):
        i = int(index)
        new_nic = desired.nics[i] if i < len(desired.nics) else None
        old_nic = have.nics[i] if i < len(have.nics) else None
        if old_nic is None and new_nic is not None:  # added
            kind = device_change_kind(new_nic.adapter)
            if all([record(d, _HOW[kind]) for d in group]):
                port = (
                    new_nic.port
                    if new_nic.port is not None
                    else ports.allocate(host, new_nic.vswitch)
                )
                if new_nic.address is None:
                    slots = slots or _SlotPicker.of(have)
                    new_nic = replace(new_nic, address=slots.after_last_nic())
                # NICs go first, so a disk added alongside cannot take the pinned slot.
                edits.add.insert(edits.nics_added, nic_statement(new_nic, port=port))
                edits.nics_added += 1
                if new_nic.vlan is not None:
                    edits.vlans.append((new_nic.vswitch, port, new_nic.vlan))
        elif new_nic is None and old_nic is not None:  # removed
            kind = device_change_kind(old_nic.adapter)
            if all([record(d, _HOW[kind]) for d in group]):
                edits.remove.append(nic_statement(old_nic))
        elif new_nic is not None and old_nic is not None:
            changed = {str(d.keys[2]) for d in group if len(d.keys) > 2}
            if changed == {"vlan"} and old_nic.port is not None:
                if all([record(d, ChangeHow.ONLINE) for d in group]):
                    edits.vlans.append((new_nic.vswitch, old_nic.port, new_nic.vlan))
                continue
            # A NIC moved to another vswitch, or given another adapter, MAC or port:
            # treated as needing the guest Off [obs R50].
            if not all([record(d, ChangeHow.NEEDS_OFF) for d in group]):
                continue
            if new_nic.port is not None:
                port = new_nic.port
            elif new_nic.vswitch == old_nic.vswitch and old_nic.port is not None:
                port = old_nic.port
            else:
                port = ports.allocate(host, new_nic.vswitch)
            mac = new_nic.mac if new_nic.mac is not None else old_nic.mac
            if "adapter" in changed:
                edits.remove.append(nic_statement(old_nic))
                replacement = Nic(
                    vswitch=new_nic.vswitch,
                    adapter=new_nic.adapter,
                    vlan=new_nic.vlan,
                    mac=mac,
                    # the old NIC's slot keeps the replacement at its position
                    address=new_nic.address or old_nic.address,
                )
                # with the added NICs, before disks, which must not take the kept slot
                edits.add.insert(edits.nics_added, nic_statement(replacement, port=port))
                edits.nics_added += 1
            else:
                moved = Nic(
                    vswitch=new_nic.vswitch,
                    adapter=new_nic.adapter,
                    vlan=new_nic.vlan,
                    mac=mac,
                    address=new_nic.address or old_nic.address,
                )
                edits.modify.append(nic_statement(moved, port=port))
            if new_nic.vlan is not None and (new_nic.vlan != old_nic.vlan or port != old_nic.port):
                edits.vlans.append((new_nic.vswitch, port, new_nic.vlan))
    return edits


def _modify_op(host: str, name: str, edits: _Edits, *, online: bool) -> Operation:
    return _op(
        OpKind.GUEST_MODIFY,
        host,
        name=name,
        set=dict(sorted(edits.set.items())),
        add=list(edits.add),
        remove=list(edits.remove),
        modify=list(edits.modify),
        online=online,
    )


def _edit_ops(host: str, name: str, edits: _Edits, *, online: bool) -> list[Operation]:
    """New backing files, shares, the modify itself, then the VLANs of the ports it uses."""
    ops = [_op(OpKind.FILE_CREATE, host, path=p, size_mb=mb) for p, mb in edits.files]
    ops += [_op(OpKind.DEVICE_SHARE, host, path=p) for p in edits.shares if p in edits.known_paths]
    if edits.modifies:
        ops.append(_modify_op(host, name, edits, online=online))
    ops += [
        _op(OpKind.DEVICE_SHARE, host, path=p) for p in edits.shares if p not in edits.known_paths
    ]
    ops += [_op(OpKind.PORT_VLAN, host, vswitch=v, port=p, vlan=vlan) for v, p, vlan in edits.vlans]
    return ops


_ADOPTED = "exists in the runtime but is not in the state: it will be adopted"
_MATCHES = "matches the configuration: nothing to do"
_MATCHES_ADOPTED = "it matches the configuration: nothing else to do"


def unchanged(desired: Guest, actual: ActualGuest, stale_hosts: Sequence[str]) -> bool:
    """True when there is nothing to decide: the guest stays on its host, no Off (NR) copy
    of it lingers and it plainly matches (`diff.plainly_equal`).

    Most guests of a large plan; the planner asks this before it builds anything else for
    a guest. False is no verdict: `plan_change` then compares in full.
    """
    return (
        desired.host == actual.guest.host
        and not stale_hosts
        and plainly_equal(desired, actual.guest, actual_power(actual))
    )


@cache  # one per host and kind, shared by all its unchanged guests: an outcome is frozen
def unchanged_outcome(host: str, *, adopt: bool) -> GuestOutcome:
    """The outcome of a guest with nothing to decide: a no-op, or an adoption alone."""
    if adopt:
        return GuestOutcome(action=Action.ADOPT, host=host, reasons=(_ADOPTED, _MATCHES_ADOPTED))
    return GuestOutcome(action=Action.NOOP, host=host, reasons=(_MATCHES,))


def plan_change(
    desired: Guest,
    actual: ActualGuest,
    ctx: GuestContext,
    ports: PortAllocator,
    *,
    adopt: bool,
) -> GuestOutcome:
    """A declared guest the runtime has: no-op, update, restart, start, stop or migrate."""
    name = desired.name
    address = desired.address
    diffs = diff_guest(desired, actual.guest, actual_power(actual))
    src, dst = actual.guest.host, desired.host
    moving = src != dst
    if not diffs and not moving and not ctx.stale_hosts:
        return unchanged_outcome(dst, adopt=adopt)  # nothing to decide: no edits collected
    edits = _collect_edits(desired, actual, diffs, ports, ctx) if diffs else _Edits()
    running = actual.status.running
    want_on = (edits.power or actual_power(actual)) == "on"
    reasons: list[str] = [_ADOPTED] if adopt else []
    stale_ops = [_op(OpKind.GUEST_REMOVE_STALE, h, name=name) for h in ctx.stale_hosts if h != dst]
    if stale_ops:
        reasons.append(
            "the Off (NR) copy a migration left on "
            + ", ".join(op.host for op in stale_ops)
            + " is removed"
        )
    fields = list(edits.fields)
    if moving:
        fields.insert(0, FieldChange(path="host", before=src, after=dst, how=ChangeHow.MOVE))
        outcome = _plan_move(desired, actual, ctx, edits, reasons, stale_ops, want_on)
        return GuestOutcome(
            action=Action.ADOPT if adopt else Action.MIGRATE,
            host=dst,
            fields=tuple(fields),
            drift=tuple(edits.drift),
            reasons=outcome.reasons,
            operations=outcome.operations,
            offline_alternative=outcome.offline_alternative,
            restart_hint=outcome.restart_hint,
        )

    active = edits.active
    ops: list[Operation] = []
    action = Action.NOOP
    changed_paths = _paths([f for f in active if f.path != "power"])
    if edits.needs_off and running and want_on:
        if not ctx.restart_allowed:
            raise _restart_error(address, f"apply {_paths(edits.needs_off)}", ctx.location)
        ops = [_op(OpKind.GUEST_STOP, dst, name=name, graceful=True)]
        ops += _edit_ops(dst, name, edits, online=False)
        ops.append(_op(OpKind.GUEST_START, dst, name=name))
        action = Action.RESTART
        reasons.append(
            f"{_paths(edits.needs_off)} cannot change while the guest runs: "
            f"it is stopped, modified and started again ({ctx.restart_by})"
        )
        online_only = [f for f in active if f.how is ChangeHow.ONLINE and f.path != "power"]
        if online_only:
            reasons.append(f"{_paths(online_only)} change in the same modification")
    elif running and not want_on:
        ops = [_op(OpKind.GUEST_STOP, dst, name=name, graceful=True)]
        ops += _edit_ops(dst, name, edits, online=False)
        action = Action.STOP
        reasons.append("power: off is declared and the guest runs: it is stopped gracefully")
        if changed_paths:
            action = Action.UPDATE
            reasons.append(f"{changed_paths} change while it is Off")
    elif running:
        ops = _edit_ops(dst, name, edits, online=True)
        if ops:
            action = Action.UPDATE
            reasons.append(f"{changed_paths} change online while the guest runs")
    else:
        ops = _edit_ops(dst, name, edits, online=False)
        if ops:
            action = Action.UPDATE
            reasons.append(f"{changed_paths} change while the guest is Off")
        if want_on:
            ops.append(_op(OpKind.GUEST_START, dst, name=name))
            if action is Action.NOOP:
                action = Action.START
            reasons.append("power: on is declared and the guest is Off: it is started")
    ops += stale_ops
    if stale_ops and action is Action.NOOP:
        action = Action.UPDATE
    return _settle(action, dst, ops, reasons, edits, adopt=adopt)


def _settle(
    action: Action,
    host: str,
    ops: list[Operation],
    reasons: list[str],
    edits: _Edits,
    *,
    adopt: bool,
) -> GuestOutcome:
    """The outcome of a guest that stays on its host; says why when nothing is done."""
    if action is Action.NOOP:
        if edits.drift:
            reasons.append(
                f"differs only in {_paths(edits.drift)}, which lifecycle.ignore_changes "
                "leaves as it is: nothing to do"
            )
        elif not adopt:
            reasons.append(_MATCHES)
    if adopt:
        if action is Action.NOOP:
            reasons.append(_MATCHES_ADOPTED)
        action = Action.ADOPT
    return GuestOutcome(
        action=action,
        host=host,
        fields=tuple(edits.fields),
        drift=tuple(edits.drift),
        reasons=tuple(reasons),
        operations=tuple(ops),
    )


@frozen
class _Move:
    reasons: tuple[str, ...]
    operations: tuple[Operation, ...]
    offline_alternative: tuple[Operation, ...] | None = None
    restart_hint: str = ""


def online_move_problem(
    desired: Guest, actual: ActualGuest, versions: Mapping[str, str]
) -> str | None:
    """Why the guest cannot move online (None when it can), in the order an operator checks."""
    if not actual.status.running:
        return "the guest is Off"
    if desired.vm_type == "vpar" or actual.guest.vm_type == "vpar":
        return "vPars never migrate online"
    if not (actual.guest.online_migration and desired.online_migration):
        return "online_migration is disabled for the guest"
    return online_migration_problem(versions[actual.guest.host], versions[desired.host])


def _carry_vlans(desired: Guest, actual: Guest, edits: _Edits) -> bool:
    """A moving guest's VLANs must be set on the target's vswitches, on the ports its NICs
    had; `plan.ports.settle_ports` moves them to where the NICs land if that differs."""
    planned = {(v, p) for v, p, _ in edits.vlans}
    carried = False
    for new_nic, old_nic in zip(desired.nics, actual.nics, strict=False):
        if new_nic.vlan is None or old_nic.port is None or new_nic.vswitch != old_nic.vswitch:
            continue
        if (new_nic.vswitch, old_nic.port) not in planned:
            edits.vlans.append((new_nic.vswitch, old_nic.port, new_nic.vlan))
            carried = True
    return carried


def _field_paths(edits: _Edits) -> str:
    """The changed fields other than power, for reasons."""
    return _paths([f for f in edits.active if f.path != "power"])


def _plan_move(
    desired: Guest,
    actual: ActualGuest,
    ctx: GuestContext,
    edits: _Edits,
    reasons: list[str],
    stale_ops: list[Operation],
    want_on: bool,
) -> _Move:
    known = ctx.host_vswitches.get(desired.host)
    missing = sorted({n.vswitch for n in actual.guest.nics} - known) if known else []
    if missing:
        raise PlanError(
            f"{desired.address} cannot move to {desired.host}: its NICs use "
            f"{', '.join(missing)}, which {desired.host} does not declare",
            detail="A migration needs the same vswitches on the target. Declare them on "
            f"{desired.host}, or move the NICs to another vswitch in an earlier apply.",
            location=ctx.location or Location(address=desired.address, path="host"),
        )
    blocked = [
        problem
        for disk in (*actual.guest.disks, *actual.guest.dvds)
        if (problem := migration_device_problem(
            backing=disk.backing, path=disk.path, shared=disk.shared
        ))
    ]  # fmt: skip
    if blocked:
        raise PlanError(
            f"{desired.address} cannot move to {desired.host}: " + "; ".join(blocked),
            detail="A migrating guest needs storage both hosts reach and no shared device: "
            "use SAN disks (backing: disk) or LVs, drop the shared device, or delete the "
            f"guest and create it on {desired.host}.",
            location=ctx.location or Location(address=desired.address, path="host"),
        )
    carried = _carry_vlans(desired, actual.guest, edits)
    move = _move_ops(desired, actual, ctx, edits, reasons, stale_ops, want_on)
    if not carried:
        return move
    note = f"the VLANs of its vswitch ports are set on {desired.host} as well"
    return replace(move, reasons=(*move.reasons, note))


def _fits_version(guest: Guest, version: str) -> bool:
    """Whether the guest's vCPUs and memory are within the limits of `version`."""
    limits = limits_for(version)
    return guest.vcpus <= limits.max_vcpus and guest.memory_mb <= limits.max_memory_mb


def _move_ops(
    desired: Guest,
    actual: ActualGuest,
    ctx: GuestContext,
    edits: _Edits,
    reasons: list[str],
    stale_ops: list[Operation],
    want_on: bool,
) -> _Move:
    name, address = desired.name, desired.address
    src, dst = actual.guest.host, desired.host
    running = actual.status.running
    versions = ctx.host_versions
    before_move = [
        _op(OpKind.GUEST_REMOVE_STALE, dst, name=name) for h in ctx.stale_hosts if h == dst
    ]
    leave_source = _op(OpKind.GUEST_REMOVE_STALE, src, name=name)
    online_problem = online_move_problem(desired, actual, versions)
    needs_off = bool(edits.needs_off)

    # Offline, the guest's own settings change on the source before it moves, so the
    # target checks the configuration it will run (a guest shrunk to fit a smaller host
    # must shrink first); devices change on the target, where their vswitches are.
    settings_first = bool(edits.set) and _fits_version(desired, versions[src])
    moved_edits = replace(edits, set={}) if settings_first else edits

    def offline_ops(*, stop: bool, start: bool) -> list[Operation]:
        ops: list[Operation] = []
        if stop:
            ops.append(_op(OpKind.GUEST_STOP, src, name=name, graceful=True))
        if settings_first:
            ops.append(_modify_op(src, name, _Edits(set=dict(edits.set)), online=False))
        ops += before_move
        ops.append(_op(OpKind.GUEST_MIGRATE, src, name=name, target=dst, online=False))
        ops.append(leave_source)
        ops += _edit_ops(dst, name, moved_edits, online=False)
        if start:
            ops.append(_op(OpKind.GUEST_START, dst, name=name))
        return ops + stale_ops

    if running and want_on and online_problem is None and not needs_off:
        ops = [*before_move]
        ops.append(_op(OpKind.GUEST_MIGRATE, src, name=name, target=dst, online=True))
        ops.append(leave_source)
        ops += _edit_ops(dst, name, edits, online=True)
        ops += stale_ops
        reasons.append(
            f"host changes from {src} to {dst}: the guest runs, allows online migration and "
            f"Integrity VM {versions[src]} -> {versions[dst]} supports it: it moves online"
        )
        if _field_paths(edits):
            reasons.append(f"{_field_paths(edits)} change online on {dst} after the move")
        alternative = tuple(offline_ops(stop=True, start=True)) if ctx.restart_allowed else None
        hint = "" if ctx.restart_allowed else f"{address} could move offline if allowed to restart"
        return _Move(
            reasons=tuple(reasons),
            operations=tuple(ops),
            offline_alternative=alternative,
            restart_hint=hint,
        )

    offline = offline_migration_problem(versions[src], versions[dst])
    if offline is not None:
        raise PlanError(
            f"{address} cannot move from {src} to {dst}: {offline}",
            detail="Keep the guest on its host, or move it between hosts of one version family.",
            location=ctx.location or Location(address=address, path="host"),
        )
    why = "it needs the guest Off for " + _paths(edits.needs_off) if needs_off else online_problem
    if running and want_on:
        if not ctx.restart_allowed:
            raise _restart_error(address, f"move from {src} to {dst} ({why})", ctx.location)
        reasons.append(
            f"host changes from {src} to {dst} and it cannot move online ({why}): "
            f"it is stopped, moved offline and started on the target ({ctx.restart_by})"
        )
        return _Move(reasons=tuple(reasons), operations=tuple(offline_ops(stop=True, start=True)))
    if running:
        reasons.append(
            f"host changes from {src} to {dst}; power: off is declared: "
            "it is stopped and moved offline"
        )
        return _Move(reasons=tuple(reasons), operations=tuple(offline_ops(stop=True, start=False)))
    reasons.append(f"host changes from {src} to {dst}: the guest is Off and moves offline")
    if want_on:
        reasons.append("power: on is declared: it is started on the target")
    if _field_paths(edits):
        where = f"on {src} before the move" if settings_first else f"on {dst} after the move"
        reasons.append(f"{_field_paths(edits)} change {where}")
    return _Move(reasons=tuple(reasons), operations=tuple(offline_ops(stop=False, start=want_on)))
