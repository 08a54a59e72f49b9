"""Where migrating NICs land on the target's vswitches, and the order that makes it so.

A NIC keeps its vswitch port when it migrates if that port is free on the target; else
the target gives it the lowest free port from 1 (`rules.landing_port`, the emulator's
rule). What is free when a migration runs depends on what ran before it on that host:
creates, deletes, NIC changes, Off (NR) copies removed, other migrations. So once the
changes are ordered, `settle_ports` replays every operation that takes or frees a port
on the hosts migrations touch, in the plan's order. Where a NIC lands on another port,
the migrating change's later operations on the target (its VLANs, its NIC statements)
are rewritten to that port, and the reasons say so. Every change that takes or frees a
port on such a vswitch gets an edge to or from the migration, following the plan's
order, so no apply walk can run them the other way round and the landing stays exact.

A NIC that would land on a port the configuration pins for it, or on one the plan gives
another NIC later, is refused with a PlanError: no order of this plan can work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from ivmctl.errors import Location, PlanError
from ivmctl.model import ActualState, DesiredState
from ivmctl.model import Nic as ModelNic
from ivmctl.plan.classify import address_parts
from ivmctl.plan.model import Change, Operation, OpKind
from ivmctl.resources import NetworkResource, parse_resource
from ivmctl.rules import landing_port, nic_port
from ivmctl.values import frozen

__all__ = ["settle_ports"]


@frozen
class _Nic:
    """A NIC as the runtime holds it: where it is, and what identifies it in statements."""

    vswitch: str
    port: int
    mac: int | None = None
    bus: int | None = None
    slot: int | None = None

    @classmethod
    def of(cls, nic: ModelNic) -> _Nic:
        bus, slot, _ = address_parts(nic.address)
        return cls(vswitch=nic.vswitch, port=nic.port or 0, mac=nic.mac, bus=bus, slot=slot)

    def named_by(self, res: NetworkResource, *, modify: bool = False) -> bool:
        """Whether a -d (or, with `modify`, -m) statement names this NIC."""
        return res.names(
            bus=self.bus, slot=self.slot, mac=self.mac, vswitch=self.vswitch, modify=modify
        )


_Owner = tuple[str, bool]  # (guest name, is the Off (NR) copy)


@frozen
class _Landing:
    """A NIC of a migrating guest that lands on another port than the one it had."""

    vswitch: str
    index: int  # the NIC's position in the guest
    mac: int | None
    before: int
    after: int


class _Ports:
    """The NICs per host and owner, replayed operation by operation."""

    def __init__(self, actual: ActualState, hosts: Iterable[str]) -> None:
        self.held: dict[str, dict[_Owner, list[_Nic]]] = {h: {} for h in hosts}
        for name, item in actual.guests.items():
            if item.guest.host in self.held:
                self.held[item.guest.host][(name, False)] = [_Nic.of(n) for n in item.guest.nics]
        for (host, name), item in actual.not_runnable.items():
            if host in self.held:
                self.held[host][(name, True)] = [_Nic.of(n) for n in item.guest.nics]
        # (host, vswitch, port) -> the migrating guest whose NIC landed there
        self.landed: dict[tuple[str, str, int], str] = {}

    def taken(self, host: str, vswitch: str, *, but: _Owner | None = None) -> set[int]:
        return {
            nic.port
            for owner, nics in self.held[host].items()
            if owner != but
            for nic in nics
            if nic.vswitch == vswitch
        }

    def vswitches(self, host: str, owner: _Owner) -> set[str]:
        return {nic.vswitch for nic in self.held[host].get(owner, ())}


def settle_ports(
    changes: Sequence[Change], desired: DesiredState, actual: ActualState
) -> tuple[Change, ...]:
    """`changes` (in order) with migrated NICs' landing ports and the edges that keep them."""
    hosts = {
        h
        for c in changes
        for op in c.operations
        if op.kind is OpKind.GUEST_MIGRATE
        for h in (op.host, str(op.params["target"]))
    }
    if not hosts:
        return tuple(changes)
    ports = _Ports(actual, hosts)
    out = list(changes)
    touched: list[set[tuple[str, str]]] = []  # per change: the (host, vswitch) it changes
    arrivals: list[tuple[int, str, str]] = []  # (change index, host, vswitch) of each landing
    for index, change in enumerate(out):
        touches: set[tuple[str, str]] = set()
        landings: list[_Landing] = []
        target = ""
        operations = list(change.operations)
        for i, op in enumerate(operations):
            if landings and op.host == target:
                op = operations[i] = _moved_to(op, landings)
            if op.host not in hosts:
                continue
            if op.kind is OpKind.GUEST_MIGRATE:
                target = str(op.params["target"])
                landings = _migrate(ports, op, change, desired)
                switches = ports.vswitches(target, (str(op.params["name"]), False))
                touches |= {(target, v) for v in switches}
                arrivals += [(index, target, v) for v in sorted(switches)]
            else:
                touches |= _replay(ports, op, change)
        if landings:
            out[index] = replace(
                change,
                operations=tuple(operations),
                reasons=(*change.reasons, *_reasons(landings, target)),
            )
        touched.append(touches)
    return _pin_order(out, touched, arrivals)


def _migrate(ports: _Ports, op: Operation, change: Change, desired: DesiredState) -> list[_Landing]:
    """Move the guest's NICs to the target as the runtime does; the ones that move port."""
    name, source, target = str(op.params["name"]), op.host, str(op.params["target"])
    nics = ports.held[source].pop((name, False), [])
    ports.held[source][(name, True)] = nics  # the Off (NR) copy keeps its ports
    ports.held[target].pop((name, True), None)  # migrating back re-registers that copy
    landed: list[_Nic] = []
    landings: list[_Landing] = []
    for index, nic in enumerate(nics):
        taken = ports.taken(target, nic.vswitch) | {
            n.port for n in landed if n.vswitch == nic.vswitch
        }
        port = landing_port(nic.port, taken)
        if port is None:
            raise PlanError(
                f"{change.address} cannot move to {target}: vswitch {nic.vswitch} has no "
                "free port there",
                detail="Free a port on the target's vswitch, or move the guest elsewhere.",
                location=Location(address=change.address, path="host"),
            )
        if port != nic.port:
            _check_not_pinned(desired, name, index, nic, target, ports, change)
            landings.append(
                _Landing(vswitch=nic.vswitch, index=index, mac=nic.mac, before=nic.port, after=port)
            )
        ports.landed[(target, nic.vswitch, port)] = change.address
        landed.append(replace(nic, port=port))
    ports.held[target][(name, False)] = landed
    return landings


def _check_not_pinned(
    desired: DesiredState,
    name: str,
    index: int,
    nic: _Nic,
    target: str,
    ports: _Ports,
    change: Change,
) -> None:
    want = desired.guests.get(name)
    pinned = want.nics[index] if want is not None and index < len(want.nics) else None
    if pinned is None or pinned.port != nic.port or pinned.vswitch != nic.vswitch:
        return
    holder = next(
        (
            owner[0]
            for owner, nics in ports.held[target].items()
            if any(n.vswitch == nic.vswitch and n.port == nic.port for n in nics)
        ),
        "another NIC",
    )
    raise PlanError(
        f"{change.address} cannot keep port {nic.port} of vswitch {nic.vswitch} on {target}: "
        f"{holder} uses it there",
        detail=f"Pin a port that is free on {target} (nics[{index}].port), or leave the port "
        "unset so the target gives the NIC a free one.",
        location=Location(address=change.address, path=f"nics[{index}].port"),
    )


def _moved_to(op: Operation, landings: Sequence[_Landing]) -> Operation:
    """A migrated guest's later operation on the target, with its NICs' new ports."""
    moved = {(landing.vswitch, landing.before): landing for landing in landings}
    if op.kind is OpKind.PORT_VLAN:
        landing = moved.get((str(op.params["vswitch"]), int(op.params["port"])))
        if landing is None:
            return op
        return replace(op, params={**op.params, "port": landing.after})
    if op.kind is not OpKind.GUEST_MODIFY:
        return op

    def statement(text: str) -> str:
        res = parse_resource(text)
        if not isinstance(res, NetworkResource) or res.port is None:
            return text
        landing = moved.get((res.vswitch, res.port))
        if landing is None or (res.mac is not None and res.mac != landing.mac):
            return text
        return replace(res, port=landing.after).format()

    return replace(
        op,
        params={
            **op.params,
            "add": [statement(t) for t in op.params.get("add", ())],
            "modify": [statement(t) for t in op.params.get("modify", ())],
        },
    )


def _reasons(landings: Sequence[_Landing], target: str) -> list[str]:
    return [
        f"its NIC on {landing.vswitch} gets port {landing.after} on {target}: "
        f"port {landing.before} is taken there"
        for landing in landings
    ]


def _replay(ports: _Ports, op: Operation, change: Change) -> set[tuple[str, str]]:
    """Apply one operation's effect on the ports of its host; the vswitches it changes."""
    held = ports.held[op.host]
    name = str(op.params.get("name", ""))
    if op.kind is OpKind.GUEST_DELETE:
        return {(op.host, n.vswitch) for n in held.pop((name, False), [])}
    if op.kind is OpKind.GUEST_REMOVE_STALE:
        return {(op.host, n.vswitch) for n in held.pop((name, True), [])}
    if op.kind is OpKind.GUEST_CREATE:
        nics = held[(name, False)] = []
        return _added(ports, op, change, nics, op.params.get("devices", ()))
    if op.kind is not OpKind.GUEST_MODIFY:
        return set()
    nics = held.setdefault((name, False), [])
    touched: set[tuple[str, str]] = set()
    for text in op.params.get("remove", ()):
        res = parse_resource(text)
        if isinstance(res, NetworkResource):
            gone = next((n for n in nics if n.named_by(res)), None)
            if gone is not None:
                nics.remove(gone)
                touched.add((op.host, gone.vswitch))
    for text in op.params.get("modify", ()):
        res = parse_resource(text)
        if not isinstance(res, NetworkResource):
            continue
        old = next((n for n in nics if n.named_by(res, modify=True)), None)
        if old is None:
            continue
        nics.remove(old)
        kept = old.port if res.vswitch == old.vswitch else None
        port = nic_port(res.port, kept, ports.taken(op.host, res.vswitch)) or 0
        _take(ports, op.host, res.vswitch, port, change)
        nics.append(replace(old, vswitch=res.vswitch, port=port))
        touched |= {(op.host, old.vswitch), (op.host, res.vswitch)}
    return touched | _added(ports, op, change, nics, op.params.get("add", ()))


def _added(
    ports: _Ports, op: Operation, change: Change, nics: list[_Nic], statements: Iterable[str]
) -> set[tuple[str, str]]:
    touched: set[tuple[str, str]] = set()
    for text in statements:
        res = parse_resource(text)
        if not isinstance(res, NetworkResource):
            continue
        port = nic_port(res.port, None, ports.taken(op.host, res.vswitch)) or 0
        _take(ports, op.host, res.vswitch, port, change)
        nics.append(_Nic(vswitch=res.vswitch, port=port, mac=res.mac, bus=res.bus, slot=res.slot))
        touched.add((op.host, res.vswitch))
    return touched


def _take(ports: _Ports, host: str, vswitch: str, port: int, change: Change) -> None:
    """Refuse a port a migrated NIC landed on earlier in the plan (and still holds)."""
    mover = ports.landed.get((host, vswitch, port))
    if mover is None or mover == change.address or port not in ports.taken(host, vswitch):
        return
    raise PlanError(
        f"{change.address} needs port {port} of vswitch {vswitch} on {host}, which "
        f"{mover} is given there when it moves in earlier in this plan",
        detail=f"Pin another port for {change.address}, or apply the two changes separately "
        f"(ivmctl apply --target {change.address} first).",
        location=Location(address=change.address),
    )


def _pin_order(
    changes: list[Change],
    touched: Sequence[set[tuple[str, str]]],
    arrivals: Sequence[tuple[int, str, str]],
) -> tuple[Change, ...]:
    """Edges between each arrival and the other changes of ports on its vswitch, in order."""
    deps: dict[int, set[str]] = {}
    for arrival, host, vswitch in arrivals:
        for index, touches in enumerate(touched):
            if index == arrival or (host, vswitch) not in touches:
                continue
            before, after = sorted((index, arrival))
            deps.setdefault(after, set()).add(changes[before].key)
    for index, keys in deps.items():
        change = changes[index]
        new = sorted(keys - set(change.depends_on))
        if new:
            changes[index] = replace(change, depends_on=(*change.depends_on, *new))
    return tuple(changes)
