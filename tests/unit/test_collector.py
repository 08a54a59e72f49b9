"""collector_paused: the collector is off inside the block, back afterwards; only the
ivmctl executable freezes what the blocks built, keeps a command's results until it exits,
and exits without freeing them (`cli.exit_now`), its output flushed first."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from typing import NoReturn

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
    exits: list[object] = []

    def exit_now(code: object) -> NoReturn:
        exits.append(code)
        raise SystemExit(code)

    monkeypatch.setattr(collector, "_freeze", False)
    monkeypatch.setattr(cli, "exit_now", exit_now)
    monkeypatch.setattr(cli, "main", lambda: sys.exit(cli.ExitStatus.CHANGES))
    with pytest.raises(SystemExit):
        cli.console()
    assert collector._freeze is True
    assert exits == [cli.ExitStatus.CHANGES]


class _Big:
    """Something a command built (weakly referable)."""


def test_a_process_that_ends_with_its_command_keeps_what_it_is_told_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for ends_with_command in (False, True):
        monkeypatch.setattr(collector, "_freeze", ends_with_command)
        monkeypatch.setattr(collector, "_kept", [])
        built = _Big()
        alive = weakref.ref(built)
        collector.keep_until_exit(built)
        del built
        assert (alive() is not None) is ends_with_command


def test_only_the_last_value_is_kept_so_a_loop_of_plans_does_not_grow(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(collector, "_freeze", True)
    monkeypatch.setattr(collector, "_kept", [])
    first, second = _Big(), _Big()
    first_alive, second_alive = weakref.ref(first), weakref.ref(second)
    collector.keep_until_exit(first)
    collector.keep_until_exit(second)  # the next reconcile cycle
    del first, second
    assert first_alive() is None and second_alive() is not None


EXIT_NOW = """
import atexit, os, sys, threading, time
from ivmctl import collector
from ivmctl.cli import exit_now
sys.stdout.write("all of the output")  # buffered: exit_now flushes it
case = sys.argv[1]
if case == "kept":
    class Built:
        def __del__(self):
            sys.stderr.write("freed")
    collector.freeze_after_pauses()
    collector.keep_until_exit(Built())
    atexit.register(lambda: sys.stderr.write("exit handler ran"))
if case == "thread":
    def late():
        time.sleep(0.3)
        print(" and what a running thread wrote", end="")
    threading.Thread(target=late).start()
if case == "closed":
    os.close(1)
exit_now("no good" if case == "message" else 2)
"""


def _exit_now(case: str) -> subprocess.CompletedProcess[str]:
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", EXIT_NOW, case],
        capture_output=True,
        text=True,
        check=False,
        env=buffered,  # as an installed ivmctl's output is when it goes to a pipe
    )


def test_exit_now_flushes_the_output_and_exits_with_the_status() -> None:
    done = _exit_now("plain")
    assert (done.returncode, done.stdout, done.stderr) == (2, "all of the output", "")


def test_exit_now_waits_for_a_running_thread_as_a_normal_exit_does() -> None:
    done = _exit_now("thread")
    assert done.returncode == 2
    assert done.stdout == "all of the output and what a running thread wrote"


def test_exit_now_runs_exit_handlers_but_frees_nothing_it_kept() -> None:
    done = _exit_now("kept")
    assert (done.returncode, done.stdout) == (2, "all of the output")
    assert done.stderr == "exit handler ran"  # and not "freed": a normal exit frees it


def test_exit_now_prints_a_message_and_exits_1() -> None:
    done = _exit_now("message")
    assert (done.returncode, done.stderr.strip()) == (1, "no good")


def test_exit_now_whose_output_cannot_be_written_exits_120() -> None:
    assert _exit_now("closed").returncode == cli.ExitStatus.OUTPUT_LOST == 120
