"""The emulator's SQLite store: schema, version check on open, one transaction per command
(or one for a group of them).

Only this module knows the database layout's version and how a file is recognised as an
ivmctl emulator world. Every connection runs in WAL mode with synchronous=NORMAL and a busy
timeout, so several threads and processes may share one world.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ivmctl.errors import EmulatorError

SCHEMA_VERSION = 2  # 2: stored listings (`listings`) and the `revision` counter
UPGRADABLE_FROM = 1  # the oldest version `open_store` upgrades in place
_REVISE = "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='revision'"
_REVISE_AND_GENERATION = (
    "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key IN ('generation', 'revision')"
)
APPLICATION_ID = 0x49564D43  # "IVMC": marks a file as an ivmctl emulator world
BUSY_TIMEOUT_S = 30.0

# Version 2 adds what `runtime/memo.py` keeps: listings stored with the `revision` of the
# state they show, and the index that finds a host's booting guests. A version 1 world is
# upgraded in place when opened.
LISTINGS_SCHEMA = """
CREATE TABLE listings (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    argv TEXT NOT NULL,
    revision INTEGER NOT NULL,
    at REAL NOT NULL,
    exit_code INTEGER NOT NULL,
    stdout TEXT NOT NULL,
    stderr TEXT NOT NULL,
    UNIQUE (host_id, argv)
);
CREATE INDEX guests_by_start ON guests(host_id, started_at);
"""

SCHEMA = (
    """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE hosts (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    version TEXT NOT NULL,
    cores INTEGER NOT NULL,
    memory_mb INTEGER NOT NULL,
    mhz INTEGER NOT NULL,
    nics TEXT NOT NULL,
    boot_delay REAL NOT NULL DEFAULT 1.0,
    fail_starts INTEGER NOT NULL DEFAULT 0,
    abort_migrations INTEGER NOT NULL DEFAULT 0,
    unreachable INTEGER NOT NULL DEFAULT 0,
    core_used TEXT NOT NULL,
    mem_used_mb INTEGER NOT NULL DEFAULT 0,
    next_vm_number INTEGER NOT NULL DEFAULT 1,
    next_vswitch_number INTEGER NOT NULL DEFAULT 2
);
CREATE TABLE latency (
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (host_id, kind)
);
CREATE TABLE hangs (
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    seconds REAL NOT NULL,
    PRIMARY KEY (host_id, kind)
);
CREATE TABLE unpresented (
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    PRIMARY KEY (host_id, path)
);
CREATE TABLE vswitches (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    nic TEXT,
    state TEXT NOT NULL,
    UNIQUE (host_id, name)
);
CREATE TABLE port_vlans (
    vswitch_id INTEGER NOT NULL REFERENCES vswitches(id) ON DELETE CASCADE,
    port INTEGER NOT NULL,
    vlan INTEGER NOT NULL,
    PRIMARY KEY (vswitch_id, port)
);
CREATE TABLE guests (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id),
    name TEXT NOT NULL,
    number INTEGER NOT NULL,
    uuid TEXT NOT NULL,
    label TEXT NOT NULL DEFAULT '',
    os TEXT NOT NULL,
    vcpus INTEGER NOT NULL,
    ent_min REAL NOT NULL,
    ent_max REAL NOT NULL,
    memory_mb INTEGER NOT NULL,
    start_attr TEXT NOT NULL,
    vm_type TEXT NOT NULL,
    dyn_type TEXT NOT NULL DEFAULT 'none',
    dyn_min INTEGER,
    dyn_max INTEGER,
    dyn_target INTEGER,
    runnable INTEGER NOT NULL DEFAULT 1,
    modifiable INTEGER NOT NULL DEFAULT 1,
    visible INTEGER NOT NULL DEFAULT 1,
    registered INTEGER NOT NULL DEFAULT 1,
    online_migration INTEGER NOT NULL DEFAULT 1,
    state TEXT NOT NULL DEFAULT 'Off',
    started_at REAL,
    cores TEXT,
    footprint_mb INTEGER,
    UNIQUE (host_id, name),
    UNIQUE (host_id, number)
);
CREATE INDEX guests_by_uuid ON guests(uuid);
CREATE TABLE storage (
    id INTEGER PRIMARY KEY,
    guest_id INTEGER NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    host_id INTEGER NOT NULL,
    devtype TEXT NOT NULL,
    adapter TEXT NOT NULL,
    bus INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    target INTEGER NOT NULL,
    backing TEXT NOT NULL,
    path TEXT NOT NULL,
    UNIQUE (guest_id, bus, slot, target)
);
CREATE INDEX storage_by_path ON storage(host_id, path);
CREATE TABLE nics (
    id INTEGER PRIMARY KEY,
    guest_id INTEGER NOT NULL REFERENCES guests(id) ON DELETE CASCADE,
    adapter TEXT NOT NULL,
    bus INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    mac INTEGER NOT NULL,
    vswitch_id INTEGER NOT NULL REFERENCES vswitches(id),
    port INTEGER NOT NULL,
    UNIQUE (guest_id, bus, slot),
    UNIQUE (vswitch_id, port)
);
CREATE INDEX nics_by_guest ON nics(guest_id);
CREATE INDEX nics_by_mac ON nics(mac);
CREATE TABLE devdb (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    class TEXT NOT NULL,
    name TEXT NOT NULL,
    aliases TEXT NOT NULL DEFAULT '',
    attrs TEXT NOT NULL DEFAULT '',
    uid TEXT NOT NULL,
    UNIQUE (host_id, name)
);
CREATE TABLE files (
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    size_mb INTEGER NOT NULL,
    PRIMARY KEY (host_id, path)
);
CREATE TABLE log (
    id INTEGER PRIMARY KEY,
    host_id INTEGER NOT NULL REFERENCES hosts(id) ON DELETE CASCADE,
    time REAL NOT NULL,
    argv TEXT NOT NULL,
    exit_code INTEGER NOT NULL
);
CREATE INDEX log_by_host ON log(host_id, id);
"""
    + LISTINGS_SCHEMA
)


def _is_world(conn: sqlite3.Connection) -> bool:
    (app_id,) = conn.execute("PRAGMA application_id").fetchone()
    return int(app_id) == APPLICATION_ID


def _refuse(path: Path, why: str) -> EmulatorError:
    return EmulatorError(
        f"{path} is not a usable emulator world: {why}",
        detail="Point --path (or IVMCTL_EMULATOR) at another file; this one is left untouched.",
    )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(
        str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    conn.row_factory = sqlite3.Row
    return conn


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA temp_store=MEMORY")  # sorts of a listing never touch a file


def _check_version(conn: sqlite3.Connection, path: Path) -> int:
    """The world's schema version; refuses one this ivmctl cannot read or upgrade."""
    row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise _refuse(path, "it has no schema version")
    found = int(row[0])
    if found > SCHEMA_VERSION:
        raise EmulatorError(
            f"emulator world {path} has schema version {found}, newer than the "
            f"version {SCHEMA_VERSION} this ivmctl understands",
            detail="Upgrade ivmctl, or use another --path.",
        )
    if found < UPGRADABLE_FROM:
        raise EmulatorError(
            f"emulator world {path} has schema version {found}, older than the "
            f"version {SCHEMA_VERSION} this ivmctl writes",
            detail="Recreate the world (its hosts and guests are test fixtures).",
        )
    return found


def _execute_script(conn: sqlite3.Connection, script: str) -> None:
    """The statements of `script`, in the caller's transaction (executescript commits)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring a version 1 world to version 2 (adds stored listings), in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        if _check_version(conn, path) < 2:  # another process may have upgraded it meanwhile
            _execute_script(conn, LISTINGS_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('revision', '0')")
            conn.execute(
                "UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),)
            )
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def open_store(path: Path, *, create: bool) -> None:
    """Check (or create) the world file at `path`; raises EmulatorError when unusable."""
    exists = path.exists() and path.stat().st_size > 0
    if not exists and not create:
        raise EmulatorError(
            f"no emulator world at {path}",
            detail="Add a host first: ivmctl emulator host add NAME --cores N --memory SIZE.",
        )
    if path.is_dir():
        raise _refuse(path, "it is a directory")
    if not exists:
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = _connect(path)
    except sqlite3.Error as exc:
        raise _refuse(path, f"SQLite says {exc}") from None
    try:
        try:
            if exists:
                if not _is_world(conn):
                    raise _refuse(path, "it is not an ivmctl emulator database")
                _configure(conn)
                if _check_version(conn, path) < SCHEMA_VERSION:
                    _upgrade(conn, path)
                return
            _configure(conn)
            conn.execute("BEGIN IMMEDIATE")
            if _is_world(conn):  # another process created it meanwhile
                conn.execute("COMMIT")
                _check_version(conn, path)
                return
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            _execute_script(conn, SCHEMA)
            conn.executemany(
                "INSERT INTO meta(key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("generation", "0"),
                    ("revision", "0"),
                    ("mac_counter", "0"),
                    ("uid_counter", "0"),
                ],
            )
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise _refuse(path, f"SQLite says {exc}") from None
    finally:
        conn.close()


class Store:
    """Connections to one world file: one per thread, closed together."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        self._writer = threading.Lock()  # one write transaction at a time in this process
        self._closed = False

    def conn(self) -> sqlite3.Connection:
        """This thread's connection."""
        return self._thread_connection("conn", query_only=False)

    def reader(self) -> sqlite3.Connection:
        """This thread's read-only connection (`query_only`: a write through it fails)."""
        return self._thread_connection("reader", query_only=True)

    def _thread_connection(self, name: str, *, query_only: bool) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, name, None)
        if conn is None:
            if self._closed:
                raise EmulatorError(f"the emulator world {self.path} is closed")
            conn = _connect(self.path)
            _configure(conn)
            if query_only:
                conn.execute("PRAGMA query_only=ON")
            setattr(self._local, name, conn)
            with self._guard:
                self._all.append(conn)
        return conn

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: one consistent view, taking no write lock.

        In WAL mode readers neither wait for the writer nor block it, so listings from
        many threads run side by side while changes commit.
        """
        conn = self.reader()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    @contextmanager
    def transaction(self, *, revises: bool = True) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT; rolled back on any exception.

        A transaction that `revises` moves the world's `revision` on as it commits, so a
        listing stored at one revision shows exactly the state of that revision
        (`memo.py`). Only those writing log rows and stored listings alone pass False, and
        those that call `revise` themselves (with the generation, for a change).

        Threads of this process take turns on a lock first: waiting on SQLite's own busy
        handler sleeps in steps of up to 100 ms, so threads queued on the write lock
        (an apply's workers) spent most of their time asleep after it was free. Other
        processes still meet SQLite's busy timeout.
        """
        if getattr(self._local, "grouped", False):
            yield from self._savepoint(revises)
            return
        with self._writer:
            yield from self._transaction(revises)

    @contextmanager
    def group(self) -> Iterator[None]:
        """One write transaction around this thread's transactions inside it, which
        become savepoints: each still rolls back alone on an exception, and those that
        ended well commit together as the group ends (or none does, if it raises).

        In WAL mode a commit writes the pages a change touched to the log and updates
        the log's index: per command, BEGIN and COMMIT were a fifth of the apply
        writer's time. The writer runs the changes waiting in its input as one group
        (`workers.serve`), and answers them only once the group has committed, so
        nobody hears of a change that could still be lost.
        """
        with self._writer:
            conn = self._begin()
            self._local.grouped = True
            try:
                yield
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            finally:
                self._local.grouped = False
            if not conn.in_transaction:  # SQLite rolled it back itself (a full disk)
                raise self._group_ended()
            conn.execute("COMMIT")

    def _begin(self) -> sqlite3.Connection:
        conn = self.conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise EmulatorError(
                f"the emulator world {self.path} is busy: {exc}",
                detail=f"Another process held it for more than {BUSY_TIMEOUT_S:g} s; retry.",
            ) from None
        return conn

    def _group_ended(self) -> EmulatorError:
        return EmulatorError(
            f"the emulator world {self.path} rolled back a group of changes",
            detail="SQLite ended the transaction after an error; none of them was made.",
        )

    def _savepoint(self, revises: bool) -> Iterator[sqlite3.Connection]:
        """A transaction inside a `group`."""
        conn = self.conn()
        if not conn.in_transaction:  # a savepoint now would begin, and commit, on its own
            raise self._group_ended()
        conn.execute("SAVEPOINT grouped")
        try:
            yield conn
            if revises:
                revise(conn)
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK TO grouped")
                conn.execute("RELEASE grouped")
            raise
        conn.execute("RELEASE grouped")

    def _transaction(self, revises: bool) -> Iterator[sqlite3.Connection]:
        conn = self._begin()
        try:
            yield conn
            if revises:
                revise(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            self._closed = True
            for conn in self._all:
                conn.close()
            self._all.clear()


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return int(row[0]) if row else 0


def revise(conn: sqlite3.Connection, *, generation: bool = False) -> None:
    """Move the world's revision on (see `Store.transaction`) and, with `generation`, its
    generation too: a change to the world always moves both. One statement either way
    (the emulator's writes are serialised)."""
    conn.execute(_REVISE_AND_GENERATION if generation else _REVISE)


def bump_meta(conn: sqlite3.Connection, key: str) -> int:
    """Increase a counter in meta by one and return the new value (one statement: the
    emulator's writes are serialised, and a creation bumps three counters)."""
    (row,) = conn.execute(
        "UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key=? RETURNING value", (key,)
    ).fetchall()
    return int(row[0])
