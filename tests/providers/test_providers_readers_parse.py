"""Hosts read and parsed by the emulator's reader processes (`ReadOnReader`), and read
ahead by `prefetch`: the refresh they give is the one read and parsed in process, errors,
unknown hosts and the parsed-hosts cache included, and never claims a newer generation
than what was read."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ivmctl import model
from ivmctl.errors import ProviderError
from ivmctl.providers import emulator
from ivmctl.providers.emulator import EmulatorProvider, ReadOnReader, create_provider
from ivmctl.providers.hpvm import HpvmProvider, PickledHost
from ivmctl.providers.parsed_hosts import ENTRY, unpickle
from ivmctl.providers.transport import EmulatorTransport
from ivmctl.runtime import World
from ivmctl.runtime.workers import TakenBack
from tests.runtime.test_runtime_workers import until_posted

NAMES = [f"h{i:02d}" for i in range(5)]
HARDWARE = model.Hardware(cores=4, memory_mb=16384, nics=("lan0",))


def _provider(directory: Path, processes: int, *, cache: bool = False) -> EmulatorProvider:
    provider = create_provider(
        {"path": "world.db", "processes": processes}, config_dir=directory, environ={}
    )
    if cache:
        provider.use_cache(directory / "cache")
    return provider


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    return make_fleet(tmp_path)


def make_fleet(tmp_path: Path) -> Path:
    """Five hosts with a guest each (every other one running), in `tmp_path/world.db`."""
    made = _provider(tmp_path, 0)
    try:
        for index, name in enumerate(NAMES):
            made.ensure_host(model.Host(name=name, version="6.3", hardware=HARDWARE))
            world = made.emulator.world
            world.set_faults(name, boot_delay=0)  # On (OS) at once: refreshes agree later
            for line in (
                ["hpvmnet", "-c", "-S", "vsw1", "-n", "0"],
                ["hpvmdevmgmt", "-S", "1G", f"/ivm/g{name}.img"],
                ["hpvmcreate", "-P", f"g{name}", "-c", "1", "-r", "1G",
                 "-a", f"disk:avio_stor::file:/ivm/g{name}.img",
                 "-a", "network:avio_lan::vswitch:vsw1"],
            ):  # fmt: skip
                assert world.execute(name, line).exit_code == 0, line
            if index % 2:
                assert world.execute(name, ["hpvmstart", "-P", f"g{name}"]).exit_code == 0
    finally:
        made.close()
    return tmp_path


def _refresh(provider: EmulatorProvider, names: list[str]) -> model.ActualState:
    try:
        return provider.refresh(names)
    finally:
        provider.close()


def test_hosts_parsed_by_readers_are_the_hosts_parsed_in_process(fleet: Path) -> None:
    names = [*NAMES, "ghost"]
    in_process = _refresh(_provider(fleet, 0), names)
    on_readers = _refresh(_provider(fleet, 2), names)
    assert on_readers == in_process
    assert sorted(on_readers.hosts) == NAMES and len(on_readers.guests) == len(NAMES)


def test_the_cache_stores_what_readers_parsed_and_hands_it_back(fleet: Path) -> None:
    expected = _refresh(_provider(fleet, 0), NAMES)
    assert _refresh(_provider(fleet, 1, cache=True), NAMES) == expected
    assert (fleet / "cache" / ENTRY).exists()
    task = ReadOnReader(cache=fleet / "cache" / ENTRY)
    with World.open(fleet / "world.db", create=False) as world:
        read = task(world, NAMES[0])
    assert isinstance(read, PickledHost) and read.stored  # a hit: the stored bytes
    assert unpickle(read.data) == (expected.hosts[NAMES[0]], [expected.guests[f"g{NAMES[0]}"]])
    assert _refresh(_provider(fleet, 1, cache=True), NAMES) == expected


def test_bytes_that_do_not_unpickle_to_a_host_are_read_again_here(fleet: Path) -> None:
    provider = _provider(fleet, 0)
    try:
        expected = provider.refresh(NAMES[:1])
        planted = PickledHost(first=b"", key=b"", data=b"cos\nsystem\n(S'true'\ntR.", stored=True)
        assert provider.received(NAMES[0], planted) == (
            expected.hosts[NAMES[0]],
            [expected.guests[f"g{NAMES[0]}"]],
        )
    finally:
        provider.close()


def test_a_host_that_does_not_answer_is_unreachable_on_readers_too(fleet: Path) -> None:
    with World.open(fleet / "world.db", create=False) as world:
        world.set_faults(NAMES[1], unreachable=True)
    in_process = _refresh(_provider(fleet, 0), NAMES)
    on_readers = _refresh(_provider(fleet, 1), NAMES)
    assert NAMES[1] in on_readers.unreachable and NAMES[1] not in on_readers.hosts
    assert on_readers == in_process


def test_a_reader_that_cannot_answer_leaves_the_host_to_this_process(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool that broke (a dead reader) answers None: the host is read here."""
    expected = _refresh(_provider(fleet, 0), NAMES)
    provider = _provider(fleet, 1)
    provider.emulator.start_workers(1)
    monkeypatch.setattr(
        provider.emulator, "submit_tasks", lambda hosts, task: [lambda: None for _ in hosts]
    )
    assert _refresh(provider, NAMES) == expected


def test_a_prefetched_refresh_is_the_refresh_it_replaces(fleet: Path) -> None:
    plain = _refresh(_provider(fleet, 0), [*NAMES, "ghost"])
    ahead = _provider(fleet, 2)
    ahead.prefetch([*NAMES, "ghost"])
    assert ahead._prefetched is not None
    assert _refresh(ahead, [*NAMES, "ghost"]) == plain


def test_hosts_not_prefetched_are_read_by_the_refresh(fleet: Path) -> None:
    plain = _refresh(_provider(fleet, 0), NAMES)
    ahead = _provider(fleet, 1)
    ahead.prefetch(NAMES[:2])
    assert _refresh(ahead, NAMES) == plain


def test_the_generation_is_the_one_before_the_prefetch(fleet: Path) -> None:
    provider = _provider(fleet, 1)
    try:
        before = provider.generation()
        provider.prefetch(NAMES)
        assert provider._prefetched is not None
        _wait_until_read(provider, fleet / "world.db")
        changed = provider.emulator.world.execute(
            NAMES[0], ["hpvmcreate", "-P", "late", "-r", "1G"]
        )
        assert changed.exit_code == 0
        assert provider.generation() != before
        actual = provider.refresh(NAMES)
        assert "late" not in actual.guests  # read before the change...
        assert actual.generation == before  # ...so a plan made from it is stale after it
        again = provider.refresh(NAMES)  # a prefetch serves one refresh only
        assert again.generation != before
        assert "late" in {s.guest.name for s in again.not_runnable.values()} | set(again.guests)
    finally:
        provider.close()


def _wait_until_read(provider: EmulatorProvider, world_path: Path) -> None:
    """Wait until the readers have read every host of NAMES (their log rows are written
    when told the refresh is over, after the requests before it)."""
    provider.emulator.readers_idle()
    deadline = time.monotonic() + 120  # liveness, not a duration: a second or two
    while time.monotonic() < deadline:
        with World.open(world_path, create=False) as world:
            if all(("hpvmstatus", "-X") in [e.argv for e in world.log(n)] for n in NAMES):
                return
        time.sleep(0.1)
    raise AssertionError("the readers did not read the prefetched hosts")


def test_a_listing_refused_in_a_prefetch_is_raised_by_the_refresh(fleet: Path) -> None:
    with World.open(fleet / "world.db", create=False) as world:
        world.execute(NAMES[0], ["hpvmnet", "-c", "-S", "vsw2", "-n", "0"])
    # a vswitch whose port table cannot be listed: its name given a trailing blank, which
    # `hpvmnet` does not show, behind the emulator's back
    with sqlite3.connect(fleet / "world.db") as conn:
        conn.execute("UPDATE vswitches SET name='vsw2 ' WHERE name='vsw2'")
    conn.close()
    provider = _provider(fleet, 1)
    provider.prefetch(NAMES)
    with pytest.raises(ProviderError, match=f"cannot read host {NAMES[0]}"):
        _refresh(provider, NAMES)


def test_closing_drops_the_requests_not_yet_begun(fleet: Path) -> None:
    """A reader whose input closes drops what it was asked ahead (a prefetch given up,
    e.g. for a refused configuration) instead of reading it for nobody."""
    provider = _provider(fleet, 1)
    provider.prefetch(NAMES)
    task = ReadOnReader(cache=None)
    provider.emulator.submit_tasks([NAMES[0]] * 2000, task)
    provider.close()
    assert provider._prefetched is None
    with World.open(fleet / "world.db", create=False) as world:
        read = [e for e in world.log(NAMES[0]) if e.argv == ("hpvmstatus", "-X")]
    assert len(read) < 2000  # without the drop: all 2,000, and the 5 prefetched


def test_a_prefetch_never_creates_a_world(tmp_path: Path) -> None:
    provider = _provider(tmp_path, 1)
    try:
        provider.prefetch(NAMES)
        assert provider._prefetched is None
        assert not (tmp_path / "world.db").exists()
    finally:
        provider.close()


def test_a_small_refresh_is_not_prefetched(fleet: Path) -> None:
    """Without `processes`, only refreshes of many hosts use readers (and prefetch)."""
    provider = create_provider({"path": "world.db"}, config_dir=fleet, environ={})
    try:
        provider.prefetch(NAMES)
        assert provider._prefetched is None
    finally:
        provider.close()


def test_the_reader_task_is_the_plain_provider_read(fleet: Path) -> None:
    """What a reader hands back is `HpvmProvider.read_pickled` on its own world."""
    with World.open(fleet / "world.db", create=False) as world:
        read = ReadOnReader(cache=None)(world, NAMES[0])
        assert isinstance(read, PickledHost) and not read.stored
        in_process = HpvmProvider(
            create_provider({"path": "world.db"}, config_dir=fleet, environ={}).emulator
        )
        try:
            assert unpickle(read.data) == in_process._read_host(NAMES[0])
        finally:
            in_process.close()


@pytest.mark.parametrize("minimum, started", [(len(NAMES), True), (len(NAMES) + 1, False)])
def test_verifying_a_change_uses_readers_in_a_world_of_many_hosts(
    fleet: Path, monkeypatch: pytest.MonkeyPatch, minimum: int, started: bool
) -> None:
    """Apply's `read_guest` starts readers once the world has APPLY_POOL_MIN_HOSTS hosts
    (a refresh needs READER_POOL_MIN_HOSTS), and reads the same either way."""
    monkeypatch.setattr(emulator, "APPLY_POOL_MIN_HOSTS", minimum)
    expected = _refresh(_provider(fleet, 0), NAMES).guests[f"g{NAMES[1]}"]
    provider = create_provider({"path": "world.db"}, config_dir=fleet, environ={})
    try:
        assert provider.read_guest(NAMES[1], f"g{NAMES[1]}") == expected
        assert (provider.emulator.reader_processes > 0) is started
        assert provider.read_guest(NAMES[1], "nosuch") is None
    finally:
        provider.close()


def _no_reading_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this process unable to re-read a guest itself: a reader must do it."""

    def refused(self: HpvmProvider, host: str, name: str) -> None:
        raise AssertionError(f"{name} was read in ivmctl's process")

    monkeypatch.setattr(HpvmProvider, "read_guest", refused)


def test_a_guest_is_verified_by_a_reader_which_reads_and_parses_it(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With readers and no simulated waiting, `read_guest` is one task on a reader
    (`ReadGuestOnReader`): ivmctl's process reads and parses nothing itself."""
    expected = _refresh(_provider(fleet, 0), NAMES).guests[f"g{NAMES[1]}"]
    provider = _provider(fleet, 2)
    try:
        provider.read_guest(NAMES[0], "warm-up")  # starts the readers (nothing to find)
        _no_reading_here(monkeypatch)
        assert provider.read_guest(NAMES[1], f"g{NAMES[1]}") == expected
        assert provider.read_guest(NAMES[1], "nosuch") is None
        with pytest.raises(ProviderError, match="no host 'h99'"):
            provider.read_guest("h99", "g")  # raised here, where it was asked
    finally:
        provider.close()


def test_a_guest_is_verified_here_when_the_reader_died_or_the_world_waits(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _refresh(_provider(fleet, 0), NAMES).guests[f"g{NAMES[1]}"]
    read_here: list[str] = []
    read_guest = HpvmProvider.read_guest

    def counted(self: HpvmProvider, host: str, name: str) -> model.ActualGuest | None:
        read_here.append(name)
        return read_guest(self, host, name)

    provider = _provider(fleet, 1)
    try:
        provider.read_guest(NAMES[0], "warm-up")
        monkeypatch.setattr(HpvmProvider, "read_guest", counted)
        provider.emulator.world.set_faults(NAMES[2], latency={"start": 1.0})
        assert provider.read_guest(NAMES[1], f"g{NAMES[1]}") == expected
        assert read_here == [f"g{NAMES[1]}"]  # a world that waits is read in process
        provider.emulator.world.set_faults(NAMES[2], latency={})
        pool = provider.emulator._workers
        assert pool is not None
        (reader,) = pool._workers
        reader.process.kill()
        reader.process.wait()
        assert provider.read_guest(NAMES[1], f"g{NAMES[1]}") == expected
        assert read_here == [f"g{NAMES[1]}"] * 2  # the reader is gone: read here
    finally:
        provider.close()


def test_a_prefetch_asks_one_reader_and_the_refresh_shares_the_rest(fleet: Path) -> None:
    """A prefetch gives every host to the first reader (the caller loads on the other
    CPU); the refresh shares what is left between the readers. Each host is read once."""
    plain = _refresh(_provider(fleet, 0), NAMES)
    ahead = _provider(fleet, 2)
    ahead.prefetch(NAMES)
    pool = ahead.emulator._workers
    assert pool is not None
    first, second = pool._workers
    assert second.outstanding == 0 < first.outstanding <= len(NAMES)
    assert _refresh(ahead, NAMES) == plain
    with World.open(fleet / "world.db", create=False) as world:
        for name in NAMES:  # once by the plain refresh, once by the readers
            assert [e.argv for e in world.log(name)].count(("hpvmstatus", "-X")) == 2


def test_the_refresh_reads_a_share_of_what_the_reader_has_not_begun_itself(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the refresh starts waiting, this process takes back the later third of the
    hosts the reader has not begun (`CALLER_SHARE`) and reads them itself, and again
    while some are left: the refresh is the plain one, and each host is read once."""
    asked = [*NAMES, "h99"]  # h99 is no host of the world: missing, as in process
    plain = _refresh(_provider(fleet, 0), asked)
    assert plain.hosts.keys() == set(NAMES)
    taken: list[list[str]] = []
    take_back = EmulatorTransport.take_back

    def spied(self: EmulatorTransport, share: float) -> TakenBack:
        back = take_back(self, share)
        taken.append(list(back.hosts))
        return back

    monkeypatch.setattr(EmulatorTransport, "take_back", spied)
    provider = _provider(fleet, 1)
    provider.prefetch(asked)
    pool = provider.emulator._workers
    assert pool is not None
    (reader,) = pool._workers
    os.kill(reader.process.pid, signal.SIGSTOP)  # still starting: it has begun nothing
    sent = reader._next
    refreshed: list[model.ActualState] = []
    refresh = threading.Thread(target=lambda: refreshed.append(_refresh(provider, asked)))
    try:
        refresh.start()
        until_posted(reader, sent)
    finally:  # the reader reads its tasks and the request to give some back at once
        os.kill(reader.process.pid, signal.SIGCONT)
    refresh.join(timeout=120)  # liveness, not a duration
    assert taken[0] == asked[-2:]  # a third of six: the last two
    assert taken[-1] == [] and len(taken) <= len(asked)  # until none are left to take
    for later, earlier in zip(taken[1:-1], taken, strict=False):  # each from further back
        assert later == sorted(later) and max(later) < min(earlier)
    assert refreshed == [plain]
    with World.open(fleet / "world.db", create=False) as world:
        for name in NAMES:  # once by the plain refresh, once by the reader or here
            assert [e.argv for e in world.log(name)].count(("hpvmstatus", "-X")) == 2


def test_a_refresh_leaves_ivmctl_a_cpu_and_an_apply_does_not(
    fleet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Left automatic, a refresh starts one reader per CPU beyond the first (ivmctl
    reads its share), an apply one per CPU (ivmctl waits for the changes), at most 4;
    an apply after a refresh may add readers, never remove them."""
    monkeypatch.setattr(emulator.os, "cpu_count", lambda: 3)
    provider = _provider(fleet, 0)
    provider.options = replace(provider.options, processes=None)
    try:
        assert provider._readers_for(emulator.READER_POOL_MIN_HOSTS) == 2
        assert provider._readers_for(emulator.READER_POOL_MIN_HOSTS - 1) == 0
        assert provider._readers_for(emulator.APPLY_POOL_MIN_HOSTS, apply=True) == 3
        assert provider._readers_for(emulator.APPLY_POOL_MIN_HOSTS - 1, apply=True) == 0
        monkeypatch.setattr(emulator.os, "cpu_count", lambda: 1)
        assert provider._readers_for(emulator.READER_POOL_MIN_HOSTS) == 1
        provider.emulator.start_workers(1)
        provider.emulator.start_workers(3)
        pool = provider.emulator._workers
        assert pool is not None and pool.processes == 3
        provider.emulator.start_workers(2)
        assert pool.processes == 3
    finally:
        provider.close()
