"""Every example configuration validates, formats cleanly, and holds what its README
promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivmctl.spec import SpecOptions, load_spec
from ivmctl.spec.fmt import format_dir

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NAMES = ["quickstart", "consolidation"]


@pytest.mark.parametrize("name", NAMES)
def test_example_validates_without_warnings(name: str) -> None:
    result = load_spec(EXAMPLES / name, SpecOptions(environ={}))
    assert result.warnings == ()


@pytest.mark.parametrize("name", NAMES)
def test_example_is_formatted(name: str) -> None:
    assert [r.file for r in format_dir(EXAMPLES / name) if r.changed or r.error] == []


def test_quickstart_has_one_host_two_vswitches_and_three_guests() -> None:
    desired = load_spec(EXAMPLES / "quickstart", SpecOptions(environ={})).desired
    assert len(desired.hosts) == 1
    assert sum(len(h.vswitches) for h in desired.hosts.values()) == 2
    assert len(desired.guests) == 3


def test_consolidation_has_three_hosts_a_dozen_guests_and_a_virtual_smp_database() -> None:
    desired = load_spec(EXAMPLES / "consolidation", SpecOptions(environ={})).desired
    assert len(desired.hosts) == 3
    assert len(desired.guests) == 12
    assert desired.guests["db01"].vcpus == 8
    assert desired.guests["db02"].vcpus == 12
    assert desired.guests["web07"].host == "vmhost01"
    assert desired.guests["web08"].memory_mb == 4096  # from the web profile


def test_consolidation_loop_follows_its_variable() -> None:
    options = SpecOptions(environ={}, variables={"web_count": "3"})
    desired = load_spec(EXAMPLES / "consolidation", options).desired
    assert sorted(g for g in desired.guests if g.startswith("web")) == ["web01", "web02", "web03"]
