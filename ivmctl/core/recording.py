"""Apply's two collaborators from the session: the provider executor and the recorder.

`ProviderExecutor` is the apply walk's Executor: steps and execution from the provider,
verification by re-reading the changed guest. `_Recorder` keeps ownership in the state
as changes complete, through the state journal (`recording`), and records the intent
to create before a create runs; `settle_intents` resolves the intents a killed apply
left. `view_digest` is the digest of an applied object's view recorded with it (drift
and import compare against it).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

from ivmctl import model
from ivmctl.plan.model import Action, Change, Operation, OpKind
from ivmctl.runtime.crashpoints import crash_point
from ivmctl.state import Forget, Journal, LocalBackend, RecordStatus, ResourceRecord, State


class ProviderExecutor:
    """The apply Executor: steps and execution from the provider, verification by diff."""

    def __init__(self, provider: Any, desired: model.DesiredState) -> None:
        self.provider = provider
        self.desired = desired

    def steps(self, operation: Operation) -> Sequence[Any]:
        return tuple(self.provider.steps(operation))

    def execute(self, step: Any) -> Any:
        return self.provider.execute(step)

    def verify(self, change: Change) -> Sequence[str]:
        """Re-read a changed guest and compare it with its declared configuration."""
        from ivmctl.plan.classify import is_ignored
        from ivmctl.plan.diff import diff_guest

        if change.phase or not change.address.startswith("guest."):
            return ()
        name = change.address.removeprefix("guest.")
        want = self.desired.guests.get(name)
        if want is None:
            return ()
        have = self.provider.read_guest(change.host, name)
        if have is None:
            return (f"the provider does not find guest {name} on host {change.host}",)
        power = "on" if have.status.running else "off"
        ignore = want.lifecycle.ignore_changes
        return tuple(
            f"{d.path}: planned {d.after!r}, the runtime has {d.before!r}"
            for d in diff_guest(want, have.guest, power)
            if not is_ignored(d.path, ignore)
        )


_MAKES = frozenset({OpKind.GUEST_CREATE, OpKind.VSWITCH_CREATE})
# what a change that failed part-way may already have put in place (and so must own)
_MAKES_OR_MOVES = _MAKES | {OpKind.GUEST_MIGRATE}


class _Recorder:
    """Records ownership as changes complete, each as one journal line: O(1) a change.

    The state is kept in memory (a dict, so recording does not copy it) and, given a
    journal, each record is appended to it as it is made; without one (benchmarks'
    `complete`), `state` is written by the caller. Before a change creates an object
    ivmctl does not own yet, `intend` records it as `creating`, on disk (fsynced) before
    the create step runs, so a crash right after the create cannot leave it unowned.
    """

    def __init__(
        self,
        backend: LocalBackend,
        state: State,
        desired: model.DesiredState,
        *,
        journal: Journal | None = None,
    ) -> None:
        self.backend = backend
        self.desired = desired
        self._journal = journal
        self._lineage = state.lineage
        self._serial = state.serial
        self._resources = dict(state.resources)
        self._syncing: dict[str, Future[None]] = {}  # intents being synced, by change key
        self._guard = threading.Lock()  # `intend` runs in the walk's worker threads

    @property
    def state(self) -> State:
        """The state as recorded so far (a copy)."""
        with self._guard:
            return State(
                lineage=self._lineage, serial=self._serial, resources=dict(self._resources)
            )

    def before_operation(self, change: Change, operation: Operation) -> None:
        """The apply walk's hook, in the worker before each operation of a change: the
        intent is written when the change starts, and waited for (on disk) just before the
        create, so its fsync overlaps the steps before it (the backing file's creation)."""
        if operation is change.operations[0]:
            self.intend(change)
        if operation.kind in _MAKES:
            with self._guard:
                syncing = self._syncing.pop(change.key, None)
            if syncing is not None:
                syncing.result()

    def intend(self, change: Change) -> None:
        """Before `change` runs: own what it is about to create. The line is written at
        once; its fsync runs in the background (`before_operation` waits for it)."""
        if change.phase or not any(op.kind in _MAKES for op in change.operations):
            return
        address = change.address
        with self._guard:
            known = self._resources.get(address)
        if known is not None and known.status is RecordStatus.OWNED:
            return  # owned already (created again after it vanished, or replaced)
        crash_point(f"state write: intent {address}")
        record = ResourceRecord(
            address=address,
            host=change.host,
            prevent_destroy=self._prevent_destroy(address),
            status=RecordStatus.CREATING,
        )
        with self._guard:
            self._resources[address] = record
            if self._journal is None:
                return
            self._serial += 1
        syncing = self._journal.append_syncing(record)
        with self._guard:
            self._syncing[change.key] = syncing

    def __call__(self, change: Change) -> None:
        if change.phase:
            return
        with self._guard:
            self._syncing.pop(change.key, None)
        address = change.address
        crash_point(f"state write: recording {address}")
        if change.action is Action.DELETE:
            with self._guard:
                owned = address in self._resources
            if owned:
                self._record(Forget(address=address))
            return
        if address.startswith("host."):
            return  # hosts are hardware: provisioned, never owned or deleted
        self._record(
            ResourceRecord(
                address=address,
                host=change.host,
                prevent_destroy=self._prevent_destroy(address),
                digest=view_digest(change.after),
            )
        )

    def partial(self, change: Change, completed: tuple[Operation, ...]) -> None:
        """A change failed part-way: own what it already created or moved (or may have:
        a create that timed out), so the next plan finishes the job instead of offering
        to adopt ivmctl's own object. If it failed before its create, the intent recorded
        for it is dropped: the name may be taken by an object that is not ivmctl's."""
        with self._guard:
            self._syncing.pop(change.key, None)
        if change.action is Action.DELETE or change.phase:
            return
        if any(op.kind in _MAKES_OR_MOVES for op in completed):
            self(change)
            return
        with self._guard:
            known = self._resources.get(change.address)
        if known is not None and known.status is RecordStatus.CREATING:
            crash_point(f"state write: dropping intent {change.address}")
            self._record(Forget(address=change.address))

    def remember_protection(self) -> None:
        """Bring `prevent_destroy` of every owned, declared guest in line with the config."""
        if self._journal is None:
            current = self.backend.read()
            if current.serial != self._serial:
                self._lineage, self._serial = current.lineage, current.serial
                self._resources = dict(current.resources)
        with self._guard:
            records = sorted(self._resources.items())
        changed = []
        for address, record in records:
            guest = self.desired.guests.get(address.removeprefix("guest."))
            if not address.startswith("guest.") or guest is None:
                continue  # undeclared: keep what was remembered
            wanted = guest.lifecycle.prevent_destroy
            if record.prevent_destroy != wanted:
                changed.append(replace(record, prevent_destroy=wanted))
        for record in changed:
            self._record(record)
        if changed and self._journal is None:
            written = self.backend.write(self.state)
            self._serial = written.serial

    def _record(self, entry: ResourceRecord | Forget) -> None:
        with self._guard:
            if isinstance(entry, Forget):
                self._resources.pop(entry.address, None)
            else:
                self._resources[entry.address] = entry
            if self._journal is not None:
                self._serial += 1  # each journal line is one write of the state
        if self._journal is not None:
            self._journal.append(entry)

    def _prevent_destroy(self, address: str) -> bool:
        if address.startswith("guest."):
            guest = self.desired.guests.get(address.removeprefix("guest."))
            return bool(guest and guest.lifecycle.prevent_destroy)
        return False


@contextlib.contextmanager
def recording(
    backend: LocalBackend, state: State, desired: model.DesiredState
) -> Iterator[_Recorder]:
    """Record an apply on top of `state` (current, under the lock) through a journal,
    folded into state.json when the block ends normally (else by the next lock)."""
    journal = backend.open_journal(state)
    try:
        yield _Recorder(backend, state, desired, journal=journal)
    finally:
        journal.close()
    crash_point("state write: folding the journal")
    backend.fold(between=lambda: crash_point("state write: journal folded, not yet removed"))


def settle_intents(backend: LocalBackend, state: State, actual: model.ActualState | None) -> State:
    """Settle what a killed apply was about to create: an object the runtime has is
    owned; one it does not have is forgotten (a change that creates it records a new
    intent first). Under the lock, with `actual` refreshed under it; returns the state."""
    intents = [r for r in state.resources.values() if r.status is RecordStatus.CREATING]
    if actual is None or not intents:
        return state
    resources = dict(state.resources)
    for record in intents:
        if record.host in actual.unreachable:
            continue  # not known either way until the host answers
        if _exists(record, actual):
            resources[record.address] = replace(record, status=RecordStatus.OWNED)
        else:
            del resources[record.address]
    return backend.write(replace(state, resources=resources))


def _exists(record: ResourceRecord, actual: model.ActualState) -> bool:
    kind, _, rest = record.address.partition(".")
    if kind == "guest":
        return rest in actual.guests or any(name == rest for _, name in actual.not_runnable)
    if kind == "vswitch":
        host, _, name = rest.partition(".")
        return host in actual.hosts and name in actual.hosts[host].vswitches
    return True


def view_digest(view: Mapping[str, Any] | None) -> str:
    """The digest of an applied object's view, as recorded in the state."""
    import json

    body = json.dumps(None if view is None else dict(view), sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()
