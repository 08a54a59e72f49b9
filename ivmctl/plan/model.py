"""The plan as data: changes, their actions, and the operations that carry them out.

A Change says *what* happens to one object (address, action, before/after, the
fields that differ and why). Its `operations` say *how*, in provider-neutral terms
(create a guest with these attributes, stop it, migrate it online to host X); a
provider turns each Operation into native steps (hpvm* command lines) with the same
code for `plan --commands` and for `apply`. Reasons explain; they never drive apply.

What before/after mean per action (as in OpenTofu's internal/plans):

| action    | before                | after                 |
|-----------|-----------------------|-----------------------|
| create    | None                  | desired object        |
| update    | actual object         | desired object        |
| restart   | actual object         | desired object        |
| migrate   | actual (source host)  | desired (target host) |
| start     | actual object         | desired object        |
| stop      | actual object         | desired object        |
| replace   | actual object         | desired object        |
| delete    | actual object         | None                  |
| adopt     | actual object         | desired object        |
| noop      | actual object         | desired object        |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from enum import StrEnum
from typing import Any

from ivmctl.values import frozen

PLAN_FORMAT_VERSION = 1


class Action(StrEnum):
    """What a change does to its object."""

    CREATE = "create"
    UPDATE = "update"  # online modification
    RESTART = "restart"  # stop, modify, start
    MIGRATE = "migrate"  # move to another host (online or stop/move/start)
    START = "start"
    STOP = "stop"
    REPLACE = "replace"  # delete and create; only where nothing else can work
    DELETE = "delete"
    ADOPT = "adopt"  # an existing, undeclared-until-now object becomes managed
    NOOP = "noop"


class OpKind(StrEnum):
    """Provider-neutral operations; `Operation.host` is the host each one runs on.

    Parameters (`Operation.params`, JSON values only) per kind:

    * vswitch.create      name, nic ("lan0" or None for a host-local vswitch); created and booted
    * vswitch.delete      name
    * vswitch.port_vlan   vswitch, port, vlan (int, or None to clear)
    * storage.file_create path, size_mb
    * storage.share       path                 (SHARE=YES in the device database)
    * guest.create        name, os, vcpus, entitlement {min, max}, memory_mb, start, label,
                          dynamic_memory ({min_mb, max_mb, target_mb} or None),
                          online_migration (bool), devices (resource statements, in order)
    * guest.modify        name, set ({field: value}; fields: os, vcpus, entitlement {min, max},
                          memory_mb, start, label, dynamic_memory, dynamic_memory.target,
                          online_migration), add, remove, modify (resource statements for
                          -a, -d, -m), online (bool: the guest is running while it runs)
    * guest.start         name
    * guest.stop          name, graceful (bool)
    * guest.migrate       name, target, online (bool)
    * guest.delete        name
    * guest.remove_stale  name                 (the Off (NR) copy a migration left behind)
    * host.provision      name, version, cores, memory_mb, nics, mhz: make a declared host
                          exist (providers that can provision hosts, e.g. the emulator)

    What the planner puts in statements: every NIC it adds carries `:portid:N` (the port
    pinned in the configuration, or the lowest port free on that vswitch, so that
    ports chosen in one plan never collide); a `vswitch.port_vlan` follows for NICs with
    a VLAN. A NIC that keeps its place but moves to another vswitch (or gets another
    MAC or port) is one `modify` statement carrying its bus,slot and MAC, which identify
    it; a NIC whose adapter changes is a `remove` of the old statement and an `add`
    keeping its MAC. `guest.migrate` is run on the source host; `guest.remove_stale`
    follows on the source so that a move leaves no Off (NR) copy behind. A migrating NIC
    keeps its port if it is free on the target, else it lands on the lowest free port
    from 1; the operations that follow it on the target name the port it lands on
    (`plan/ports.py`).
    """

    VSWITCH_CREATE = "vswitch.create"
    VSWITCH_DELETE = "vswitch.delete"
    PORT_VLAN = "vswitch.port_vlan"
    FILE_CREATE = "storage.file_create"
    DEVICE_SHARE = "storage.share"
    GUEST_CREATE = "guest.create"
    GUEST_MODIFY = "guest.modify"
    GUEST_START = "guest.start"
    GUEST_STOP = "guest.stop"
    GUEST_MIGRATE = "guest.migrate"
    GUEST_DELETE = "guest.delete"
    GUEST_REMOVE_STALE = "guest.remove_stale"
    HOST_PROVISION = "host.provision"


@frozen
class Operation:
    """One provider-neutral unit of work on one host.

    `params` holds JSON-compatible values only, so a plan survives a round trip
    through the plan file unchanged.
    """

    kind: OpKind
    host: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def guest(self) -> str | None:
        name = self.params.get("name")
        return name if isinstance(name, str) and self.kind.value.startswith("guest.") else None


class ChangeHow(StrEnum):
    """How one changed field is applied."""

    ONLINE = "online"
    NEEDS_OFF = "needs_off"
    IGNORED = "ignored"  # listed in lifecycle.ignore_changes: reported as drift only
    MOVE = "move"  # the host field of a migrating guest


@frozen
class FieldChange:
    """One field that differs, as a dotted path (`nics[0].vswitch`).

    `address` names the object; it is always set in `Plan.drift` (where fields of many
    objects are listed together) and may be empty inside a Change.
    """

    path: str
    before: Any
    after: Any
    how: ChangeHow
    address: str = ""


@frozen
class Change:
    """A planned change of one object.

    `depends_on` lists the keys of changes that must complete first (the graph apply
    walks); `host` is the host the change runs on (the target for a migration).

    `before` and `after` are the object's JSON views (`plan/views.py`) as the runtime has
    it and as it will be; read-only mappings, built when first read for unchanged guests
    (`LazyView`): `dict(view)` gives the plain dict, e.g. for `json.dumps`.

    An address normally has one change, whose key is the address itself. The one
    exception is a guest stopped early to make room on a full host (a swap between two
    hosts): its preparatory stop is a second change with `phase="make-room"` and the
    key `guest.NAME#make-room`; its main change depends on it.
    """

    address: str
    action: Action
    host: str
    before: Mapping[str, Any] | None = None
    after: Mapping[str, Any] | None = None
    fields: tuple[FieldChange, ...] = ()
    reasons: tuple[str, ...] = ()
    operations: tuple[Operation, ...] = ()
    depends_on: tuple[str, ...] = ()
    phase: str = ""

    @property
    def key(self) -> str:
        """The change's node id in the plan graph: the address, plus `#phase` if any."""
        return f"{self.address}#{self.phase}" if self.phase else self.address

    def __post_init__(self) -> None:
        if self.action is Action.CREATE and self.before is not None:
            raise ValueError(f"{self.address}: a create has no before")
        if self.action is Action.DELETE and self.after is not None:
            raise ValueError(f"{self.address}: a delete has no after")
        if self.action is Action.NOOP and self.operations:
            raise ValueError(f"{self.address}: a no-op has no operations")


@frozen
class Inventory:
    """What the state backend says ivmctl owns, as input to the planner.

    `owned` holds the addresses ivmctl created or adopted (only those may be deleted);
    `prevent_destroy` the addresses whose last applied configuration forbade deletion, so
    that removing a guest from the configuration cannot bypass its protection.
    """

    owned: frozenset[str] = frozenset()
    prevent_destroy: frozenset[str] = frozenset()


@frozen
class PlanSummary:
    """The counts of the summary line."""

    add: int = 0
    change: int = 0
    restart: int = 0
    migrate: int = 0
    destroy: int = 0

    @property
    def total(self) -> int:
        return self.add + self.change + self.restart + self.migrate + self.destroy

    def line(self) -> str:
        if not self.total:
            return "No changes. The runtime matches the configuration."
        return (
            f"Plan: {self.add} to add, {self.change} to change, {self.restart} to restart, "
            f"{self.migrate} to migrate, {self.destroy} to destroy."
        )


@frozen
class Plan:
    """A complete plan: ordered changes plus what it was computed from.

    `changes` are in a valid execution order; `depends_on` edges allow parallelism.
    `drift` lists ignored differences; `unmanaged` lists addresses left alone.
    """

    changes: tuple[Change, ...] = ()
    unmanaged: tuple[str, ...] = ()
    drift: tuple[FieldChange, ...] = ()
    warnings: tuple[str, ...] = ()
    config_digest: str = ""
    runtime_generation: str = ""
    state_serial: int = 0
    state_lineage: str = ""
    format_version: int = PLAN_FORMAT_VERSION

    @property
    def actionable(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action is not Action.NOOP)

    def summary(self) -> PlanSummary:
        counts = {"add": 0, "change": 0, "restart": 0, "migrate": 0, "destroy": 0}
        for change in self.actionable:
            if change.phase:  # a preparatory step of another change of the same object
                continue
            if change.action is Action.CREATE:
                counts["add"] += 1
            elif change.action is Action.REPLACE:
                counts["add"] += 1
                counts["destroy"] += 1
            elif change.action is Action.DELETE:
                counts["destroy"] += 1
            elif change.action is Action.RESTART:
                counts["restart"] += 1
            elif change.action is Action.MIGRATE:
                counts["migrate"] += 1
            else:  # update, start, stop, adopt
                counts["change"] += 1
        return PlanSummary(**counts)
