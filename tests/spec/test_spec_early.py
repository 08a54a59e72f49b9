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
