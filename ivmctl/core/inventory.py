"""What ivmctl owns, and bringing existing objects under its care: import, export, state.

* `import_object` adopts one declared object that already exists in the runtime: under
  the state lock it records ownership and changes nothing in the runtime. From then on
  the plan treats it as any owned object, so a difference shows as an ordinary change.
* `export_config` writes ivmctl/v1 YAML for what the runtime has (spec.export does the
  writing), so existing hosts can be brought under ivmctl: export, review, import.
* `state_records`, `state_record` and `forget` list, show and drop ownership records;
  `forget` leaves the runtime alone (the object becomes unmanaged).

No click, no rich: the CLI (cli/inventory.py) prints what these return.
"""

from __future__ import annotations

from collections.abc import Sequence

from ivmctl import model
from ivmctl.core.session import Session, view_digest
from ivmctl.errors import Location, ProviderError, StateError
from ivmctl.plan.classify import is_ignored
from ivmctl.plan.diff import diff_guest
from ivmctl.plan.views import guest_view, vswitch_view
from ivmctl.state import LocalBackend, ResourceRecord, State
from ivmctl.values import frozen


class ImportRefused(StateError):
    """`ivmctl import` cannot adopt the object (undeclared, already owned, not in the runtime)."""


@frozen
class Address:
    """A parsed object address: `guest.NAME` or `vswitch.HOST.NAME`."""

    kind: str  # guest | vswitch
    name: str
    host: str = ""  # vswitches only

    @property
    def text(self) -> str:
        if self.kind == "vswitch":
            return model.vswitch_address(self.host, self.name)
        return model.guest_address(self.name)


def parse_address(text: str) -> Address:
    """`guest.web01` or `vswitch.vmhost01.vswprod`; anything else is refused with an example."""
    kind, _, rest = text.partition(".")
    if kind == "guest" and rest and "." not in rest:
        return Address(kind="guest", name=rest)
    if kind == "vswitch":
        host, _, name = rest.partition(".")
        if host and name and "." not in name:
            return Address(kind="vswitch", host=host, name=name)
    raise ImportRefused(
        f"{text!r} is not the address of a guest or a vswitch",
        detail="Write guest.NAME (e.g. guest.web01) or vswitch.HOST.NAME "
        "(e.g. vswitch.vmhost01.vswprod). Hosts are never owned, so they are not imported.",
        location=Location(address=text),
    )


@frozen
class ImportResult:
    """What `import` recorded, and how the object differs from its configuration.

    `differences` are the dotted paths the next plan will change (ignored fields and a
    host kept by `ignore_changes` excluded); empty when the runtime already matches.
    """

    record: ResourceRecord
    differences: tuple[str, ...] = ()


def import_object(session: Session, text: str, *, lock_timeout: float = 0.0) -> ImportResult:
    """Adopt one declared, existing, not yet owned object into the state."""
    address = parse_address(text)
    desired, _ = session.load()
    _check_declared(session, desired, address)
    with session.lock(operation="import", timeout=lock_timeout):
        state = session.backend.read()
        if address.text in state.resources:
            raise ImportRefused(
                f"{address.text} is already owned by ivmctl",
                detail="There is nothing to import; `ivmctl state show "
                f"{address.text}` shows its record.",
                location=Location(address=address.text),
            )
        actual = _refresh(session, desired, state)
        if address.kind == "guest":
            record, differences = _guest_record(desired, actual, address)
        else:
            record, differences = _vswitch_record(desired, actual, address)
        session.backend.write(state.with_record(record))
    return ImportResult(record=record, differences=differences)


def _refresh(session: Session, desired: model.DesiredState, state: State) -> model.ActualState:
    hosts = sorted({*desired.hosts, *(r.host for r in state.resources.values())})
    return session.read_hosts(desired, hosts)


def _check_declared(session: Session, desired: model.DesiredState, address: Address) -> None:
    if address.kind == "guest":
        if address.name in desired.guests:
            return
        where = _runtime_host_of(session, desired, address.name)
        if where is None:
            raise ImportRefused(
                f"{address.text} is not declared in the configuration, and no declared host has it",
                detail="Declare it first, then import it. `ivmctl export --host HOST` prints "
                "the YAML of what host HOST has, to copy from.",
                location=Location(address=address.text),
            )
        hint = where
    else:
        host = desired.hosts.get(address.host)
        if host is not None and address.name in host.vswitches:
            return
        hint = address.host
    raise ImportRefused(
        f"{address.text} is not declared in the configuration",
        detail="Declare it first, then import it. `ivmctl export --host "
        f"{hint}` prints the YAML of what host {hint} has, to copy from.",
        location=Location(address=address.text),
    )


def _runtime_host_of(session: Session, desired: model.DesiredState, name: str) -> str | None:
    """Where an undeclared guest runs, to make the error's suggestion exact."""
    try:
        actual = session.read_hosts(desired, sorted(desired.hosts))
    except ProviderError:
        return None
    found = actual.guests.get(name)
    return found.guest.host if found else None


def _not_in_runtime(address: Address, where: str, detail: str) -> ImportRefused:
    return ImportRefused(
        f"{address.text} does not exist in the runtime ({where})",
        detail=detail,
        location=Location(address=address.text),
    )


def _guest_record(
    desired: model.DesiredState, actual: model.ActualState, address: Address
) -> tuple[ResourceRecord, tuple[str, ...]]:
    want = desired.guests[address.name]
    have = actual.guests.get(address.name)
    if have is None:
        copies = sorted(h for h, n in actual.not_runnable if n == address.name)
        where = (
            f"only an Off (NR) copy on {', '.join(copies)}" if copies else "on no refreshed host"
        )
        raise _not_in_runtime(
            address,
            where,
            "`ivmctl apply` creates a declared guest that does not exist; import is only "
            "for guests that are already there.",
        )
    ignore = want.lifecycle.ignore_changes
    power = "on" if have.status.running else "off"
    differences = [
        d.path for d in diff_guest(want, have.guest, power) if not is_ignored(d.path, ignore)
    ]
    if want.host != have.guest.host and not is_ignored("host", ignore):
        differences.insert(0, "host")
    record = ResourceRecord(
        address=address.text,
        host=have.guest.host,
        prevent_destroy=want.lifecycle.prevent_destroy,
        # A digest says "this configuration was applied"; only true when nothing differs,
        # so a pending difference is reported as a configuration change, not as drift.
        digest="" if differences else view_digest(guest_view(want)),
    )
    return record, tuple(differences)


def _vswitch_record(
    desired: model.DesiredState, actual: model.ActualState, address: Address
) -> tuple[ResourceRecord, tuple[str, ...]]:
    want = desired.hosts[address.host].vswitches[address.name]
    host = actual.hosts.get(address.host)
    have = host.vswitches.get(address.name) if host else None
    if have is None:
        where = f"not on host {address.host}" if host else f"host {address.host} not found"
        raise _not_in_runtime(
            address,
            where,
            "`ivmctl apply` creates a declared vswitch that does not exist; import is only "
            "for vswitches that are already there.",
        )
    differences = ("nic",) if want.nic != have.nic else ()
    record = ResourceRecord(
        address=address.text,
        host=address.host,
        digest="" if differences else view_digest(vswitch_view(want)),
    )
    return record, differences


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------


@frozen
class Exported:
    """The YAML text of an export and what it covers."""

    text: str
    hosts: tuple[str, ...]
    guests: tuple[str, ...]
    skipped: tuple[str, ...] = ()  # Off (NR) copies left out, as "NAME on HOST"


def export_config(session: Session, hosts: Sequence[str] = ()) -> Exported:
    """YAML for what the runtime has on `hosts` (default: every declared or owned host)."""
    from ivmctl.spec.export import export_text

    desired, _ = session.load()
    state = session.backend.read()
    names = sorted(set(hosts)) or sorted(
        {*desired.hosts, *(r.host for r in state.resources.values())}
    )
    if not names:
        raise ProviderError(
            "there is no host to export",
            detail="Name one with --host HOST, or declare the hosts under hosts:.",
        )
    actual = session.read_hosts(desired, names)
    missing = [n for n in names if n not in actual.hosts]
    if missing:
        raise ProviderError(
            f"host {', '.join(missing)} not found in the runtime",
            detail="Check the host name; `ivmctl status` lists the hosts the provider sees.",
            location=Location(address=model.host_address(missing[0])),
        )
    guests = [g for g in actual.guests.values() if g.guest.host in actual.hosts]
    skipped = tuple(f"{n} on {h}" for h, n in sorted(actual.not_runnable))
    header = (
        f"Exported by `ivmctl export` from host {', '.join(names)}.",
        "Runtime-chosen values (MAC, port, bus/slot, file sizes) are not pinned.",
    )
    text = export_text(
        [actual.hosts[n] for n in names], guests, provider=desired.provider, header=header
    )
    return Exported(
        text=text,
        hosts=tuple(names),
        guests=tuple(sorted(g.guest.name for g in guests)),
        skipped=skipped,
    )


# --------------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------------


def state_records(backend: LocalBackend) -> tuple[State, tuple[ResourceRecord, ...]]:
    """The state and its records, sorted by address."""
    state = backend.read()
    return state, tuple(state.resources[a] for a in sorted(state.resources))


def state_record(backend: LocalBackend, address: str) -> ResourceRecord:
    """The record of one owned address; a StateError names the owned ones otherwise."""
    state = backend.read()
    record = state.resources.get(address)
    if record is None:
        raise _not_owned(state, address)
    return record


def forget(backend: LocalBackend, address: str, *, lock_timeout: float = 0.0) -> ResourceRecord:
    """Drop ownership of `address` under the lock; the runtime is not touched."""
    with backend.lock(operation="state rm", timeout=lock_timeout):
        state = backend.read()
        record = state.resources.get(address)
        if record is None:
            raise _not_owned(state, address)
        backend.write(state.without(address))
    return record


def _not_owned(state: State, address: str) -> StateError:
    owned = sorted(state.resources)
    listing = ", ".join(owned[:10]) + (" ..." if len(owned) > 10 else "")
    return StateError(
        f"{address} is not in the state",
        detail=(f"ivmctl owns: {listing}." if owned else "ivmctl owns nothing in this directory.")
        + " `ivmctl state list` shows every owned address.",
        location=Location(address=address),
    )
