"""Listings of one batch share what they read (runtime/reads.py) without it changing what
they print, and nothing read for one batch is seen by the next."""

from __future__ import annotations

from typing import Any

from ivmctl.runtime import CommandResult

Session = Any  # the fixture type of conftest.py (conftest is not importable in importlib mode)

HOST = "vmhost01"
BATCH = [
    ["hpvmstatus", "-s"],
    ["hpvmnet"],
    ["hpvmdevmgmt", "-l", "all"],
    ["hpvmstatus", "-M"],
    ["hpvmstatus", "-X"],
    ["hpvmstatus"],
    ["hpvmnet", "-S", "localnet"],
    ["hpvmnet", "-S", "vswprod"],
    ["hpvmnet", "-S", "nosuch"],
]


def _fleet(session: Session) -> None:
    session.ok(HOST, "hpvmnet -c -S vswprod -n 0")
    session.ok(HOST, "hpvmnet -b -S vswprod")
    session.ok(HOST, "hpvmnet -S vswprod -u portid:5:vlanid:20")
    for name in ("g1", "g2", "g3"):
        session.ok(HOST, f"hpvmdevmgmt -S 1G /ivm/{name}.img")
        session.ok(
            HOST,
            f"hpvmcreate -P {name} -r 1G -a disk:avio_stor::file:/ivm/{name}.img "
            "-a network:avio_lan::vswitch:vswprod -a network:lan::vswitch:localnet",
        )
    session.ok(HOST, "hpvmstart -P g2")


def _alone(session: Session) -> list[CommandResult]:
    return [session.world.execute(HOST, argv) for argv in BATCH]


def test_a_batch_prints_what_each_listing_prints_alone(session: Session) -> None:
    _fleet(session)
    assert session.world.execute_many(HOST, BATCH) == _alone(session)


def test_a_batch_of_one_guest_listings_prints_what_each_prints_alone(session: Session) -> None:
    _fleet(session)
    lines = [["hpvmstatus", "-M", "-P", "g1"], ["hpvmstatus", "-X", "-P", "g2"], *BATCH]
    assert session.world.execute_many(HOST, lines) == [
        session.world.execute(HOST, argv) for argv in lines
    ]


def test_the_next_batch_sees_changes_made_between_batches(session: Session) -> None:
    _fleet(session)
    before = session.world.execute_many(HOST, BATCH)
    session.ok(HOST, "hpvmstop -P g2 -F")
    session.ok(HOST, "hpvmremove -P g3 -F")
    after = session.world.execute_many(HOST, BATCH)
    assert after != before
    assert after == _alone(session)
    assert "g3" not in after[3].stdout


def test_an_empty_host_lists_no_guests_in_a_batch(session: Session) -> None:
    results = session.world.execute_many("vmhost02", BATCH)
    assert results == [session.world.execute("vmhost02", argv) for argv in BATCH]
    assert results[3].stdout == ""
    assert results[-1].exit_code != 0
