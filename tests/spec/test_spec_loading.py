"""Loading a directory: merge across files, sources for the planner, a stable digest."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivmctl.errors import ErrorGroup, SpecError
from ivmctl.spec import InvalidConfig, SpecOptions, load_desired, load_spec

HOSTS = """apiVersion: ivmctl/v1
hosts:
  vmhost01:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
    vswitches:
      vswprod: {nic: lan0}
"""
GUESTS = """guests:
  web01:
    host: vmhost01
    memory: 4G
    nics:
      - {vswitch: vswprod}
"""


def test_files_are_merged_by_their_top_level_maps(write_config) -> None:
    config = write_config({"10-hosts.yaml": HOSTS, "20-guests.yml": GUESTS})
    result = load_spec(config, SpecOptions(environ={}))
    assert result.files == ("10-hosts.yaml", "20-guests.yml")
    assert result.desired.guests["web01"].host == "vmhost01"


def test_hidden_and_other_files_are_ignored(write_config) -> None:
    config = write_config({"a.yaml": HOSTS, ".hidden.yaml": "x: 1\n", "notes.txt": "x"})
    assert load_spec(config, SpecOptions(environ={})).files == ("a.yaml",)


def test_load_desired_returns_the_desired_state(write_config) -> None:
    config = write_config({"a.yaml": HOSTS + GUESTS})
    desired = load_desired(config, environ={})
    assert desired.guests["web01"].memory_mb == 4096
    assert desired.provider.name == "emulator"


def test_sources_point_the_planner_at_file_and_line(write_config) -> None:
    config = write_config({"a.yaml": HOSTS, "b.yaml": GUESTS})
    sources = load_desired(config, environ={}).sources
    assert str(sources["guest.web01"]) == "b.yaml:2:3: guest.web01"
    assert str(sources["guest.web01:memory"]) == "b.yaml:4:13: guest.web01: memory"
    assert (
        str(sources["guest.web01:nics[0].vswitch"]) == "b.yaml:6:19: guest.web01: nics[0].vswitch"
    )
    assert str(sources["host.vmhost01"]) == "a.yaml:3:3: host.vmhost01"
    assert str(sources["vswitch.vmhost01.vswprod"]) == "a.yaml:6:7: vswitch.vmhost01.vswprod"


def test_sources_of_inherited_fields_point_at_the_profile(write_config) -> None:
    profile = "profiles:\n  small: {vcpus: 2}\n"
    config = write_config(
        {"a.yaml": HOSTS + profile + GUESTS.replace("memory: 4G", "profile: small")}
    )
    sources = load_desired(config, environ={}).sources
    assert str(sources["guest.web01:vcpus"]) == "a.yaml:8:18: guest.web01: vcpus"


def test_digest_ignores_spelling_layout_comments_and_file_split(write_config, tmp_path) -> None:
    config = write_config({"a.yaml": HOSTS + GUESTS})
    one = load_desired(config, environ={}).digest
    (tmp_path / "a.yaml").write_text(HOSTS, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(
        "# guests\n"
        + GUESTS.replace("4G", "4096M").replace(
            "{vswitch: vswprod}", "{vswitch: vswprod, mac: auto}"
        ),
        encoding="utf-8",
    )
    two = load_desired(config, environ={}).digest
    assert one == two
    assert one.startswith("sha256:") and len(one) == len("sha256:") + 64


def test_digest_changes_with_meaning(write_config, tmp_path) -> None:
    config = write_config({"a.yaml": HOSTS + GUESTS})
    before = load_desired(config, environ={}).digest
    (tmp_path / "a.yaml").write_text(HOSTS + GUESTS.replace("4G", "8G"), encoding="utf-8")
    assert load_desired(config, environ={}).digest != before


def test_invalid_configuration_is_an_error_group_and_a_spec_error(write_config) -> None:
    config = write_config({"a.yaml": GUESTS})
    with pytest.raises(InvalidConfig) as caught:
        load_desired(config, environ={})
    assert isinstance(caught.value, ErrorGroup) and isinstance(caught.value, SpecError)
    summaries = sorted(e.summary for e in caught.value.errors)
    assert summaries == ["no file declares apiVersion", 'no host "vmhost01"']


def test_a_broken_object_does_not_hide_problems_elsewhere(write_config) -> None:
    bad = GUESTS + "  web02:\n    host: vmhost01\n    vcpus: many\n  web03:\n    host: nohost\n"
    config = write_config({"a.yaml": HOSTS + bad})
    with pytest.raises(InvalidConfig) as caught:
        load_desired(config, environ={})
    assert [str(e.location) for e in caught.value.errors] == [
        "a.yaml:15:12: guest.web02: vcpus",
        "a.yaml:17:11: guest.web03: host",
    ]


def test_a_guest_on_a_host_with_schema_problems_is_not_reported_twice(write_config) -> None:
    hosts = HOSTS.replace("cores: 8", "cores: eight")
    config = write_config({"a.yaml": hosts + GUESTS})
    with pytest.raises(InvalidConfig) as caught:
        load_desired(config, environ={})
    assert [e.summary for e in caught.value.errors] == ['expected an integer, got "eight"']


def test_cache_dir_receives_parsed_files(write_config, tmp_path: Path) -> None:
    # a file for the exact loader (an anchor): the fast loader's parses are not cached
    config = write_config({"a.yaml": HOSTS.replace("lan0]", "&nics lan0]") + GUESTS})
    cache = tmp_path / ".ivmctl" / "cache"
    first = load_desired(config, environ={}, cache_dir=cache)
    assert list(cache.rglob("*.marshal"))
    assert load_desired(config, environ={}, cache_dir=cache).digest == first.digest


def test_hosts_are_normalised(write_config) -> None:
    config = write_config(
        {
            "a.yaml": """apiVersion: ivmctl/v1
provider: {name: emulator, options: {z: 1, a: {y: 2, b: 3}}}
hosts:
  h1:
    version: 6.3
    hardware: {cores: 16, memory: 128G, nics: [lan0, lan1], mhz: 1596}
    vswitches:
      vswlocal: {}
      vswprod: {nic: lan1}
  h2: {}
"""
        }
    )
    desired = load_desired(config, environ={})
    h1, h2 = desired.hosts["h1"], desired.hosts["h2"]
    assert h1.version == "6.3" and h2.version == "6.3"
    assert h1.hardware is not None and h2.hardware is None
    assert (h1.hardware.cores, h1.hardware.memory_mb, h1.hardware.mhz) == (16, 131072, 1596)
    assert h1.hardware.nics == ("lan0", "lan1")
    assert list(h1.vswitches) == ["vswlocal", "vswprod"]
    assert h1.vswitches["vswlocal"].nic is None
    assert h1.vswitches["vswprod"].nic == "lan1"
    assert h1.has_vswitch("localnet")
    assert desired.provider.name == "emulator"
    assert list(desired.provider.options) == ["a", "z"]
    assert list(desired.provider.options["a"]) == ["b", "y"]


def test_provider_defaults_to_the_emulator(write_config) -> None:
    config = write_config({"a.yaml": HOSTS})
    provider = load_desired(config, environ={}).provider
    assert (provider.name, dict(provider.options)) == ("emulator", {})


def test_version_as_number_or_text_gives_the_same_digest(write_config, tmp_path) -> None:
    config = write_config(
        {"a.yaml": HOSTS.replace("  vmhost01:\n", '  vmhost01:\n    version: "6.3"\n')}
    )
    quoted = load_desired(config, environ={}).digest
    (tmp_path / "a.yaml").write_text(
        HOSTS.replace("  vmhost01:\n", "  vmhost01:\n    version: 6.3\n"), encoding="utf-8"
    )
    assert load_desired(config, environ={}).digest == quoted


def test_a_utf8_byte_order_mark_is_accepted(write_config) -> None:
    config = write_config({"a.yaml": "\ufeff".encode() + HOSTS.encode()})
    assert list(load_desired(config, environ={}).hosts) == ["vmhost01"]


def test_sources_is_a_complete_read_only_mapping(write_config) -> None:
    config = write_config({"a.yaml": HOSTS + GUESTS})
    sources = load_desired(config, environ={}).sources
    assert "guest.web01:nics[0].vswitch" in sources
    assert len(sources) == len(list(sources))
    assert all(sources[key].file == "a.yaml" for key in sources)


def test_sources_cover_host_and_vswitch_fields(write_config) -> None:
    config = write_config({"a.yaml": HOSTS})
    sources = load_desired(config, environ={}).sources
    assert str(sources["host.vmhost01:hardware"]) == "a.yaml:4:5: host.vmhost01: hardware"
    assert str(sources["vswitch.vmhost01.vswprod:nic"]) == (
        "a.yaml:6:22: vswitch.vmhost01.vswprod: nic"
    )


def test_a_var_file_outside_the_directory_is_refused_even_without_templates(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "a.yaml").write_text("apiVersion: ivmctl/v1\n")
    outside = tmp_path / "vars.yaml"
    outside.write_text("env: prod\n")
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, SpecOptions(var_files=(outside,), environ={}))
    assert "lies outside the configuration directory" in str(caught.value)


def test_a_huge_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    from ivmctl.spec.loader import MAX_FILE_BYTES

    config = tmp_path / "config"
    config.mkdir()
    (config / "a.yaml").write_text("apiVersion: ivmctl/v1\n")
    with open(config / "huge.yaml", "wb") as handle:
        handle.write(b"# " + b"x" * (MAX_FILE_BYTES + 1) + b"\n")
    with pytest.raises(InvalidConfig) as caught:
        load_spec(config, SpecOptions(environ={}))
    message = str(caught.value)
    assert "huge.yaml" in message and "configuration files may have at most 32 MB" in message


def test_a_configuration_loads_the_same_with_and_without_yaml_rs(
    write_config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ivmctl.spec import yamlio

    profiles = """defaults:
  guests: {os: hpux, start: auto}
profiles:
  small: {vcpus: 1, entitlement: 10%, memory: 2G}
  large: {vcpus: 4, entitlement: {min: 20%, max: 60%}, memory: 32G,
          dynamic_memory: {min: 16G, max: 48G, target: 32G}}
guests:
  db01:
    host: vmhost01
    profile: large
    power: off
    label: "database 1"
    disks:
      - {backing: file, path: /ivm/db01/root.img, size: 20G}
      - {backing: lv, path: /dev/vg01/rlvol_db01}
    nics:
      - {vswitch: vswprod, vlan: 100, mac: 0x0A0000000101}
"""
    config = write_config({"a.yaml": HOSTS, "b.yaml": GUESTS, "c.yaml": profiles})
    assert not any(
        yamlio.needs_exact_loader(text) for text in (HOSTS, GUESTS, profiles)
    )  # all three on the fast path
    fast = load_desired(config, environ={})
    monkeypatch.setattr(yamlio, "FAST_LOADER", None)
    exact = load_desired(config, environ={})
    assert fast.guests == exact.guests
    assert fast.hosts == exact.hosts
    assert fast.digest == exact.digest


def test_digest_is_the_same_in_processes_with_other_hash_seeds(write_config) -> None:
    """The digest hashes a pickle of the model: no set or hash order may leak into it."""
    import os
    import subprocess
    import sys

    config = write_config({"a.yaml": HOSTS + GUESTS})
    code = (
        "import sys; from pathlib import Path; from ivmctl.spec import load_desired; "
        "print(load_desired(Path(sys.argv[1]), environ={}).digest)"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", code, str(config)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2", "3")
    }
    assert digests == {load_desired(config, environ={}).digest}
