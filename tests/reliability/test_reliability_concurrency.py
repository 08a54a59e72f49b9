"""Concurrency: 2 and 8 `ivmctl` runs at once on one state and one emulator world.

Mutating runs take the state lock; a run without --lock-timeout fails naming the holder,
one with it waits. Evidence that exactly one run mutates at a time: in the emulator's
command log, the mutating commands of each run form one uninterrupted block even though
every run has its own work (`--target guest.gNN`) and creations are slowed down to make
an overlap likely. No lost update: the state ends owning every guest any run created,
with its serial counting every write. A lock left by a dead process is taken over; one
held by a live process is not, and `force-unlock` removes it by id.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ivmctl.runtime import World

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import environ

HOST = """\
apiVersion: ivmctl/v1
hosts:
  vmhost01:
    version: "6.3"
    hardware: {cores: 16, memory: 64G, nics: [lan0]}
guests:
"""
GUEST = """\
  {name}:
    host: vmhost01
    os: hpux
    power: {power}
    memory: 1G
    disks: [{{backing: lv, path: /dev/vg01/rlvol_{name}}}]
    nics: [{{vswitch: localnet, adapter: lan}}]
"""
MUTATING = ("hpvmcreate", "hpvmstart", "hpvmstop", "hpvmremove", "hpvmmodify")


def write_fleet(config: Path, count: int, power: str = "on") -> list[str]:
    names = [f"g{i:02d}" for i in range(1, count + 1)]
    body = HOST + "".join(GUEST.format(name=n, power=power) for n in names)
    (config / "fleet.yaml").write_text(body, encoding="utf-8")
    return names


def prepare(run: Any, config: Path, count: int, latency: str) -> list[str]:
    names = write_fleet(config, count)
    run("emulator", "host", "add", "vmhost01", "--cores", "16", "--memory", "64G")
    run("emulator", "faults", "vmhost01", "--latency", latency)
    return names


def popen(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "ivmctl", *args], cwd=config, env=environ(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    return [(p.wait(timeout=300), p.stdout.read(), p.stderr.read()) for p in procs]  # type: ignore[union-attr]


def mutation_blocks(config: Path) -> list[str]:
    """The guest named by each mutating command, in log order, runs of one guest merged."""
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        log = world.log("vmhost01")
    names = [e.argv[e.argv.index("-P") + 1] for e in log
             if e.argv[0] in MUTATING and "-P" in e.argv and e.exit_code == 0]  # fmt: skip
    return [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n]


def state_of(config: Path) -> dict[str, Any]:
    return json.loads((config / ".ivmctl" / "state.json").read_text())  # type: ignore[no-any-return]


LOCKED = re.compile(r"the state is locked: lock [0-9a-f-]+ held by '(apply|destroy)' \(pid \d+ on ")


def test_two_applies_one_waits_one_fails_naming_the_holder(
    run: Any, config: Path, started: list[subprocess.Popen[str]], figures: Any
) -> None:
    names = prepare(run, config, 2, "create=3.0")
    first = popen(config, "apply", "--auto-approve", "--target", f"guest.{names[0]}")
    started.append(first)
    lock = config / ".ivmctl" / "state.lock"
    deadline = time.monotonic() + 60
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # the first holds the lock while its creation takes 3 s
    waiting = popen(config, "apply", "--auto-approve", "--lock-timeout", "120",
                    "--target", f"guest.{names[1]}")  # fmt: skip
    started.append(waiting)
    refused = run("apply", "--auto-approve", check=None)
    (code1, _, err1), (code2, _, err2) = finish([first, waiting])
    figures.add("concurrency", "concurrent_runs", 3)
    assert code1 == 0, err1
    assert code2 == 0, err2
    assert refused.returncode == 1
    assert LOCKED.search(refused.stderr), refused.stderr
    assert "ivmctl force-unlock" in refused.stderr and "Traceback" not in refused.stderr
    assert mutation_blocks(config) == names
    assert sorted(state_of(config)["resources"]) == [f"guest.{n}" for n in names]


def test_eight_runs_mutate_one_at_a_time_and_lose_no_update(
    run: Any, config: Path, started: list[subprocess.Popen[str]], figures: Any
) -> None:
    names = prepare(run, config, 6, "create=0.3")
    applies = [popen(config, "apply", "--auto-approve", "--lock-timeout", "300",
                     "--target", f"guest.{n}") for n in names]  # fmt: skip
    plans = [popen(config, "plan"), popen(config, "plan")]
    started.extend(applies + plans)
    results = finish(applies + plans)
    figures.add("concurrency", "concurrent_runs", len(results))
    for code, _, err in results:
        assert code == 0, err
    blocks = mutation_blocks(config)
    assert sorted(blocks) == names, f"mutations interleaved: {blocks}"
    state = state_of(config)
    assert sorted(state["resources"]) == [f"guest.{n}" for n in names]
    # Two writes per created guest (the intent before hpvmcreate, the record after), none lost.
    assert state["serial"] == 2 * len(names)
    assert {r["status"] for r in state["resources"].values()} == {"owned"}
    assert "No changes" in run("plan").stdout


@pytest.mark.soak
def test_eight_runs_of_apply_plan_and_destroy_leave_state_and_runtime_agreeing(
    run: Any, config: Path, started: list[subprocess.Popen[str]], figures: Any
) -> None:
    names = prepare(run, config, 4, "start=0.2")
    run("apply", "--auto-approve", "--target", f"guest.{names[0]}")
    kinds = ["apply", "destroy", "plan", "apply", "destroy", "plan", "apply", "apply"]
    procs = [
        popen(config, kind, "--auto-approve", "--lock-timeout", "300")
        if kind != "plan" else popen(config, "plan")
        for kind in kinds
    ]  # fmt: skip
    started.extend(procs)
    results = finish(procs)
    figures.add("concurrency", "concurrent_runs", len(results))
    for code, _, err in results:
        assert code == 0, err
    with World.open(config / ".ivmctl" / "emulator.db", create=False) as world:
        listing = world.execute("vmhost01", ["hpvmstatus", "-M"]).stdout
    in_runtime = sorted(f"guest.{line.split(':')[0]}" for line in listing.splitlines() if line)
    assert sorted(state_of(config)["resources"]) == in_runtime  # nothing orphaned or ghosted
    run("apply", "--auto-approve")
    assert "No changes" in run("plan").stdout


def test_a_lock_left_by_a_dead_process_is_taken_over(run: Any, config: Path, figures: Any) -> None:
    write_fleet(config, 1, power="off")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    lock = {"id": "0000-dead", "operation": "apply", "pid": int(dead.stdout),
            "hostname": socket.gethostname(), "created": "2026-01-01T00:00:00"}  # fmt: skip
    (config / ".ivmctl").mkdir()
    (config / ".ivmctl" / "state.lock").write_text(json.dumps(lock))
    run("apply", "--auto-approve")
    figures.add("concurrency", "stale_locks_recovered")
    assert not (config / ".ivmctl" / "state.lock").exists()
    assert "guest.g01" in state_of(config)["resources"]


def test_a_lock_held_by_a_live_process_is_kept_until_force_unlock(
    run: Any, config: Path, started: list[subprocess.Popen[str]], figures: Any
) -> None:
    write_fleet(config, 1, power="off")
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    started.append(alive)  # type: ignore[arg-type]
    lock = {"id": "1111-live", "operation": "apply", "pid": alive.pid,
            "hostname": socket.gethostname(), "created": "2026-01-01T00:00:00"}  # fmt: skip
    (config / ".ivmctl").mkdir()
    (config / ".ivmctl" / "state.lock").write_text(json.dumps(lock))
    refused = run("apply", "--auto-approve", check=1)
    assert f"lock 1111-live held by 'apply' (pid {alive.pid}" in refused.stderr
    assert not (config / ".ivmctl" / "state.json").exists()
    wrong = run("force-unlock", "2222", check=1)
    assert "does not match" in wrong.stderr
    run("force-unlock", "1111-live")
    run("apply", "--auto-approve")
    figures.add("concurrency", "live_locks_respected")
