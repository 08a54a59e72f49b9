"""collector_paused: the collector is off inside the block, back afterwards; only the
ivmctl executable freezes what the blocks built."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest

from ivmctl import cli, collector
from ivmctl.collector import collector_paused

FREEZE_COUNT = """
import gc
from ivmctl import collector
if {freeze}:
    collector.freeze_after_pauses()
with collector.collector_paused():
    assert not gc.isenabled()
    built = [[i] for i in range(1000)]
assert gc.isenabled()
print(gc.get_freeze_count())
"""


def _frozen_after_a_block(freeze: bool) -> int:
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_COUNT.format(freeze=freeze)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def test_a_block_pauses_the_collector_and_restores_it() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_only_a_process_that_asks_freezes_what_a_block_built() -> None:
    assert _frozen_after_a_block(False) == 0
    assert _frozen_after_a_block(True) >= 1000


def test_the_executable_asks_and_main_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collector, "_freeze", False)
    monkeypatch.setattr(cli, "main", lambda: 0)
    assert cli.console() == 0
    assert collector._freeze is True
