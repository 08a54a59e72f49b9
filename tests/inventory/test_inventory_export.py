"""`ivmctl export`: YAML for what the runtime has, that validates and plans to no change."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inventory_helpers import Ivmctl, actionable, apply_all, generation, session_for

from ivmctl.providers.base import Step
from ivmctl.spec import load_desired
from ivmctl.spec.yamlio import parse_yaml


def fresh_directory_with_runtime(source: Path, target: Path, yaml_text: str) -> Path:
    """A configuration directory holding only `yaml_text` and the same emulator world,
    with no state: ivmctl owns nothing there."""
    target.mkdir()
    (target / ".ivmctl").mkdir()
    shutil.copy(source / ".ivmctl" / "emulator.db", target / ".ivmctl" / "emulator.db")
    (target / "ivmctl.yaml").write_text(yaml_text, encoding="utf-8")
    return target


def test_export_validates_and_plans_only_adoptions_then_import_leaves_no_change(
    quickstart: Path, ivmctl: Ivmctl, tmp_path: Path
) -> None:
    code, text, _ = ivmctl("-C", str(quickstart), "export")
    assert code == 0
    exported = fresh_directory_with_runtime(quickstart, tmp_path / "exported", text)

    code, out, _ = ivmctl("-C", str(exported), "validate")
    assert code == 0, out
    assert "1 host, 2 vswitches, 3 guests" in out
    with session_for(exported) as session:
        plan = session.plan().plan
    adoptions = {c.address: c.fields for c in plan.actionable}
    assert {c.action.value for c in plan.actionable} == {"adopt"}
    assert adoptions == {
        "guest.build01": (),
        "guest.web01": (),
        "guest.web02": (),
        "vswitch.vmhost01.vswlocal": (),
        "vswitch.vmhost01.vswprod": (),
    }
    before = generation(exported)
    for address in sorted(adoptions):
        code, out, err = ivmctl("-C", str(exported), "import", address)
        assert code == 0, err
        assert "It matches its configuration." in out
    assert actionable(exported) == []
    assert generation(exported) == before


def test_applying_an_export_only_records_ownership(
    quickstart: Path, ivmctl: Ivmctl, tmp_path: Path
) -> None:
    _, text, _ = ivmctl("-C", str(quickstart), "export")
    exported = fresh_directory_with_runtime(quickstart, tmp_path / "exported", text)
    before = generation(exported)
    apply_all(exported)
    assert generation(exported) == before
    assert actionable(exported) == []


def test_export_pins_no_runtime_chosen_value_and_spells_memory_in_gigabytes(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    code, text, _ = ivmctl("-C", str(quickstart), "export")
    assert code == 0
    doc = parse_yaml(text)
    web01 = doc["guests"]["web01"]
    assert web01["memory"] == "4G"
    assert web01["dynamic_memory"] == {"min": "2G", "max": "8G", "target": "4G"}
    assert web01["nics"] == [{"vswitch": "vswprod", "vlan": 100}]  # no mac, port, address
    assert web01["disks"] == [{"backing": "file", "path": "/ivm/web01/root.img"}]  # no size
    assert doc["guests"]["web02"]["entitlement"] == {"min": "20%", "max": "60%"}
    assert doc["guests"]["build01"]["power"] == "off"
    assert doc["hosts"]["vmhost01"]["version"] == "6.3"
    assert doc["hosts"]["vmhost01"]["hardware"]["memory"] == "64G"
    assert doc["hosts"]["vmhost01"]["vswitches"] == {"vswlocal": {}, "vswprod": {"nic": "lan0"}}
    for name in ("mac", "port", "address", "size"):
        assert f"{name}:" not in text
    # every configurable field is explicit, so `defaults:` elsewhere cannot change it
    assert list(web01) == [
        "host", "os", "vcpus", "entitlement", "memory", "dynamic_memory", "power", "start",
        "label", "disks", "dvds", "nics", "online_migration", "vm_type",
    ]  # fmt: skip


def test_export_writes_memory_that_is_not_whole_gigabytes_in_megabytes(
    quickstart: Path, ivmctl: Ivmctl
) -> None:
    config = quickstart / "ivmctl.yaml"
    config.write_text(config.read_text().replace("memory: 8G", "memory: 4160M"))
    apply_all(quickstart)
    _, text, _ = ivmctl("-C", str(quickstart), "export")
    assert parse_yaml(text)["guests"]["build01"]["memory"] == "4160M"


TWO_HOSTS = """apiVersion: ivmctl/v1
hosts:
  h1: {version: "6.3",
      hardware: {cores: 4, memory: 16G, nics: [lan0]}, vswitches: {vsw: {nic: lan0}}}
  h2: {version: "6.3",
      hardware: {cores: 4, memory: 16G, nics: [lan0]}, vswitches: {vsw: {nic: lan0}}}
guests:
  moved: {host: h1, power: off, nics: [{vswitch: vsw}]}
  stays: {host: h2, vcpus: 2}
"""


@pytest.fixture
def two_hosts(tmp_path: Path) -> Path:
    config_dir = tmp_path / "two"
    config_dir.mkdir()
    (config_dir / "ivmctl.yaml").write_text(TWO_HOSTS)
    apply_all(config_dir)
    return config_dir


def test_export_leaves_out_off_nr_copies_and_says_so(two_hosts: Path, ivmctl: Ivmctl) -> None:
    # A migration by hand leaves an Off (NR) copy of `moved` on h1.
    with session_for(two_hosts) as session:
        desired, _ = session.load()
        provider = session.provider(desired.provider)
        migrate = Step(host="h1", argv=("hpvmmigrate", "-P", "moved", "-h", "h2"), description="")
        assert provider.execute(migrate).ok
        assert ("h1", "moved") in provider.refresh(["h1", "h2"]).not_runnable

    code, text, err = ivmctl("-C", str(two_hosts), "export")

    assert code == 0
    assert "Left out the Off (NR) copy of moved on h1." in err
    doc = parse_yaml(text)
    assert sorted(doc["guests"]) == ["moved", "stays"]
    assert doc["guests"]["moved"]["host"] == "h2"


def test_export_of_one_host_has_only_that_host_and_its_guests(
    two_hosts: Path, ivmctl: Ivmctl, tmp_path: Path
) -> None:
    code, text, _ = ivmctl("-C", str(two_hosts), "export", "--host", "h2")
    assert code == 0
    doc = parse_yaml(text)
    assert list(doc["hosts"]) == ["h2"]
    assert list(doc["guests"]) == ["stays"]
    target = tmp_path / "h2only"
    target.mkdir()
    (target / "h2.yaml").write_text(text)
    desired = load_desired(target, variables={}, var_files=(), environ={}, filters={},
                           cache_dir=None)  # fmt: skip
    assert desired.guests["stays"].vcpus == 2


def test_export_to_a_file_refuses_to_overwrite_without_force(
    quickstart: Path, ivmctl: Ivmctl, tmp_path: Path
) -> None:
    out = tmp_path / "fleet.yaml"
    code, stdout, err = ivmctl("-C", str(quickstart), "export", "-o", str(out))
    assert (code, stdout) == (0, "")
    assert "Wrote" in err and "1 host(s), 3 guest(s)" in err
    first = out.read_text()
    assert first.startswith("# Exported by `ivmctl export`")
    code, _, err = ivmctl("-C", str(quickstart), "export", "-o", str(out))
    assert code == 1
    assert "--force" in err
    code, _, _ = ivmctl("-C", str(quickstart), "export", "-o", str(out), "--force")
    assert code == 0
    assert out.read_text() == first


def test_export_of_an_unknown_host_is_an_error(quickstart: Path, ivmctl: Ivmctl) -> None:
    code, out, err = ivmctl("-C", str(quickstart), "export", "--host", "nosuch")
    assert (code, out) == (1, "")
    assert "host nosuch not found in the runtime" in err
