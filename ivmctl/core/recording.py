"""Apply's two collaborators from the session: the provider executor and the recorder.

`ProviderExecutor` is the apply walk's Executor: steps and execution from the provider,
verification by re-reading the changed guest. `_Recorder` keeps ownership in the state
as changes complete; `view_digest` is the digest of an applied object's view recorded
with it (drift and import compare against it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ivmctl import model
from ivmctl.plan.model import Action, Change, Operation, OpKind
from ivmctl.runtime.crashpoints import crash_point
from ivmctl.state import LocalBackend, ResourceRecord, State


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


class _Recorder:
    """Records ownership in the state as each change completes (atomic write each time)."""

    def __init__(self, backend: LocalBackend, state: State, desired: model.DesiredState) -> None:
        self.backend = backend
        self.state = state
        self.desired = desired

    def __call__(self, change: Change) -> None:
        if change.phase:
            return
        address = change.address
        crash_point(f"state write: recording {address}")
        if change.action is Action.DELETE:
            if address in self.state.resources:
                self.state = self.backend.write(self.state.without(address))
            return
        if address.startswith("host."):
            return  # hosts are hardware: provisioned, never owned or deleted
        self.state = self.backend.write(
            self.state.with_record(
                ResourceRecord(
                    address=address,
                    host=change.host,
                    prevent_destroy=self._prevent_destroy(address),
                    digest=view_digest(change.after),
                )
            )
        )

    def partial(self, change: Change, completed: tuple[Operation, ...]) -> None:
        """A change failed part-way: own what it already created or moved, so the next
        plan finishes the job instead of offering to adopt ivmctl's own object."""
        made = {OpKind.GUEST_CREATE, OpKind.VSWITCH_CREATE, OpKind.GUEST_MIGRATE}
        if change.action is Action.DELETE or not any(op.kind in made for op in completed):
            return
        self(change)

    def remember_protection(self) -> None:
        """Bring `prevent_destroy` of every owned, declared guest in line with the config."""
        current = self.backend.read()
        if current.serial != self.state.serial:
            self.state = current
        updated = self.state
        for address, record in sorted(self.state.resources.items()):
            guest = self.desired.guests.get(address.removeprefix("guest."))
            if not address.startswith("guest.") or guest is None:
                continue  # undeclared: keep what was remembered
            wanted = guest.lifecycle.prevent_destroy
            if record.prevent_destroy != wanted:
                updated = updated.with_record(replace(record, prevent_destroy=wanted))
        if updated is not self.state:
            self.state = self.backend.write(updated)

    def _prevent_destroy(self, address: str) -> bool:
        if address.startswith("guest."):
            guest = self.desired.guests.get(address.removeprefix("guest."))
            return bool(guest and guest.lifecycle.prevent_destroy)
        return False


def view_digest(view: Mapping[str, Any] | None) -> str:
    """The digest of an applied object's view, as recorded in the state."""
    import json

    body = json.dumps(view, sort_keys=True, default=str).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()
