"""The real CLI against the real emulator: apply, change, migrate, stale plans, destroy,
failures, concurrency and interruption — each ends with a plan that converges."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ivmctl.state.backend import LOCK_FILE

Run = Callable[..., subprocess.CompletedProcess[str]]
Start = Callable[..., subprocess.Popen[str]]

NO_CHANGES = "No changes. The runtime matches the configuration."


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_quickstart_applies_and_the_next_plan_is_empty(run: Run, quickstart: Path) -> None:
    applied = run("apply", "--auto-approve")
    assert "Apply complete: 6 done, 0 failed, 0 skipped." in applied.stdout
    plan = run("plan", "--detailed-exitcode")
    assert NO_CHANGES in plan.stdout
    status = run("status").stdout
    assert "host vmhost01" in status
    assert "web01" in status and "On (" in status  # On (EFI) while it boots, then On (OS)
    listed = run("emulator", "exec", "vmhost01", "--", "hpvmstatus").stdout
    assert "web02" in listed and "build01" in listed


def test_a_vcpu_change_restarts_the_guest_and_converges(run: Run, quickstart: Path) -> None:
    run("apply", "--auto-approve")
    edit(quickstart / "ivmctl.yaml", "    profile: small\n    entitlement: {min: 20%",
         "    profile: small\n    vcpus: 2\n    entitlement: {min: 20%")  # fmt: skip
    plan = run("plan", "--detailed-exitcode", check=2).stdout
    assert "guest.web02 will RESTART (stop, modify, start)" in plan
    assert "1 to restart" in plan
    commands = run("plan", "--commands").stdout
    assert "hpvmstop -P web02" in commands and "hpvmmodify -P web02" in commands
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    detail = run("emulator", "exec", "vmhost01", "--", "hpvmstatus", "-M", "-P", "web02").stdout
    assert detail.split(":")[19].split(";")[0] == "2"


def test_a_denied_restart_is_a_plan_error_that_says_how_to_allow_it(
    run: Run, quickstart: Path
) -> None:
    run("apply", "--auto-approve")
    edit(quickstart / "ivmctl.yaml", "    profile: small\n    entitlement: {min: 20%",
         "    profile: small\n    vcpus: 2\n    lifecycle: {restart: deny}\n"
         "    entitlement: {min: 20%")  # fmt: skip
    refused = run("plan", check=1)
    assert "guest.web02" in refused.stderr and "--allow-restart" in refused.stderr
    assert "Traceback" not in refused.stderr
    allowed = run("plan", "--allow-restart", "guest.web02").stdout
    assert "guest.web02 will RESTART" in allowed


def test_an_online_change_needs_no_restart(run: Run, quickstart: Path) -> None:
    run("apply", "--auto-approve")
    edit(quickstart / "ivmctl.yaml", "entitlement: {min: 20%, max: 60%}",
         "entitlement: {min: 30%, max: 60%}")  # fmt: skip
    plan = run("plan").stdout
    assert "guest.web02 will be updated online" in plan
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout


MIGRATION = """\
apiVersion: ivmctl/v1
hosts:
  hostA:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
  hostB:
    version: "6.3"
    hardware: {cores: 4, memory: 16G, nics: [lan0]}
    vswitches: {vsw1: {nic: lan0}}
guests:
  app01:
    host: hostA
    os: hpux
    vcpus: 2
    memory: 4G
    disks: [{backing: disk, path: /dev/rdisk/disk10}]
    nics: [{vswitch: vsw1}]
"""


def test_moving_a_running_guest_migrates_it_online(run: Run, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "fleet.yaml").write_text(MIGRATION)
    run("apply", "--auto-approve")
    edit(config / "fleet.yaml", "    host: hostA", "    host: hostB")
    plan = run("plan").stdout
    assert "guest.app01 will MIGRATE from hostA to hostB (online)" in plan
    assert "hpvmmigrate -P app01 -h hostB -o" in run("plan", "--commands").stdout
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    on_b = run("emulator", "exec", "hostB", "--", "hpvmstatus", "-M", "-P", "app01").stdout
    assert on_b.split(":")[10] == "On"


def test_worker_processes_create_start_and_migrate_as_ivmctl_itself_does(
    run: Run, tmp_path: Path
) -> None:
    """With `processes` set, listings run on reader processes and changes on the writer
    process, whatever the fleet's size: the same plan converges the same way."""
    config = tmp_path / "config"
    config.mkdir()
    pooled = "provider: {name: emulator, options: {processes: 2}}\nhosts:\n"
    (config / "fleet.yaml").write_text(MIGRATION.replace("hosts:\n", pooled, 1))
    assert "Apply complete: 5 done, 0 failed" in run("apply", "--auto-approve").stdout
    edit(config / "fleet.yaml", "    host: hostA", "    host: hostB")
    assert "guest.app01 will MIGRATE from hostA to hostB (online)" in run("plan").stdout
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout
    on_b = run("emulator", "exec", "hostB", "--", "hpvmstatus", "-M", "-P", "app01").stdout
    assert on_b.split(":")[10] == "On"


def test_a_saved_plan_is_refused_once_the_runtime_changed(run: Run, quickstart: Path) -> None:
    run("plan", "-out", "tonight.plan")
    run("emulator", "host", "add", "intruder", "--cores", "2", "--memory", "4G")
    refused = run("apply", "tonight.plan", check=1)
    assert "Saved plan is stale" in refused.stderr
    assert run("emulator", "host", "list").stdout.count("vmhost01") == 0


def test_a_saved_plan_applies_exactly_and_then_is_stale(run: Run, quickstart: Path) -> None:
    run("plan", "-out", "tonight.plan")
    shown = run("show", "tonight.plan").stdout
    assert "Plan: 6 to add" in shown
    run("apply", "tonight.plan")
    assert NO_CHANGES in run("plan").stdout
    again = run("apply", "tonight.plan", check=1)
    assert "stale" in again.stderr


def test_a_saved_plan_for_another_configuration_is_refused(run: Run, quickstart: Path) -> None:
    run("plan", "-out", "tonight.plan")
    edit(quickstart / "ivmctl.yaml", "memory: 8G", "memory: 6G")
    refused = run("apply", "tonight.plan", check=1)
    assert "different configuration" in refused.stderr


def test_destroy_deletes_what_ivmctl_owns_and_nothing_else(run: Run, quickstart: Path) -> None:
    run("apply", "--auto-approve")
    run("emulator", "exec", "vmhost01", "--", "hpvmcreate", "-P", "handmade", "-O", "hpux")
    plan = run("plan").stdout
    assert "guest.handmade" in plan and "Unmanaged" in plan
    destroyed = run("destroy", "--auto-approve").stdout
    assert "3 to destroy" in destroyed or "to destroy" in destroyed
    left = run("emulator", "exec", "vmhost01", "--", "hpvmstatus", "-M").stdout
    assert [line.split(":")[0] for line in left.splitlines() if line] == ["handmade"]
    assert "web01" not in run("status").stdout


def test_destroy_without_a_terminal_needs_auto_approve(run: Run, quickstart: Path) -> None:
    run("apply", "--auto-approve")
    refused = run("destroy", check=1)
    assert "destroy cancelled: nothing was changed" in refused.stderr


def test_a_failed_start_stops_its_change_and_a_rerun_converges(run: Run, quickstart: Path) -> None:
    run("emulator", "host", "add", "vmhost01", "--cores", "8", "--memory", "64G",
        "--nics", "lan0,lan1")  # fmt: skip
    run("emulator", "faults", "vmhost01", "--fail-starts", "1")
    failed = run("apply", "--auto-approve", check=1)
    assert "failed" in failed.stdout.lower() or "failed" in failed.stderr.lower()
    assert "Apply incomplete" in failed.stdout
    remaining = run("plan").stdout
    assert "will be started" in remaining or "will be created" in remaining
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout


def _until_locked(config: Path, holder: subprocess.Popen[str]) -> None:
    """Wait until `holder` holds the state lock: a second apply started a fixed time
    later could, on a busy machine, take the lock first."""
    lock = config / ".ivmctl" / LOCK_FILE
    deadline = time.monotonic() + 60  # liveness: the apply locks as it starts
    while not lock.exists():
        assert holder.poll() is None, "the first apply ended before it took the lock"
        assert time.monotonic() < deadline, "the first apply never took the lock"
        time.sleep(0.02)


def test_a_second_apply_fails_naming_the_lock_holder(
    run: Run, start: Start, quickstart: Path
) -> None:
    run("emulator", "host", "add", "vmhost01", "--cores", "8", "--memory", "64G",
        "--nics", "lan0,lan1")  # fmt: skip
    run("emulator", "faults", "vmhost01", "--latency", "start=1.5")
    first = start("apply", "--auto-approve")
    _until_locked(quickstart, first)
    second = run("apply", "--auto-approve", check=1)
    assert "the state is locked: lock " in second.stderr
    assert "held by 'apply' (pid " in second.stderr
    assert "ivmctl force-unlock" in second.stderr
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert NO_CHANGES in run("plan").stdout


def test_a_second_apply_with_a_lock_timeout_waits_then_plans_afresh(
    run: Run, start: Start, quickstart: Path
) -> None:
    run("emulator", "host", "add", "vmhost01", "--cores", "8", "--memory", "64G",
        "--nics", "lan0,lan1")  # fmt: skip
    run("emulator", "faults", "vmhost01", "--latency", "start=1.0")
    first = start("apply", "--auto-approve")
    _until_locked(quickstart, first)
    second = run("apply", "--auto-approve", "--lock-timeout", "60")
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    assert NO_CHANGES in second.stdout


def test_ctrl_c_lets_running_changes_finish_and_a_rerun_converges(
    run: Run, start: Start, quickstart: Path
) -> None:
    run("emulator", "host", "add", "vmhost01", "--cores", "8", "--memory", "64G",
        "--nics", "lan0,lan1")  # fmt: skip
    run("emulator", "faults", "vmhost01", "--latency", "create=1.0")
    proc = start("apply", "--auto-approve", "--parallelism", "1")
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:  # wait until apply is under way and one change is done
        seen.append(line)
        if ": done (" in line:
            break
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 1, err
    assert "Interrupted" in out
    state = json.loads((quickstart / ".ivmctl" / "state.json").read_text())
    assert state["resources"], "changes finished before the interrupt are recorded"
    run("apply", "--auto-approve")
    assert NO_CHANGES in run("plan").stdout


def test_protection_declared_later_is_remembered_by_an_apply_with_nothing_to_do(
    run: Run, quickstart: Path
) -> None:
    run("apply", "--auto-approve")
    edit(quickstart / "ivmctl.yaml", "      ignore_changes: [label]",
         "      ignore_changes: [label]\n      prevent_destroy: true")  # fmt: skip
    assert "No changes." in run("apply", "--auto-approve").stdout
    text = (quickstart / "ivmctl.yaml").read_text()
    (quickstart / "ivmctl.yaml").write_text(
        text[: text.index("  web01:")] + text[text.index("  web02:") :]
    )
    refused = run("plan", check=1)
    assert "guest.web01" in refused.stderr and "prevent_destroy" in refused.stderr
