"""Drift: where the runtime left the declared state, told apart from configuration changes.

A refresh-only plan lists every difference between the configuration and the runtime
(`Plan.drift`). A difference means one of three things, and a pipeline must know which:

* **drift** — the object is owned, its configuration is the one last applied (same
  digest as recorded in the state), yet the runtime differs: someone or something
  changed it outside ivmctl. `ivmctl apply` would put it back.
* **config** — the configuration changed since it was last applied (or the object was
  never applied, or it left the configuration): a pending change, not drift.
* **ignored** — the field is listed in `lifecycle.ignore_changes`: reported, never
  corrected, and not counted as drift.

`drift_report` is pure: a `Planned` (from `Session.plan(PlanOptions(refresh_only=True))`)
in, a `DriftReport` out.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from ivmctl import model
from ivmctl.core.session import Planned, view_digest
from ivmctl.plan.classify import is_ignored
from ivmctl.plan.model import ChangeHow
from ivmctl.plan.views import guest_view, vswitch_view
from ivmctl.values import frozen

DRIFT_FORMAT_VERSION = 1


class DriftKind(StrEnum):
    """Why the runtime differs from the configuration."""

    DRIFT = "drift"  # the runtime changed behind ivmctl's back
    CONFIG = "config"  # the configuration changed and was not applied yet
    IGNORED = "ignored"  # lifecycle.ignore_changes: reported only


@frozen
class DriftItem:
    """One difference. `path` is empty when the whole object is missing or extra.

    `actual` is what the runtime has, `declared` what the configuration says; `how`
    says how apply would correct a field (None for a whole object).
    """

    address: str
    kind: DriftKind
    path: str = ""
    actual: Any = None
    declared: Any = None
    how: ChangeHow | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "kind": self.kind.value,
            "path": self.path,
            "actual": self.actual,
            "declared": self.declared,
            "how": None if self.how is None else self.how.value,
            "note": self.note,
        }


@frozen
class DriftReport:
    """Every difference, sorted by address then path, and the objects left alone."""

    items: tuple[DriftItem, ...] = ()
    unmanaged: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def of_kind(self, kind: DriftKind) -> tuple[DriftItem, ...]:
        return tuple(i for i in self.items if i.kind is kind)

    def addresses(self, kind: DriftKind) -> tuple[str, ...]:
        return tuple(sorted({i.address for i in self.items if i.kind is kind}))

    @property
    def has_drift(self) -> bool:
        """True when the runtime left the declared state (drift or unapplied changes);
        differences in ignored fields do not count."""
        return any(i.kind is not DriftKind.IGNORED for i in self.items)

    def summary(self) -> str:
        drift, config, ignored = (
            len(self.addresses(k)) for k in (DriftKind.DRIFT, DriftKind.CONFIG, DriftKind.IGNORED)
        )
        if not self.items:
            return "No drift. The runtime matches the configuration."
        return (
            f"Drift: {drift} drifted, {config} with configuration changes not applied, "
            f"{ignored} with ignored differences."
        )

    def to_dict(self) -> dict[str, Any]:
        """The `drift --json` document (versioned)."""
        return {
            "format_version": DRIFT_FORMAT_VERSION,
            "drift": self.has_drift,
            "counts": {k.value: len(self.addresses(k)) for k in DriftKind},
            "items": [i.to_dict() for i in self.items],
            "unmanaged": list(self.unmanaged),
            "warnings": list(self.warnings),
        }


def _applied_unchanged(planned: Planned, address: str, view: dict[str, Any]) -> bool:
    """True when the object is owned and its configuration is the one last applied."""
    record = planned.state.resources.get(address)
    return record is not None and bool(record.digest) and record.digest == view_digest(view)


def _declared_views(desired: model.DesiredState) -> dict[str, dict[str, Any]]:
    views = {model.guest_address(n): guest_view(g) for n, g in desired.guests.items()}
    for host in desired.hosts.values():
        for vswitch in host.vswitches.values():
            views[model.vswitch_address(host.name, vswitch.name)] = vswitch_view(vswitch)
    return views


def _ignore_list(desired: model.DesiredState, address: str) -> tuple[str, ...]:
    guest = desired.guests.get(address.removeprefix("guest."))
    if not address.startswith("guest.") or guest is None:
        return ()
    return tuple(guest.lifecycle.ignore_changes)


def _missing_and_extra(planned: Planned, views: dict[str, dict[str, Any]]) -> Iterable[DriftItem]:
    """Whole objects: declared but absent from the runtime, or owned but undeclared."""
    actual = planned.actual
    if actual is None:
        return
    present = {model.guest_address(n) for n in actual.guests}
    for host in actual.hosts.values():
        present |= {model.vswitch_address(host.name, v) for v in host.vswitches}
    owned = planned.state.owned
    for address in sorted(set(views) - present):
        if address in owned:
            yield DriftItem(
                address=address,
                kind=DriftKind.DRIFT,
                actual="absent",
                declared="present",
                note="ivmctl created it, but the runtime no longer has it",
            )
        else:
            yield DriftItem(
                address=address,
                kind=DriftKind.CONFIG,
                actual="absent",
                declared="present",
                note="declared, not created yet",
            )
    for address in sorted((owned & present) - set(views)):
        yield DriftItem(
            address=address,
            kind=DriftKind.CONFIG,
            actual="present",
            declared="absent",
            note="no longer declared: apply deletes it",
        )


def drift_report(planned: Planned) -> DriftReport:
    """Classify every difference of a refresh-only plan as drift, config or ignored."""
    desired = planned.desired
    views = _declared_views(desired)
    items: list[DriftItem] = []
    for field in planned.plan.drift:
        address = field.address
        if field.how is ChangeHow.IGNORED or is_ignored(field.path, _ignore_list(desired, address)):
            kind = DriftKind.IGNORED
        elif address in views and _applied_unchanged(planned, address, views[address]):
            kind = DriftKind.DRIFT
        else:
            kind = DriftKind.CONFIG
        items.append(
            DriftItem(
                address=address,
                kind=kind,
                path=field.path,
                actual=field.before,
                declared=field.after,
                how=field.how,
            )
        )
    items.extend(_missing_and_extra(planned, views))
    items.sort(key=lambda i: (i.address, i.path))
    declared_absent = {i.address for i in items if i.path == "" and i.actual == "absent"}
    warnings = tuple(
        w
        for w in planned.plan.warnings
        if not any(w.startswith(f"{a} ") for a in declared_absent) and "no longer declared" not in w
    )
    return DriftReport(
        items=tuple(items),
        unmanaged=planned.plan.unmanaged,
        warnings=(*planned.warnings, *warnings),
    )
