"""`ivmctl drift`: refresh only; drift told apart from unapplied changes and ignored fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture
def applied(ivmctl, quickstart: Path) -> Path:
    ivmctl("apply", "--auto-approve")
    return quickstart


def hpvm(ivmctl, *command: str) -> None:
    ivmctl("emulator", "exec", "vmhost01", "--", *command)


def test_drift_exits_0_when_the_runtime_matches(ivmctl, applied: Path) -> None:
    ran = ivmctl("drift")
    assert ran.out == "No drift. The runtime matches the configuration.\n"


def test_an_out_of_band_change_is_drift_and_exits_2(ivmctl, applied: Path) -> None:
    hpvm(ivmctl, "hpvmmodify", "-P", "web02", "-e", "30")
    ran = ivmctl("drift", expect=2)
    assert ran.out.splitlines()[:2] == [
        "Drift: the runtime changed outside ivmctl (`ivmctl apply` puts it back):",
        "  guest.web02: entitlement.min_pct: runtime has 30.0, declared 20.0  (online)",
    ]
    assert ran.out.endswith(
        "Drift: 1 drifted, 0 with configuration changes not applied, 0 with ignored differences.\n"
    )


def test_drift_changes_nothing(ivmctl, applied: Path) -> None:
    hpvm(ivmctl, "hpvmmodify", "-P", "web02", "-e", "30")
    ivmctl("drift", expect=2)
    ivmctl("drift", expect=2)
    assert "entitlement" in ivmctl("plan").out


def test_an_edited_configuration_is_not_called_drift(ivmctl, applied: Path) -> None:
    config = applied / "ivmctl.yaml"
    config.write_text(config.read_text().replace("memory: 8G", "memory: 6G"))
    ran = ivmctl("drift", expect=2)
    assert "Drift: the runtime" not in ran.out
    assert ran.out.splitlines()[:2] == [
        "Configuration changes not applied yet (`ivmctl plan` shows how):",
        "  guest.build01: memory_mb: runtime has 8192, declared 6144  (needs the guest Off)",
    ]


def test_an_ignored_field_is_reported_but_is_not_drift(ivmctl, applied: Path) -> None:
    hpvm(ivmctl, "hpvmmodify", "-P", "web01", "-l", "changed by hand")
    ran = ivmctl("drift", expect=0)
    assert ran.out.splitlines()[:2] == [
        "Ignored differences (lifecycle.ignore_changes; reported, never corrected):",
        '  guest.web01: label: runtime has "changed by hand", declared "web front end"',
    ]


def test_a_guest_removed_behind_ivmctls_back_is_drift(ivmctl, applied: Path) -> None:
    hpvm(ivmctl, "hpvmremove", "-P", "build01", "-F")
    ran = ivmctl("drift", expect=2)
    assert "  guest.build01: ivmctl created it, but the runtime no longer has it" in ran.out


def test_before_the_first_apply_everything_is_an_unapplied_configuration(
    ivmctl, quickstart: Path
) -> None:
    report = json.loads(ivmctl("drift", "--json", expect=2).out)
    assert report["counts"] == {"config": 5, "drift": 0, "ignored": 0}
    assert {i["note"] for i in report["items"]} == {"declared, not created yet"}


def test_drift_json_is_versioned_and_tells_kinds_apart(ivmctl, applied: Path) -> None:
    hpvm(ivmctl, "hpvmmodify", "-P", "web02", "-e", "30")
    hpvm(ivmctl, "hpvmmodify", "-P", "web01", "-l", "x")
    config = applied / "ivmctl.yaml"
    config.write_text(config.read_text().replace("memory: 8G", "memory: 6G"))
    report = json.loads(ivmctl("drift", "--json", expect=2).out)
    assert report["format_version"] == 1
    assert report["drift"] is True
    assert report["counts"] == {"config": 1, "drift": 1, "ignored": 1}
    assert [(i["address"], i["kind"], i["path"]) for i in report["items"]] == [
        ("guest.build01", "config", "memory_mb"),
        ("guest.web01", "ignored", "label"),
        ("guest.web02", "drift", "entitlement.min_pct"),
    ]
    assert report["items"][2] | {} == {
        "address": "guest.web02",
        "kind": "drift",
        "path": "entitlement.min_pct",
        "actual": 30.0,
        "declared": 20.0,
        "how": "online",
        "note": "",
    }


def test_drift_on_an_invalid_configuration_exits_1_without_traceback(ivmctl, applied: Path) -> None:
    (applied / "ivmctl.yaml").write_text("apiVersion: ivmctl/v1\nguests: {a: {host: nowhere}}\n")
    ran = ivmctl("drift", expect=1)
    assert ran.err.startswith("error:")
    assert "Traceback" not in ran.err


def test_after_an_applied_update_a_later_hand_change_is_still_drift(ivmctl, applied: Path) -> None:
    config = applied / "ivmctl.yaml"
    config.write_text(config.read_text().replace("{min: 20%, max: 60%}", "{min: 30%, max: 60%}"))
    ivmctl("apply", "--auto-approve")
    hpvm(ivmctl, "hpvmmodify", "-P", "web02", "-e", "40")
    report = json.loads(ivmctl("drift", "--json", expect=2).out)
    assert [(i["address"], i["kind"], i["declared"]) for i in report["items"]] == [
        ("guest.web02", "drift", 30.0)
    ]
