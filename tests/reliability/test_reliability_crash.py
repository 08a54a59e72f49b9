"""Crash consistency: `ivmctl apply` killed with SIGKILL at many points, then recovered.

A two-host fleet is applied (FLEET_V1), then changed (FLEET_V2: a migration, a restart,
an online update, a delete and two creations). The second apply runs as a real CLI
subprocess and kills itself at crash point N (the `IVMCTL_TEST_KILL_AT` seam of
ivmctl/runtime/crashpoints.py: before and after every step, inside each emulator
command's open transaction, before and during every state write). After each kill:

* the state file and the emulator world are readable and consistent (SQLite integrity
  and foreign keys; the state's lineage unchanged, its serial not lower);
* the next plan works (the dead run's lock is recovered) and shows only remaining work:
  no address outside the interrupted plan, no change the killed run finished, no delete
  that was not planned;
* applying it converges, and the result is the same fleet as an uninterrupted apply: the
  same guests with the same configuration and run state on the same hosts, none twice,
  no Off (NR) leftovers, and every guest owned in the state.

The default suite tries a handful of points spread over the run; `-m soak` tries every
point of a serial apply, then random points of a parallel one.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ivmctl.core.session import Session, Workspace
from ivmctl.plan.model import Action
from ivmctl.state import LocalBackend, RecordStatus, State

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import FLEET_V1, FLEET_V2, environ, ivmctl  # noqa: E402


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """FLEET_V1 applied, FLEET_V2 written; the full V2 plan and the uninterrupted result."""

    template: Path
    full_plan: dict[str, Action]
    points: tuple[str, ...]  # crash points of a serial uninterrupted apply, in order
    final: dict[str, Any]
    lineage: str
    serial: int


def session(config: Path) -> Session:
    return Session(Workspace(config_dir=config, environ={}))


def fleet_view(config: Path) -> dict[str, Any]:
    """What the runtime holds and the state owns, without runtime-chosen values."""
    with session(config) as s:
        desired, _ = s.load()
        state = s.backend.read()
        actual = s.provider(desired.provider).refresh(sorted(desired.hosts))
    guests = {
        name: {
            "host": a.guest.host,
            "vcpus": a.guest.vcpus,
            "memory_mb": a.guest.memory_mb,
            "label": a.guest.label,
            "running": a.status.running,
            "disks": sorted(d.path for d in a.guest.disks),
            "nics": sorted((n.vswitch, n.vlan or 0) for n in a.guest.nics),
        }
        for name, a in actual.guests.items()
    }
    return {
        "guests": guests,
        "not_runnable": sorted(f"{h}/{n}" for h, n in actual.not_runnable),
        "owned": sorted(state.owned),
        "vswitches": sorted(f"{h}/{v}" for h, host in actual.hosts.items() for v in host.vswitches),
    }


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Baseline:
    template = tmp_path_factory.mktemp("crash") / "config"
    template.mkdir()
    (template / "fleet.yaml").write_text(FLEET_V1, encoding="utf-8")
    ivmctl("apply", "--auto-approve", cwd=template)
    (template / "fleet.yaml").write_text(FLEET_V2, encoding="utf-8")
    with session(template) as s:
        planned = s.plan()
    full = {c.address: c.action for c in planned.plan.actionable}
    reference = template.parent / "reference"
    shutil.copytree(template, reference)
    trace = template.parent / "reference.trace"
    ivmctl("apply", "--auto-approve", "--parallelism", "1", cwd=reference,
           env=environ(IVMCTL_TEST_KILL_TRACE=str(trace)))  # fmt: skip
    points = tuple(line.split(" ", 1)[1] for line in trace.read_text().splitlines())
    final = fleet_view(reference)
    assert sorted(final["guests"]) == ["app01", "app02", "db01", "new01", "new02"]
    return Baseline(template=template, full_plan=full, points=points, final=final,
                    lineage=planned.state.lineage, serial=planned.state.serial)  # fmt: skip


def check_consistent_after_kill(config: Path, base: Baseline) -> None:
    state_dir = config / ".ivmctl"
    State.from_json((state_dir / "state.json").read_bytes(), source="state.json")
    state = LocalBackend(state_dir).read()  # state.json and the journal the run left
    assert state.lineage == base.lineage
    assert state.serial >= base.serial
    conn = sqlite3.connect(str(state_dir / "emulator.db"))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    finally:
        conn.close()


def kill_and_recover(
    base: Baseline,
    where: Path,
    point: int | str,
    *,
    parallelism: int,
    figures: Any,
    **extra_env: str,
) -> str:
    """Kill apply at `point`, check, converge, compare; returns the point's name ('' if the
    run finished before reaching it)."""
    config = where / "config"
    shutil.copytree(base.template, config)
    trace = where / "trace"
    env = environ(IVMCTL_TEST_KILL_AT=str(point), IVMCTL_TEST_KILL_TRACE=str(trace), **extra_env)
    proc = ivmctl("apply", "--auto-approve", "--parallelism", str(parallelism), cwd=config,
                  check=None, env=env)  # fmt: skip
    passed = trace.read_text().splitlines() if trace.exists() else []
    if proc.returncode == 0:
        assert isinstance(point, int) and len(passed) < point
        return ""
    assert proc.returncode == -9, proc.stderr
    name = passed[-1].split(" ", 1)[1]
    figures.add("crash", "kill_points_tried")
    finished = {p.split()[2] for p in passed if p.split()[1] == "change_done"}

    check_consistent_after_kill(config, base)
    assert (config / ".ivmctl" / "state.lock").exists(), "the killed run held the lock"
    with session(config) as s:
        planned = s.plan()  # recovers the dead run's lock when it applies below
        remaining = {c.address: c.action for c in planned.plan.actionable}
        assert set(remaining) <= set(base.full_plan), f"after {name}: {remaining}"
        assert not set(remaining) & finished, f"after {name}: redone {finished & set(remaining)}"
        for address, action in remaining.items():
            if action in (Action.DELETE, Action.REPLACE):
                assert base.full_plan[address] is action, f"after {name}: {address} {action}"
        result = s.apply(planned)
        assert result.ok, f"after {name}: {result}"
    with session(config) as s:
        assert not s.plan().plan.actionable, f"after {name}: no convergence"
    assert fleet_view(config) == base.final, f"after {name}"
    assert not (config / ".ivmctl" / "state.lock").exists()
    assert not list((config / ".ivmctl").glob("state.tmp.*")), "a half-written state was left"
    assert not (config / ".ivmctl" / "state.journal").exists(), "the journal was not folded"
    return name


def test_every_uninterrupted_point_is_known(baseline: Baseline) -> None:
    kinds = {p.split(" ")[0] for p in baseline.points}
    assert {"step_started", "step_finished", "inside", "state", "change_done"} <= kinds
    intent = baseline.points.index("state write: intent guest.new01")
    assert intent < baseline.points.index("step_started guest.new01 create guest new01")
    assert set(baseline.full_plan) == {
        "guest.app01", "guest.app02", "guest.db01", "guest.new01", "guest.new02", "guest.old01"
    }  # fmt: skip


def _survive(base: Baseline, tmp: Path, points: list[Any], parallelism: int, figures: Any) -> None:
    for index, point in enumerate(points):
        name = kill_and_recover(base, tmp / f"{index}-p{parallelism}", point,
                                parallelism=parallelism, figures=figures)  # fmt: skip
        if name:
            figures.add("crash", "kill_points_survived")
            figures.add("crash", f"killed_at_{name.split(' ')[0]}")
            figures.add("crash", f"parallelism_{parallelism}_points_survived")


# The moments most likely to lose something, named (IVMCTL_TEST_KILL_AT=TEXT#K):
NAMED_POINTS = [
    "step_finished guest.new01 create guest new01",  # created, owned by its intent only
    "inside hpvmmigrate",  # the migration made, its transaction not committed
    "step_finished guest.old01 remove guest old01",  # deleted, not yet forgotten
    "state write: new file written, not yet renamed",  # the journal's fold half done
    "state write: journal folded, not yet removed",  # folded, the journal still there
]


def test_apply_killed_at_the_riskiest_moments_recovers_and_converges(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    figures.note("crash", "points_in_one_serial_apply", len(baseline.points))
    for named in NAMED_POINTS:
        assert any(named.split("#")[0] in p for p in baseline.points), named
    _survive(baseline, tmp_path, list(NAMED_POINTS), 1, figures)


# Points of ivmctl's own process while its changes run on the emulator's writer process
# (no `inside ...` points there: those pass in the writer, which the kill seam leaves be).
WRITER_POINTS = [
    "step_finished guest.new01 create guest new01",
    "step_started guest.app01",
    "state write: journal folded, not yet removed",
]


def test_apply_on_worker_processes_killed_mid_run_recovers_and_converges(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    """With `IVMCTL_EMULATOR_PROCESSES=1` the changes run on the writer: ivmctl killed
    while other changes are on their way there (ten at a time) leaves the writer to
    finish the one it runs and drop the rest; the next plan shows what remains."""
    for index, point in enumerate(WRITER_POINTS):
        name = kill_and_recover(baseline, tmp_path / f"w{index}", point, parallelism=10,
                                figures=figures, IVMCTL_EMULATOR_PROCESSES="1")  # fmt: skip
        assert name, f"the run finished before {point}"
        passed = (tmp_path / f"w{index}" / "trace").read_text()
        assert " inside " not in passed, "a change ran in ivmctl's process, not the writer"


@pytest.mark.soak
def test_apply_killed_at_every_point_recovers_and_converges(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    _survive(baseline, tmp_path, list(range(1, len(baseline.points) + 1)), 1, figures)


@pytest.mark.soak
def test_parallel_apply_killed_at_random_points_recovers_and_converges(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    rng = random.Random(int(os.environ.get("IVMCTL_CRASH_SEED", "8")))
    count = int(os.environ.get("IVMCTL_CRASH_RANDOM_POINTS", "30"))
    points = [rng.randint(1, len(baseline.points)) for _ in range(count)]
    _survive(baseline, tmp_path, points, 10, figures)


NEW01 = """  new01:
    host: hosta
    os: hpux
    disks: [{backing: file, path: /ivm/new01/root.img, size: 4G}]
    nics: [{vswitch: vsw1, vlan: 20}]
"""


def killed_at(base: Baseline, where: Path, point: str) -> Path:
    """A copy of the template whose V2 apply was killed at the named point."""
    config = where / "config"
    shutil.copytree(base.template, config)
    proc = ivmctl("apply", "--auto-approve", "--parallelism", "1", cwd=config, check=None,
                  env=environ(IVMCTL_TEST_KILL_AT=point))  # fmt: skip
    assert proc.returncode == -9, proc.stderr
    return config


def runtime_guests(config: Path) -> set[str]:
    with session(config) as s:
        desired, _ = s.load()
        return set(s.provider(desired.provider).refresh(sorted(desired.hosts)).guests)


def test_a_guest_created_just_before_a_kill_is_owned_and_deleted_once_undeclared(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    config = killed_at(baseline, tmp_path, "step_finished guest.new01 create guest new01")
    figures.add("crash", "intent_kill_points_survived")
    record = LocalBackend(config / ".ivmctl").read().resources["guest.new01"]
    assert record.status is RecordStatus.CREATING and record.host == "hosta"
    assert "new01" in runtime_guests(config)
    # The operator drops the guest from the configuration before applying again.
    (config / "fleet.yaml").write_text(FLEET_V2.replace(NEW01, ""), encoding="utf-8")
    with session(config) as s:
        planned = s.plan()
        actions = {c.address: c.action for c in planned.plan.actionable}
        assert actions["guest.new01"] is Action.DELETE, "ivmctl's own guest, not unmanaged"
        assert s.apply(planned).ok
    with session(config) as s:
        assert not s.plan().plan.actionable
        assert "guest.new01" not in s.backend.read().owned
    assert "new01" not in runtime_guests(config)


def test_an_intent_whose_create_never_ran_is_dropped_and_owns_nothing(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    config = killed_at(baseline, tmp_path, "step_started guest.new01 create guest new01")
    figures.add("crash", "intent_kill_points_survived")
    assert LocalBackend(config / ".ivmctl").read().resources["guest.new01"].status == "creating"
    assert "new01" not in runtime_guests(config)
    (config / "fleet.yaml").write_text(FLEET_V2.replace(NEW01, ""), encoding="utf-8")
    with session(config) as s:
        planned = s.plan()
        assert "guest.new01" not in {c.address for c in planned.plan.actionable}
        assert s.apply(planned).ok
        assert "guest.new01" not in s.backend.read().owned
    # A guest made by hand under that name later is not ivmctl's.
    with session(config) as s:
        assert "guest.new01" not in s.backend.read().owned


def test_a_guest_created_before_a_kill_and_still_declared_is_finished_not_adopted(
    baseline: Baseline, tmp_path: Path, figures: Any
) -> None:
    config = killed_at(baseline, tmp_path, "step_started guest.new01 start guest new01")
    figures.add("crash", "intent_kill_points_survived")
    with session(config) as s:
        planned = s.plan()
        change = next(c for c in planned.plan.actionable if c.address == "guest.new01")
        assert change.action is not Action.ADOPT
        assert s.apply(planned).ok
        record = s.backend.read().resources["guest.new01"]
    assert record.status is RecordStatus.OWNED and record.digest
    with session(config) as s:
        assert not s.plan().plan.actionable
    assert fleet_view(config) == baseline.final


def test_the_kill_seam_does_nothing_when_unset(tmp_path: Path) -> None:
    code = (
        "from ivmctl.runtime.crashpoints import crash_point\n"
        "for _ in range(5): crash_point('x')\n"
        "print('alive')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env=environ(), capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert proc.stdout == "alive\n"


@pytest.mark.parametrize(("kill_at", "printed"), [("3", "a1 b1 "), ("b#2", "a1 b1 a2 "),
                                                  ("c", "a1 b1 a2 b2 end")])  # fmt: skip
def test_the_kill_seam_kills_at_the_named_or_numbered_point(kill_at: str, printed: str) -> None:
    code = (
        "import sys\n"
        "from ivmctl.runtime.crashpoints import crash_point\n"
        "for name in ['a1', 'b1', 'a2', 'b2']:\n"
        "    crash_point(name); sys.stdout.write(name + ' '); sys.stdout.flush()\n"
        "sys.stdout.write('end')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ(IVMCTL_TEST_KILL_AT=kill_at))  # fmt: skip
    assert proc.stdout.strip() == printed.strip()
    assert proc.returncode == (0 if printed.endswith("end") else -9)
