"""The built-in emulator provider, registered like any third-party plugin (its hook is
in `providers/emulator_plugin.py`, so that commands that build no provider never load
this module).

It drives an `ivmctl.runtime` world only through the hpvm* command front end (through
an EmulatorTransport, in process or through the world's worker processes), exactly as a
provider for real hosts would over SSH. What only an emulator can do, provisioning a VM
Host with declared hardware, goes to the world directly.

Options (the `provider:` block of the configuration, then the environment):

* `path`: the world's SQLite file, relative to the configuration directory;
  default `.ivmctl/emulator.db`. `IVMCTL_EMULATOR` overrides it (relative to the
  current directory, as the `ivmctl emulator` commands read it).
* `latency`: seconds added to every command, to make demos feel real; default 0.
  `IVMCTL_EMULATOR_LATENCY` overrides it.
* `processes`: reader processes answering listings, beside one writer process for
  changes (`runtime/workers.py`); default automatic, 0 for none.
  `IVMCTL_EMULATOR_PROCESSES` overrides it.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivmctl import model
from ivmctl.errors import HostUnreachable, IvmctlError, ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.base import Capabilities, Step, StepResult
from ivmctl.providers.hpvm import HostPass, HpvmProvider, PickledHost, check_hardware
from ivmctl.providers.parsed_hosts import ParsedHosts
from ivmctl.providers.transport import EmulatorTransport
from ivmctl.rules import ONLINE_FIELDS, format_memory_arg, parse_memory_mb
from ivmctl.values import frozen

if TYPE_CHECKING:
    from ivmctl.runtime import World

DEFAULT_PATH = Path(".ivmctl") / "emulator.db"
ENV_PATH = "IVMCTL_EMULATOR"
ENV_LATENCY = "IVMCTL_EMULATOR_LATENCY"
ENV_PROCESSES = "IVMCTL_EMULATOR_PROCESSES"
OPTIONS = ("path", "latency", "processes")
# A refresh of this many hosts or more is read and parsed by reader processes
# (`processes` unset); for fewer, starting them costs more than they save (measured,
# docs/performance.md: at 300 hosts a warm plan took 0.64-0.68 s with them and 0.56-0.61 s
# without; at 500, 0.85 against 0.81 s warm but 1.28 against 1.52 s cold).
READER_POOL_MIN_HOSTS = 400
# An apply runs its changes on the writer process and its verification (`read_guest`)
# on reader processes in a world of this many hosts or more: an apply of 1,000 guests on
# 100 hosts took 5.7 s with readers only and 6.3 s without, before the writer; about
# 4.5 s with it (docs/performance.md, fifth round).
APPLY_POOL_MIN_HOSTS = 64
# The share of what the readers have not begun that a refresh takes back and reads in
# ivmctl's process (`WorkerPool.take_back`), again after each share until fewer than
# three are left: where the readers are slow (listings made afresh) ivmctl reads more.
# Not half at once: ivmctl also unpickles every host the readers parse, about a sixth
# of reading one; at 10,000 guests on two CPUs (one reader), a single take of a third
# and of a quarter measured alike, of a half 0.2 s slower (docs/performance.md).
CALLER_SHARE = 1 / 3
# host.provision is shown as the emulator CLI command that does the same by hand.
PROVISION_ARGV = ("ivmctl", "emulator", "host", "add")


@frozen
class EmulatorOptions:
    """Where the world lives and how slow its commands are."""

    path: Path
    latency: float = 0.0
    # reader processes answering listings, beside which one writer process answers
    # changes: None = automatic (for refreshes of READER_POOL_MIN_HOSTS hosts or more, one
    # reader per CPU beyond the first, which ivmctl reads on too; for applies in worlds of
    # APPLY_POOL_MIN_HOSTS, one per CPU; at most 4), 0 = never (every command runs in
    # ivmctl's process)
    processes: int | None = None


def _latency(value: Any, origin: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ProviderError(
            f"emulator latency {value!r} from {origin} is not a number of seconds",
            detail="Use a number such as 0 or 0.5.",
        )
    return seconds


def emulator_options(
    options: Mapping[str, Any], *, config_dir: Path, environ: Mapping[str, str]
) -> EmulatorOptions:
    """The emulator's options from the `provider:` block, overridden by the environment."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ProviderError(
            f"unknown emulator provider option {', '.join(map(repr, unknown))}",
            detail=f"The emulator provider takes: {', '.join(OPTIONS)}.",
        )
    if environ.get(ENV_PATH):
        path = Path(environ[ENV_PATH])
    else:
        raw = options.get("path", DEFAULT_PATH)
        if not isinstance(raw, str | Path) or not str(raw):
            raise ProviderError(
                f"emulator path {raw!r} is not a file name",
                detail="Set provider.path to a file such as .ivmctl/emulator.db.",
            )
        path = Path(raw) if Path(raw).is_absolute() else config_dir / raw
    if environ.get(ENV_LATENCY):
        latency = _latency(environ[ENV_LATENCY], ENV_LATENCY)
    else:
        latency = _latency(options.get("latency", 0.0), "provider.latency")
    processes: Any = options.get("processes")
    origin = "provider.processes"
    if environ.get(ENV_PROCESSES):
        origin = ENV_PROCESSES
        raw_processes = environ[ENV_PROCESSES]
        processes = int(raw_processes) if raw_processes.isdigit() else raw_processes
    if processes is not None and (
        isinstance(processes, bool) or not isinstance(processes, int) or not 0 <= processes <= 64
    ):
        raise ProviderError(
            f"emulator processes {processes!r} from {origin} is not a number of processes",
            detail="Use 0 (answer every command in this process) up to 64, or leave it out.",
        )
    return EmulatorOptions(path=path, latency=latency, processes=processes)


def _open_world(path: Path) -> World:
    from ivmctl.runtime import World  # imported on first use: `--help` never pays for it

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProviderError(
            f"cannot create the directory of the emulator world {path}: {exc.strerror}",
            detail="Set provider.path or IVMCTL_EMULATOR to a writable place.",
        ) from None
    try:
        return World.open(path, create=True)
    except IvmctlError as exc:
        raise ProviderError(
            f"cannot open the emulator world {path}: {exc.summary}", detail=exc.detail
        ) from exc


def provision_step(op: Operation) -> Step:
    """host.provision as `ivmctl emulator host add NAME --cores N --memory M ...`."""
    params = op.params
    try:
        name = str(params["name"])
        argv = [*PROVISION_ARGV, name,
                "--cores", str(int(params["cores"])),
                "--memory", format_memory_arg(int(params["memory_mb"])),
                "--nics", ",".join(params.get("nics") or ()),
                "--version", str(params["version"])]  # fmt: skip
        if params.get("mhz") is not None:
            argv += ["--mhz", str(int(params["mhz"]))]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProviderError(
            f"operation host.provision on {op.host}: bad or missing parameter {exc}",
            detail="The plan is malformed; compute it again with `ivmctl plan`.",
        ) from None
    return Step(host=name, argv=tuple(argv), description=f"provision emulated host {name}")


def _host_of(argv: tuple[str, ...]) -> model.Host:
    """The declared host a provision step describes (the inverse of provision_step)."""
    name, rest = argv[len(PROVISION_ARGV)], argv[len(PROVISION_ARGV) + 1 :]
    opts = dict(zip(rest[::2], rest[1::2], strict=True))
    return model.Host(
        name=name,
        version=opts["--version"],
        hardware=model.Hardware(
            cores=int(opts["--cores"]),
            memory_mb=parse_memory_mb(opts["--memory"]),
            nics=tuple(n for n in opts["--nics"].split(",") if n),
            mhz=int(opts["--mhz"]) if "--mhz" in opts else None,
        ),
    )


class EmulatorProvider(HpvmProvider):
    """Integrity VM Hosts emulated by `ivmctl.runtime`, provisioned on demand."""

    def __init__(self, options: EmulatorOptions, *, transport: EmulatorTransport | None = None):
        self.options = options
        self.emulator = transport or EmulatorTransport(
            lambda: _open_world(options.path), latency=options.latency
        )
        self._known_hosts: tuple[int, frozenset[str]] | None = None
        self._known_hosts_lock = threading.Lock()
        self._prefetched: _Prefetched | None = None
        self._apply_workers_checked = False
        super().__init__(self.emulator)

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(can_provision_hosts=True, online_fields=ONLINE_FIELDS)

    def host_facts(self, host: str) -> model.Host | None:
        """None for a host the world does not have; else read through `hpvmstatus -s`."""
        if not self.has_host(host):
            return None
        return super().host_facts(host)

    def has_host(self, host: str) -> bool:
        """From the names listed at this generation if there are any (a refresh asks for
        every host at one generation), else asked of the world alone: an apply changes
        the generation between any two provisions, and listing every host each time cost
        N² rows."""
        world = self.emulator.world
        known = self._known_hosts
        if known is not None and known[0] == world.generation:
            return host in known[1]
        return world.has_host(host)

    def _host_names(self) -> frozenset[str]:
        """The world's host names, listed once per runtime generation (a refresh through
        reader processes checks every host it asks for against them)."""
        world = self.emulator.world
        with self._known_hosts_lock:  # refresh reads hosts from several threads at once
            generation = world.generation
            known = self._known_hosts
            if known is None or known[0] != generation:
                known = (generation, frozenset(found.name for found in world.hosts()))
                self._known_hosts = known
            return known[1]

    def steps(self, operation: Operation) -> tuple[Step, ...]:
        if operation.kind is OpKind.HOST_PROVISION:
            return (provision_step(operation),)
        return super().steps(operation)

    def execute(self, step: Step) -> StepResult:
        if step.argv[: len(PROVISION_ARGV)] != PROVISION_ARGV:
            self._start_apply_workers()
            return super().execute(step)
        started = time.monotonic()
        try:
            host = _host_of(step.argv)
            existed = self.host_facts(host.name) is not None
            self.ensure_host(host)
        except (IvmctlError, KeyError, ValueError) as exc:
            return StepResult(step=step, exit_code=1, stderr=f"{exc}\n",
                              duration=time.monotonic() - started)  # fmt: skip
        said = "already has the declared hardware" if existed else "provisioned"
        return StepResult(step=step, exit_code=0, stdout=f"host {host.name} {said}\n",
                          duration=time.monotonic() - started)  # fmt: skip

    def ensure_host(self, host: model.Host) -> None:
        """Provision `host` with its declared hardware, or check an existing one."""
        facts = self.host_facts(host.name)
        if facts is not None:
            check_hardware(host, facts)
            return
        hardware = host.hardware
        if hardware is None:
            raise ProviderError(
                f"host {host.name} does not exist in the emulator and declares no hardware",
                detail="Declare its hardware (cores, memory, nics) so the emulator can "
                "provision it.",
            )
        extra: dict[str, Any] = {} if hardware.mhz is None else {"mhz": hardware.mhz}
        try:
            self.emulator.world.add_host(
                name=host.name,
                cores=hardware.cores,
                memory_mb=hardware.memory_mb,
                nics=tuple(hardware.nics),
                version=host.version,
                **extra,
            )
        except IvmctlError as exc:
            raise ProviderError(
                f"the emulator cannot provision host {host.name}: {exc.summary}",
                detail=exc.detail,
            ) from exc

    def generation(self) -> str:
        return str(self.emulator.world.generation)

    def prefetch(self, hosts: Sequence[str]) -> None:
        """Start reading and parsing `hosts` on reader processes now, so they answer while
        the caller works on (`Session` loads the guests meanwhile); the next `refresh`
        takes what they read, and reports the generation from before they started.

        Only where `refresh` itself would read through readers (enough hosts, no simulated
        waiting), and never for a world file that does not exist yet (a refused first plan
        must not create one). Reading changes nothing in the world but its command log.

        The hosts are asked *ahead*: one reader reads them while this process loads on
        the other CPU, and the refresh shares what is left among the readers
        (`WorkerPool.rebalance`)."""
        names = sorted(set(hosts))
        readers = self._readers_for(len(names))
        if not readers or not self.options.path.exists() or self.refresh_parallelism() != 1:
            return
        generation = self.generation()
        self.emulator.start_workers(readers)
        pending = self.emulator.submit_tasks(names, self._read_task(), ahead=True)
        if pending is not None:
            self._prefetched = _Prefetched(
                generation=generation, pending=dict(zip(names, pending, strict=True))
            )

    def refresh(self, hosts: Sequence[str]) -> model.ActualState:
        prefetched = self._prefetched
        self._start_workers(len(set(hosts)))
        try:
            actual = super().refresh(hosts)
        finally:
            self._prefetched = None  # a prefetch serves one refresh
            self.emulator.readers_idle()
        # what was prefetched is from before any change since: so is the generation
        return actual if prefetched is None else replace(actual, generation=prefetched.generation)

    def close(self) -> None:
        self._prefetched = None
        super().close()

    def read_guest(self, host: str, name: str) -> model.ActualGuest | None:
        """With reader processes and no simulated waiting, the guest is read *and parsed*
        by a reader (`ReadGuestOnReader`), as a refresh's hosts are: one round trip
        instead of two, and the listings' parsing on the reader's CPU, not in this
        process, which runs the apply's walk. Else, or if the reader died, read here."""
        self._start_apply_workers()
        if self.emulator.reader_processes and self.refresh_parallelism() == 1:
            asked = self.emulator.submit_task(host, ReadGuestOnReader(name))
            read = asked() if asked is not None else None
            if isinstance(read, GuestRead):
                return read.guest
        return super().read_guest(host, name)

    def _start_apply_workers(self) -> None:
        """Before an apply's first change or verification (provisions come first, so the
        world has its hosts by then): start the worker processes once if the world is
        large enough (`APPLY_POOL_MIN_HOSTS`)."""
        if not self._apply_workers_checked:  # once: the world's size decides
            self._apply_workers_checked = True
            self._start_workers(len(self._host_names()), apply=True)

    def _start_workers(self, hosts: int, *, apply: bool = False) -> None:
        """Start worker processes if `_readers_for` says so (later calls keep them, and
        may only add readers)."""
        processes = self._readers_for(hosts, apply=apply)
        if processes:
            self.emulator.start_workers(processes)

    def _readers_for(self, hosts: int, *, apply: bool = False) -> int:
        """How many reader processes to use for `hosts` hosts: `processes` if set, else
        from `READER_POOL_MIN_HOSTS` hosts for a refresh one per CPU beyond the first
        (this process reads its share too, `_read_all`), and from `APPLY_POOL_MIN_HOSTS`
        for an apply one per CPU (this process mostly waits for the changes); at most 4."""
        processes = self.options.processes
        cpus = os.cpu_count() or 1
        if processes is None and apply and hosts >= APPLY_POOL_MIN_HOSTS:
            processes = min(4, cpus)
        elif processes is None and not apply and hosts >= READER_POOL_MIN_HOSTS:
            processes = min(4, max(1, cpus - 1))
        return processes or 0

    def _read_task(self) -> ReadOnReader:
        return ReadOnReader(cache=None if self.parsed is None else self.parsed.path)

    def _read_all(self, names: Sequence[str]) -> list[HostPass]:
        """With reader processes and no simulated waiting, each host is read *and parsed*
        by a reader (`ReadOnReader`), as real hosts produce their listings on their own
        CPUs: this process unpickles the results (and stores new ones in the cache).
        Hosts a `prefetch` asked for are taken from it; the others are all asked for at
        once. Then, as this process would otherwise only wait, it takes back a share
        (`CALLER_SHARE`) of what the readers have not begun and reads it here, on its own
        world, as they do, and again until little is left. Results are taken in name
        order."""
        readers = self.emulator.reader_processes
        prefetched = self._prefetched.pending if self._prefetched is not None else {}
        if not readers or self.refresh_parallelism() != 1:
            for unused in prefetched.values():  # not expected: the world changed since
                _discard(unused)
            return super()._read_all(names)
        self.emulator.rebalance()  # from now on this process waits: readers share the rest
        known = self._host_names()
        rest = [name for name in names if name not in prefetched and name in known]
        asked = dict(prefetched)
        submitted = self.emulator.submit_tasks(rest, self._read_task())
        if submitted is not None:
            asked.update(zip(rest, submitted, strict=True))
        # a prefetch may have asked for hosts the world lacks, or this refresh does not
        wanted = {name for name in names if name in known}
        # while the readers go on, this process reads shares of what they have not
        # begun, and between shares takes what they had finished
        passes: dict[str, HostPass] = {}
        here: HpvmProvider | None = None
        while (taken := self.emulator.take_back(CALLER_SHARE)).hosts:
            here = here or self._here()
            for name in taken.hosts:  # its reader dropped it
                asked.pop(name, None)
                if name in wanted:
                    passes[name] = here._read_reachable_host(name)
            for name in taken.done:
                if name in wanted:
                    passes[name] = self._collected(name, asked.pop(name, None))
        for name in names:
            if name not in passes:
                passes[name] = (
                    self._collected(name, asked.pop(name, None)) if name in wanted else None
                )
        for unused in asked.values():  # asked for, not needed: let the readers move on
            _discard(unused)
        return [passes[name] for name in names]

    def _collected(self, name: str, waiting: Callable[[], object | None] | None) -> HostPass:
        """The pass of a host asked of a reader (read here if the reader could not be
        asked, `waiting` None, or gave nothing a host's pass is made of)."""
        read = waiting() if waiting is not None else None
        return self.received(
            name, read if isinstance(read, PickledHost | HostUnreachable) else None
        )

    def _here(self) -> HpvmProvider:
        """A provider that reads this process's world in this process (the reader
        processes' `ReadOnReader`, here), keeping parses in this provider's cache."""
        here = HpvmProvider(EmulatorTransport(lambda: self.emulator.world))
        here.parsed = self.parsed
        return here

    def refresh_parallelism(self) -> int:
        """One thread unless the world simulates waiting: reading the emulator is CPU
        work under one interpreter lock, and threads only contend for it (8 threads took
        3x as long as one for 1,000 hosts). Reader processes are kept busy by asking
        for the next hosts' listings ahead (`HpvmProvider._read_in_turn`), not by threads."""
        if self.emulator.latency or self.emulator.world.simulates_delays():
            return super().refresh_parallelism()
        return 1


@frozen
class _Prefetched:
    """Hosts asked for by `prefetch`, and the generation from before the first."""

    generation: str
    pending: Mapping[str, Callable[[], object | None]]


def _discard(pending: Callable[[], object | None]) -> None:
    """Collect a reply nobody needs, so its reader moves on (errors included)."""
    with contextlib.suppress(IvmctlError):
        pending()


@dataclass(frozen=True)
class ReadOnReader:
    """A reader process's task (`WorkerPool.submit_tasks`): read one host on the reader's
    own world and parse it there (`HpvmProvider.read_pickled`), with the parsed-hosts
    cache at `cache` (read only: the asking process stores what is new)."""

    cache: Path | None

    def __call__(self, world: World, host: str) -> PickledHost | HostUnreachable:
        return _reader_provider(world, self.cache).read_pickled(host)


@dataclass(frozen=True)
class GuestRead:
    """What `ReadGuestOnReader` found: the guest, or None when the host has none of that
    name (a reply of None says the reader died)."""

    guest: model.ActualGuest | None


@dataclass(frozen=True)
class ReadGuestOnReader:
    """A reader process's task: re-read guest `name` after a change on the reader's own
    world, and parse it there (`HpvmProvider.read_guest`)."""

    name: str

    def __call__(self, world: World, host: str) -> GuestRead:
        return GuestRead(_reader_provider(world, None).read_guest(host, self.name))


# a reader has one world: kept so the cache file is read once (a refresh's task passes the
# cache, a verification's none)
@functools.lru_cache(maxsize=2)
def _reader_provider(world: World, cache: Path | None) -> HpvmProvider:
    """The provider a reader process reads its world with."""
    provider = HpvmProvider(EmulatorTransport(lambda: world))
    if cache is not None:
        provider.parsed = ParsedHosts(cache)
    return provider


def create_provider(
    options: Mapping[str, Any], *, config_dir: Path, environ: Mapping[str, str]
) -> EmulatorProvider:
    """Build the emulator provider from the `provider:` options (ProviderFactory)."""
    return EmulatorProvider(emulator_options(options, config_dir=config_dir, environ=environ))
