"""The plan file and the `plan --json` document: the only module that knows the encoding.

Shape (format version 1), written as canonical JSON (keys sorted, no whitespace, UTF-8)
and one trailing newline; readers accept any JSON spelling of it:

    {
      "checksum": "sha256:<hex of the canonical JSON of `plan`>",
      "created_at": "<given by the caller>",
      "format_version": 1,
      "ivmctl_version": "<given by the caller>",
      "plan": <plan_to_dict(plan)>
    }

`plan_to_dict(plan)` (also the `--json` output) is:

    {"format_version": 1,
     "changes": [{"address", "action", "host", "before", "after",
                  "fields": [{"path", "before", "after", "how"}],
                  "reasons": [...],
                  "operations": [{"kind", "host", "params"}],
                  "depends_on": [change keys],
                  "phase": "make-room"            (only for a preparatory change)}],
     "unmanaged": [addresses], "drift": [{"address", "path", "before", "after", "how"}],
     "warnings": [...], "config_digest", "runtime_generation", "state_serial",
     "state_lineage", "summary": {"add", "change", "restart", "migrate", "destroy"}}

Changes are in a valid execution order; actions, hows and operation kinds are the
string values of `Action`, `ChangeHow` and `OpKind` in plan/model.py.

`decode_plan` refuses, each with its own message: another format version (naming
both), bytes that are not the JSON object above (truncated), a checksum that does
not match (tampered), unknown or missing fields, a summary that does not match the
changes, and a broken change graph. Freshness (runtime generation, state serial,
configuration digest) is checked by apply against the values carried here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ivmctl import jsontext
from ivmctl.collector import collector_paused
from ivmctl.errors import PlanFileError
from ivmctl.plan.graph import graph_problems
from ivmctl.plan.model import (
    PLAN_FORMAT_VERSION,
    Action,
    Change,
    ChangeHow,
    FieldChange,
    Operation,
    OpKind,
    Plan,
)

_ENVELOPE_KEYS = frozenset({"checksum", "created_at", "format_version", "ivmctl_version", "plan"})
_PLAN_KEYS = frozenset(
    {
        "changes",
        "config_digest",
        "drift",
        "format_version",
        "runtime_generation",
        "state_lineage",
        "state_serial",
        "summary",
        "unmanaged",
        "warnings",
    }
)
_CHANGE_KEYS = frozenset(
    {
        "action",
        "address",
        "after",
        "before",
        "depends_on",
        "fields",
        "host",
        "operations",
        "phase",
        "reasons",
    }
)
_FIELD_KEYS = frozenset({"address", "after", "before", "how", "path"})
_OP_KEYS = frozenset({"host", "kind", "params"})


# --------------------------------------------------------------------------------------------
# Plan -> dict
# --------------------------------------------------------------------------------------------


def _field_to_dict(change: FieldChange) -> dict[str, Any]:
    out: dict[str, Any] = {
        "path": change.path,
        "before": change.before,
        "after": change.after,
        "how": change.how.value,
    }
    if change.address:
        out["address"] = change.address
    return out


def _change_to_dict(change: Change) -> dict[str, Any]:
    out: dict[str, Any] = {
        "address": change.address,
        "action": change.action.value,
        "host": change.host,
        "before": None if change.before is None else dict(change.before),
        "after": None if change.after is None else dict(change.after),
        "fields": [_field_to_dict(f) for f in change.fields],
        "reasons": list(change.reasons),
        "operations": [
            {"kind": op.kind.value, "host": op.host, "params": dict(op.params)}
            for op in change.operations
        ],
        "depends_on": list(change.depends_on),
    }
    if change.phase:
        out["phase"] = change.phase
    return out


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON values: the `plan --json` document and the body of the plan file."""
    with collector_paused():
        return _plan_to_dict(plan)


def _plan_to_dict(plan: Plan) -> dict[str, Any]:
    return {
        "format_version": plan.format_version,
        "changes": [_change_to_dict(c) for c in plan.changes],
        "unmanaged": list(plan.unmanaged),
        "drift": [_field_to_dict(f) for f in plan.drift],
        "warnings": list(plan.warnings),
        "config_digest": plan.config_digest,
        "runtime_generation": plan.runtime_generation,
        "state_serial": plan.state_serial,
        "state_lineage": plan.state_lineage,
        "summary": _summary_to_dict(plan),
    }


def _summary_to_dict(plan: Plan) -> dict[str, int]:
    summary = plan.summary()
    return {
        "add": summary.add,
        "change": summary.change,
        "restart": summary.restart,
        "migrate": summary.migrate,
        "destroy": summary.destroy,
    }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def checksum_of(body: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()


def encode_plan(plan: Plan, *, ivmctl_version: str, created_at: str) -> bytes:
    """The plan file's bytes; the same inputs always give the same bytes.

    The body is encoded once, canonically, for both its checksum and the file (an
    indented file took the pure-Python encoder over a second for 10,000 guests; people
    read a saved plan with `ivmctl show`). The envelope around it is the canonical
    encoding of the whole document: its keys in sorted order.
    """
    body = _canonical(plan_to_dict(plan))
    envelope = {
        "checksum": "sha256:" + hashlib.sha256(body).hexdigest(),
        "created_at": created_at,
        "format_version": PLAN_FORMAT_VERSION,
        "ivmctl_version": ivmctl_version,
    }
    head = _canonical(envelope)[:-1]  # without its closing brace: "plan" sorts last
    return head + b',"plan":' + body + b"}\n"


# --------------------------------------------------------------------------------------------
# bytes -> Plan
# --------------------------------------------------------------------------------------------


def _refuse(summary: str, detail: str) -> PlanFileError:
    return PlanFileError(summary, detail=detail)


def _check_keys(
    obj: Any, allowed: frozenset[str], required: frozenset[str], where: str
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _refuse(f"the saved plan is malformed: {where} is not an object", _REPLAN)
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise _refuse(
            f"the saved plan has unknown fields in {where}: {', '.join(unknown)}",
            "It was written by another ivmctl or edited by hand. " + _REPLAN,
        )
    missing = sorted(required - set(obj))
    if missing:
        raise _refuse(f"the saved plan lacks fields in {where}: {', '.join(missing)}", _REPLAN)
    return obj


_REPLAN = "Run `ivmctl plan -out FILE` again and apply the new file."


def _field_from(obj: Any, where: str) -> FieldChange:
    data = _check_keys(obj, _FIELD_KEYS, _FIELD_KEYS - {"address"}, where)
    return FieldChange(
        path=str(data["path"]),
        before=data["before"],
        after=data["after"],
        how=_enum(ChangeHow, data["how"], where),
        address=str(data.get("address", "")),
    )


def _enum(kind: Any, value: Any, where: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise _refuse(
            f"the saved plan has an unknown value {value!r} in {where}", _REPLAN
        ) from None


def _object_or_null(value: Any, what: str, where: str) -> Any:
    if value is not None and not isinstance(value, dict):
        raise _refuse(
            f"the saved plan is malformed: {what} of {where} is not an object or null", _REPLAN
        )
    return value


def _change_from(obj: Any, where: str) -> Change:
    data = _check_keys(obj, _CHANGE_KEYS, _CHANGE_KEYS - {"phase"}, where)
    for key in ("before", "after"):
        _object_or_null(data[key], key, where)
    operations = []
    for i, raw in enumerate(data["operations"]):
        op = _check_keys(raw, _OP_KEYS, _OP_KEYS, f"{where}.operations[{i}]")
        operations.append(
            Operation(
                kind=_enum(OpKind, op["kind"], f"{where}.operations[{i}]"),
                host=str(op["host"]),
                params=dict(op["params"]),
            )
        )
    try:
        return Change(
            address=str(data["address"]),
            action=_enum(Action, data["action"], where),
            host=str(data["host"]),
            before=data["before"],
            after=data["after"],
            fields=tuple(_field_from(f, f"{where}.fields") for f in data["fields"]),
            reasons=tuple(str(r) for r in data["reasons"]),
            operations=tuple(operations),
            depends_on=tuple(str(d) for d in data["depends_on"]),
            phase=str(data.get("phase", "")),
        )
    except ValueError as exc:
        raise _refuse(f"the saved plan has an invalid change at {where}: {exc}", _REPLAN) from None


def plan_from_dict(body: Any) -> Plan:
    """The inverse of `plan_to_dict`; raises PlanFileError for anything it does not know."""
    data = _check_keys(body, _PLAN_KEYS, _PLAN_KEYS, "plan")
    if data["format_version"] != PLAN_FORMAT_VERSION:
        raise _version_error(data["format_version"])
    return Plan(
        changes=tuple(_change_from(c, f"changes[{i}]") for i, c in enumerate(data["changes"])),
        unmanaged=tuple(str(u) for u in data["unmanaged"]),
        drift=tuple(_field_from(f, f"drift[{i}]") for i, f in enumerate(data["drift"])),
        warnings=tuple(str(w) for w in data["warnings"]),
        config_digest=str(data["config_digest"]),
        runtime_generation=str(data["runtime_generation"]),
        state_serial=int(data["state_serial"]),
        state_lineage=str(data["state_lineage"]),
    )


def _version_error(found: Any) -> PlanFileError:
    return _refuse(
        f"the saved plan has format version {found}; this ivmctl reads format version "
        f"{PLAN_FORMAT_VERSION}",
        "Plan again with this ivmctl, or apply the file with the ivmctl that wrote it.",
    )


def decode_plan(data: bytes) -> Plan:
    """Read a plan file written by `encode_plan`."""
    with collector_paused():
        return _decode_plan(data)


def _decode_plan(data: bytes) -> Plan:
    try:
        document = jsontext.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise _refuse(
            f"the saved plan is not valid JSON (truncated or damaged): {exc}", _REPLAN
        ) from None
    if not isinstance(document, dict):
        raise _refuse("the saved plan is malformed: the document is not an object", _REPLAN)
    if "format_version" in document and document["format_version"] != PLAN_FORMAT_VERSION:
        raise _version_error(document["format_version"])
    _check_keys(document, _ENVELOPE_KEYS, _ENVELOPE_KEYS, "the file")
    if document["checksum"] != checksum_of(document["plan"]):
        raise _refuse(
            "the saved plan's checksum does not match its content (edited or damaged)",
            _REPLAN,
        )
    try:
        plan = plan_from_dict(document["plan"])
        summary = _summary_to_dict(plan)
    except PlanFileError:
        raise
    except (TypeError, AttributeError, KeyError, ValueError, OverflowError) as exc:  # wrong type
        raise _refuse(f"the saved plan is malformed: {exc}", _REPLAN) from None
    if summary != document["plan"]["summary"]:
        raise _refuse("the saved plan's summary does not match its changes", _REPLAN)
    problems = graph_problems(plan)
    if problems:
        raise _refuse("the saved plan's change graph is broken: " + "; ".join(problems), _REPLAN)
    return plan
