"""A tiny test-side executor of plan Operations on an ActualState, with admission checks.

It plays the part of the emulator for planner tests: each operation is checked the way
Integrity VM would check it (guest Off for offline modifications, admission at start
and at online migration via ivmctl.rules, vswitches present, no name clash) and a
refused operation raises SimRefused naming the change and the operation. Independent
of ivmctl.runtime, which is built concurrently.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ivmctl.errors import InsufficientResources
from ivmctl.model import (
    ActualGuest,
    ActualState,
    Disk,
    DynamicMemory,
    Entitlement,
    Guest,
    GuestStatus,
    Nic,
    VSwitch,
)
from ivmctl.plan.classify import demand_of
from ivmctl.plan.model import Operation, OpKind, Plan
from ivmctl.resources import NetworkResource, StorageResource, parse_resource
from ivmctl.rules import (
    LOCALNET,
    ChangeKind,
    Demand,
    HostCapacity,
    field_change_kind,
    generate_mac,
    landing_port,
)


class SimRefused(Exception):
    """The simulated host refused an operation."""


def _demand(guest: Guest, *, migration: bool = False) -> Demand:
    return demand_of(guest, migration=migration)  # the planner's own rule, via rules.py


_SET_RULES = {
    "memory_mb": "memory",
    "dynamic_memory.target": "dynamic_memory.target",
}


@dataclass
class Sim:
    """Mutable world: hosts, vswitches, guests, Off (NR) copies, capacity per host."""

    state: ActualState
    caps: dict[str, HostCapacity] = field(default_factory=dict)
    vswitches: dict[str, dict[str, VSwitch]] = field(default_factory=dict)
    guests: dict[str, ActualGuest] = field(default_factory=dict)
    stale: dict[tuple[str, str], ActualGuest] = field(default_factory=dict)
    counter: int = 1000
    shared: set[tuple[str, str]] = field(default_factory=set)
    log: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, state: ActualState) -> Sim:
        sim = cls(state=state)
        for name, host in state.hosts.items():
            sim.vswitches[name] = dict(host.vswitches)
            if host.hardware is not None:
                sim.caps[name] = HostCapacity.empty(
                    name=name, cores=host.hardware.cores, physical_memory_mb=host.hardware.memory_mb
                )
        sim.guests = dict(state.guests)
        for item in [*state.guests.values(), *state.not_runnable.values()]:
            for disk in (*item.guest.disks, *item.guest.dvds):
                if disk.shared:
                    sim.shared.add((item.guest.host, disk.path))
        sim.stale = dict(state.not_runnable)
        running = sorted(
            (g for g in state.guests.values() if g.status.running),
            key=lambda g: (g.guest.host, g.status.vm_number, g.guest.name),
        )
        for item in running:
            if item.guest.host in sim.caps:
                sim.caps[item.guest.host] = sim.caps[item.guest.host].admit(_demand(item.guest))
        return sim

    # ------------------------------------------------------------------------------------
    def apply(self, plan: Plan) -> ActualState:
        for change in plan.changes:
            for op in change.operations:
                try:
                    self.run(op)
                except (SimRefused, InsufficientResources) as exc:
                    raise SimRefused(f"{change.key}: {op.kind.value} on {op.host}: {exc}") from exc
        return self.snapshot()

    def snapshot(self) -> ActualState:
        guests = {n: self._with_vlans(g) for n, g in sorted(self.guests.items())}
        hosts = {
            n: dataclasses.replace(h, vswitches=dict(self.vswitches[n]))
            for n, h in self.state.hosts.items()
        }
        return ActualState(
            hosts=hosts,
            guests=guests,
            not_runnable={k: self.stale[k] for k in sorted(self.stale)},
            generation=self.state.generation + "+",
        )

    def _with_vlans(self, item: ActualGuest) -> ActualGuest:
        host = item.guest.host
        nics = tuple(
            dataclasses.replace(
                n,
                vlan=self.vswitches[host][n.vswitch].port_vlans.get(n.port)
                if n.vswitch in self.vswitches[host] and n.port is not None
                else None,
            )
            for n in item.guest.nics
        )
        return dataclasses.replace(item, guest=dataclasses.replace(item.guest, nics=nics))

    # ------------------------------------------------------------------------------------
    def _live(self, op: Operation) -> ActualGuest:
        name = str(op.params["name"])
        item = self.guests.get(name)
        if item is None or item.guest.host != op.host:
            raise SimRefused(f"no guest {name} on {op.host}")
        return item

    def _put(self, item: ActualGuest, **changes: Any) -> None:
        guest = dataclasses.replace(item.guest, **changes) if changes else item.guest
        self.guests[guest.name] = dataclasses.replace(item, guest=guest)

    def _status(self, item: ActualGuest, state: str) -> None:
        self.guests[item.guest.name] = dataclasses.replace(
            item,
            status=dataclasses.replace(item.status, state=state),
            guest=dataclasses.replace(item.guest, power="on" if state.startswith("On") else "off"),
        )

    def _used_ports(self, host: str, vswitch: str) -> set[int]:
        used = set(self.vswitches[host].get(vswitch, VSwitch(host=host, name=vswitch)).port_vlans)
        for item in [*self.guests.values(), *self.stale.values()]:
            if item.guest.host == host:
                used |= {
                    n.port for n in item.guest.nics if n.vswitch == vswitch and n.port is not None
                }
        return used

    def _landed(self, item: ActualGuest, target: str) -> tuple[Nic, ...]:
        """The guest's NICs on the target: each keeps its port if free, as the runtime does."""
        landed: list[Nic] = []
        for nic in item.guest.nics:
            taken = {
                n.port
                for other in [*self.guests.values(), *self.stale.values()]
                if other.guest.host == target
                for n in other.guest.nics
                if n.vswitch == nic.vswitch
            } | {n.port for n in landed if n.vswitch == nic.vswitch}
            port = landing_port(nic.port or 0, taken)
            if port is None:
                raise SimRefused(f"no free port of {nic.vswitch} on {target}")
            landed.append(dataclasses.replace(nic, port=port))
        return tuple(landed)

    def _nic(self, host: str, res: NetworkResource, owner: str) -> Nic:
        if res.vswitch != LOCALNET and res.vswitch not in self.vswitches[host]:
            raise SimRefused(f"vswitch {res.vswitch} does not exist on {host}")
        port = res.port
        used = self._used_ports(host, res.vswitch)
        if port is None:
            port = min(set(range(512)) - used)
        elif port in used and not any(
            n.port == port and n.vswitch == res.vswitch
            for n in (self.guests[owner].guest.nics if owner in self.guests else ())
        ):
            raise SimRefused(f"port {port} of {res.vswitch} on {host} is in use")
        mac = res.mac
        if mac is None:
            self.counter += 1
            mac = generate_mac(self.counter)
        address = None if res.bus is None else f"{res.bus},{res.slot}"
        return Nic(vswitch=res.vswitch, adapter=res.adapter, mac=mac, port=port, address=address)

    def _users(self, host: str, path: str, *, besides: str = "") -> list[str]:
        return [
            item.guest.name
            for item in [*self.guests.values(), *self.stale.values()]
            if item.guest.host == host
            and item.guest.name != besides
            and any(d.path == path for d in (*item.guest.disks, *item.guest.dvds))
        ]

    def _claim(self, host: str, res: StorageResource, owner: str) -> None:
        """A device another guest holds can be added only once it is shareable."""
        others = self._users(host, res.path, besides=owner)
        if others and (host, res.path) not in self.shared and res.backing != "null":
            raise SimRefused(f"{res.path} is in use by {others[0]} and not shareable")

    def _disk(self, host: str, res: StorageResource) -> Disk:
        return Disk(
            shared=(host, res.path) in self.shared,
            devtype=res.devtype,
            backing=res.backing,
            path=res.path,
            adapter=res.adapter,
            address=res.address or None,
        )

    # ------------------------------------------------------------------------------------
    def run(self, op: Operation) -> None:
        self.log.append(f"{op.host}: {op.kind.value} {dict(op.params)}")
        kind, p = op.kind, op.params
        if op.host not in self.vswitches:
            raise SimRefused(f"unknown host {op.host}")
        if kind is OpKind.VSWITCH_CREATE:
            if p["name"] in self.vswitches[op.host]:
                raise SimRefused(f"vswitch {p['name']} exists")
            self.vswitches[op.host][p["name"]] = VSwitch(host=op.host, name=p["name"], nic=p["nic"])
        elif kind is OpKind.VSWITCH_DELETE:
            for item in [*self.guests.values(), *self.stale.values()]:
                if item.guest.host == op.host and any(
                    n.vswitch == p["name"] for n in item.guest.nics
                ):
                    raise SimRefused(f"vswitch {p['name']} is used by {item.guest.name}")
            del self.vswitches[op.host][p["name"]]
        elif kind is OpKind.PORT_VLAN:
            vsw = self.vswitches[op.host].get(p["vswitch"])
            if vsw is None:
                raise SimRefused(f"no vswitch {p['vswitch']}")
            vlans = dict(vsw.port_vlans)
            if p["vlan"] is None:
                vlans.pop(p["port"], None)
            else:
                vlans[p["port"]] = p["vlan"]
            self.vswitches[op.host][p["vswitch"]] = dataclasses.replace(vsw, port_vlans=vlans)
        elif kind is OpKind.DEVICE_SHARE:
            if not self._users(op.host, str(p["path"])):
                raise SimRefused(f"No gdev entry {p['path']!r}: no guest uses it yet")
            self.shared.add((op.host, str(p["path"])))
            for item in list(self.guests.values()):
                if item.guest.host == op.host:
                    self._put(
                        item,
                        disks=tuple(
                            dataclasses.replace(d, shared=True) if d.path == p["path"] else d
                            for d in item.guest.disks
                        ),
                    )
        elif kind is OpKind.FILE_CREATE:
            pass
        elif kind is OpKind.GUEST_CREATE:
            self._create(op)
        elif kind is OpKind.GUEST_MODIFY:
            self._modify(op)
        elif kind is OpKind.GUEST_START:
            item = self._live(op)
            if item.status.running:
                raise SimRefused("already running")
            if op.host in self.caps:
                self.caps[op.host] = self.caps[op.host].admit(_demand(item.guest))
            self._status(item, "On (OS)")
        elif kind is OpKind.GUEST_STOP:
            item = self._live(op)
            if not item.status.running:
                raise SimRefused("not running")
            if op.host in self.caps:
                self.caps[op.host] = self.caps[op.host].release(item.guest.name)
            self._status(item, "Off")
        elif kind is OpKind.GUEST_MIGRATE:
            self._migrate(op)
        elif kind is OpKind.GUEST_DELETE:
            item = self._live(op)
            if item.status.running:
                raise SimRefused("cannot delete a running guest")
            del self.guests[item.guest.name]
        elif kind is OpKind.GUEST_REMOVE_STALE:
            key = (op.host, str(p["name"]))
            if key not in self.stale:
                raise SimRefused(f"no Off (NR) copy of {p['name']} on {op.host}")
            del self.stale[key]
        else:  # pragma: no cover
            raise SimRefused(f"unknown operation {kind}")

    def _create(self, op: Operation) -> None:
        p = op.params
        name = str(p["name"])
        if name in self.guests or (op.host, name) in self.stale:
            raise SimRefused(f"guest {name} already exists")
        disks: list[Disk] = []
        dvds: list[Disk] = []
        nics: list[Nic] = []
        self.guests[name] = ActualGuest(
            guest=Guest(name=name, host=op.host), status=GuestStatus(state="Off", vm_number=0)
        )
        for statement in p["devices"]:
            res = parse_resource(statement)
            if isinstance(res, NetworkResource):
                nic = self._nic(op.host, res, name)
                nics.append(nic)
                self._put(self.guests[name], nics=tuple(nics))
            else:
                self._claim(op.host, res, name)
                (dvds if res.devtype == "dvd" else disks).append(self._disk(op.host, res))
                self._put(self.guests[name], disks=tuple(disks), dvds=tuple(dvds))
        dyn = p["dynamic_memory"]
        self.counter += 1
        guest = Guest(
            name=name,
            host=op.host,
            os=p["os"],
            vcpus=p["vcpus"],
            entitlement=Entitlement(
                min_pct=p["entitlement"]["min"], max_pct=p["entitlement"]["max"]
            ),
            memory_mb=p["memory_mb"],
            dynamic_memory=None if dyn is None else DynamicMemory(**dyn),
            power="off",
            start=p["start"],
            label=p["label"],
            disks=tuple(disks),
            dvds=tuple(dvds),
            nics=tuple(nics),
            online_migration=p["online_migration"],
        )
        self.guests[name] = ActualGuest(
            guest=guest, status=GuestStatus(state="Off", vm_number=self.counter)
        )

    def _modify(self, op: Operation) -> None:
        item = self._live(op)
        p = op.params
        running = item.status.running
        if running and not p["online"]:
            raise SimRefused("an offline modification of a running guest")
        guest = item.guest
        changes: dict[str, Any] = {}
        for key, value in p["set"].items():
            rule = _SET_RULES.get(key, key)
            if running and field_change_kind(rule) is ChangeKind.NEEDS_OFF:
                raise SimRefused(f"{key} cannot change while the guest runs")
            if key == "entitlement":
                changes["entitlement"] = Entitlement(min_pct=value["min"], max_pct=value["max"])
                if running and op.host in self.caps:
                    self.caps[op.host] = self.caps[op.host].with_entitlement(
                        guest.name, float(value["min"])
                    )
            elif key == "dynamic_memory":
                changes["dynamic_memory"] = None if value is None else DynamicMemory(**value)
            elif key == "dynamic_memory.target":
                assert guest.dynamic_memory is not None
                changes["dynamic_memory"] = dataclasses.replace(
                    guest.dynamic_memory, target_mb=value
                )
            else:
                changes[key] = value
        disks = list((*guest.disks, *guest.dvds))
        nics = list(guest.nics)
        for statement in p["remove"]:
            res = parse_resource(statement)
            if isinstance(res, NetworkResource):
                match = [
                    n
                    for n in nics
                    if n.vswitch == res.vswitch and (res.mac is None or n.mac == res.mac)
                ]
                if not match:
                    raise SimRefused(f"no NIC {statement}")
                nics.remove(match[0])
            else:
                found = [d for d in disks if (d.devtype, d.path) == (res.devtype, res.path)]
                if not found:
                    raise SimRefused(f"no device {statement}")
                disks.remove(found[0])
        for statement in p["modify"]:
            res = parse_resource(statement)
            assert isinstance(res, NetworkResource)
            index = next(
                (i for i, n in enumerate(nics) if res.mac is not None and n.mac == res.mac), None
            )
            if index is None:
                raise SimRefused(f"no NIC to modify for {statement}")
            old = nics[index]
            self._put(item, nics=tuple(n for i, n in enumerate(nics) if i != index))
            nics[index] = dataclasses.replace(
                self._nic(op.host, res, guest.name), address=old.address
            )
            item = self.guests[guest.name]
        for statement in p["add"]:
            res = parse_resource(statement)
            if isinstance(res, NetworkResource):
                nics.append(self._nic(op.host, res, guest.name))
            else:
                self._claim(op.host, res, guest.name)
                disks.append(self._disk(op.host, res))
        changes["disks"] = tuple(d for d in disks if d.devtype != "dvd")
        changes["dvds"] = tuple(d for d in disks if d.devtype == "dvd")
        changes["nics"] = tuple(nics)
        self._put(self.guests[guest.name], **changes)

    def _migrate(self, op: Operation) -> None:
        item = self._live(op)
        target = str(op.params["target"])
        online = bool(op.params["online"])
        if target not in self.vswitches:
            raise SimRefused(f"unknown target {target}")
        if (target, item.guest.name) in self.stale:
            raise SimRefused(f"an Off (NR) copy of {item.guest.name} is on {target}")
        for nic in item.guest.nics:
            if nic.vswitch != LOCALNET and nic.vswitch not in self.vswitches[target]:
                raise SimRefused(f"vswitch {nic.vswitch} missing on {target}")
        if online:
            if not item.status.running:
                raise SimRefused("online migration of a guest that is Off")
            if target in self.caps:
                found = self.caps[target].problems(_demand(item.guest, migration=True))
                if found:
                    raise SimRefused("; ".join(found))
                self.caps[target] = self.caps[target].admit(_demand(item.guest))
            if op.host in self.caps:
                self.caps[op.host] = self.caps[op.host].release(item.guest.name)
        elif item.status.running:
            raise SimRefused("offline migration of a running guest")
        self.stale[(op.host, item.guest.name)] = dataclasses.replace(
            item, status=dataclasses.replace(item.status, state="Off (NR)", runnable=False)
        )
        self.counter += 1
        moved = dataclasses.replace(item.guest, host=target, nics=self._landed(item, target))
        self.guests[item.guest.name] = ActualGuest(
            guest=moved,
            status=GuestStatus(
                state=item.status.state if online else "Off", vm_number=self.counter
            ),
        )
