"""The local state backend: an atomically written JSON file, the journal an apply
records into (state/journal.py), and an exclusive lock file."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path

from ivmctl.errors import LockError, StateError
from ivmctl.state.journal import JOURNAL_FILE, Journal, replay
from ivmctl.state.model import STATE_FORMAT_VERSION, State
from ivmctl.values import frozen

STATE_FILE = "state.json"
LOCK_FILE = "state.lock"


@frozen
class LockInfo:
    """Who holds the lock: shown to anyone who has to wait for it."""

    id: str
    operation: str
    pid: int
    hostname: str
    created: str  # ISO 8601, UTC

    def describe(self) -> str:
        return (
            f"lock {self.id} held by {self.operation!r} (pid {self.pid} on {self.hostname}) "
            f"since {self.created}"
        )


class LocalBackend:
    """State in `<dir>/state.json`, lock in `<dir>/state.lock`."""

    def __init__(
        self,
        directory: Path,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        before_replace: Callable[[], None] = lambda: None,
    ) -> None:
        # before_replace is a test seam: called when the new state is on disk under its
        # temporary name, just before it replaces the old file (crash tests kill there).
        self.directory = directory
        self.path = directory / STATE_FILE
        self.lock_path = directory / LOCK_FILE
        self.journal_path = directory / JOURNAL_FILE
        self._clock = clock
        self._sleep = sleep
        self._before_replace = before_replace

    # -- state --------------------------------------------------------------------------------
    def read(self) -> State:
        """The current state: state.json with the journal applied; new and empty if there
        is no file yet."""
        state = self._read_file()
        folded = self._replay(state)
        return state if folded is None else folded

    def write(self, state: State) -> State:
        """Write `state` with the serial bumped; atomic. Returns what was written.

        The journal, if any, is part of what `state` was read from; it is removed."""
        self._check_current(state)
        written = replace(state, serial=state.serial + 1, format_version=STATE_FORMAT_VERSION)
        self._replace_file(written)
        self._remove_journal()
        return written

    def open_journal(self, state: State) -> Journal:
        """Start recording on top of `state` (the current state) in a journal.

        state.json is first written in the current format if it does not exist yet or is
        older (same serial: the state is unchanged), so the journal always continues a
        file that names its lineage and that an older ivmctl refuses to overwrite.
        """
        if self.journal_path.exists():
            self.fold()  # a dead run's journal (the lock normally folds it first)
        self._check_current(state)
        if not self.path.exists() or self._read_file().format_version < STATE_FORMAT_VERSION:
            self._replace_file(replace(state, format_version=STATE_FORMAT_VERSION))
        journal = Journal.create(self.journal_path, state)
        _fsync_dir(self.directory)
        return journal

    def fold(self, *, between: Callable[[], None] = lambda: None) -> State:
        """Fold the journal into state.json (atomically) and remove it; returns the state.

        The state does not change (same serial): only where it is kept. `between` is a
        test seam called once state.json holds everything, before the journal goes."""
        state = self._read_file()
        if not self.journal_path.exists():
            return state
        folded = self._replay(state)
        if folded is not None and folded.serial != state.serial:
            state = replace(folded, format_version=STATE_FORMAT_VERSION)
            self._replace_file(state)
            between()
        self._remove_journal()
        return state

    def _read_file(self) -> State:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return State.new()
        except OSError as exc:
            raise StateError(f"cannot read state file {self.path}: {exc.strerror}") from None
        return State.from_json(data, source=str(self.path))

    def _replay(self, state: State) -> State | None:
        """`state` with the journal applied, or None if there is none that continues it."""
        try:
            data = self.journal_path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(
                f"cannot read state journal {self.journal_path}: {exc.strerror}"
            ) from None
        return replay(state, data, source=str(self.journal_path))

    def _check_current(self, state: State) -> None:
        """Refuse to write over a state that is not the one `state` was read as."""
        if not self.path.exists():
            return
        current = self.read()
        if current.lineage != state.lineage:
            raise StateError(
                f"refusing to overwrite state {self.path}: it belongs to lineage "
                f"{current.lineage}, not {state.lineage}",
                detail="Another configuration's state is in this directory.",
            )
        if current.serial != state.serial:
            raise StateError(
                f"state {self.path} changed while this run held serial {state.serial} "
                f"(it is now at {current.serial})",
                detail="Another run wrote it; plan again to see the current state.",
            )

    def _replace_file(self, state: State) -> None:
        """state.json becomes `state`, atomically (temporary file, fsync, rename)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".tmp.{os.getpid()}.{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "wb") as handle:
                handle.write(state.to_json())
                handle.flush()
                os.fsync(handle.fileno())
            self._before_replace()
            os.replace(tmp, self.path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        _fsync_dir(self.directory)
        self._remove_abandoned_temporaries()

    def _remove_journal(self) -> None:
        try:
            self.journal_path.unlink()
        except FileNotFoundError:
            return
        _fsync_dir(self.directory)

    def _remove_abandoned_temporaries(self) -> None:
        """Delete temporary state files of processes that died while writing (never read)."""
        for leftover in self.directory.glob(f"{self.path.stem}.tmp.*"):
            pid = leftover.name.split(".")[2]
            if pid.isdigit() and int(pid) != os.getpid() and not _is_alive(int(pid)):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    # -- lock ---------------------------------------------------------------------------------
    def holder(self) -> LockInfo | None:
        """Who holds the lock now, or None."""
        try:
            body = json.loads(self.lock_path.read_text(encoding="utf-8"))
            return LockInfo(**body)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            return LockInfo(id="unknown", operation="unknown", pid=0, hostname="?",
                            created="?")  # fmt: skip

    @contextlib.contextmanager
    def lock(self, *, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Hold the lock for the block; wait up to `timeout` seconds for it.

        A lock whose holder is a dead process on this machine is taken over, and the
        journal a dead run left is folded into state.json before the block runs.
        """
        info = LockInfo(
            id=str(uuid.uuid4()),
            operation=operation,
            pid=os.getpid(),
            hostname=socket.gethostname(),
            created=datetime.fromtimestamp(self._clock(), UTC).isoformat(timespec="seconds"),
        )
        deadline = self._clock() + timeout
        self.directory.mkdir(parents=True, exist_ok=True)
        while not self._try_acquire(info):
            holder = self.holder()
            if holder is not None and _is_dead_local(holder):
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()
                continue
            if self._clock() >= deadline:
                who = holder.describe() if holder else "another run"
                raise LockError(
                    f"the state is locked: {who}",
                    detail="Wait for it to finish, retry with --lock-timeout, or if you are "
                    f"sure it is gone: ivmctl force-unlock {holder.id if holder else 'ID'}",
                )
            self._sleep(0.1)
        try:
            if self.journal_path.exists():
                self.fold()
            yield info
        finally:
            current = self.holder()
            if current is not None and current.id == info.id:
                with contextlib.suppress(FileNotFoundError):
                    self.lock_path.unlink()

    def force_unlock(self, lock_id: str) -> LockInfo:
        """Remove the lock if its id is `lock_id`; refuse otherwise."""
        holder = self.holder()
        if holder is None:
            raise LockError("the state is not locked", detail="There is nothing to unlock.")
        if holder.id != lock_id:
            raise LockError(
                f"lock id {lock_id} does not match the current lock",
                detail=f"The state is held by {holder.describe()}.",
            )
        self.lock_path.unlink()
        return holder

    def _try_acquire(self, info: LockInfo) -> bool:
        try:
            fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(asdict(info), handle)
            handle.flush()
            os.fsync(handle.fileno())
        return True


def _is_dead_local(holder: LockInfo) -> bool:
    if holder.hostname != socket.gethostname() or holder.pid <= 0:
        return False
    return not _is_alive(holder.pid)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
