"""make_plan: desired state + actual state + inventory -> Plan. Pure and deterministic.

1. Ownership: every address of desired, actual and the inventory is sorted into
   create, change (diff), adopt (declared, exists, not owned), delete (owned, no longer
   declared) or unmanaged (exists, neither declared nor owned: never touched).
2. Per object: vswitches here, guests in `classify` (diff, online vs needs-off,
   restart policy, migration), each with its reasons.
3. Structure: guests depend on the vswitches they need; vswitch deletes depend on the
   guests that stop using them.
4. Capacity: `capacity.order_changes` replays everything against each affected host
   and puts the changes in an order no host refuses.
5. Targets (`--target`) keep the targeted changes and what they depend on;
   refresh-only keeps no change and reports every difference as drift.

No I/O, no clock, no randomness: the same input gives the same Plan, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from ivmctl.collector import collector_paused
from ivmctl.errors import InsufficientResources, IvmctlError, Location, PlanError, RuleViolation
from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Guest,
    Host,
    VSwitch,
    guest_address,
    host_address,
    vswitch_address,
)
from ivmctl.plan.capacity import CapacityModel, check_final_fit, order_changes
from ivmctl.plan.classify import (
    GuestContext,
    GuestOutcome,
    PortAllocator,
    demand_of,
    is_ignored,
    plan_change,
    plan_create,
    plan_delete,
    rule_name,
    unchanged,
    unchanged_outcome,
)
from ivmctl.plan.diff import diff_guest
from ivmctl.plan.model import (
    Action,
    Change,
    ChangeHow,
    FieldChange,
    Inventory,
    Operation,
    OpKind,
    Plan,
)
from ivmctl.plan.ports import settle_ports
from ivmctl.plan.views import (
    actual_guest_view,
    actual_power,
    guest_view,
    lazy_actual_guest_view,
    lazy_guest_view,
    vswitch_view,
)
from ivmctl.rules import LOCALNET, ChangeKind, Demand, HostCapacity, field_change_kind

__all__ = ["Inventory", "make_plan"]


@dataclass(kw_only=True)
class _Builder:
    """Collects the plan's parts while the objects are classified."""

    changes: list[Change] = field(default_factory=list)
    unmanaged: list[str] = field(default_factory=list)
    drift: list[FieldChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    errors: list[IvmctlError] = field(default_factory=list)
    alternatives: dict[str, tuple[Operation, ...]] = field(default_factory=dict)
    restart_hints: dict[str, str] = field(default_factory=dict)
    host_vswitches: dict[str, frozenset[str]] = field(default_factory=dict)  # declared


def make_plan(
    desired: DesiredState,
    actual: ActualState,
    inventory: Inventory,
    *,
    allow_restart: frozenset[str] = frozenset(),
    targets: frozenset[str] = frozenset(),
    refresh_only: bool = False,
    state_serial: int = 0,
    state_lineage: str = "",
) -> Plan:
    """Plan the changes that take `actual` to `desired`; raises PlanError when none is safe."""
    with collector_paused():
        return _make_plan(
            desired,
            actual,
            inventory,
            allow_restart=allow_restart,
            targets=targets,
            refresh_only=refresh_only,
            state_serial=state_serial,
            state_lineage=state_lineage,
        )


def _make_plan(
    desired: DesiredState,
    actual: ActualState,
    inventory: Inventory,
    *,
    allow_restart: frozenset[str],
    targets: frozenset[str],
    refresh_only: bool,
    state_serial: int,
    state_lineage: str,
) -> Plan:
    out = _Builder(host_vswitches={n: h.usable_vswitches() for n, h in desired.hosts.items()})
    versions = _check_hosts(desired, actual, out)
    if refresh_only:
        return _refresh_only(desired, actual, inventory, out, state_serial, state_lineage)
    ports = _seed_ports(desired, actual)
    stale = _stale_copies(desired, actual, inventory, out)
    files = _FilesInUse(actual)
    _plan_vswitches(desired, actual, inventory, out)
    for name in sorted({*desired.guests, *actual.guests, *_owned_guests(inventory)}):
        try:
            _plan_guest(
                name, desired, actual, inventory, out, ports, versions, stale, files, allow_restart
            )
        except IvmctlError as exc:
            out.errors.append(exc)
    changes = _structural_edges(out.changes, desired, actual, files, out)
    _raise_errors(out.errors)
    model = _capacity_model(desired, actual, changes, out, inventory)
    check_final_fit(sorted(model.hosts), model)  # the model holds the affected hosts only
    ordered = order_changes(
        changes, model, alternatives=out.alternatives, restart_hints=out.restart_hints
    ).changes
    if targets:
        ordered = _targeted(ordered, targets, out)
    ordered = settle_ports(ordered, desired, actual)
    return Plan(
        changes=ordered,
        unmanaged=tuple(sorted(set(out.unmanaged))),
        drift=tuple(out.drift),
        warnings=tuple(out.warnings),
        config_digest=desired.digest,
        runtime_generation=actual.generation,
        state_serial=state_serial,
        state_lineage=state_lineage,
    )


def _raise_errors(errors: list[IvmctlError]) -> None:
    if not errors:
        return
    if len(errors) == 1:
        error = errors[0]
        if isinstance(error, PlanError):
            raise error
        raise PlanError(error.summary, detail=error.detail, location=error.location)
    raise PlanError(
        f"{len(errors)} problems prevent a plan",
        detail="\n".join(str(e) for e in errors),
        location=errors[0].location,
    )


def _location(desired: DesiredState, address: str, path: str | None = None) -> Location:
    known = desired.sources.get(address)
    if known is None:
        return Location(address=address, path=path)
    return replace(known, address=address, path=path)


# --------------------------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------------------------


def _check_hosts(desired: DesiredState, actual: ActualState, out: _Builder) -> dict[str, str]:
    """Versions per host (the runtime's when known); a declared host must exist."""
    versions: dict[str, str] = {}
    for name in sorted(desired.hosts):
        want = desired.hosts[name]
        have = actual.hosts.get(name)
        if have is None:
            out.errors.append(
                PlanError(
                    f"host {name} is declared but the runtime does not have it",
                    detail="Check the host name and that the provider can reach it.",
                    location=_location(desired, host_address(name)),
                )
            )
            versions[name] = want.version
            continue
        versions[name] = have.version
        if have.version != want.version:
            out.warnings.append(
                f"host.{name}: declared Integrity VM {want.version}, runtime has {have.version}; "
                "ivmctl plans with the runtime's version"
            )
        if want.hardware and have.hardware and _hardware_differs(want, have):
            out.warnings.append(
                f"host.{name}: declared hardware differs from the runtime's; ivmctl does not "
                "change hardware and plans with what the runtime has"
            )
    for name in sorted(actual.hosts):
        if name not in desired.hosts:
            versions[name] = actual.hosts[name].version
            out.unmanaged.append(host_address(name))
    return versions


def _hardware_differs(want: Host, have: Host) -> bool:
    """Declared hardware that the runtime's contradicts (undeclared NICs or speed never do)."""
    w, h = want.hardware, have.hardware
    if w is None or h is None:
        return False
    return (
        (w.cores, w.memory_mb) != (h.cores, h.memory_mb)
        or (bool(w.nics) and not set(w.nics) <= set(h.nics))
        or (w.mhz is not None and w.mhz != h.mhz)
    )


# --------------------------------------------------------------------------------------------
# Seeds: ports, files, Off (NR) copies
# --------------------------------------------------------------------------------------------


def _all_actual(actual: ActualState) -> Iterable[ActualGuest]:
    yield from (actual.guests[n] for n in sorted(actual.guests))
    yield from (actual.not_runnable[k] for k in sorted(actual.not_runnable))


def _seed_ports(desired: DesiredState, actual: ActualState) -> PortAllocator:
    return PortAllocator(
        seed=lambda: _ports_in_use(desired, actual), landings=lambda: _landings(desired, actual)
    )


def _landings(desired: DesiredState, actual: ActualState) -> Iterator[tuple[str, str]]:
    """(target host, vswitch) per NIC of every guest that moves, by guest name."""
    moving = sorted(
        (name, want.host)
        for name, want in desired.guests.items()
        if name in actual.guests and want.host != actual.guests[name].guest.host
    )
    for name, target in moving:  # landings first: see PortAllocator.reserve_landing
        for nic in actual.guests[name].guest.nics:
            yield target, nic.vswitch


def _ports_in_use(
    desired: DesiredState, actual: ActualState
) -> Iterable[tuple[str, str, int | None]]:
    for host_name in sorted(actual.hosts):
        for vsw in actual.hosts[host_name].vswitches.values():
            for port in vsw.port_vlans:
                yield host_name, vsw.name, port
    for item in _all_actual(actual):
        for nic in item.guest.nics:
            yield item.guest.host, nic.vswitch, nic.port
            moving_to = desired.guests.get(item.guest.name)
            if moving_to is not None and moving_to.host != item.guest.host:
                yield moving_to.host, nic.vswitch, nic.port  # where it lands if it is free
    for guest in desired.guests.values():
        for nic in guest.nics:
            yield guest.host, nic.vswitch, nic.port


def _files_in_use(actual: ActualState) -> dict[str, frozenset[str]]:
    paths: dict[str, set[str]] = {}
    for item in _all_actual(actual):
        for disk in (*item.guest.disks, *item.guest.dvds):
            paths.setdefault(item.guest.host, set()).add(disk.path)
    return {h: frozenset(p) for h, p in paths.items()}


class _FilesInUse(Mapping[str, frozenset[str]]):
    """`_files_in_use(actual)`, read on first use: only creations and device changes ask."""

    def __init__(self, actual: ActualState) -> None:
        self._actual = actual
        self._paths: dict[str, frozenset[str]] | None = None

    def _loaded(self) -> dict[str, frozenset[str]]:
        if self._paths is None:
            self._paths = _files_in_use(self._actual)
        return self._paths

    def __getitem__(self, host: str) -> frozenset[str]:
        return self._loaded()[host]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


def _stale_copies(
    desired: DesiredState, actual: ActualState, inventory: Inventory, out: _Builder
) -> dict[str, tuple[str, ...]]:
    """Per guest name, the hosts with an Off (NR) copy ivmctl may remove."""
    found: dict[str, list[str]] = {}
    for host, name in sorted(actual.not_runnable):
        address = guest_address(name)
        live = actual.guests.get(name)
        if live is not None and live.guest.host == host:
            continue  # the runtime lists it twice; the runnable entry wins
        if address in inventory.owned or name in desired.guests:
            found.setdefault(name, []).append(host)
        else:
            out.warnings.append(
                f"{address}: an Off (NR) copy lingers on {host}; ivmctl does not own it "
                "and leaves it alone"
            )
    return {n: tuple(h) for n, h in found.items()}


def _owned_guests(inventory: Inventory) -> list[str]:
    """The owned guests' names, in no order (the caller sorts them with the others)."""
    return [a.removeprefix("guest.") for a in inventory.owned if a.startswith("guest.")]


# --------------------------------------------------------------------------------------------
# Vswitches
# --------------------------------------------------------------------------------------------


def _plan_vswitches(
    desired: DesiredState, actual: ActualState, inventory: Inventory, out: _Builder
) -> None:
    for host in sorted({*desired.hosts, *actual.hosts}):
        want: Mapping[str, VSwitch] = desired.hosts[host].vswitches if host in desired.hosts else {}
        have_host: Host | None = actual.hosts.get(host)
        have: Mapping[str, VSwitch] = have_host.vswitches if have_host else {}
        for name in sorted({*want, *have}):
            address = vswitch_address(host, name)
            if name == LOCALNET:
                continue
            w, h = want.get(name), have.get(name)
            owned = address in inventory.owned
            if w is not None and h is None:
                if have_host is None:
                    continue
                out.changes.append(
                    Change(
                        address=address,
                        action=Action.CREATE,
                        host=host,
                        after=vswitch_view(w),
                        reasons=(
                            "declared but not on the host: it will be created and booted "
                            + (f"on {w.nic}" if w.nic else "as a host-local vswitch"),
                        ),
                        operations=(
                            Operation(
                                kind=OpKind.VSWITCH_CREATE,
                                host=host,
                                params={"name": name, "nic": w.nic},
                            ),
                        ),
                    )
                )
            elif w is None and h is not None:
                if not owned:
                    out.unmanaged.append(address)
                    continue
                if address in inventory.prevent_destroy:
                    out.errors.append(_prevent_destroy_error(desired, address))
                    continue
                out.changes.append(
                    Change(
                        address=address,
                        action=Action.DELETE,
                        host=host,
                        before=vswitch_view(h, actual=True),
                        reasons=("in the state but no longer declared: it will be deleted",),
                        operations=(
                            Operation(kind=OpKind.VSWITCH_DELETE, host=host, params={"name": name}),
                        ),
                    )
                )
            elif w is not None and h is not None:
                out.changes.append(_vswitch_change(w, h, owned=owned))
                if h.state != "Up":
                    out.warnings.append(
                        f"{address} is {h.state}; guests started while it is down may not "
                        "claim their AVIO vNICs (boot it with hpvmnet -b)"
                    )


def _vswitch_change(w: VSwitch, h: VSwitch, *, owned: bool) -> Change:
    address, host = w.address, w.host
    reasons: list[str] = []
    if not owned:
        reasons.append("exists on the host but is not in the state: it will be adopted")
    fields: tuple[FieldChange, ...] = ()
    ops: tuple[Operation, ...] = ()
    action = Action.NOOP if owned else Action.ADOPT
    if w.nic != h.nic:
        fields = (FieldChange(path="nic", before=h.nic, after=w.nic, how=ChangeHow.NEEDS_OFF),)
        ops = (
            Operation(kind=OpKind.VSWITCH_DELETE, host=host, params={"name": w.name}),
            Operation(kind=OpKind.VSWITCH_CREATE, host=host, params={"name": w.name, "nic": w.nic}),
        )
        reasons.append(
            f"its uplink changes from {h.nic or 'none'} to {w.nic or 'none'}, which no "
            "modification can do: it is deleted and created again"
        )
        action = Action.REPLACE if owned else Action.ADOPT
    elif owned:
        reasons.append("matches the configuration: nothing to do")
    return Change(
        address=address,
        action=action,
        host=host,
        before=vswitch_view(h, actual=True),
        after=vswitch_view(w),
        fields=fields,
        reasons=tuple(reasons),
        operations=ops,
    )


def _prevent_destroy_error(desired: DesiredState, address: str) -> PlanError:
    return PlanError(
        f"{address} is no longer declared, but prevent_destroy protects it from deletion",
        detail="Declare it again, or first apply it with lifecycle.prevent_destroy: false "
        "and then remove it from the configuration.",
        location=_location(desired, address),
    )


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------


def _plan_guest(
    name: str,
    desired: DesiredState,
    actual: ActualState,
    inventory: Inventory,
    out: _Builder,
    ports: PortAllocator,
    versions: Mapping[str, str],
    stale: Mapping[str, tuple[str, ...]],
    files: Mapping[str, frozenset[str]],
    allow_restart: frozenset[str],
) -> None:
    address = guest_address(name)
    want = desired.guests.get(name)
    have = actual.guests.get(name)
    owned = address in inventory.owned
    stale_hosts = stale.get(name, ())
    if want is None:
        if have is None and not stale_hosts:
            return  # owned, but gone from runtime and configuration: only the state forgets it
        if not owned:
            if have is not None:
                out.unmanaged.append(address)
            return
        if address in inventory.prevent_destroy:
            raise _prevent_destroy_error(desired, address)
        if have is None:
            first = actual.not_runnable[(stale_hosts[0], name)]
            outcome = GuestOutcome(
                action=Action.DELETE,
                host=stale_hosts[0],
                reasons=(
                    "in the state but no longer declared; only Off (NR) copies a migration "
                    "left behind remain, and they are removed",
                ),
                operations=tuple(
                    Operation(kind=OpKind.GUEST_REMOVE_STALE, host=h, params={"name": name})
                    for h in stale_hosts
                ),
            )
            out.changes.append(_guest_change(address, outcome, actual_guest_view(first), None))
            return
        outcome = plan_delete(have, stale_hosts)
        out.changes.append(_guest_change(address, outcome, actual_guest_view(have), None))
        return

    _check_guest_refs(want, desired, out.host_vswitches)
    if have is not None and unchanged(want, have, stale_hosts):
        # Most guests of a large fleet: no context, edits or second look are needed.
        outcome = unchanged_outcome(want.host, adopt=not owned)
        views = lazy_actual_guest_view(have), lazy_guest_view(want)  # rarely read: see LazyView
        out.changes.append(_guest_change(address, outcome, *views))
        return
    ctx = GuestContext(
        host_versions=versions,
        host_vswitches=out.host_vswitches,
        restart_allowed=want.lifecycle.restart == "allow" or address in allow_restart,
        restart_by="restart allowed by lifecycle.restart"
        if want.lifecycle.restart == "allow"
        else "restart allowed by --allow-restart",
        stale_hosts=stale_hosts,
        files_in_use=files,
        sources=desired.sources,
        address=address,
    )
    if have is None:
        outcome = plan_create(want, ctx, ports)
        if owned:
            outcome = replace(
                outcome,
                reasons=(
                    "in the state but missing from the runtime: it will be created again",
                    *outcome.reasons[1:],
                ),
            )
        out.changes.append(_guest_change(address, outcome, None, guest_view(want)))
        return
    after = guest_view(want)
    if want.host != have.guest.host and is_ignored("host", want.lifecycle.ignore_changes):
        stay = FieldChange(
            path="host", before=have.guest.host, after=want.host, how=ChangeHow.IGNORED
        )
        want = replace(want, host=have.guest.host)
        outcome = plan_change(want, have, ctx, ports, adopt=not owned)
        outcome = replace(outcome, fields=(stay, *outcome.fields), drift=(stay, *outcome.drift))
        if outcome.action in (Action.NOOP, Action.ADOPT) and not outcome.operations:
            outcome = replace(
                outcome,
                reasons=(
                    *(r for r in outcome.reasons if "nothing" not in r),
                    f"it runs on {have.guest.host}, not the declared {after['host']}, and "
                    "lifecycle.ignore_changes keeps it there: nothing to do",
                ),
            )
    else:
        outcome = plan_change(want, have, ctx, ports, adopt=not owned)
    change = _guest_change(address, outcome, actual_guest_view(have), after)
    out.changes.append(change)
    out.drift.extend(replace(f, address=address) for f in outcome.drift)
    if outcome.offline_alternative is not None:
        out.alternatives[change.key] = outcome.offline_alternative
    if outcome.restart_hint:
        out.restart_hints[change.key] = outcome.restart_hint


def _check_guest_refs(
    guest: Guest, desired: DesiredState, host_vswitches: Mapping[str, frozenset[str]]
) -> None:
    """The guest's host is declared, and so is each vswitch its NICs use there
    (`host_vswitches`: each declared host's, localnet included)."""
    # Locations are looked up only for an error: resolving one re-reads its file.
    vswitches = host_vswitches.get(guest.host)
    if vswitches is None:
        raise PlanError(
            f"guest.{guest.name} is placed on host {guest.host}, which is not declared",
            detail="Declare the host under hosts:, or place the guest on a declared host.",
            location=_location(desired, guest.address, "host"),
        )
    for i, nic in enumerate(guest.nics):
        if nic.vswitch not in vswitches:
            raise PlanError(
                f"guest.{guest.name} uses vswitch {nic.vswitch}, which host {guest.host} "
                "does not declare",
                detail=f"Declare it under hosts.{guest.host}.vswitches.",
                location=_location(desired, guest.address, f"nics[{i}].vswitch"),
            )


def _guest_change(
    address: str,
    outcome: GuestOutcome,
    before: Mapping[str, object] | None,
    after: Mapping[str, object] | None,
) -> Change:
    return Change(
        address=address,
        action=outcome.action,
        host=outcome.host,
        before=before,
        after=after,
        fields=outcome.fields,
        reasons=outcome.reasons,
        operations=outcome.operations,
    )


# --------------------------------------------------------------------------------------------
# Structure: vswitches before the guests that use them, deleted after them
# --------------------------------------------------------------------------------------------


def _uses(change: Change, host: str, vswitch: str, *, after: bool) -> bool:
    view = change.after if after else change.before
    if not view or view.get("host") != host:
        return False
    nics = view.get("nics") or []
    return any(isinstance(n, Mapping) and n.get("vswitch") == vswitch for n in nics)


def _structural_edges(
    changes: list[Change],
    desired: DesiredState,
    actual: ActualState,
    files: Mapping[str, frozenset[str]],
    out: _Builder,
) -> list[Change]:
    # Only changes that do something take part; a no-op neither waits nor is waited for.
    acting = [c for c in changes if c.operations]
    vswitch_changes = {c.address: c for c in acting if c.address.startswith("vswitch.")}
    guests = {c.address: c for c in acting if c.address.startswith("guest.")}
    deps: dict[str, set[str]] = {c.key: set(c.depends_on) for c in acting}
    # Guests that need a vswitch created (or re-created) on their host.
    for change in guests.values():
        view = change.after
        if not view:
            continue
        host = str(view.get("host"))
        moving = change.before is not None and change.before.get("host") != host
        nics = [
            *(view.get("nics") or []),
            *((change.before or {}).get("nics") or [] if moving else []),
        ]
        for nic in nics:
            address = vswitch_address(host, str(nic["vswitch"]))
            target = vswitch_changes.get(address)
            if target is not None and target.action is not Action.DELETE:
                deps[change.key].add(target.key)
    # A shared device new to a host: the first guest adds it and marks it shareable;
    # the others can only add it after that.
    shares = [
        (c, op) for c in guests.values() for op in c.operations if op.kind is OpKind.DEVICE_SHARE
    ]
    introducers: dict[tuple[str, str], list[str]] = {}
    for change, op in shares:
        path = str(op.params.get("path", ""))
        if path not in files.get(op.host, ()):
            introducers.setdefault((op.host, path), []).append(change.key)
    for keys in introducers.values():
        first, *rest = sorted(set(keys))
        for key in rest:
            deps[key].add(first)
    # Vswitches deleted (or re-created) after every guest that stops using them.
    deleted = [
        vsw
        for vsw in vswitch_changes.values()
        if vsw.action in (Action.DELETE, Action.REPLACE, Action.ADOPT)
        and any(op.kind is OpKind.VSWITCH_DELETE for op in vsw.operations)
    ]
    users: dict[tuple[str, str], list[str]] = {}
    for item in _all_actual(actual) if deleted else ():
        for nic in item.guest.nics:
            users.setdefault((item.guest.host, nic.vswitch), []).append(item.guest.name)
    for vsw in deleted:
        host, name = vsw.host, str((vsw.before or vsw.after or {}).get("name"))
        for guest_name in sorted(set(users.get((host, name), []))):
            address = guest_address(guest_name)
            user = guests.get(address)
            if vsw.action is not Action.DELETE:
                # hpvmnet cannot change an uplink in place, and a vswitch in use cannot be
                # deleted [R21][inf], so the replacement needs a vswitch nobody uses.
                out.errors.append(
                    PlanError(
                        f"{vsw.address} must be deleted and created again to change its "
                        f"uplink, but {address} uses it",
                        detail=f"Move the NICs of {address} to another vswitch first and "
                        "apply, or declare a new vswitch with the new uplink.",
                        location=_location(desired, vsw.address),
                    )
                )
                continue
            still = user is None or not user.operations or _uses(user, host, name, after=True)
            if user is not None and user.action is Action.DELETE:
                still = False
            if still:
                out.errors.append(
                    PlanError(
                        f"{vsw.address} cannot be deleted: {address} still uses it",
                        detail=f"Move {address}'s NICs to another vswitch, or delete the guest, "
                        "or keep the vswitch declared.",
                        location=_location(desired, vsw.address),
                    )
                )
            elif user is not None:
                deps[vsw.key].add(user.key)
    return [
        replace(c, depends_on=tuple(sorted(deps[c.key])))
        if c.operations and deps[c.key] != set(c.depends_on)
        else c
        for c in changes
    ]


# --------------------------------------------------------------------------------------------
# Capacity model
# --------------------------------------------------------------------------------------------


def _affected_hosts(changes: Iterable[Change]) -> set[str]:
    hosts: set[str] = set()
    for change in changes:
        for op in change.operations:
            if op.kind in (OpKind.GUEST_START, OpKind.GUEST_STOP, OpKind.GUEST_MODIFY):
                hosts.add(op.host)
            elif op.kind is OpKind.GUEST_MIGRATE:
                hosts.update({op.host, str(op.params["target"])})
    return hosts


def _effective(want: Guest, have: ActualGuest | None) -> Guest:
    """The guest as it will be configured: ignored fields keep the runtime's values."""
    if have is None or not want.lifecycle.ignore_changes:
        return want
    ignore = want.lifecycle.ignore_changes
    kept = have.guest
    return replace(
        want,
        host=kept.host if is_ignored("host", ignore) else want.host,
        vcpus=kept.vcpus if is_ignored("vcpus", ignore) else want.vcpus,
        memory_mb=kept.memory_mb if is_ignored("memory_mb", ignore) else want.memory_mb,
        entitlement=kept.entitlement
        if is_ignored("entitlement.min_pct", ignore)
        else want.entitlement,
        dynamic_memory=kept.dynamic_memory
        if is_ignored("dynamic_memory.max_mb", ignore)
        else want.dynamic_memory,
    )


def _capacity_model(
    desired: DesiredState,
    actual: ActualState,
    changes: list[Change],
    out: _Builder,
    inventory: Inventory,
) -> CapacityModel:
    affected = _affected_hosts(changes)
    hosts: dict[str, HostCapacity] = {}
    for name in sorted(affected):
        have = actual.hosts.get(name)
        hardware = (have.hardware if have else None) or (
            desired.hosts[name].hardware if name in desired.hosts else None
        )
        if hardware is None:
            out.warnings.append(
                f"host.{name}: hardware unknown; the plan cannot check its capacity"
            )
            continue
        hosts[name] = HostCapacity.empty(
            name=name, cores=hardware.cores, physical_memory_mb=hardware.memory_mb
        )
    if not hosts:  # nothing starts, stops or moves: a no-op plan replays nothing
        return CapacityModel(hosts={}, demands={}, migration_demands={}, final_running={})
    running = sorted(
        (g for g in actual.guests.values() if g.status.running and g.guest.host in hosts),
        key=lambda g: (g.guest.host, g.status.vm_number, g.guest.name),
    )
    for item in running:
        demand = demand_of(item.guest)
        try:
            hosts[item.guest.host] = hosts[item.guest.host].admit(demand)
        except (InsufficientResources, RuleViolation) as exc:
            out.warnings.append(
                f"host.{item.guest.host}: the running guests already exceed the model "
                f"({exc.summary}); the plan assumes guest.{item.guest.name} holds nothing"
            )
    demands: dict[str, Demand] = {}
    migration: dict[str, Demand] = {}
    final: dict[str, list[Demand]] = {h: [] for h in hosts}
    for name in sorted(desired.guests):
        current = actual.guests.get(name)
        if desired.guests[name].host not in hosts and (
            current is None or current.guest.host not in hosts
        ):
            continue  # only guests of the affected hosts are replayed
        guest = _effective(desired.guests[name], current)
        demands[name] = demand_of(guest)
        # An online migration moves the guest as it runs now; changes follow on the target.
        migration[name] = demand_of(current.guest if current else guest, migration=True)
        if guest.power == "on" and guest.host in final:
            final[guest.host].append(demands[name])
    for name in sorted(actual.guests):
        item = actual.guests[name]
        if item.guest.host not in hosts:
            continue
        demands.setdefault(name, demand_of(item.guest))
        migration.setdefault(name, demand_of(item.guest, migration=True))
        unmanaged = name not in desired.guests and guest_address(name) not in inventory.owned
        if unmanaged and item.status.running and item.guest.host in final:
            final[item.guest.host].append(demands[name])
    return CapacityModel(
        hosts=hosts,
        demands=demands,
        migration_demands=migration,
        current_demands={n: demand_of(g.guest) for n, g in actual.guests.items() if n in demands},
        final_running={h: tuple(d) for h, d in final.items()},
    )


# --------------------------------------------------------------------------------------------
# Targets and refresh-only
# --------------------------------------------------------------------------------------------


def _targeted(
    changes: tuple[Change, ...], targets: frozenset[str], out: _Builder
) -> tuple[Change, ...]:
    by_key = {c.key: c for c in changes}
    addresses = {c.address for c in changes}
    hosts = {host_address(c.host) for c in changes}  # host.X targets every change on X
    unknown = sorted(t for t in targets if t not in addresses and t not in hosts)
    if unknown:
        raise PlanError(
            "no object has the target address " + ", ".join(unknown),
            detail="Use an address the plan shows, e.g. guest.web01, vswitch.vmhost01.vswprod "
            "or host.vmhost01.",
            location=Location(address=unknown[0]),
        )
    keep: set[str] = set()
    todo = [c.key for c in changes if c.address in targets or host_address(c.host) in targets]
    while todo:
        key = todo.pop()
        if key in keep or key not in by_key:
            continue
        keep.add(key)
        todo.extend(by_key[key].depends_on)
        if by_key[key].phase:  # a guest stopped to make room must also be moved and restarted
            todo.append(by_key[key].address)
    out.warnings.append(
        "resource targeting is in effect: the plan covers only "
        + ", ".join(sorted(targets))
        + " and the changes they depend on; other changes wait for a full plan"
    )
    return tuple(c for c in changes if c.key in keep)


def _how(path: str, before: object, after: object) -> ChangeHow:
    if path in ("power", "host"):
        return ChangeHow.MOVE if path == "host" else ChangeHow.ONLINE
    if path.startswith(("disks", "dvds", "nics")):
        return ChangeHow.NEEDS_OFF
    try:
        kind = field_change_kind(rule_name(path))
    except RuleViolation:
        return ChangeHow.NEEDS_OFF
    return ChangeHow.ONLINE if kind is ChangeKind.ONLINE else ChangeHow.NEEDS_OFF


def _refresh_only(
    desired: DesiredState,
    actual: ActualState,
    inventory: Inventory,
    out: _Builder,
    state_serial: int,
    state_lineage: str,
) -> Plan:
    """No changes: every difference between configuration and runtime is reported as drift."""
    for name in sorted({*desired.guests, *actual.guests}):
        address = guest_address(name)
        want, have = desired.guests.get(name), actual.guests.get(name)
        if want is None and have is not None:
            if address in inventory.owned:
                out.warnings.append(f"{address} is in the runtime but no longer declared")
            else:
                out.unmanaged.append(address)
        elif have is None:
            out.warnings.append(f"{address} is declared but not in the runtime")
        elif want is not None:
            if want.host != have.guest.host:
                out.drift.append(
                    FieldChange(
                        address=address,
                        path="host",
                        before=have.guest.host,
                        after=want.host,
                        how=ChangeHow.MOVE,
                    )
                )
            for diff in diff_guest(want, have.guest, actual_power(have)):
                out.drift.append(
                    FieldChange(
                        address=address,
                        path=diff.path,
                        before=diff.before,
                        after=diff.after,
                        how=_how(diff.path, diff.before, diff.after),
                    )
                )
    for host in sorted(actual.hosts):
        want_host = desired.hosts.get(host)
        for vname in sorted(actual.hosts[host].vswitches):
            address = vswitch_address(host, vname)
            if want_host is None or vname not in want_host.vswitches:
                if address not in inventory.owned:
                    out.unmanaged.append(address)
                continue
            w, h = want_host.vswitches[vname], actual.hosts[host].vswitches[vname]
            if w.nic != h.nic:
                out.drift.append(
                    FieldChange(
                        address=address,
                        path="nic",
                        before=h.nic,
                        after=w.nic,
                        how=ChangeHow.NEEDS_OFF,
                    )
                )
    return Plan(
        unmanaged=tuple(sorted(set(out.unmanaged))),
        drift=tuple(out.drift),
        warnings=(*out.warnings, *(str(e) for e in out.errors)),
        config_digest=desired.digest,
        runtime_generation=actual.generation,
        state_serial=state_serial,
        state_lineage=state_lineage,
    )
