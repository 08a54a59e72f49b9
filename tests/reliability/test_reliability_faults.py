"""Runtime faults, injected with the emulator: each reported precisely, independent work
kept going, and a re-run converges.

* a start that fails (`faults --fail-starts`): its change fails quoting hpvmstart; the
  other host's guests are created and started;
* a create that hangs past `--step-timeout` (`faults --hang`): the step is reported as
  timed out and abandoned, apply moves on and ends without waiting for it;
* a migration aborted mid-way (`faults --abort-migration`): the guest keeps running on
  the source, nothing is left on the target;
* a host that becomes unreachable between plan and apply: its steps fail with the ssh
  error, the reachable host's work completes; `plan` against it names the host.

Retries: only read-only refresh commands are retried, and only when the connection
failed (exit 255); a failed step is never retried (checked through the command log).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ivmctl.providers.hpvm import HpvmProvider
from ivmctl.providers.transport import CommandOutput
from ivmctl.runtime import World

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import FLEET_V1, FLEET_V2, ivmctl

NO_CHANGES = "No changes. The runtime matches the configuration."


@pytest.fixture(scope="module")
def applied_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    template = tmp_path_factory.mktemp("faults") / "config"
    template.mkdir()
    (template / "fleet.yaml").write_text(FLEET_V1, encoding="utf-8")
    ivmctl("apply", "--auto-approve", cwd=template)
    return template


@pytest.fixture
def hosts_only(config: Path, run: Any) -> Path:
    """FLEET_V1 with only its hosts and vswitches applied, so faults can be injected."""
    (config / "fleet.yaml").write_text(FLEET_V1, encoding="utf-8")
    run("apply", "--auto-approve", "--target", "vswitch.hosta.vsw1",
        "--target", "vswitch.hostb.vsw1")  # fmt: skip
    return config


def guest_line(config: Path, host: str, name: str) -> list[str]:
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        out = world.execute(host, ["hpvmstatus", "-M"]).stdout
    lines = [line.split(":") for line in out.splitlines() if line.startswith(f"{name}:")]
    return lines[0] if lines else []


def log_of(config: Path, host: str) -> list[tuple[str, ...]]:
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        return [e.argv for e in world.log(host)]


def test_a_failed_start_and_a_hung_create_are_reported_and_other_work_completes(
    run: Any, hosts_only: Path, figures: Any
) -> None:
    run("emulator", "faults", "hosta", "--fail-starts", "1")
    run("emulator", "faults", "hostb", "--hang", "hpvmcreate=60")
    began = time.monotonic()
    failed = run("apply", "--auto-approve", "--step-timeout", "3", check=1)
    took = time.monotonic() - began
    figures.add("faults", "failed_starts_injected")
    figures.add("faults", "hangs_past_step_timeout")
    out = failed.stdout + failed.stderr
    assert "Traceback" not in out
    assert "(injected fault)" in out and "failed on hosta: hpvmstart" in out
    assert "did not finish within the step timeout (3 s) on hostb: abandoned, not retried" in out
    assert "Apply incomplete: " in failed.stdout and "2 failed" in failed.stdout
    assert took < 40, f"apply waited for the hung command ({took:.0f} s)"
    # independent work went on: one guest per host got through
    assert "Apply incomplete: 2 done" in failed.stdout
    started_on_a = [a for a in log_of(hosts_only, "hosta") if a[0] == "hpvmstart"]
    assert len(started_on_a) == 2  # the failed start was not retried
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    figures.add("faults", "reruns_converged")


def test_an_aborted_migration_leaves_the_guest_running_on_the_source(
    run: Any, config: Path, applied_v1: Path, figures: Any
) -> None:
    shutil.rmtree(config)
    shutil.copytree(applied_v1, config)
    (config / "fleet.yaml").write_text(FLEET_V2, encoding="utf-8")
    run("emulator", "faults", "hosta", "--abort-migration")
    failed = run("apply", "--auto-approve", check=1)
    figures.add("faults", "migrations_aborted")
    out = failed.stdout + failed.stderr
    assert "Traceback" not in out
    assert "migrate guest app01" in out and "failed on hosta: hpvmmigrate" in out
    # hostb's work went on; hosta's restart and creation wait for app01 to leave (the
    # planner ordered them after it, to make room), so they are skipped, not failed
    assert "Apply incomplete: 3 done, 1 failed, 2 skipped." in failed.stdout
    assert "guest.app02: not started: a change it depends on failed" in failed.stdout
    source = guest_line(config, "hosta", "app01")
    assert source[10] == "On", source  # still running where it was
    assert guest_line(config, "hostb", "app01") == []
    plan = run("plan").stdout
    assert "guest.app01 will MIGRATE from hosta to hostb (online)" in plan
    assert "Plan: 1 to add, 0 to change, 1 to restart, 1 to migrate, 0 to destroy." in plan
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    assert guest_line(config, "hostb", "app01")[10] == "On"
    figures.add("faults", "reruns_converged")


def test_an_unreachable_host_fails_its_steps_and_the_other_host_completes(
    run: Any, config: Path, applied_v1: Path, figures: Any
) -> None:
    shutil.rmtree(config)
    shutil.copytree(applied_v1, config)
    (config / "fleet.yaml").write_text(FLEET_V2, encoding="utf-8")
    run("plan", "-out", "v2.plan")
    run("emulator", "faults", "hosta", "--unreachable")  # after planning: the plan is fresh
    failed = run("apply", "v2.plan", check=1)
    figures.add("faults", "unreachable_hosts")
    out = failed.stdout + failed.stderr
    assert "Traceback" not in out
    assert "ssh: connect to host hosta port 22: Connection refused" in out
    assert "Apply incomplete: 3 done, 1 failed, 2 skipped." in failed.stdout
    # hostb's own work (a label, a deletion, a creation) completed
    assert guest_line(config, "hostb", "db01")[7] == "primary"
    assert guest_line(config, "hostb", "new02") and not guest_line(config, "hostb", "old01")
    refused = run("plan", check=1)
    assert "cannot read host hosta" in refused.stderr and "Connection refused" in refused.stderr
    assert "Traceback" not in refused.stderr
    run("emulator", "faults", "hosta", "--reachable")
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    figures.add("faults", "reruns_converged")


class FlakyTransport:
    """Fails the first `failures` runs with exit 255, then answers from a script."""

    def __init__(self, failures: int, exit_code: int = 255) -> None:
        self.failures = failures
        self.exit_code = exit_code
        self.calls: list[tuple[str, ...]] = []

    def run(self, host: str, argv: Sequence[str]) -> CommandOutput:
        self.calls.append(tuple(argv))
        if len(self.calls) <= self.failures:
            return CommandOutput(exit_code=self.exit_code, stderr="ssh: connect ... refused\n")
        return CommandOutput(exit_code=0, stdout="")

    def close(self) -> None:
        pass


def test_a_read_is_retried_when_the_connection_failed(figures: Any) -> None:
    transport = FlakyTransport(failures=2)
    provider = HpvmProvider(transport, sleep=lambda s: None)
    assert provider._run("h", "hpvmstatus", "-M") == ""
    assert transport.calls == [("hpvmstatus", "-M")] * 3
    figures.add("faults", "read_retries_checked")


def test_a_read_that_the_host_refuses_is_not_retried() -> None:
    transport = FlakyTransport(failures=5, exit_code=1)
    provider = HpvmProvider(transport, sleep=lambda s: None)
    with pytest.raises(Exception, match="exited with 1"):
        provider._run("h", "hpvmstatus", "-M")
    assert len(transport.calls) == 1


def test_a_step_is_never_retried_even_when_the_connection_failed() -> None:
    from ivmctl.providers.base import Step

    transport = FlakyTransport(failures=1)
    provider = HpvmProvider(transport, sleep=lambda s: None)
    result = provider.execute(Step(host="h", argv=("hpvmcreate", "-P", "x"), description="c"))
    assert result.exit_code == 255
    assert len(transport.calls) == 1


def test_step_timeout_must_be_positive(config: Path, run: Any) -> None:
    (config / "fleet.yaml").write_text(FLEET_V1, encoding="utf-8")
    refused = run("apply", "--auto-approve", "--step-timeout", "0", check=None)
    assert refused.returncode not in (0, 1)  # a usage error, before anything runs
    assert "Invalid value for '--step-timeout'" in refused.stderr
    assert not (config / ".ivmctl").exists()


def test_a_step_timeout_in_the_walk_reports_and_moves_on() -> None:
    from ivmctl.core.apply import apply_plan
    from ivmctl.plan.model import Action, Change, Operation, OpKind, Plan

    class Slow:
        def steps(self, operation: Operation) -> list[Any]:
            return [subprocess.CompletedProcess(args=[], returncode=0)]  # a stand-in step

        def execute(self, step: Any) -> Any:
            raise AssertionError("replaced below")

        def verify(self, change: Change) -> list[str]:
            return []

    class Step:
        def __init__(self, host: str, name: str) -> None:
            self.host, self.description = host, f"start guest {name}"

    class Outcome:
        ok, output = True, ""

    class Executor(Slow):
        def steps(self, operation: Operation) -> list[Any]:
            return [Step(operation.host, operation.params["name"])]

        def execute(self, step: Any) -> Any:
            if step.host == "slow":  # hangs until the test lets it go
                release.wait(timeout=60)  # liveness, not a duration
                ended.set()
            return Outcome()

    changes = tuple(
        Change(address=f"guest.{n}", action=Action.START, host=h,
               operations=(Operation(kind=OpKind.GUEST_START, host=h, params={"name": n}),))
        for n, h in (("a", "slow"), ("b", "fast"))
    )  # fmt: skip
    release, ended = threading.Event(), threading.Event()
    try:
        result = apply_plan(Plan(changes=changes), Executor(), step_timeout=0.5)
        assert not ended.is_set(), "the walk waited for the hung step"
    finally:
        release.set()
    assert result.done == ("guest.b",)
    assert "did not finish within the step timeout (0.5 s) on slow" in result.failed["guest.a"]


def test_a_hang_is_taken_by_exactly_one_of_two_concurrent_commands(tmp_path: Path) -> None:

    slept: list[float] = []
    world = World.open(tmp_path / "w.db", sleep=slept.append)
    world.add_host(name="h1", cores=4, memory_mb=8192)
    world.set_faults("h1", hangs={"hpvmstatus": 30})
    barrier = threading.Barrier(4)

    def status() -> None:
        barrier.wait()
        world.execute("h1", ["hpvmstatus"])

    threads = [threading.Thread(target=status) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    world.close()
    assert slept == [30.0]
