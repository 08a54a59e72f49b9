"""Property test on the real emulator (issue #5, "Done when").

For a random earlier configuration A and a random later configuration B: a fresh
emulator world is brought to A through Session (load, refresh, plan, apply), then B is
planned against it. Either the plan is refused with a reason (PlanError), or applying
its changes strictly in plan order succeeds step by step (every hpvm* step exits 0,
every change verifies) and the next plan is empty.

Small worlds: 1-2 hosts, 0-4 guests; random vCPUs, memory, entitlement, power,
vswitches (created, deleted, NICs moved between them) and host moves. Between the two
configurations, objects may be forgotten from the state (adopted again, or left alone as
unmanaged) and a guest created by hand, which the plan must never touch.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from emulator_worlds import HOSTS, PM, World, configurations, worlds, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.core.session import Planned, PlanOptions, Session, Workspace
from ivmctl.errors import PlanError
from ivmctl.plan.model import Plan
from ivmctl.providers.base import Step


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


def _apply_in_order(session: Session, planned: Planned, *, parallel: bool = False) -> None:
    """Apply strictly in plan order, or (`parallel`) as `ivmctl apply` does: the graph
    walked with 10 changes at once."""
    plan = planned.plan if parallel else _in_plan_order(planned.plan)
    result = session.apply(replace(planned, plan=plan), parallelism=10 if parallel else 1)
    described = "\n".join(f"  {c.key}: {c.action.value}" for c in plan.actionable)
    assert not result.failed, f"a step failed:\n{result.failed}\nplan:\n{described}"
    assert not result.inconsistent, f"a change did not verify: {result.inconsistent}"
    assert set(result.done) == {c.key for c in plan.actionable}


@dataclass(frozen=True, kw_only=True)
class Meddling:
    """What happens between the two configurations, outside ivmctl's plan."""

    unmanaged_on: str | None = None  # a guest `u0` created (and started) by hand there
    forget: tuple[str, ...] = ()  # addresses dropped from the state (`state rm`)


def _meddle(session: Session, meddling: Meddling) -> None:
    state = session.backend.read()
    for address in meddling.forget:
        if address in state.resources:
            state = session.backend.write(state.without(address))
    host = meddling.unmanaged_on
    desired, _ = session.load()
    provider = session.provider(desired.provider)
    if host is None or host not in provider.refresh([host]).hosts:
        return
    create = ("hpvmcreate", "-P", "u0", "-O", "linux", "-c", "1", "-r", "1G")
    assert provider.execute(Step(host=host, argv=create, description="create u0")).ok
    provider.execute(Step(host=host, argv=("hpvmstart", "-P", "u0"), description="start u0"))


def _unmanaged_guest(session: Session) -> tuple[str, int, int, bool] | None:
    desired, _ = session.load()
    actual = session.provider(desired.provider).refresh(sorted(desired.hosts))
    found = actual.guests.get("u0")
    if found is None:
        return None
    guest = found.guest
    return guest.host, guest.vcpus, guest.memory_mb, found.status.running


def _check(
    world: World,
    first: dict[str, Any],
    second: dict[str, Any],
    meddling: Meddling = Meddling(),
    *,
    parallel: bool = False,
) -> None:
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
            _meddle(session, meddling)
            unmanaged = _unmanaged_guest(session)
        write_config(config_dir, second)
        with Session(workspace, plugin_manager=PM) as session:
            try:
                planned = session.plan()
            except PlanError as exc:
                assert exc.summary.strip(), "a refused plan says why"
                return
            assert all(c.reasons for c in planned.plan.changes)
            assert all(c.address != "guest.u0" for c in planned.plan.actionable)
            _apply_in_order(session, planned, parallel=parallel)
        with Session(workspace, plugin_manager=PM) as session:
            again = session.plan().plan
            left = [(c.key, c.action.value, c.reasons) for c in again.actionable]
            assert left == [], f"the plan after apply is not empty: {left}"
            assert _unmanaged_guest(session) == unmanaged, "an unmanaged guest was touched"
            if unmanaged is not None:
                assert "guest.u0" in again.unmanaged


@st.composite
def meddlings(draw: st.DrawFn, world: World, first: dict[str, Any]) -> Meddling:
    owned = sorted(
        [f"guest.{name}" for name in first["guests"]]
        + [f"vswitch.{h}.{v}" for h, host in first["hosts"].items() for v in host["vswitches"]]
    )
    return Meddling(
        unmanaged_on=draw(st.sampled_from([None, None, *world.hosts])),
        forget=tuple(draw(st.lists(st.sampled_from(owned), max_size=2, unique=True)))
        if owned
        else (),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[World, dict[str, Any], dict[str, Any], Meddling]:
    world = draw(worlds())
    first = draw(configurations(world))
    return world, first, draw(configurations(world)), draw(meddlings(world, first))


@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_a_plan_on_the_emulator_is_refused_with_a_reason_or_applies_in_order_and_converges(
    scenario: tuple[World, dict[str, Any], dict[str, Any], Meddling],
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
    scenario: tuple[World, dict[str, Any], dict[str, Any], Meddling],
) -> None:
    _check(*scenario)


@pytest.mark.soak
@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_soak_a_plan_applied_in_parallel_as_apply_does_converges(
    scenario: tuple[World, dict[str, Any], dict[str, Any], Meddling],
) -> None:
    """The same property through the real walk (10 at once, following depends_on only):
    the graph alone must keep every step admissible. Thread timing varies, so this runs
    in the soak suite, not the default one."""
    _check(*scenario, parallel=True)


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


def test_a_guest_shrunk_to_fit_a_smaller_host_is_shrunk_before_it_moves() -> None:
    _check(
        *_one_guest_move(
            {"host": "h2", "vcpus": 3, "memory": "1G", "power": "off"},
            {"host": "h1", "vcpus": 1, "memory": "1G", "power": "off"},
        )
    )


def test_a_file_backed_disk_added_to_an_existing_guest_is_created_first() -> None:
    disk = {"backing": "file", "path": "/ivm/g0/data.img", "size": "8G"}
    _check(
        *_one_guest_move(
            {"host": "h1", "memory": "1G"},
            {"host": "h1", "memory": "1G", "disks": [disk]},
        )
    )


def test_a_nic_added_where_a_disk_was_removed_keeps_its_declared_position() -> None:
    disk = {"backing": "lv", "path": "/dev/vg01/rlvol_g0"}
    lan = {"vswitch": "localnet", "adapter": "lan"}
    world, first, second = _one_guest_move(
        {"host": "h1", "memory": "1G", "disks": [disk], "nics": [lan]},
        {"host": "h1", "memory": "1G", "disks": [], "nics": [lan, {"vswitch": "vswa"}]},
    )
    for document in (first, second):
        document["hosts"]["h1"]["vswitches"] = {"vswa": {"nic": "lan0"}}
    _check(world, first, second)


def test_meddling_creates_an_unmanaged_guest_and_forgets_ownership() -> None:
    """The property test's meddling really happens: u0 exists and is unmanaged, a forgotten
    guest is adopted again, and the next plan converges without touching u0."""
    world, first, _ = _one_guest_move({"host": "h2", "memory": "1G"}, {})
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        write_config(config_dir, first)
        with Session(Workspace(config_dir=config_dir, environ={}), plugin_manager=PM) as session:
            _apply_in_order(session, session.plan())
            _meddle(session, Meddling(unmanaged_on="h1", forget=("guest.g0",)))
            assert _unmanaged_guest(session) == ("h1", 1, 1024, True)
            plan = session.plan().plan
            assert [(c.address, c.action.value) for c in plan.actionable] == [("guest.g0", "adopt")]
            assert "guest.u0" in plan.unmanaged
    _check(world, first, first, Meddling(unmanaged_on="h2", forget=("guest.g0",)))


def _vlan_move(*, create_beside: bool) -> tuple[World, dict[str, Any], dict[str, Any]]:
    """g0 on h1 and g1 on h2, both on port 0 of vswa with their own VLAN; g1 moves to h1
    (and, with `create_beside`, g2 is created on h1 in the same plan)."""
    world = World(hosts=HOSTS, cores={"h1": 4, "h2": 4}, memory={"h1": "16G", "h2": "16G"},
                  versions={"h1": "6.3", "h2": "6.3"})  # fmt: skip
    hosts = {
        h: {
            "version": "6.3",
            "hardware": {"cores": 4, "memory": "16G", "nics": ["lan0"]},
            "vswitches": {"vswa": {"nic": "lan0"}},
        }
        for h in world.hosts
    }

    def g(host: str, vlan: int) -> dict[str, Any]:
        return {"host": host, "memory": "1G", "nics": [{"vswitch": "vswa", "vlan": vlan}]}

    first = {"apiVersion": "ivmctl/v1", "hosts": hosts,
             "guests": {"g0": g("h1", 100), "g1": g("h2", 200)}}  # fmt: skip
    guests = {"g0": g("h1", 100), "g1": g("h1", 200)}
    if create_beside:
        guests["g2"] = g("h1", 300)
    return world, first, {"apiVersion": "ivmctl/v1", "hosts": hosts, "guests": guests}


@pytest.mark.parametrize("parallel", [False, True], ids=["in_order", "as_apply_walks"])
@pytest.mark.parametrize("create_beside", [False, True], ids=["alone", "beside_a_create"])
def test_a_guest_moving_onto_a_taken_port_keeps_its_vlan_and_leaves_the_others_alone(
    create_beside: bool, parallel: bool
) -> None:
    """Found by the soak run: a NIC whose port is taken on the target lands on another
    port; its VLAN must follow it there, not be set on the port of the guest already there."""
    world, first, second = _vlan_move(create_beside=create_beside)
    _check(world, first, second, parallel=parallel)
    with tempfile.TemporaryDirectory() as tmp:
        config_dir = Path(tmp)
        write_config(config_dir, first)
        with Session(Workspace(config_dir=config_dir, environ={}), plugin_manager=PM) as session:
            _apply_in_order(session, session.plan())
            write_config(config_dir, second)
            planned = session.plan()
            moved = next(c for c in planned.plan.changes if c.address == "guest.g1")
            vlans = [op.params for op in moved.operations if op.kind.value == "vswitch.port_vlan"]
            assert vlans == [{"vswitch": "vswa", "port": 1, "vlan": 200}]
            assert "its NIC on vswa gets port 1 on h1: port 0 is taken there" in moved.reasons
            _apply_in_order(session, planned, parallel=parallel)
            actual = session.provider(planned.desired.provider).refresh(["h1"])
            ports = {n: actual.guests[n].guest.nics[0].port for n in sorted(actual.guests)}
            table = actual.hosts["h1"].vswitches["vswa"].port_vlans
            assert {n: table[p] for n, p in ports.items()} == {
                "g0": 100, "g1": 200, **({"g2": 300} if create_beside else {})
            }  # fmt: skip
