"""`HpvmProvider.prefetch`: hosts read in the background give the refresh what it would
have read itself, errors included, and never a newer generation than what was read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ivmctl import model
from ivmctl.errors import ProviderError
from ivmctl.providers.emulator import EmulatorOptions, EmulatorProvider, create_provider
from ivmctl.providers.transport import EmulatorTransport

NAMES = [f"h{i:02d}" for i in range(6)]
HARDWARE = model.Hardware(cores=4, memory_mb=16384, nics=("lan0",))


def _world_provider(tmp_path: Path) -> EmulatorProvider:
    """An emulator provider on a fresh world file (shared by every provider built so)."""
    return create_provider({"path": "world.db"}, config_dir=tmp_path, environ={})


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    made = _world_provider(tmp_path)
    try:
        for name in NAMES:
            made.ensure_host(model.Host(name=name, version="6.3", hardware=HARDWARE))
            world = made.emulator.world
            world.execute(name, ["hpvmcreate", "-P", f"g{name}", "-c", "1", "-r", "1G"])
    finally:
        made.close()
    return tmp_path


def _wait_for_prefetch(provider: Any) -> None:
    provider._prefetch._thread.join()


def test_a_prefetched_refresh_is_the_refresh_it_replaces(fleet: Path) -> None:
    plain = _world_provider(fleet)
    ahead = _world_provider(fleet)
    try:
        ahead.prefetch(NAMES)
        assert ahead.refresh([*NAMES, "ghost"]) == plain.refresh([*NAMES, "ghost"])
    finally:
        plain.close()
        ahead.close()


def test_hosts_not_prefetched_are_read_by_the_refresh(fleet: Path) -> None:
    plain = _world_provider(fleet)
    ahead = _world_provider(fleet)
    try:
        ahead.prefetch(NAMES[:2])
        assert ahead.refresh(NAMES) == plain.refresh(NAMES)
    finally:
        plain.close()
        ahead.close()


def test_the_generation_is_the_one_before_the_prefetch(fleet: Path) -> None:
    provider = _world_provider(fleet)
    try:
        before = provider.generation()
        provider.prefetch(NAMES)
        _wait_for_prefetch(provider)
        provider.emulator.world.execute("h00", ["hpvmcreate", "-P", "late", "-r", "1G"])
        assert provider.generation() != before
        actual = provider.refresh(NAMES)
        # what was read is from before the change, and so is the generation: a plan made
        # from it is stale for the world after the change
        assert actual.generation == before
        assert "late" not in actual.guests
        again = provider.refresh(NAMES)  # a prefetch serves one refresh only
        assert "late" in again.guests and again.generation != before
    finally:
        provider.close()


def test_closing_while_hosts_are_prefetched_returns(fleet: Path) -> None:
    provider = _world_provider(fleet)
    provider.prefetch(NAMES)
    provider.close()
    assert provider._prefetch is None


def _replay_provider(world: Any) -> EmulatorProvider:
    transport = EmulatorTransport(lambda: world, sleep=lambda s: None)
    return EmulatorProvider(EmulatorOptions(path=Path("unused.db")), transport=transport)


def test_a_prefetched_host_that_does_not_answer_is_unreachable(world: Any) -> None:
    result_type = type(next(iter(world.outputs.values())))
    world.outputs[("vmhost01", ("hpvmstatus", "-M"))] = result_type(255, "", "ssh: refused")
    provider = _replay_provider(world)
    provider.prefetch(["vmhost01"])
    actual = provider.refresh(["vmhost01"])
    assert "vmhost01" not in actual.hosts
    assert "hpvmstatus -M exited with 255" in actual.unreachable["vmhost01"]


def test_a_listing_refused_in_a_prefetch_is_raised_by_the_refresh(world: Any) -> None:
    result_type = type(next(iter(world.outputs.values())))
    world.outputs[("vmhost01", ("hpvmstatus", "-M"))] = result_type(1, "", "hpvmstatus: boom")
    provider = _replay_provider(world)
    provider.prefetch(["vmhost01"])
    with pytest.raises(ProviderError, match="hpvmstatus -M exited with 1"):
        provider.refresh(["vmhost01"])
