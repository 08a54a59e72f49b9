"""Changes run by the emulator's writer process: when the workers run and the world
simulates no delays; in ivmctl's process otherwise; and a change lost with its writer is
a failed step (exit 255, as ssh reports a dropped connection), never run a second time."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.emulator import EmulatorProvider
from ivmctl.runtime import CommandResult
from tests.providers.test_providers_readers_parse import NAMES, _provider, make_fleet

HOST = NAMES[0]  # its guest is Off (make_fleet starts every other one)
GUEST = f"g{HOST}"


@pytest.fixture
def pooled(tmp_path: Path) -> Iterator[tuple[EmulatorProvider, list[Sequence[str]]]]:
    """A provider with its workers started, and the command lines its own process ran."""
    provider = _provider(make_fleet(tmp_path), 1)
    provider.emulator.start_workers(1)
    world = provider.emulator.world
    here: list[Sequence[str]] = []
    execute = world.execute

    def counted(host: str, argv: Sequence[str]) -> CommandResult:
        here.append(argv)
        return execute(host, argv)

    world.execute = counted  # type: ignore[method-assign]
    try:
        yield provider, here
    finally:
        provider.close()


def _start() -> Operation:
    return Operation(kind=OpKind.GUEST_START, host=HOST, params={"name": GUEST})


def _state(provider: EmulatorProvider) -> str:
    (listing,) = provider.emulator.world.execute_many(HOST, [["hpvmstatus", "-M", "-P", GUEST]])
    return listing.stdout.split(":")[10]


def test_a_change_runs_on_the_writer_not_in_ivmctls_process(
    pooled: tuple[EmulatorProvider, list[Sequence[str]]],
) -> None:
    provider, here = pooled
    (step,) = provider.steps(_start())
    assert provider.execute(step).exit_code == 0
    assert not here
    assert _state(provider) == "On"


def test_a_change_runs_in_process_while_the_world_simulates_delays(
    pooled: tuple[EmulatorProvider, list[Sequence[str]]],
) -> None:
    """A start that waits holds the host's start lock, which only ivmctl's process has."""
    provider, here = pooled
    provider.emulator.world.set_faults(HOST, latency={"hpvmstart": 0.01})
    (step,) = provider.steps(_start())
    assert provider.execute(step).exit_code == 0
    assert [tuple(argv) for argv in here] == [step.argv]


def test_a_change_lost_with_the_writer_fails_and_is_not_run_again(
    pooled: tuple[EmulatorProvider, list[Sequence[str]]],
) -> None:
    provider, here = pooled
    warm = provider.emulator.submit_many(HOST, [["hpvmnet", "-c", "-S", "vsw9"]])
    assert warm()[0].exit_code == 0  # the writer runs
    writer = provider.emulator._workers._writer  # type: ignore[union-attr]
    assert writer is not None
    os.kill(writer.process.pid, signal.SIGSTOP)  # it reads nothing more
    (step,) = provider.steps(_start())
    pending = provider.emulator.submit_many(HOST, [step.argv])
    writer.process.kill()
    writer.process.wait()
    (lost,) = pending()
    assert lost.exit_code == 255
    assert "exited before it answered; whether it ran is unknown" in lost.stderr
    assert not here and _state(provider) == "Off"
    # the pool is set aside: the next change runs in process, as without workers
    assert provider.execute(step).exit_code == 0
    assert [tuple(argv) for argv in here] == [step.argv]


def test_a_change_the_writer_declines_once_delays_appear_runs_in_process(
    pooled: tuple[EmulatorProvider, list[Sequence[str]]],
) -> None:
    """A delay configured after a change was sent (by `ivmctl emulator faults`, say)
    would have the one writer wait while every other change queues behind it: the writer
    checks again, runs nothing, and the change runs in ivmctl's process."""
    provider, here = pooled
    warm = provider.emulator.submit_many(HOST, [["hpvmnet", "-c", "-S", "vsw9"]])
    assert warm()[0].exit_code == 0  # the writer runs
    writer = provider.emulator._workers._writer  # type: ignore[union-attr]
    assert writer is not None
    os.kill(writer.process.pid, signal.SIGSTOP)
    (step,) = provider.steps(_start())
    pending = provider.emulator.submit_many(HOST, [step.argv])
    provider.emulator.world.set_faults(HOST, latency={"hpvmstart": 0.01})
    os.kill(writer.process.pid, signal.SIGCONT)
    (started,) = pending()
    assert started.exit_code == 0
    assert [tuple(argv) for argv in here] == [step.argv]
    assert _state(provider) == "On"
