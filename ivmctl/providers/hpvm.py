"""The part of a provider that any Integrity VM Host shares: hpvm* commands over a transport.

HpvmProvider refreshes by running the listing commands and parsing their output, turns
operations into hpvm* steps (commands.py) and runs steps through its transport. What a
host is (version, hardware) and whether hosts can be provisioned depend on where the
hosts live, so subclasses may refine `host_facts` (which hosts exist), `ensure_host`
(provisioning) and `generation`: the emulator provider from its world, an SSH provider
from its inventory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from ivmctl import model
from ivmctl.collector import collector_paused
from ivmctl.errors import HostUnreachable, ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers import commands, parsers
from ivmctl.providers.base import Capabilities, Step, StepResult
from ivmctl.providers.parsed_hosts import (
    ENTRY,
    ListingsDigest,
    Parsed,
    ParsedHosts,
    pickled,
    unpickle,
)
from ivmctl.providers.transport import (
    CommandOutput,
    Pending,
    Transport,
    run_many,
    submit_many,
)
from ivmctl.rules import LOCALNET, ONLINE_FIELDS
from ivmctl.values import frozen

REFRESH_PARALLELISM = 8  # hosts read at once
PIPELINE = 8  # hosts whose first listings are asked for ahead, when read in one thread
# What a refresh asks each host first (one round trip); the port tables of its vswitches
# follow in a second.
HOST_LISTINGS: tuple[tuple[str, ...], ...] = (
    ("hpvmstatus", "-s"),
    ("hpvmnet",),
    ("hpvmdevmgmt", "-l", "all"),
    ("hpvmstatus", "-M"),
    ("hpvmstatus", "-X"),
)


def port_tables(vswitches: Iterable[str]) -> list[tuple[str, ...]]:
    """The listings of the port tables of `vswitches` (a refresh's second round trip)."""
    return [("hpvmnet", "-S", vswitch) for vswitch in vswitches]


# A read (hpvmstatus, hpvmnet listings, hpvmdevmgmt -l) changes nothing, so when the
# connection fails (exit 255, as ssh reports it) it is safe to try again after these
# pauses. Steps (creations, migrations, ...) are never retried.
READ_RETRY_PAUSES = (0.2, 0.5)
EXIT_CONNECTION_FAILED = 255
# What reading a host gives: its parse, the error when it did not answer, or None when
# there is no such host.
HostPass = Parsed | HostUnreachable | None


@frozen
class PickledHost:
    """A host read and parsed by another process (`HpvmProvider.read_pickled`)."""

    first: bytes  # the digests `parsed_hosts` stores it under
    key: bytes
    data: bytes  # `parsed_hosts.pickled`
    stored: bool  # taken from the cache as it was: nothing new to store


class HpvmProvider:
    """Refresh, steps and execution for VM Hosts reached through a Transport."""

    def __init__(
        self, transport: Transport, *, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.transport = transport
        self._sleep = sleep
        self.parsed: ParsedHosts | None = None  # see use_cache

    # -- contract ---------------------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(can_provision_hosts=False, online_fields=ONLINE_FIELDS)

    def steps(self, operation: Operation) -> tuple[Step, ...]:
        if operation.kind is OpKind.HOST_PROVISION:
            raise ProviderError(
                f"{type(self).__name__} cannot provision host {operation.params.get('name')}",
                detail="Install the VM Host, then plan again; only the emulator provisions.",
            )
        return commands.steps_for(operation)

    def execute(self, step: Step) -> StepResult:
        output = self.transport.run(step.host, step.argv)
        return StepResult(
            step=step,
            exit_code=output.exit_code,
            stdout=output.stdout,
            stderr=output.stderr,
            duration=output.duration,
        )

    def refresh(self, hosts: Sequence[str]) -> model.ActualState:
        generation = self.generation()
        found_hosts: dict[str, model.Host] = {}
        guests: dict[str, model.ActualGuest] = {}
        where: dict[str, str] = {}
        not_runnable: dict[tuple[str, str], model.ActualGuest] = {}
        unreachable: dict[str, str] = {}
        names = sorted(set(hosts))
        # Hosts are read in parallel (one pass each, as over one SSH connection per host)
        # and combined in name order, so the result never depends on timing.
        with collector_paused():  # tens of thousands of parsed objects, no cycles
            passes = self._read_all(names)
        for name, read in zip(names, passes, strict=True):
            if isinstance(read, HostUnreachable):
                unreachable[name] = f"{read.summary}. {read.detail}"
                continue
            if read is None:
                continue
            host, host_guests = read
            found_hosts[name] = host
            for actual in host_guests:
                guest = actual.guest
                if not actual.status.runnable:
                    not_runnable[(name, guest.name)] = actual
                elif guest.name in guests:
                    raise ProviderError(
                        f"guest {guest.name} is runnable on two hosts, {where[guest.name]} "
                        f"and {name}",
                        detail="Remove one copy (hpvmremove) or disable it "
                        "(hpvmmodify -x runnable_status=disabled) before planning.",
                    )
                else:
                    guests[guest.name] = actual
                    where[guest.name] = name
        if self.parsed is not None:
            self.parsed.save()
        return model.ActualState(
            hosts=found_hosts,
            guests=dict(sorted(guests.items())),
            not_runnable=dict(sorted(not_runnable.items())),
            generation=generation,
            unreachable=unreachable,
        )

    def read_guest(self, host: str, name: str) -> model.ActualGuest | None:
        """One guest again, in two round trips: the host's status and shared devices with
        the guest's devices, then the port tables of the vswitches its NICs are on."""
        argvs = (
            ("hpvmstatus", "-M"),
            ("hpvmdevmgmt", "-l", "all"),
            ("hpvmstatus", "-d", "-P", name),
        )
        outputs = self._outputs(host, argvs, submit_many(self.transport, host, argvs))
        status_text, shared_text = self._checked(host, argvs[:2], outputs[:2])
        status = parsers.machine_status_of(status_text, name)
        if status is None:
            return None  # and `hpvmstatus -d` said so too: not an error
        (listing,) = self._checked(host, argvs[2:], outputs[2:])
        devices = parsers.parse_device_listing(listing)
        used = sorted({nic.vswitch for nic in devices.network})
        details = self._run_many(host, *port_tables(used))
        vlans = {
            vswitch: parsers.parse_vswitch_detail(text).port_vlans
            for vswitch, text in zip(used, details, strict=True)
        }
        shared = parsers.shared_paths(parsers.parse_device_entries(shared_text))
        return parsers.actual_guest(status, devices, host=host, shared=shared, port_vlans=vlans)

    # -- what subclasses answer ---------------------------------------------------------------
    def host_facts(self, host: str) -> model.Host | None:
        """Name, version and hardware of a host (`hpvmstatus -s`), None when there is none.

        Subclasses that know their inventory return None for hosts outside it; here a
        host that cannot be reached is a ProviderError.
        """
        facts = parsers.parse_server_resources(self._run(host, "hpvmstatus", "-s"))
        return replace(facts, name=host)

    def has_host(self, host: str) -> bool:
        """Whether `host` is one to read; a host that cannot be reached is a ProviderError
        when it is read. Subclasses that know their inventory answer False for others."""
        return True

    def ensure_host(self, host: model.Host) -> None:
        facts = self.host_facts(host.name)
        if facts is None:
            raise ProviderError(
                f"host {host.name} does not exist or cannot be reached",
                detail="This provider cannot provision hosts; install it, or fix its name.",
            )
        check_hardware(host, facts)

    def generation(self) -> str:
        return ""

    def refresh_parallelism(self) -> int:
        """How many hosts to read at once: reads mostly wait on the network."""
        return REFRESH_PARALLELISM

    def use_cache(self, cache_dir: Path) -> None:
        """Keep hosts' parsed listings under `cache_dir`, and parse again only the hosts
        whose listings changed since (`parsed_hosts`)."""
        self.parsed = ParsedHosts(cache_dir / ENTRY)

    def close(self) -> None:
        self.transport.close()

    # -- reading -------------------------------------------------------------------------------
    def _read_all(self, names: Sequence[str]) -> list[HostPass]:
        """Every host's pass, in the order of `names`: in threads (reads mostly wait on
        the network), or in this one when `refresh_parallelism` says 1. Subclasses whose
        hosts can parse their own listings (the emulator's reader processes) override it."""
        workers = max(1, min(self.refresh_parallelism(), len(names)))
        if workers == 1:
            return self._read_in_turn(names)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._read_reachable_host, names))

    def read_pickled(self, name: str) -> PickledHost | HostUnreachable:
        """One host read and parsed, the result pickled (`parsed_hosts.pickled`) with the
        keys to store it under: what a process reading for another one hands back. A
        stored parse of the same listings (`use_cache`) is handed back as it was stored,
        without unpickling it; the receiver checks it (`received`)."""
        try:
            texts = self._run_many(name, *HOST_LISTINGS)
            rows = parsers.parse_vswitch_list(texts[1])
            tables = self._run_many(name, *port_tables(row.name for row in rows))
        except HostUnreachable as unreachable:
            return unreachable
        digest = ListingsDigest(name, texts)
        key = digest.key(tables)
        data = self.parsed.data(name, key) if self.parsed is not None else None
        if data is not None:
            return PickledHost(first=digest.first, key=key, data=data, stored=True)
        parsed = _HostListings.parse(name, texts).host(rows, tables)
        return PickledHost(first=digest.first, key=key, data=pickled(parsed), stored=False)

    def received(self, name: str, read: PickledHost | HostUnreachable | None) -> HostPass:
        """A host's pass from what `read_pickled` handed back elsewhere (None: nothing
        was, e.g. the process died); the host is read here again when that is None or
        its bytes do not unpickle to a host's parse."""
        if isinstance(read, HostUnreachable):
            return read
        if read is None or (parsed := unpickle(read.data)) is None:
            return self._read_reachable_host(name)
        if self.parsed is not None and not read.stored:
            self.parsed.put_data(name, read.first, read.key, read.data)
        return parsed

    def _read_reachable_host(self, name: str, first: Pending | None = None) -> HostPass:
        """One host's pass; None for a host that is not there, the error for one that
        does not answer (its callers decide whether the rest of the fleet is enough)."""
        if first is None and not self.has_host(name):
            return None
        try:
            return self._read_host(name, first)
        except HostUnreachable as unreachable:
            return unreachable

    def _read_in_turn(self, names: Sequence[str]) -> list[HostPass]:
        """Hosts one after the other in this thread, with the first listings of the next
        PIPELINE hosts already asked for: a transport that answers later (reader
        processes) works on them while this thread parses."""
        asked: dict[str, Pending] = {}

        def ask(index: int) -> None:
            if index < len(names) and self.has_host(names[index]):
                asked[names[index]] = submit_many(self.transport, names[index], HOST_LISTINGS)

        for index in range(min(PIPELINE, len(names))):
            ask(index)
        passes: list[HostPass] = []
        for index, name in enumerate(names):
            ask(index + PIPELINE)
            first = asked.pop(name, None)
            passes.append(None if first is None else self._read_reachable_host(name, first))
        return passes

    def _run(self, host: str, *argv: str) -> str:
        """Run a read-only command; retried only when the connection itself failed."""
        (stdout,) = self._run_many(host, argv)
        return stdout

    def _run_many(self, host: str, *argvs: Sequence[str]) -> list[str]:
        """Run read-only commands in one round trip; their outputs, in order.

        Retried (all of them) only when the connection itself failed.
        """
        if not argvs:
            return []
        return self._finish(host, argvs, submit_many(self.transport, host, argvs))

    def _finish(self, host: str, argvs: Sequence[Sequence[str]], pending: Pending) -> list[str]:
        """The outputs of submitted listings, checked; retried (all of them, from the
        start) only when the connection itself failed."""
        return self._checked(host, argvs, self._outputs(host, argvs, pending))

    def _outputs(
        self, host: str, argvs: Sequence[Sequence[str]], pending: Pending
    ) -> list[CommandOutput]:
        """The outputs of submitted listings, unchecked; retried (all of them, from the
        start) only when the connection itself failed."""
        outputs = pending()
        for pause in READ_RETRY_PAUSES:
            if not any(o.exit_code == EXIT_CONNECTION_FAILED for o in outputs):
                break
            self._sleep(pause)
            outputs = run_many(self.transport, host, argvs)
        return outputs

    def _checked(
        self, host: str, argvs: Sequence[Sequence[str]], outputs: Sequence[CommandOutput]
    ) -> list[str]:
        """The standard outputs of listings; an error naming the first that failed."""
        for argv, output in zip(argvs, outputs, strict=True):
            if output.exit_code == EXIT_CONNECTION_FAILED:
                said = (output.stderr or output.stdout).strip() or "no output"
                raise HostUnreachable(
                    f"cannot reach host {host}: {' '.join(argv)} exited with "
                    f"{EXIT_CONNECTION_FAILED} after {1 + len(READ_RETRY_PAUSES)} tries",
                    detail=f"It said: {said}",
                )
            if output.exit_code != 0:
                said = (output.stderr or output.stdout).strip() or "no output"
                raise ProviderError(
                    f"cannot read host {host}: {' '.join(argv)} exited with {output.exit_code}",
                    detail=f"It said: {said}",
                )
        return [output.stdout for output in outputs]

    def _read_host(
        self, name: str, first: Pending | None = None
    ) -> tuple[model.Host, list[model.ActualGuest]]:
        """Everything about one host in two round trips: the listings (`first`, if they
        were already asked for), then the port tables of its vswitches (whose names the
        first listing gives). With a cache (`use_cache`), a host whose listings are those
        of a stored parse is not parsed; one whose first listings already differ is parsed
        while its port tables come, as without a cache."""
        if first is None:
            first = submit_many(self.transport, name, HOST_LISTINGS)
        texts = self._finish(name, HOST_LISTINGS, first)
        rows = parsers.parse_vswitch_list(texts[1])
        tables_argvs = port_tables(row.name for row in rows)
        second = submit_many(self.transport, name, tables_argvs)
        if self.parsed is None:
            listings = _HostListings.parse(name, texts)  # while the port tables come
            return listings.host(rows, self._finish(name, tables_argvs, second))
        digest = ListingsDigest(name, texts)
        hit_possible = self.parsed.may_hold(name, digest.first)
        # a host that cannot be a hit is parsed while its port tables come
        parsed = None if hit_possible else _HostListings.parse(name, texts)
        tables = self._finish(name, tables_argvs, second)
        key = digest.key(tables)
        found = self.parsed.get(name, key) if hit_possible else None
        if found is None:
            found = (parsed or _HostListings.parse(name, texts)).host(rows, tables)
            self.parsed.put(name, digest.first, key, found)
        return found


@frozen
class _HostListings:
    """A host's first listings (`HOST_LISTINGS`), parsed; the port tables complete it."""

    name: str
    facts: model.Host
    shared: frozenset[str]
    devices: Mapping[str, parsers.DeviceListing]
    statuses: Sequence[parsers.MachineStatus]

    @classmethod
    def parse(cls, name: str, texts: Sequence[str]) -> _HostListings:
        server_text, _, shared_text, status_text, devices_text = texts
        return cls(
            name=name,
            shared=parsers.shared_paths(parsers.parse_device_entries(shared_text)),
            devices=parsers.parse_xml_devices(devices_text),
            statuses=parsers.parse_machine_status(status_text),
            facts=parsers.parse_server_resources(server_text),
        )

    def host(
        self, rows: Sequence[parsers.VSwitchRow], tables: Sequence[str]
    ) -> tuple[model.Host, list[model.ActualGuest]]:
        """The host and its guests, with `tables` the port tables of the vswitches of
        `rows` (the `hpvmnet` listing)."""
        name = self.name
        details = {
            row.name: parsers.parse_vswitch_detail(text)
            for row, text in zip(rows, tables, strict=True)
        }
        vswitches = {
            row.name: model.VSwitch(
                host=name,
                name=row.name,
                nic=row.nic,
                state=row.state,
                port_vlans=details[row.name].port_vlans,
            )
            for row in rows
            if row.name != LOCALNET
        }
        vlans: Mapping[str, Mapping[int, int]] = {n: d.port_vlans for n, d in details.items()}
        guests = []
        for status in self.statuses:
            listing = self.devices.get(status.name)
            if listing is None:
                raise ProviderError(
                    f"cannot read host {name}: hpvmstatus -X does not list guest {status.name}, "
                    "which hpvmstatus -M does",
                    detail="The guest changed between the two listings; plan again.",
                )
            guests.append(
                parsers.actual_guest(
                    status, listing, host=name, shared=self.shared, port_vlans=vlans
                )
            )
        host = model.Host(
            name=name,
            version=self.facts.version,
            hardware=self.facts.hardware,
            vswitches=dict(sorted(vswitches.items())),
        )
        return host, guests


def check_hardware(declared: model.Host, actual: model.Host) -> None:
    """Raise ProviderError when a host's version or hardware differ from the declared ones.

    Only declared values are compared (an undeclared clock speed matches any).
    """
    differences: list[str] = []
    if declared.version and actual.version and declared.version != actual.version:
        differences.append(f"Integrity VM {actual.version}, declared {declared.version}")
    want, have = declared.hardware, actual.hardware
    if want is not None and have is not None:
        if want.cores != have.cores:
            differences.append(f"{have.cores} cores, declared {want.cores}")
        if want.memory_mb != have.memory_mb:
            differences.append(f"{have.memory_mb} MB of memory, declared {want.memory_mb}")
        if sorted(want.nics) != sorted(have.nics):
            differences.append(
                f"NICs {', '.join(have.nics) or 'none'}, declared {', '.join(want.nics) or 'none'}"
            )
        if want.mhz is not None and have.mhz is not None and want.mhz != have.mhz:
            differences.append(f"{have.mhz} MHz, declared {want.mhz}")
    if differences:
        raise ProviderError(
            f"host {declared.name} has {'; '.join(differences)}",
            detail="Hardware and the installed version cannot be changed by software: "
            "correct the host's declaration to match the machine.",
        )
