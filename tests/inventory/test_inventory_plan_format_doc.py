"""docs/plan-format.md documents exactly what plan_to_dict and encode_plan emit.

The keys, actions, hows and operation kinds listed in the doc's tables are compared with
the code's, so a key added to (or removed from) the format fails here until the doc says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

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
from ivmctl.plan.planfile import encode_plan, plan_to_dict

DOC = Path(__file__).resolve().parents[2] / "docs" / "plan-format.md"


def section(heading: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def tables(heading: str) -> list[set[str]]:
    """The backticked first-column values of each table of a section."""
    found: list[set[str]] = []
    current: set[str] | None = None
    for line in section(heading).splitlines():
        if not line.startswith("|"):
            current = None
            continue
        if current is None:
            current = set()
            found.append(current)
        match = re.match(r"^\|\s*`([^`]+)`\s*\|", line)
        if match:
            current.add(match.group(1))
    return found


STOP = Operation(kind=OpKind.GUEST_STOP, host="h1", params={"name": "a", "graceful": True})


def sample_plan() -> Plan:
    """A plan with every optional part present: a phase, fields, operations, drift."""
    field = FieldChange(path="vcpus", before=1, after=2, how=ChangeHow.NEEDS_OFF)
    return Plan(
        changes=(
            Change(
                address="guest.a",
                action=Action.STOP,
                host="h1",
                before={"name": "a"},
                after={"name": "a"},
                reasons=("make room",),
                operations=(
                    Operation(
                        kind=OpKind.GUEST_STOP, host="h1", params={"name": "a", "graceful": True}
                    ),
                ),
                phase="make-room",
            ),
            Change(
                address="guest.a",
                action=Action.RESTART,
                host="h1",
                before={"name": "a"},
                after={"name": "a"},
                fields=(field,),
                reasons=("vcpus",),
                operations=(Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "a"}),),
                depends_on=("guest.a#make-room",),
            ),
        ),
        unmanaged=("guest.other",),
        drift=(
            FieldChange(
                path="label", before="x", after="y", how=ChangeHow.IGNORED, address="guest.a"
            ),
        ),
        warnings=("w",),
        config_digest="sha256:c",
        runtime_generation="1",
        state_serial=1,
        state_lineage="l",
    )


def test_the_documented_top_level_keys_are_the_emitted_ones() -> None:
    assert tables("Top-level keys")[0] == set(plan_to_dict(sample_plan()))


def test_the_documented_summary_counts_are_the_emitted_ones() -> None:
    documented = set(re.findall(r"`(\w+)`", section("Top-level keys").split("`summary` |")[1]
                                .split("\n")[0]))  # fmt: skip
    assert documented == set(plan_to_dict(sample_plan())["summary"])


def test_the_documented_change_keys_are_the_emitted_ones() -> None:
    emitted: set[str] = set()
    for change in plan_to_dict(sample_plan())["changes"]:
        emitted |= set(change)
    assert tables("Change keys")[0] == emitted


def test_the_documented_field_change_keys_and_hows_are_the_emitted_ones() -> None:
    body = plan_to_dict(sample_plan())
    emitted = set(body["changes"][1]["fields"][0]) | set(body["drift"][0])
    keys, hows = tables("Field change keys")
    assert keys == emitted
    assert hows == {h.value for h in ChangeHow}


def test_the_documented_actions_are_every_action() -> None:
    assert tables("Actions")[0] == {a.value for a in Action}


def test_the_documented_operations_are_every_kind_with_its_keys() -> None:
    keys, kinds = tables("Operations")
    assert keys == set(plan_to_dict(sample_plan())["changes"][0]["operations"][0])
    assert kinds == {k.value for k in OpKind}


def test_every_operation_parameter_of_the_model_docstring_is_documented() -> None:
    """The OpKind docstring is the source table; the doc must name each parameter."""
    rows = {
        line.split("|")[1].strip().strip("`"): line.split("|")[2]
        for line in section("Operations").splitlines()
        if line.startswith("| `") and "." in line.split("|")[1]
    }
    doc = OpKind.__doc__ or ""
    for kind in OpKind:
        match = re.search(rf"^\s*\* {re.escape(kind.value)}\s+(.*?)(?=^\s*\* |^\s*$)", doc,
                          re.M | re.S)  # fmt: skip
        assert match, kind
        first_clause = re.split(r"[(:]", re.sub(r"\{[^}]*\}", "", match.group(1)))[0]
        for name in re.findall(r"[a-z_]+", first_clause):
            assert f"`{name}`" in rows[kind.value], (kind.value, name)


def test_the_documented_envelope_keys_are_the_plan_file_ones() -> None:
    document = json.loads(encode_plan(sample_plan(), ivmctl_version="0", created_at="now"))
    assert tables("The plan file envelope")[0] == set(document)
    assert document["format_version"] == PLAN_FORMAT_VERSION
    assert f"format version **{PLAN_FORMAT_VERSION}**" in DOC.read_text(encoding="utf-8")


@pytest.mark.parametrize("heading", ["Top-level keys", "Change keys", "Actions", "Operations"])
def test_every_documented_row_has_a_meaning(heading: str) -> None:
    for line in section(heading).splitlines():
        if line.startswith("| `"):
            assert line.rstrip("| ").count("|") >= 1 and line.split("|")[2].strip(), line
