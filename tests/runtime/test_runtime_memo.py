"""Kept listings (runtime/memo.py): given again only while they are what a fresh run prints.

The property test drives two worlds on one file, one keeping listings and one not, through
random commands, fault changes and clock moves (forward and back), and compares every
listing of every host after each step.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_runtime_properties import HOSTS, add_hosts, command

from ivmctl.runtime import World, commands
from ivmctl.runtime.store import SCHEMA_VERSION

Session = Any  # the fixture type of conftest.py (conftest is not importable in importlib mode)
LISTINGS = (
    ["hpvmstatus"],
    ["hpvmstatus", "-M"],
    ["hpvmstatus", "-X"],
    ["hpvmstatus", "-s"],
    ["hpvmstatus", "-V"],
    ["hpvmstatus", "-M", "-P", "g0"],
    ["hpvmstatus", "-d", "-P", "g1"],
    ["hpvmnet"],
    ["hpvmnet", "-S", "vsw1"],
    ["hpvmdevmgmt", "-l", "all"],
)


def _kept_rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM listings").fetchone()[0])


def _booted_guest(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g1 -c 1 -r 2G")
    session.ok("vmhost01", "hpvmstart -P g1")
    session.clock.now += 10  # past the boot delay: On (OS)


def test_a_kept_listing_is_given_again_without_running_the_command(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    _booted_guest(session)
    first = session.ok("vmhost01", "hpvmstatus -M")
    session.world.flush_log()
    assert _kept_rows(session.path) == 1

    def refuse(*args: object) -> None:
        raise AssertionError("the kept listing should have been given")

    monkeypatch.setitem(commands.HANDLERS, "hpvmstatus", refuse)
    session.clock.now += 5
    assert session.ok("vmhost01", "hpvmstatus -M") == first
    listed = [e for e in session.world.log("vmhost01") if e.argv == ("hpvmstatus", "-M")]
    assert len(listed) == 2, "a listing given again is still logged"


def test_a_change_shows_at_once(session: Session) -> None:
    _booted_guest(session)
    before = session.ok("vmhost01", "hpvmstatus -M").stdout
    session.world.flush_log()
    session.ok("vmhost01", "hpvmmodify -P g1 -e 50")
    after = session.ok("vmhost01", "hpvmstatus -M").stdout
    assert after != before and ";50.0;" in after


def test_a_fault_change_shows_at_once(session: Session) -> None:
    _booted_guest(session)
    assert "On (OS)" in session.ok("vmhost01", "hpvmstatus").stdout
    session.world.flush_log()
    session.world.set_faults("vmhost01", boot_delay=1000.0)  # not a generation change
    assert "On (EFI)" in session.ok("vmhost01", "hpvmstatus").stdout


def test_a_booting_host_is_not_kept_and_boots_on_time(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g1 -c 1 -r 2G")
    session.ok("vmhost01", "hpvmstart -P g1")
    assert "On (EFI)" in session.ok("vmhost01", "hpvmstatus").stdout
    session.world.flush_log()
    assert _kept_rows(session.path) == 0
    session.clock.now += 10
    assert "On (OS)" in session.ok("vmhost01", "hpvmstatus").stdout


def test_a_clock_that_went_back_gets_a_fresh_listing(session: Session) -> None:
    session.ok("vmhost01", "hpvmcreate -P g1 -c 1 -r 2G")
    session.ok("vmhost01", "hpvmstart -P g1")
    session.clock.now += 10
    assert "On (OS)" in session.ok("vmhost01", "hpvmstatus").stdout
    session.world.flush_log()
    session.clock.now -= 10  # back to the start: the guest is booting again
    assert "On (EFI)" in session.ok("vmhost01", "hpvmstatus").stdout


def test_listings_made_before_a_change_are_not_kept(session: Session) -> None:
    _booted_guest(session)
    session.ok("vmhost01", "hpvmstatus -M")  # pending, not yet written
    other = World.open(session.path, create=False, clock=session.clock)
    try:
        other.execute("vmhost01", ["hpvmmodify", "-P", "g1", "-e", "50"])  # another process
    finally:
        other.close()
    session.world.flush_log()
    assert _kept_rows(session.path) == 0
    assert ";50.0;" in session.ok("vmhost01", "hpvmstatus -M").stdout


def test_a_version_1_world_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    with World.open(path, clock=lambda: 1_800_000_000.0) as world:
        world.add_host(name="h1", cores=4, memory_mb=16 * 1024)
    with sqlite3.connect(path) as conn:  # what version 1 wrote
        conn.execute("DROP TABLE listings")
        conn.execute("DROP INDEX guests_by_start")
        conn.execute("DELETE FROM meta WHERE key='revision'")
        conn.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    with World.open(path, create=False, clock=lambda: 1_800_000_000.0) as world:
        assert world.execute("h1", ["hpvmstatus"]).exit_code == 0
    with sqlite3.connect(path) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        assert int(version[0]) == SCHEMA_VERSION
    assert _kept_rows(path) == 1


# a step: a command on a host, a clock move (seconds, back or forward), or a boot delay
step = st.one_of(
    command.map(lambda c: ("run", c)),
    command.map(lambda c: ("run", c)),
    st.sampled_from([-3.0, 0.5, 2.0, 30.0]).map(lambda s: ("clock", s)),
    st.tuples(st.sampled_from(HOSTS), st.sampled_from([0.0, 1.0, 5.0])).map(
        lambda t: ("boot_delay", t)
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(step, min_size=10, max_size=40))
def test_kept_listings_always_match_fresh_ones(steps: list[tuple[str, object]]) -> None:
    now = [1_800_000_000.0]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.db"
        kept = World.open(path, clock=lambda: now[0], sleep=lambda s: None)
        fresh = World.open(path, clock=lambda: now[0], sleep=lambda s: None, keep_listings=False)
        try:
            add_hosts(kept)
            for kind, value in steps:
                if kind == "run":
                    host, argv = value  # type: ignore[misc]
                    kept.execute(host, argv)
                elif kind == "clock":
                    now[0] += value  # type: ignore[operator]
                else:
                    host, delay = value  # type: ignore[misc]
                    kept.set_faults(host, boot_delay=delay)
                for name in HOSTS:
                    for argv in LISTINGS:
                        assert kept.execute(name, argv) == fresh.execute(name, argv), argv
                kept.flush_log()  # keep what was listed: the next step may give it again
        finally:
            kept.close()
            fresh.close()
