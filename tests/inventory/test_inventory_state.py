"""`ivmctl state list|show|rm`, and the Example section of every inventory command's help."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inventory_helpers import Ivmctl, actionable, apply_all, generation, session_for

from ivmctl.errors import PlanError

OWNED = [
    "guest.build01",
    "guest.web01",
    "guest.web02",
    "vswitch.vmhost01.vswlocal",
    "vswitch.vmhost01.vswprod",
]


@pytest.fixture
def protected(quickstart: Path, ivmctl: Ivmctl) -> Path:
    """The quickstart with web01 protected by prevent_destroy, recorded by a re-import
    (an apply with no other change does not record it: bug B2 below)."""
    config = quickstart / "ivmctl.yaml"
    config.write_text(
        config.read_text().replace(
            "ignore_changes: [label]", "ignore_changes: [label]\n      prevent_destroy: true"
        )
    )
    assert ivmctl("-C", str(quickstart), "state", "rm", "guest.web01", "--yes")[0] == 0
    assert ivmctl("-C", str(quickstart), "import", "guest.web01")[0] == 0
    return quickstart


def test_prevent_destroy_declared_later_protects_the_guest_once_applied(
    quickstart: Path,
) -> None:
    config = quickstart / "ivmctl.yaml"
    config.write_text(
        config.read_text().replace(
            "ignore_changes: [label]", "ignore_changes: [label]\n      prevent_destroy: true"
        )
    )
    apply_all(quickstart)
    text = config.read_text()
    config.write_text(text[: text.index("  web01:")] + text[text.index("  web02:") :])
    with pytest.raises(PlanError, match="prevent_destroy"):
        actionable(quickstart)


def test_state_list_shows_owned_addresses_hosts_and_prevent_destroy(
    protected: Path, ivmctl: Ivmctl
) -> None:
    code, out, _ = ivmctl("-C", str(protected), "state", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["ADDRESS", "HOST", "STATUS", "PREVENT_DESTROY"]
    rows = [line.split() for line in lines[1:]]
    assert [r[0] for r in rows] == OWNED
    assert {r[0]: tuple(r[1:]) for r in rows}["guest.web01"] == ("vmhost01", "owned", "yes")
    assert {r[0]: r[3] for r in rows}["guest.web02"] == "no"


def test_state_list_json_is_versioned_and_complete(protected: Path, ivmctl: Ivmctl) -> None:
    code, out, _ = ivmctl("-C", str(protected), "state", "list", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["format_version"] == 1
    assert body["serial"] > 0 and body["lineage"]
    assert [r["address"] for r in body["resources"]] == OWNED
    assert body["resources"][1] == {
        "address": "guest.web01",
        "host": "vmhost01",
        "prevent_destroy": True,
        "status": "owned",
    }


def test_state_list_of_a_new_directory_says_ivmctl_owns_nothing(
    tmp_path: Path, ivmctl: Ivmctl
) -> None:
    code, out, _ = ivmctl("-C", str(tmp_path), "state", "list")
    assert (code, out) == (0, "ivmctl owns nothing in this directory.\n")


def test_state_show_prints_one_record(protected: Path, ivmctl: Ivmctl) -> None:
    code, out, _ = ivmctl("-C", str(protected), "state", "show", "guest.web01")
    assert code == 0
    assert "address:         guest.web01" in out
    assert "prevent_destroy: yes" in out
    assert "digest:          sha256:" in out
    code, out, _ = ivmctl("-C", str(protected), "state", "show", "guest.web01", "--json")
    assert json.loads(out)["host"] == "vmhost01"


def test_state_show_of_an_address_not_owned_lists_what_is(quickstart: Path, ivmctl: Ivmctl) -> None:
    code, out, err = ivmctl("-C", str(quickstart), "state", "show", "guest.nosuch")
    assert (code, out) == (1, "")
    assert "guest.nosuch is not in the state" in err
    assert "guest.web01" in err
    assert "Traceback" not in err


def test_state_rm_forgets_ownership_and_leaves_the_runtime_alone(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    before = generation(quickstart)
    code, out, _ = ivmctl("-C", str(quickstart), "state", "rm", "guest.web02", "--yes")
    assert code == 0
    assert "Removed guest.web02 from the state" in out
    with session_for(quickstart) as session:
        assert "guest.web02" not in session.backend.read().owned
    assert generation(quickstart) == before
    assert actionable(quickstart) == [("guest.web02", "adopt")]  # still declared: adopt again


def test_a_forgotten_undeclared_guest_becomes_unmanaged_not_deleted(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    ivmctl("-C", str(quickstart), "state", "rm", "guest.build01", "--yes")
    config = quickstart / "ivmctl.yaml"
    text = config.read_text()
    config.write_text(text[: text.index("  build01:")])
    with session_for(quickstart) as session:
        plan = session.plan().plan
    assert plan.actionable == ()
    assert "guest.build01" in plan.unmanaged


def test_state_rm_without_a_terminal_or_yes_removes_nothing(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "state", "rm", "guest.web01")
    assert code == 1
    assert "--yes" in err
    with session_for(quickstart) as session:
        assert "guest.web01" in session.backend.read().owned


def test_state_rm_takes_the_lock(quickstart: Path, ivmctl: Ivmctl) -> None:
    with session_for(quickstart) as session, session.backend.lock(operation="apply"):
        code, _, err = ivmctl("-C", str(quickstart), "state", "rm", "guest.web01", "--yes")
    assert code == 1
    assert "the state is locked" in err and "force-unlock" in err
    with session_for(quickstart) as session:
        assert "guest.web01" in session.backend.read().owned


def test_state_rm_of_an_address_not_owned_is_an_error(quickstart: Path, ivmctl: Ivmctl) -> None:
    code, _, err = ivmctl("-C", str(quickstart), "state", "rm", "guest.nosuch", "--yes")
    assert code == 1
    assert "guest.nosuch is not in the state" in err


@pytest.mark.parametrize(
    "command",
    [["import"], ["export"], ["state"], ["state", "list"], ["state", "show"], ["state", "rm"]],
)
def test_every_inventory_command_has_help_with_an_example(
    ivmctl: Ivmctl, command: list[str]
) -> None:
    code, out, _ = ivmctl(*command, "--help")
    assert code == 0
    assert "Example:" in out
    assert f"ivmctl {command[0]}" in out.split("Example:")[1]


def test_docs_state_md_documents_every_key_of_the_state_file() -> None:
    import re

    from ivmctl.state import ResourceRecord, State

    doc = (Path(__file__).resolve().parents[2] / "docs" / "state.md").read_text()
    table = doc.split("## The state file")[1].split("##")[0]
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    state = State.new().with_record(ResourceRecord(address="guest.a", host="h"))
    body = json.loads(state.to_json())
    assert documented == set(body)
    for key in body["resources"]["guest.a"]:
        assert f"`{key}`" in table
