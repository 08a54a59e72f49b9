"""Property test on the real emulator (issue #5, "Done when").

For a random earlier configuration A and a random later configuration B: a fresh
emulator world is brought to A through Session (load, refresh, plan, apply), then B is
planned against it. Either the plan is refused with a reason (PlanError), or applying
its changes strictly in plan order succeeds step by step (every hpvm* step exits 0,
every change verifies) and the next plan is empty.

Small worlds: 1-2 hosts, 0-4 guests; random vCPUs, memory, entitlement, power,
vswitches (created, deleted, NICs moved between them) and host moves.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from emulator_worlds import HOSTS, PM, World, configurations, worlds, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.core.session import Planned, PlanOptions, Session, Workspace
from ivmctl.errors import PlanError
from ivmctl.plan.model import Plan


def _in_plan_order(plan: Plan) -> Plan:
    """The same plan, each change also waiting for the one before it: strict list order."""
    changes, previous = [], None
    for change in plan.changes:
        if not change.operations:
            changes.append(change)
            continue
        if previous is not None and previous not in change.depends_on:
            change = replace(change, depends_on=(*change.depends_on, previous))
        changes.append(change)
        previous = change.key
    return replace(plan, changes=tuple(changes))


def _apply_in_order(session: Session, planned: Planned) -> None:
    plan = _in_plan_order(planned.plan)
    result = session.apply(replace(planned, plan=plan), parallelism=1)
    described = "\n".join(f"  {c.key}: {c.action.value}" for c in plan.actionable)
    assert not result.failed, f"a step failed:\n{result.failed}\nplan:\n{described}"
    assert not result.inconsistent, f"a change did not verify: {result.inconsistent}"
    assert set(result.done) == {c.key for c in plan.actionable}


def _check(world: World, first: dict[str, Any], second: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        workspace = Workspace(config_dir=config_dir, environ={})
        write_config(config_dir, first)
        with Session(workspace, plugin_manager=PM) as session:
            try:
                planned = session.plan()
            except PlanError:
                planned = None  # the earlier state does not fit: the world stays empty
            if planned is not None:
                _apply_in_order(session, planned)
        write_config(config_dir, second)
        with Session(workspace, plugin_manager=PM) as session:
            try:
                planned = session.plan()
            except PlanError as exc:
                assert exc.summary.strip(), "a refused plan says why"
                return
            assert all(c.reasons for c in planned.plan.changes)
            _apply_in_order(session, planned)
        with Session(workspace, plugin_manager=PM) as session:
            again = session.plan().plan
            left = [(c.key, c.action.value, c.reasons) for c in again.actionable]
            assert left == [], f"the plan after apply is not empty: {left}"


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, dict[str, Any], dict[str, Any]]:
    world = draw(worlds())
    return world, draw(configurations(world)), draw(configurations(world))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_a_plan_on_the_emulator_is_refused_with_a_reason_or_applies_in_order_and_converges(
    scenario: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    _check(*scenario)


@pytest.mark.soak
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_soak_a_plan_on_the_emulator_is_refused_or_applies_in_order_and_converges(
    scenario: tuple[World, dict[str, Any], dict[str, Any]],
) -> None:
    _check(*scenario)


def test_destroy_after_any_apply_leaves_no_owned_object() -> None:
    """A fixed companion: apply a two-host world, then destroy: the state owns nothing."""
    world = World(hosts=HOSTS, cores={"h1": 4, "h2": 4}, memory={"h1": "16G", "h2": "16G"},
                  versions={"h1": "6.3", "h2": "6.3"})  # fmt: skip
    doc = {
        "apiVersion": "ivmctl/v1",
        "hosts": {
            h: {
                "version": "6.3",
                "hardware": {"cores": 4, "memory": "16G", "nics": ["lan0"]},
                "vswitches": {"vswa": {"nic": "lan0"}},
            }
            for h in world.hosts
        },
        "guests": {
            "g0": {"host": "h1", "vcpus": 2, "nics": [{"vswitch": "vswa", "vlan": 100}]},
            "g1": {"host": "h2", "power": "off"},
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        write_config(config_dir, doc)
        with Session(Workspace(config_dir=config_dir, environ={}), plugin_manager=PM) as session:
            _apply_in_order(session, session.plan())
            assert session.backend.read().owned == {
                "guest.g0", "guest.g1", "vswitch.h1.vswa", "vswitch.h2.vswa"
            }  # fmt: skip
            _apply_in_order(session, session.plan(PlanOptions(destroy=True)))
            assert session.backend.read().owned == frozenset()


def _one_guest_move(before: dict[str, Any], after: dict[str, Any]) -> tuple[World, dict, dict]:
    world = World(hosts=HOSTS, cores={"h1": 2, "h2": 4}, memory={"h1": "8G", "h2": "8G"},
                  versions={"h1": "6.3", "h2": "6.3"})  # fmt: skip
    hosts = {
        h: {"version": "6.3", "hardware": {"cores": c, "memory": "8G", "nics": ["lan0"]}}
        for h, c in world.cores.items()
    }
    return (
        world,
        {"apiVersion": "ivmctl/v1", "hosts": hosts, "guests": {"g0": before}},
        {"apiVersion": "ivmctl/v1", "hosts": hosts, "guests": {"g0": after}},
    )


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="bug B1 (plan/classify.py): a guest that moves to a host with fewer cores than "
    "its current vCPUs is migrated first and shrunk on the target; hpvmmigrate refuses "
    "('VM Host h1 can never run the guest'). The vCPU change belongs on the source, "
    "before the move.",
)
def test_b1_a_guest_shrunk_to_fit_a_smaller_host_is_shrunk_before_it_moves() -> None:
    _check(
        *_one_guest_move(
            {"host": "h2", "vcpus": 3, "memory": "1G", "power": "off"},
            {"host": "h1", "vcpus": 1, "memory": "1G", "power": "off"},
        )
    )


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="bug B3 (plan/classify.py): a file-backed disk added to an existing guest is "
    "planned as `hpvmmodify -a disk:avio_stor::file:PATH` without the storage.file_create "
    "that a new guest gets; hpvmmodify refuses ('Backing file ... does not exist').",
)
def test_b3_a_file_backed_disk_added_to_an_existing_guest_is_created_first() -> None:
    disk = {"backing": "file", "path": "/ivm/g0/data.img", "size": "8G"}
    _check(
        *_one_guest_move(
            {"host": "h1", "memory": "1G"},
            {"host": "h1", "memory": "1G", "disks": [disk]},
        )
    )


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="bug B4 (plan/classify.py or plan/diff.py): removing a disk and adding a NIC in "
    "one online update lets the new NIC take the freed PCI slot, so the runtime lists it "
    "before the existing NIC; NICs are compared by position, so apply reports an "
    "inconsistency and the next plan restarts the guest to swap them.",
)
def test_b4_a_nic_added_where_a_disk_was_removed_keeps_its_declared_position() -> None:
    disk = {"backing": "lv", "path": "/dev/vg01/rlvol_g0"}
    lan = {"vswitch": "localnet", "adapter": "lan"}
    world, first, second = _one_guest_move(
        {"host": "h1", "memory": "1G", "disks": [disk], "nics": [lan]},
        {"host": "h1", "memory": "1G", "disks": [], "nics": [lan, {"vswitch": "vswa"}]},
    )
    for document in (first, second):
        document["hosts"]["h1"]["vswitches"] = {"vswa": {"nic": "lan0"}}
    _check(world, first, second)
