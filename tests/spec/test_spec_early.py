"""`SpecOptions.early`: the loader names the provider and the declared hosts before it
builds the guests, so a plan can start reading hosts meanwhile (`Session._prefetch`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivmctl.model import ProviderConfig
from ivmctl.spec import InvalidConfig, SpecOptions
from ivmctl.spec.loader import load_spec

CONFIG = """apiVersion: ivmctl/v1
provider:
  name: emulator
  options: {path: lab.db, latency: 0}
hosts:
  vmhost02:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
  vmhost01:
    hardware: {cores: 8, memory: 64G, nics: [lan0]}
guests:
  web01:
    host: vmhost01
    memory: 4G
"""

Told = list[tuple[ProviderConfig, tuple[str, ...]]]


def _load(directory: Path, told: Told, *, cache: bool = False) -> None:
    def early(provider: ProviderConfig, hosts: tuple[str, ...]) -> None:
        told.append((provider, hosts))

    cache_dir = directory / ".ivmctl" / "cache" if cache else None
    load_spec(directory, SpecOptions(environ={}, cache_dir=cache_dir, early=early))


def test_the_provider_and_hosts_are_told_before_the_guests_are_built(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(CONFIG)
    told: Told = []
    _load(tmp_path, told)
    desired = load_spec(tmp_path, SpecOptions(environ={})).desired
    assert told == [(desired.provider, ("vmhost01", "vmhost02"))]
    assert told[0][0].options == {"latency": 0, "path": "lab.db"}


def test_a_configuration_with_problems_tells_nothing(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(CONFIG.replace("cores: 8", "cores: eight", 1))
    told: Told = []
    with pytest.raises(InvalidConfig):
        _load(tmp_path, told)
    assert told == []


def test_a_load_from_the_desired_cache_tells_nothing(tmp_path: Path) -> None:
    (tmp_path / "fleet.yaml").write_text(CONFIG)
    first: Told = []
    _load(tmp_path, first, cache=True)
    second: Told = []
    _load(tmp_path, second, cache=True)
    assert len(first) == 1 and second == []


HOSTS = CONFIG.split("guests:")[0]
GUESTS = "guests:" + CONFIG.split("guests:")[1]


def test_the_files_declaring_hosts_are_read_before_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider and hosts are told once their files are read, before the files of
    guests that come first in name order: a plan's readers start meanwhile."""
    from ivmctl.spec import loader

    (tmp_path / "a-guests.yaml").write_text(GUESTS)
    (tmp_path / "hosts.yaml").write_text(HOSTS)
    parsed: list[str] = []
    parse = loader.cached_parse
    monkeypatch.setattr(
        loader, "cached_parse", lambda text, *a: parsed.append(text) or parse(text, *a)
    )
    when: list[int] = []

    def early(provider: ProviderConfig, hosts: tuple[str, ...]) -> None:
        when.append(len(parsed))
        assert hosts == ("vmhost01", "vmhost02")

    result = load_spec(tmp_path, SpecOptions(environ={}, early=early))
    assert when == [1] and parsed[0] == HOSTS
    files = [Path(name).name for name in result.files]
    assert files == ["a-guests.yaml", "hosts.yaml"]  # merged in name order still
    assert sorted(result.desired.guests) == ["web01"]


def test_a_problem_in_a_later_file_comes_after_the_hint(tmp_path: Path) -> None:
    """The hint is given once the hosts' files are valid; a problem in a file read after
    them still refuses the configuration (the readers it started are closed unused)."""
    (tmp_path / "a-guests.yaml").write_text(GUESTS.replace("memory: 4G", "memory: lots"))
    (tmp_path / "hosts.yaml").write_text(HOSTS)
    told: Told = []
    with pytest.raises(InvalidConfig, match="1 problem"):
        _load(tmp_path, told)
    assert [hosts for _, hosts in told] == [("vmhost01", "vmhost02")]


def test_hosts_the_first_look_does_not_find_are_told_after_the_merge(tmp_path: Path) -> None:
    """Hosts written in flow style at the top (`{hosts: ...}`) are not seen by the first
    look for `hosts:`: the provider and hosts are told after every file is merged."""
    (tmp_path / "fleet.yaml").write_text(
        "{apiVersion: ivmctl/v1, hosts: {vmhost01: {hardware: {cores: 8, memory: 64G}}}}\n"
    )
    told: Told = []
    _load(tmp_path, told)
    assert [hosts for _, hosts in told] == [("vmhost01",)]


# Whether a file's bytes declare the provider or hosts (so it is read first), as the
# pattern decides: the quick test that skips most files never skips one it matches.
DECLARATIONS = [
    (b"hosts:\n  h1: {}\n", True),
    (b"apiVersion: ivmctl/v1\nprovider:\n  name: emulator\n", True),
    (b"guests:\n  g1: {host: h1}\nhosts :\n  h2: {}\n", True),
    (b"x: 1\r\nhosts\t:\r\n", True),
    (b"guests:\n  g1:\n    host: h1\n", False),  # indented: a guest's field
    (b"# hosts: in a comment\nguests: {}\n", False),
    (b"hostsfile: x\nproviders: y\n", False),
    (b"guests: {}\nhosts", False),  # no colon
    (b"\xef\xbb\xbfhosts: {}\n", False),  # after a byte order mark, not at a line start
    (b"", False),
]


@pytest.mark.parametrize(("content", "declares"), DECLARATIONS)
def test_files_declaring_hosts_are_found_as_the_pattern_finds_them(
    content: bytes, declares: bool
) -> None:
    from ivmctl.spec.loader import _DECLARES_HOSTS, _declares_hosts

    assert _declares_hosts(content) is declares
    assert (_DECLARES_HOSTS.search(content) is not None) is declares
