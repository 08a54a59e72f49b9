"""The emulator's public face: a World of VM Hosts that runs hpvm* command lines.

`World.execute(host, argv)` is what a provider calls instead of SSH. Each command runs in
one SQLite transaction; latency and hangs are slept before it, outside the transaction, so
a slow command never blocks the others. Starts on one host are serialised by a lock (only
one guest start at a time [R10]); a host takes part in one migration at a time.
"""

from __future__ import annotations

import getopt
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ivmctl.errors import EmulatorError, RuleViolation
from ivmctl.rules import LOCALNET, MEMORY_GRANULE_MB, limits_for, name_problem
from ivmctl.runtime.context import EXIT_ERROR, EXIT_UNREACHABLE, Ctx, Refused
from ivmctl.runtime.crashpoints import crash_point
from ivmctl.runtime.data import Host, all_hosts, host_by_name, update_host
from ivmctl.runtime.kinds import READ_ONLY, command_kind, is_read_only
from ivmctl.runtime.memo import KeptRow, Memo, keep
from ivmctl.runtime.reads import HostReads
from ivmctl.runtime.store import Store, meta_int, open_store, revise
from ivmctl.values import frozen

Clock = Callable[[], float]
Sleep = Callable[[float], None]
PENDING_LOG_LIMIT = 5000  # listings' log rows held back before they are written anyway


def _arguments(argv: Sequence[str]) -> list[str]:
    if not argv:
        raise EmulatorError("an empty command line cannot be executed")
    return [str(a) for a in argv]


@lru_cache(maxsize=4096)
def _logged_argv(args: tuple[str, ...]) -> str:
    """A command line as the log (and the kept listings) write it: JSON. A refresh logs
    the same few listings on every host (9 per host: 9,000 at 1,000 hosts); encoding each
    again was about 1 % of a reader's instructions for a host whose listings are kept."""
    return json.dumps(list(args))


def _text(lines: list[str]) -> str:
    """Output lines as printed: each ends with a newline."""
    return "\n".join(lines) + "\n" if lines else ""


def run_command(ctx: Ctx, args: Sequence[str]) -> None:
    """`commands.run`, imported on first use: a reader process whose listings are all
    kept (`memo.py`) never needs the commands, and they are most of its start-up."""
    from ivmctl.runtime import commands

    commands.run(ctx, args)


def _unreachable(host: str) -> CommandResult:
    return CommandResult(
        exit_code=EXIT_UNREACHABLE,
        stdout="",
        stderr=f"ssh: connect to host {host} port 22: Connection refused\n",
    )


@frozen
class CommandResult:
    """What an hpvm* command returned: exit status and its output, verbatim."""

    exit_code: int
    stdout: str
    stderr: str


@frozen
class HostInfo:
    """A VM Host's hardware and Integrity VM version."""

    name: str
    version: str
    cores: int
    memory_mb: int
    nics: tuple[str, ...]
    mhz: int


@frozen
class LogEntry:
    """One line of a host's command log [R45][R72]."""

    time: float  # seconds since the epoch, from the world's clock
    argv: tuple[str, ...]
    exit_code: int


@frozen
class FaultInfo:
    """The faults and latencies configured on one host."""

    host: str
    fail_starts: int
    abort_migrations: int
    unreachable: bool
    boot_delay: float
    latency: Mapping[str, float]  # command name (or "*") -> seconds added to every run
    hangs: Mapping[str, float]  # command name (or "*") -> seconds the next run hangs
    unpresented: tuple[str, ...]


@dataclass(frozen=True)
class PendingWrites:
    """Log rows of listings and listings to keep that a world has not written yet."""

    log: list[tuple[int, float, str, int]]
    kept: list[KeptRow]


class World:
    """A persistent world of emulated VM Hosts; safe to share between threads."""

    def __init__(
        self, store: Store, *, clock: Clock, sleep: Sleep, keep_listings: bool = True
    ) -> None:
        self._store = store
        self._clock = clock
        self._sleep = sleep
        self._keep_listings = keep_listings  # see memo.py
        self._guard = threading.Lock()
        self._start_locks: dict[str, threading.Lock] = {}
        self._migrating: set[str] = set()
        # log rows of listings, written with the next change (or on close)
        self._pending_log: list[tuple[int, float, str, int]] = []
        self._pending_kept: list[KeptRow] = []  # listings to keep, written with the log

    # --- opening -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        create: bool = True,
        *,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        keep_listings: bool = True,
    ) -> World:
        """Open the world at `path` (created when missing if `create`).

        With `keep_listings`, a listing asked for again in an unchanged world is given
        as it was made, not made again (`memo.py`); the output is the same either way.
        Raises EmulatorError when the file is missing (create=False), is not an emulator
        world or is corrupt (it is never overwritten), or has a newer schema version.
        """
        where = Path(path)
        open_store(where, create=create)
        return cls(Store(where), clock=clock, sleep=sleep, keep_listings=keep_listings)

    @property
    def path(self) -> Path:
        return self._store.path

    def close(self) -> None:
        # a busy world loses the listings' log entries, nothing else
        with suppress(EmulatorError):
            self.flush_log()
        self._store.close()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- hosts ---------------------------------------------------------------------------
    def add_host(
        self,
        *,
        name: str,
        cores: int,
        memory_mb: int,
        nics: Sequence[str] = ("lan0",),
        version: str = "6.3",
        mhz: int = 1600,
    ) -> HostInfo:
        """Provision a VM Host with its hardware; it starts with `localnet` only [R23]."""
        problem = name_problem(name)
        if problem:
            raise EmulatorError(f"invalid host name {name!r}: {problem}")
        limits_for(version)  # refuses an unknown version
        if cores < 1 or mhz < 1:
            raise EmulatorError("a host needs at least one core and a positive processor speed")
        if memory_mb < MEMORY_GRANULE_MB:
            raise EmulatorError(f"a host needs at least {MEMORY_GRANULE_MB} MB of memory")
        nic_list = list(dict.fromkeys(nics))
        bad = [n for n in nic_list if not (n.startswith("lan") and n[3:].isdigit())]
        if bad:
            raise EmulatorError(
                f"invalid NIC name(s) {', '.join(bad)}", detail="Name NICs lanN, e.g. lan0,lan1."
            )
        with self._store.transaction(revises=False) as conn:
            if host_by_name(conn, name) is not None:
                raise EmulatorError(
                    f"host {name!r} already exists in {self.path}",
                    detail="Remove it first or pick another name.",
                )
            cur = conn.execute(
                "INSERT INTO hosts (name, version, cores, memory_mb, mhz, nics, core_used) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    cores,
                    memory_mb,
                    mhz,
                    ",".join(nic_list),
                    ",".join("0" for _ in range(cores)),
                ),
            )
            conn.execute(
                "INSERT INTO vswitches (host_id, name, number, nic, state) "
                "VALUES (?, ?, 1, NULL, 'Up')",
                (cur.lastrowid, LOCALNET),
            )
            revise(conn, generation=True)
        return HostInfo(
            name=name,
            version=version,
            cores=cores,
            memory_mb=memory_mb,
            nics=tuple(nic_list),
            mhz=mhz,
        )

    def remove_host(self, name: str) -> None:
        """Remove a VM Host; refused while it has guests (Not Runnable copies included)."""
        with self._store.transaction(revises=False) as conn:
            host = self._host(conn, name)
            guests = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM guests WHERE host_id=? ORDER BY name", (host.id,)
                )
            ]
            if guests:
                raise EmulatorError(
                    f"host {name!r} still has {len(guests)} guest(s): {', '.join(guests[:5])}",
                    detail="Remove them with hpvmremove first.",
                )
            conn.execute("DELETE FROM hosts WHERE id=?", (host.id,))
            revise(conn, generation=True)

    def hosts(self) -> list[HostInfo]:
        return [
            HostInfo(
                name=h.name,
                version=h.version,
                cores=h.cores,
                memory_mb=h.memory_mb,
                nics=h.nics,
                mhz=h.mhz,
            )
            for h in all_hosts(self._store.conn())
        ]

    def has_host(self, name: str) -> bool:
        """Whether the world has a host called `name` (one indexed read, not a listing)."""
        return (
            self._store.conn().execute("SELECT 1 FROM hosts WHERE name=?", (name,)).fetchone()
            is not None
        )

    def simulates_delays(self) -> bool:
        """Whether any host has a latency or a pending hang configured."""
        row = (
            self._store.conn()
            .execute("SELECT EXISTS (SELECT 1 FROM latency) OR EXISTS (SELECT 1 FROM hangs)")
            .fetchone()
        )
        return bool(row[0])

    @property
    def generation(self) -> int:
        return meta_int(self._store.conn(), "generation")

    def log(self, host: str) -> list[LogEntry]:
        self.flush_log()
        conn = self._store.conn()
        found = self._host(conn, host)
        rows = conn.execute(
            "SELECT time, argv, exit_code FROM log WHERE host_id=? ORDER BY time, id", (found.id,)
        )
        return [LogEntry(time=r[0], argv=tuple(json.loads(r[1])), exit_code=r[2]) for r in rows]

    @staticmethod
    def _host(conn: sqlite3.Connection, name: str) -> Host:
        host = host_by_name(conn, name)
        if host is None:
            raise EmulatorError(
                f"no host {name!r} in the emulator world",
                detail="List hosts with: ivmctl emulator host list.",
            )
        return host

    # --- faults --------------------------------------------------------------------------
    def set_faults(
        self,
        host: str,
        *,
        fail_starts: int | None = None,
        abort_migrations: int | None = None,
        unreachable: bool | None = None,
        boot_delay: float | None = None,
        latency: Mapping[str, float] | None = None,
        hangs: Mapping[str, float] | None = None,
        unpresent: Sequence[str] = (),
        present: Sequence[str] = (),
        clear: bool = False,
    ) -> FaultInfo:
        """Configure fault injection on a host; `clear` first removes every fault."""
        with self._store.transaction() as conn:
            found = self._host(conn, host)
            if clear:
                update_host(conn, found.id, fail_starts=0, abort_migrations=0, unreachable=0)
                for table in ("latency", "hangs", "unpresented"):
                    conn.execute(f"DELETE FROM {table} WHERE host_id=?", (found.id,))
            values: dict[str, object] = {}
            if fail_starts is not None:
                values["fail_starts"] = max(0, fail_starts)
            if abort_migrations is not None:
                values["abort_migrations"] = max(0, abort_migrations)
            if unreachable is not None:
                values["unreachable"] = int(unreachable)
            if boot_delay is not None:
                values["boot_delay"] = max(0.0, boot_delay)
            if values:
                update_host(conn, found.id, **values)
            for table, items in (("latency", latency or {}), ("hangs", hangs or {})):
                for kind, seconds in items.items():
                    conn.execute(
                        f"DELETE FROM {table} WHERE host_id=? AND kind=?",
                        (found.id, command_kind(kind)),
                    )
                    if seconds > 0:
                        conn.execute(
                            f"INSERT INTO {table} (host_id, kind, seconds) VALUES (?, ?, ?)",
                            (found.id, command_kind(kind), seconds),
                        )
            for path in unpresent:
                conn.execute(
                    "INSERT OR IGNORE INTO unpresented (host_id, path) VALUES (?, ?)",
                    (found.id, path),
                )
            for path in present:
                conn.execute("DELETE FROM unpresented WHERE host_id=? AND path=?", (found.id, path))
        return self.faults(host)[0]

    def faults(self, host: str | None = None) -> list[FaultInfo]:
        conn = self._store.conn()
        hosts = [self._host(conn, host)] if host else all_hosts(conn)
        out = []
        for h in hosts:

            def table(name: str, host_id: int = h.id) -> dict[str, float]:
                return {
                    r[0]: r[1]
                    for r in conn.execute(
                        f"SELECT kind, seconds FROM {name} WHERE host_id=? ORDER BY kind",
                        (host_id,),
                    )
                }

            unpresented = tuple(
                r[0]
                for r in conn.execute(
                    "SELECT path FROM unpresented WHERE host_id=? ORDER BY path", (h.id,)
                )
            )
            out.append(
                FaultInfo(
                    host=h.name,
                    fail_starts=h.fail_starts,
                    abort_migrations=h.abort_migrations,
                    unreachable=h.unreachable,
                    boot_delay=h.boot_delay,
                    latency=table("latency"),
                    hangs=table("hangs"),
                    unpresented=unpresented,
                )
            )
        return out

    # --- commands ------------------------------------------------------------------------
    def execute(self, host: str, argv: Sequence[str]) -> CommandResult:
        """Run one hpvm* command line on `host`, as over SSH; never raises for a refusal.

        Raises EmulatorError only when `host` is not in the world or argv is empty.
        """
        args = _arguments(argv)
        kind = command_kind(args[0])
        reachable, delay = self._arrival(host, kind)
        if not reachable:
            return _unreachable(host)
        with self._serialised(host, kind, args) as refusal:
            if delay > 0:
                self._sleep(delay)
            return self._run(host, kind, args, refusal)

    def execute_many(self, host: str, argvs: Sequence[Sequence[str]]) -> list[CommandResult]:
        """Run several command lines on `host` in one session, as one SSH round trip.

        Listings (see `kinds.is_read_only`) share one read snapshot, so they see one
        consistent state; a batch with any other command runs each line through
        `execute`, in order. An unreachable host fails every line; the latencies of the
        lines add up.
        """
        lines = [_arguments(argv) for argv in argvs]
        if not all(is_read_only(args) for args in lines):
            return [self.execute(host, args) for args in lines]
        reachable, delays = self._host_answers(host)
        if not reachable:
            return [_unreachable(host) for _ in lines]
        if not delays:  # the usual case: one query for the batch, not one per line
            return self._read(host, lines)
        delay = 0.0
        for args in lines:
            reachable, wait = self._arrival(host, command_kind(args[0]))
            if not reachable:
                return [_unreachable(host) for _ in lines]
            delay += wait
        if delay > 0:
            self._sleep(delay)
        return self._read(host, lines)

    def grouped(self) -> AbstractContextManager[None]:
        """Commands run inside commit together as it ends, or none does if it raises;
        each one's own refusal still rolls back only itself (`Store.group`). For changes
        only: a listing inside would read the world as it was before the group."""
        return self._store.group()

    def _host_answers(self, host: str) -> tuple[bool, bool]:
        """(whether `host` answers, whether it has any latency or pending hang configured).

        Raises EmulatorError when `host` is not in the world."""
        row = (
            self._store.conn()
            .execute(
                "SELECT h.unreachable, EXISTS (SELECT 1 FROM latency WHERE host_id=h.id) "
                "OR EXISTS (SELECT 1 FROM hangs WHERE host_id=h.id) FROM hosts h WHERE h.name=?",
                (host,),
            )
            .fetchone()
        )
        if row is None:
            self._host(self._store.conn(), host)  # raises the "no host" error
        return not row[0], bool(row[1])

    def _arrival(self, host: str, kind: str) -> tuple[bool, float]:
        """(whether `host` answers, seconds a `kind` command takes to answer there).

        A pending hang is consumed here: it happens once, to whoever takes it.
        """
        conn = self._store.conn()
        # one read for reachability, latency and a pending hang, outside any transaction
        # (a command's own entry wins over '*'; primary-key lookups, no sorting: this
        # runs before every command)
        row = conn.execute(
            "SELECT h.id, h.unreachable, "
            "COALESCE((SELECT seconds FROM latency WHERE host_id=h.id AND kind=?1), "
            "         (SELECT seconds FROM latency WHERE host_id=h.id AND kind='*')), "
            "COALESCE((SELECT kind FROM hangs WHERE host_id=h.id AND kind=?1), "
            "         (SELECT kind FROM hangs WHERE host_id=h.id AND kind='*')), "
            "COALESCE((SELECT seconds FROM hangs WHERE host_id=h.id AND kind=?1), "
            "         (SELECT seconds FROM hangs WHERE host_id=h.id AND kind='*')) "
            "FROM hosts h WHERE h.name=?2",
            (kind, host),
        ).fetchone()
        if row is None:
            self._host(conn, host)  # raises the "no host" error
        host_id, unreachable, latency, hang_kind, hang = row
        if unreachable:
            return False, 0.0
        delay = float(latency or 0.0)
        if hang_kind is not None:
            with self._store.transaction() as txn:
                taken = txn.execute(
                    "DELETE FROM hangs WHERE host_id=? AND kind=?", (host_id, hang_kind)
                ).rowcount
            if taken:
                delay += float(hang)
        return True, delay

    @contextmanager
    def _serialised(self, host: str, kind: str, args: list[str]) -> Iterator[Refused | None]:
        """One start at a time per host; a host takes part in one migration at a time."""
        if kind == "hpvmstart":
            with self._guard:
                lock = self._start_locks.setdefault(host, threading.Lock())
            with lock:
                yield None
            return
        if kind != "hpvmmigrate":
            yield None
            return
        try:
            opts, _ = getopt.getopt(args[1:], "P:p:h:obDdsq")
        except getopt.GetoptError:
            opts = []
        target = next((v for o, v in opts if o == "-h"), None)
        involved = {host} | ({target} if target else set())
        with self._guard:
            busy = sorted(involved & self._migrating)
            if not busy:
                self._migrating |= involved
        if busy:
            guest = next((v for o, v in opts if o == "-P"), None) or "?"
            yield Refused(
                f"hpvmmigrate: ERROR ({guest}): A migration is already in progress on "
                f"VM Host '{busy[0]}'; only one migration per host at a time."
            )
            return
        start_lock = None
        if target and "-o" in {o for o, _ in opts}:
            # an incoming online migration holds the target's start lock [R10]
            with self._guard:
                start_lock = self._start_locks.setdefault(target, threading.Lock())
        try:
            if start_lock is not None:
                with start_lock:
                    yield None
            else:
                yield None
        finally:
            with self._guard:
                self._migrating -= involved

    def _run(self, host: str, kind: str, args: list[str], refusal: Refused | None) -> CommandResult:
        if refusal is None and is_read_only(args):
            (result,) = self._read(host, [args])
            return result
        # revised below, with the generation when the command changed something
        with self._store.transaction(revises=False) as conn:
            self._write_pending_log(conn)  # earlier listings first: the log stays in order
            self._forget_kept()  # made at the revision this transaction moves on from
            found = self._host(conn, host)
            ctx = Ctx(conn=conn, host=found, command=kind, now=self._clock())
            before = conn.total_changes
            conn.execute("SAVEPOINT command")
            try:
                if refusal is not None:
                    raise refusal
                try:
                    run_command(ctx, args)
                except RuleViolation as exc:  # a rule the handlers did not phrase themselves
                    raise Refused(f"{kind}: ERROR: {exc.summary}") from None
                conn.execute("RELEASE command")
                changed = conn.total_changes != before
                code = 0
            except Refused as refused:
                conn.execute("ROLLBACK TO command")
                conn.execute("RELEASE command")
                for keep in ctx.keep_on_failure:
                    keep(conn)
                changed = False  # consumed faults are not infrastructure changes
                ctx.err += refused.lines
                code = refused.exit_code
            changed = changed and kind not in READ_ONLY
            # the revision moves even for a refusal, which may have consumed a fault
            revise(conn, generation=changed)
            if changed:
                crash_point(f"inside {kind} on {host}: changed, not yet committed")
            conn.execute(
                "INSERT INTO log (host_id, time, argv, exit_code) VALUES (?, ?, ?, ?)",
                (found.id, ctx.now, _logged_argv(tuple(args)), code),
            )
        return CommandResult(
            exit_code=code,
            stdout=_text(ctx.out),
            stderr=_text(ctx.err),
        )

    def _read(self, host: str, lines: Sequence[list[str]]) -> list[CommandResult]:
        """Listings, on one read snapshot; their log rows are written with the next change.

        Reads change nothing, so they need neither the write lock nor a commit of their
        own; at fleet scale (thousands of listings per refresh) both were most of the
        cost, and refresh threads queued behind each other on the lock. A listing kept
        at the world's revision is given again (`memo.py`).
        """
        ran: list[tuple[str, CommandResult, float]] = []
        kept: list[KeptRow] = []
        with self._store.snapshot() as conn:
            found = self._host(conn, host)
            memo = Memo(conn, found.id) if self._keep_listings else None
            shared = HostReads(conn, found)  # what several listings read, read once
            for args in lines:
                argv, now = _logged_argv(tuple(args)), self._clock()
                answer = memo.get(argv, now) if memo is not None else None
                if answer is None:
                    answer = self._listing(conn, found, command_kind(args[0]), args, shared, now)
                    if memo is not None:
                        kept.append(memo.row(argv, now, answer))
                code, stdout, stderr = answer
                ran.append((argv, CommandResult(exit_code=code, stdout=stdout, stderr=stderr), now))
        self._note_listings(found.id, ran, kept)
        return [result for _, result, _ in ran]

    def _listing(
        self,
        conn: sqlite3.Connection,
        host: Host,
        kind: str,
        args: list[str],
        shared: HostReads,
        now: float,
    ) -> tuple[int, str, str]:
        """Run a read-only command on `conn`'s snapshot at `now`: (exit status, stdout,
        stderr)."""
        ctx = Ctx(conn=conn, host=host, command=kind, now=now, reads=shared)
        try:
            run_command(ctx, args)
            code = 0
        except Refused as refused:
            ctx.err += refused.lines
            code = refused.exit_code
        except RuleViolation as exc:
            ctx.err.append(f"{kind}: ERROR: {exc.summary}")
            code = EXIT_ERROR
        return code, _text(ctx.out), _text(ctx.err)

    def _note_listings(
        self,
        host_id: int,
        ran: Sequence[tuple[str, CommandResult, float]],
        kept: Sequence[KeptRow],
    ) -> None:
        rows = [(host_id, now, argv, result.exit_code) for argv, result, now in ran]
        with self._guard:
            self._pending_log += rows
            self._pending_kept += kept
            flush = len(self._pending_log) >= PENDING_LOG_LIMIT
        if flush:
            self.flush_log()

    def flush_log(self) -> None:
        """Write the log entries of listings not yet written, and the listings to keep
        (done by `log`, on close, and by the reader workers after a refresh; a change
        writes the log rows and forgets the listings)."""
        with self._guard:
            if not self._pending_log and not self._pending_kept:
                return
        with self._store.transaction(revises=False) as conn:
            self._write_pending_log(conn)
            with self._guard:
                pending, self._pending_kept = self._pending_kept, []
            keep(conn, pending)

    def take_pending(self) -> PendingWrites:
        """The log rows and listings to keep not written yet, now no longer this world's to
        write: handed to another process on the same file (`add_pending` there)."""
        with self._guard:
            pending = PendingWrites(log=self._pending_log, kept=self._pending_kept)
            self._pending_log, self._pending_kept = [], []
        return pending

    def add_pending(self, pending: PendingWrites) -> None:
        """Write `pending` (another connection's `take_pending`) with this world's own."""
        with self._guard:
            self._pending_log += pending.log
            self._pending_kept += pending.kept

    def checkpoint(self) -> None:
        """Copy what SQLite's write-ahead log holds into the world file now, waiting for
        nobody (a passive checkpoint). The last connection to close a file copies what is
        left, and a reader that does this while ivmctl plans leaves it little to copy."""
        self._store.conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _forget_kept(self) -> None:
        with self._guard:
            self._pending_kept = []

    def _write_pending_log(self, conn: sqlite3.Connection) -> None:
        with self._guard:
            pending, self._pending_log = self._pending_log, []
        if pending:
            conn.executemany(
                "INSERT INTO log (host_id, time, argv, exit_code) VALUES (?, ?, ?, ?)", pending
            )
