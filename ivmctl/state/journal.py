"""The state journal: what an apply records, one appended line per change.

Rewriting state.json after every change costs the whole state each time, so a fleet of
10,000 guests paid for it quadratically. During an apply the records go instead to
`state.journal` beside state.json: a header line naming the state it continues (lineage
and serial), then one JSON line per record written or forgotten. The logical state is
state.json with the journal's lines applied in order, each line counting as one write
(serial + 1). The apply folds the journal into state.json when it ends (one atomic
rewrite, then the journal is removed); a run killed before that leaves it for the next
reader, which applies it, and for the next lock holder, which folds it.

Durability: every line is written with one `os.write` before the caller goes on, so a
killed process loses nothing it recorded. A line written `durable=True` is also fsynced
before `append` returns, and so is every line before it; `append_syncing` (the intent
recorded before a create) starts that fsync in the background and returns a future, so
the caller can do other work and wait only where it must. Other lines are fsynced with
the next such sync, by a timer at the latest half a second later, or when the journal is
closed. Concurrent syncs are shared: one fsync covers every line written before it.

A journal whose header names another lineage or serial is stale (state.json was
rewritten since, by a fold that died before removing it) and is ignored. A last line
cut short (no newline) was never acknowledged and is ignored; any other unreadable
line makes the state unreadable, and nothing is overwritten.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ivmctl import jsontext
from ivmctl.errors import StateError
from ivmctl.state.model import STATE_FORMAT_VERSION, ResourceRecord, State
from ivmctl.values import frozen

JOURNAL_FILE = "state.journal"
JOURNAL_KIND = "ivmctl state journal"
SYNC_INTERVAL = 0.5  # seconds a non-durable line may wait for its fsync


@frozen
class Forget:
    """A journal entry: the address is no longer owned."""

    address: str


Entry = ResourceRecord | Forget


def encode_entry(entry: Entry) -> bytes:
    """One journal line (compact JSON, C encoder, newline-terminated)."""
    if isinstance(entry, Forget):
        body: dict[str, Any] = {"forget": entry.address}
    else:
        body = {"record": {"address": entry.address, **entry.to_body()}}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def _decode_entry(line: bytes) -> Entry:
    body = jsontext.loads(line.decode("utf-8"))
    if not isinstance(body, dict):
        raise TypeError("entry")
    if "forget" in body:
        address = body["forget"]
        if not isinstance(address, str):
            raise TypeError("forget")
        return Forget(address=address)
    record = body["record"]
    if not isinstance(record, dict):
        raise TypeError("record")
    return ResourceRecord.from_body(record.get("address"), record)


def header(state: State) -> bytes:
    body = {
        "format_version": STATE_FORMAT_VERSION,
        "journal": JOURNAL_KIND,
        "lineage": state.lineage,
        "serial": state.serial,
    }
    return (json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n").encode()


def replay(state: State, data: bytes, *, source: str) -> State | None:
    """`state` with the journal `data` applied; None if the journal does not continue
    `state` (stale, or its header was never completely written)."""
    lines = data.split(b"\n")
    complete = lines[:-1]  # the last piece has no newline: empty, or a line cut short
    if not complete:
        return None
    try:
        head = jsontext.loads(complete[0].decode("utf-8"))
        kind = head.get("journal") if isinstance(head, dict) else None
        version = head.get("format_version") if isinstance(head, dict) else None
    except (UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
        kind = version = None
    if kind != JOURNAL_KIND or not isinstance(version, int):
        raise StateError(
            f"state journal {source} is corrupt (its first line is not a journal header)",
            detail="Neither it nor state.json was changed. Move it away to fall back to "
            "state.json alone (changes recorded since the last complete apply are lost).",
        )
    if version > STATE_FORMAT_VERSION:
        raise StateError(
            f"state journal {source} has format version {version}; this ivmctl reads up to "
            f"version {STATE_FORMAT_VERSION}",
            detail="Upgrade ivmctl; the file was not changed.",
        )
    if head.get("lineage") != state.lineage or head.get("serial") != state.serial:
        return None
    resources = dict(state.resources)
    count = 0
    for number, line in enumerate(complete[1:], start=2):
        try:
            entry = _decode_entry(line)
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"state journal {source} is corrupt at line {number} ({exc})",
                detail="Neither it nor state.json was changed. Restore a backup of the "
                "directory, or move the journal away to fall back to state.json alone.",
            ) from None
        if isinstance(entry, Forget):
            resources.pop(entry.address, None)
        else:
            resources[entry.address] = entry
        count += 1
    return State(
        lineage=state.lineage,
        serial=state.serial + count,
        resources=resources,
        format_version=max(state.format_version, version),
    )


class Journal:
    """An open journal: appends records; safe to use from several threads."""

    def __init__(self, path: Path, fd: int, *, sync_interval: float = SYNC_INTERVAL) -> None:
        self.path = path
        self._fd = fd
        self._sync_interval = sync_interval
        self._write_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._timer_lock = threading.Lock()
        self._timer: threading.Timer | None = None  # syncs lines no durable line covered
        self._closed = False
        self._syncer: ThreadPoolExecutor | None = None  # fsyncs for append_syncing
        self._written = 0  # lines written
        self._synced = 0  # lines known to be on disk

    @classmethod
    def create(cls, path: Path, state: State, *, sync_interval: float = SYNC_INTERVAL) -> Journal:
        """A new journal continuing `state`; its header is on disk when this returns."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, header(state))
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, sync_interval=sync_interval)

    def append(self, entry: Entry, *, durable: bool = False) -> None:
        """Write one entry; with `durable`, return only once it (and all before) is synced.
        Otherwise it is synced within `sync_interval` seconds (or by an earlier sync)."""
        seq = self._write(entry)
        if durable:
            self._sync_through(seq)
        else:
            self._schedule_sync()

    def append_syncing(self, entry: Entry) -> Future[None]:
        """Write one entry now and start syncing it in the background; the future is done
        once it (and every line before it) is on disk. Lets a caller overlap the fsync
        with other work and wait only where durability is needed."""
        seq = self._write(entry)
        with self._timer_lock:
            if self._closed:
                raise ValueError("the journal is closed")
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")
            return self._syncer.submit(self._sync_through, seq)

    def _write(self, entry: Entry) -> int:
        """Append one entry's line; its sequence number (lines written so far)."""
        line = encode_entry(entry)
        with self._write_lock:
            _write_all(self._fd, line)
            self._written += 1
            return self._written

    def _schedule_sync(self) -> None:
        with self._timer_lock:
            if self._timer is not None or self._closed:
                return
            self._timer = threading.Timer(self._sync_interval, self._timed_sync)
            self._timer.daemon = True
            self._timer.start()

    def _timed_sync(self) -> None:
        with self._timer_lock:
            self._timer = None
            if self._closed:
                return
            # Under the timer lock, so close() cannot close the file during the fsync.
            self._sync_through(self._written)

    def _sync_through(self, seq: int) -> None:
        with self._sync_lock:
            if self._synced >= seq:
                return  # another thread's fsync covered it
            target = self._written
            os.fsync(self._fd)
            self._synced = target

    def close(self) -> None:
        """Sync what is left and close the file (the journal stays until it is folded)."""
        with self._timer_lock:
            if self._closed:
                return
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            syncer, self._syncer = self._syncer, None
        if syncer is not None:
            syncer.shutdown(wait=True)
        try:
            self._sync_through(self._written)
        finally:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
