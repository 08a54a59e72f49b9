"""The plan file: a byte-stable, versioned round trip, and each refusal with its own message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan_cases import CASES, plan_case

from ivmctl.errors import IvmctlError, PlanFileError
from ivmctl.plan.model import PLAN_FORMAT_VERSION, Action, Change, Operation, OpKind, Plan
from ivmctl.plan.planfile import decode_plan, encode_plan, plan_to_dict

VERSION = "0.1.0"
WHEN = "2026-11-23T22:00:00Z"


def _plans() -> list[tuple[str, Plan]]:
    found = []
    for case in CASES:
        try:
            found.append((case.name, plan_case(case)))
        except IvmctlError:
            continue
    return found


PLANS = _plans()


def sample_plan() -> Plan:
    return dict(PLANS)["swap_of_two_big_guests_stops_one_first_when_restart_is_allowed"]


def encoded() -> dict:
    return json.loads(encode_plan(sample_plan(), ivmctl_version=VERSION, created_at=WHEN))


def reencode(document: dict) -> bytes:
    return json.dumps(document, indent=2, sort_keys=True).encode()


@pytest.mark.parametrize(("name", "plan"), PLANS, ids=[n for n, _ in PLANS])
def test_every_case_plan_survives_a_round_trip_through_the_plan_file(name: str, plan: Plan) -> None:
    data = encode_plan(plan, ivmctl_version=VERSION, created_at=WHEN)
    decoded = decode_plan(data)
    assert plan_to_dict(decoded) == plan_to_dict(plan)
    assert encode_plan(decoded, ivmctl_version=VERSION, created_at=WHEN) == data


def test_the_plan_file_is_byte_stable_sorted_and_ends_with_a_newline() -> None:
    first = encode_plan(sample_plan(), ivmctl_version=VERSION, created_at=WHEN)
    assert encode_plan(sample_plan(), ivmctl_version=VERSION, created_at=WHEN) == first
    assert first.endswith(b"}\n")
    document = json.loads(first)
    assert list(document) == sorted(document)
    assert document["format_version"] == PLAN_FORMAT_VERSION
    assert document["checksum"].startswith("sha256:")
    assert document["ivmctl_version"] == VERSION and document["created_at"] == WHEN


def test_the_plan_file_carries_what_stale_checks_need() -> None:
    body = encoded()["plan"]
    assert body["runtime_generation"] == "42"
    assert body["config_digest"] == "sha256:config"
    assert {"state_serial", "state_lineage", "summary"} <= set(body)


def test_the_make_room_phase_survives_the_round_trip() -> None:
    plan = decode_plan(encode_plan(sample_plan(), ivmctl_version=VERSION, created_at=WHEN))
    keys = [c.key for c in plan.changes]
    assert "guest.b#make-room" in keys
    assert plan.summary().migrate == 2


def test_another_format_version_is_refused_naming_both_versions() -> None:
    document = encoded()
    document["format_version"] = 99
    with pytest.raises(PlanFileError) as caught:
        decode_plan(reencode(document))
    assert "format version 99" in caught.value.summary
    assert f"format version {PLAN_FORMAT_VERSION}" in caught.value.summary


def test_a_truncated_plan_file_is_refused() -> None:
    data = encode_plan(sample_plan(), ivmctl_version=VERSION, created_at=WHEN)
    with pytest.raises(PlanFileError, match="not valid JSON"):
        decode_plan(data[: len(data) // 2])


def test_a_plan_file_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(PlanFileError, match="not valid JSON"):
        decode_plan(b"\xff\xfe{")


def test_a_plan_file_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(PlanFileError, match="not an object"):
        decode_plan(b"[1, 2]")


def test_an_edited_plan_is_refused_by_its_checksum() -> None:
    document = encoded()
    document["plan"]["changes"][2]["operations"][0]["params"]["graceful"] = False
    with pytest.raises(PlanFileError, match="checksum does not match"):
        decode_plan(reencode(document))


def test_unknown_fields_in_the_envelope_are_refused() -> None:
    document = encoded()
    document["extra"] = 1
    with pytest.raises(PlanFileError, match="unknown fields in the file: extra"):
        decode_plan(reencode(document))


def _with_body(mutate) -> bytes:  # type: ignore[no-untyped-def]
    from ivmctl.plan.planfile import checksum_of

    document = encoded()
    mutate(document["plan"])
    document["checksum"] = checksum_of(document["plan"])
    return reencode(document)


def test_unknown_fields_in_a_change_are_refused_even_with_a_valid_checksum() -> None:
    data = _with_body(lambda body: body["changes"][0].update(surprise=True))
    with pytest.raises(PlanFileError) as caught:
        decode_plan(data)
    assert caught.value.summary.startswith("the saved plan has unknown fields in changes[0]")


def test_missing_fields_are_refused() -> None:
    data = _with_body(lambda body: body.pop("drift"))
    with pytest.raises(PlanFileError, match="lacks fields in plan: drift"):
        decode_plan(data)


def test_an_unknown_action_is_refused() -> None:
    data = _with_body(lambda body: body["changes"][0].update(action="explode"))
    with pytest.raises(PlanFileError, match="unknown value 'explode'"):
        decode_plan(data)


def test_an_unknown_operation_kind_is_refused() -> None:
    data = _with_body(lambda body: body["changes"][2]["operations"][0].update(kind="guest.nuke"))
    with pytest.raises(PlanFileError, match=r"unknown value 'guest\.nuke'"):
        decode_plan(data)


def test_a_summary_that_does_not_match_the_changes_is_refused() -> None:
    data = _with_body(lambda body: body["summary"].update(destroy=5))
    with pytest.raises(PlanFileError, match="summary does not match"):
        decode_plan(data)


def test_an_invalid_change_is_refused() -> None:
    def break_it(body: dict) -> None:
        body["changes"][0].update(action="create")  # a no-op turned create, with a before

    data = _with_body(break_it)
    with pytest.raises(PlanFileError, match="invalid change"):
        decode_plan(data)


def test_plan_to_dict_is_the_json_output_shape() -> None:
    plan = Plan(
        changes=(
            Change(
                address="guest.g",
                action=Action.START,
                host="h",
                before={"power": "off"},
                after={"power": "on"},
                operations=(Operation(kind=OpKind.GUEST_START, host="h", params={"name": "g"}),),
            ),
        ),
        runtime_generation="7",
    )
    body = plan_to_dict(plan)
    assert body["summary"] == {"add": 0, "change": 1, "restart": 0, "migrate": 0, "destroy": 0}
    assert body["changes"][0]["operations"] == [
        {"kind": "guest.start", "host": "h", "params": {"name": "g"}}
    ]
    assert "phase" not in body["changes"][0]
    assert json.loads(json.dumps(body)) == body


def test_the_planfile_module_is_the_only_one_that_knows_the_encoding() -> None:
    package = Path(__file__).resolve().parents[2] / "ivmctl" / "plan"
    users = [p.name for p in package.glob("*.py") if "import json" in p.read_text()]
    assert users == ["planfile.py"]


def test_a_plan_whose_dependencies_point_forward_is_refused() -> None:
    data = _with_body(lambda body: body["changes"][2].update(depends_on=["guest.b"]))
    with pytest.raises(PlanFileError, match="change graph is broken"):
        decode_plan(data)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda body: body["changes"][2]["operations"][0].update(params=[1, 2]),
        lambda body: body["changes"][2].update(operations=7),
        lambda body: body.update(state_serial="seven"),
        lambda body: body.update(changes=[1]),
    ],
    ids=[
        "params-not-an-object",
        "operations-not-a-list",
        "serial-not-a-number",
        "change-not-an-object",
    ],
)
def test_values_of_the_wrong_type_are_refused_as_malformed(mutate) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(PlanFileError, match=r"malformed|invalid"):
        decode_plan(_with_body(mutate))


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), 1e400])
def test_a_serial_of_infinity_or_nan_is_refused_not_a_traceback(value: float) -> None:
    """Found by the soak fuzz run: Python's JSON reader takes Infinity and NaN, which
    made `int()` raise OverflowError past the plan file's own errors."""
    with pytest.raises(PlanFileError, match=r"not valid JSON|malformed"):
        decode_plan(_with_body(lambda body: body.update(state_serial=value)))


def test_the_plan_file_is_the_canonical_json_of_its_document() -> None:
    data = encode_plan(sample_plan(), ivmctl_version=VERSION, created_at="2026-11-23T22:00:00Z ü")
    document = json.loads(data)
    assert (
        data
        == json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n"
    )
    assert set(document) == {"checksum", "created_at", "format_version", "ivmctl_version", "plan"}
