"""Unit tests of the planner's parts: diff, classification helpers, capacity replay."""

from __future__ import annotations

import dataclasses

import pytest

from ivmctl.errors import PlanError
from ivmctl.model import (
    ActualGuest,
    ActualState,
    DesiredState,
    Disk,
    DynamicMemory,
    Entitlement,
    Guest,
    GuestStatus,
    Hardware,
    Host,
    Lifecycle,
    Nic,
    VSwitch,
)
from ivmctl.plan import capacity
from ivmctl.plan.capacity import (
    CapacityModel,
    capacity_report,
    check_final_fit,
    order_changes,
    replay,
)
from ivmctl.plan.classify import (
    PortAllocator,
    disk_statement,
    is_ignored,
    nic_statement,
    rule_name,
)
from ivmctl.plan.diff import diff_guest, dotted
from ivmctl.plan.model import Action, Change, ChangeHow, Inventory, Operation, OpKind
from ivmctl.plan.planner import make_plan
from ivmctl.rules import Demand, HostCapacity

# --------------------------------------------------------------------------------------------
# diff
# --------------------------------------------------------------------------------------------


def g(**over: object) -> Guest:
    base: dict[str, object] = {
        "name": "web01",
        "host": "h1",
        "vcpus": 2,
        "memory_mb": 4096,
        "disks": (Disk(backing="lv", path="/dev/vg/a"), Disk(backing="file", path="/f.img")),
        "nics": (Nic(vswitch="vsw"),),
    }
    base.update(over)
    return Guest(**base)  # type: ignore[arg-type]


def test_identical_guests_have_no_differences() -> None:
    assert diff_guest(g(), g(), "on") == []


def test_runtime_chosen_values_never_diff_when_the_desired_side_leaves_them_open() -> None:
    actual = g(
        disks=(
            Disk(backing="lv", path="/dev/vg/a", address="0,1,0"),
            Disk(backing="file", path="/f.img", address="0,1,1"),
        ),
        nics=(Nic(vswitch="vsw", mac=0x02AABBCCDDEE, port=4, address="0,5"),),
    )
    desired = g(
        disks=(
            Disk(backing="lv", path="/dev/vg/a"),
            Disk(backing="file", path="/f.img", size_mb=1024),
        )
    )
    assert diff_guest(desired, actual, "on") == []


def test_integer_and_float_entitlements_of_the_same_value_do_not_diff() -> None:
    assert (
        diff_guest(
            g(entitlement=Entitlement(min_pct=20)), g(entitlement=Entitlement(min_pct=20.0)), "on"
        )
        == []
    )


def test_disks_match_by_devtype_and_path_whatever_their_order() -> None:
    desired = g(disks=tuple(reversed(g().disks)))
    assert diff_guest(desired, g(), "on") == []


def test_a_pinned_mac_that_differs_is_a_difference_with_a_readable_path() -> None:
    desired = g(nics=(Nic(vswitch="vsw", mac=0x02AABBCCDDEE),))
    actual = g(nics=(Nic(vswitch="vsw", mac=0x02AABBCCDD00),))
    [diff] = diff_guest(desired, actual, "on")
    assert diff.path == "nics[0].mac"
    assert (diff.before, diff.after) == ("0x02AABBCCDD00", "0x02AABBCCDDEE")


def test_nics_match_by_position() -> None:
    desired = g(nics=(Nic(vswitch="other"), Nic(vswitch="vsw")))
    paths = [d.path for d in diff_guest(desired, g(), "on")]
    assert paths == ["nics[0].vswitch", "nics[1]"]


def test_field_paths_are_dotted_and_devices_bracketed() -> None:
    assert dotted(["entitlement", "min_pct"]) == "entitlement.min_pct"
    assert dotted(["disks", "/dev/vg/a", "adapter"]) == "disks[/dev/vg/a].adapter"
    assert dotted(["nics", 0, "vswitch"]) == "nics[0].vswitch"


def test_dynamic_memory_appearing_is_one_difference_of_the_whole_block() -> None:
    desired = g(dynamic_memory=DynamicMemory(min_mb=1024, max_mb=8192, target_mb=4096))
    [diff] = diff_guest(desired, g(), "on")
    assert diff.path == "dynamic_memory"
    assert diff.before is None


def test_power_compares_desired_power_with_the_run_state() -> None:
    [diff] = diff_guest(g(power="on"), g(), "off")
    assert (diff.path, diff.before, diff.after) == ("power", "off", "on")


# --------------------------------------------------------------------------------------------
# classification helpers
# --------------------------------------------------------------------------------------------


def test_model_paths_map_to_the_rule_table_names() -> None:
    assert rule_name("memory_mb") == "memory"
    assert rule_name("entitlement.min_pct") == "entitlement"
    assert rule_name("dynamic_memory.target_mb") == "dynamic_memory.target"
    assert rule_name("label") == "label"


@pytest.mark.parametrize(
    ("path", "ignore", "expected"),
    [
        ("label", ["label"], True),
        ("memory_mb", ["memory"], True),
        ("entitlement.min_pct", ["entitlement"], True),
        ("nics[0].vswitch", ["nics"], True),
        ("dynamic_memory.target_mb", ["dynamic_memory.target"], True),
        ("labelled", ["label"], False),
        ("vcpus", ["label"], False),
    ],
)
def test_ignore_changes_entries_cover_their_sub_paths_only(
    path: str, ignore: list[str], expected: bool
) -> None:
    assert is_ignored(path, ignore) is expected


def test_device_statements_follow_the_resource_grammar() -> None:
    assert disk_statement(Disk(backing="lv", path="/dev/vg/a", address="0,1,2")) == (
        "disk:avio_stor:0,1,2:lv:/dev/vg/a"
    )
    nic = Nic(vswitch="vsw", mac=0x02AABBCCDDEE, address="0,5")
    assert nic_statement(nic, port=3) == "network:avio_lan:0,5,0x02AABBCCDDEE:vswitch:vsw:portid:3"
    assert nic_statement(Nic(vswitch="vsw")) == "network:avio_lan::vswitch:vsw"


def test_the_port_allocator_hands_out_the_lowest_free_port_per_vswitch() -> None:
    ports = PortAllocator()
    for port in (0, 1, 3):
        ports.reserve("h1", "vsw", port)
    assert ports.allocate("h1", "vsw") == 2
    assert ports.allocate("h1", "vsw") == 4
    assert ports.allocate("h1", "other") == 0
    assert ports.allocate("h2", "vsw") == 0


def test_a_full_vswitch_is_a_plan_error() -> None:
    ports = PortAllocator()
    for port in range(512):
        ports.reserve("h1", "vsw", port)
    with pytest.raises(PlanError, match="no free port"):
        ports.allocate("h1", "vsw")


# --------------------------------------------------------------------------------------------
# capacity
# --------------------------------------------------------------------------------------------


def _model(**hosts: HostCapacity) -> CapacityModel:
    demands = {
        "a": Demand(name="a", vcpus=4, entitlement_pct=50, memory_mb=4096),
        "b": Demand(name="b", vcpus=4, entitlement_pct=50, memory_mb=4096),
    }
    return CapacityModel(
        hosts=hosts,
        demands=demands,
        migration_demands=demands,
        final_running={"h1": (demands["b"],), "h2": ()},
    )


def _host(name: str, *running: str) -> HostCapacity:
    cap = HostCapacity.empty(name=name, cores=4, physical_memory_mb=8192)
    for guest in running:
        cap = cap.admit(Demand(name=guest, vcpus=4, entitlement_pct=50, memory_mb=4096))
    return cap


def _change(address: str, action: Action, *ops: Operation) -> Change:
    return Change(address=address, action=action, host=ops[0].host, before={}, operations=ops)


def test_replaying_a_start_on_a_full_host_is_refused_and_leaves_capacity_unchanged() -> None:
    caps = {"h1": _host("h1", "a")}
    start = _change(
        "guest.b", Action.START, Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "b"})
    )
    altered, refusal = replay(start, caps, _model(**caps))
    assert refusal is not None and refusal.host == "h1"
    assert "4288 MB" in refusal.problem
    assert altered == {}


def test_ordering_puts_the_stop_before_the_start_and_links_them() -> None:
    caps = {"h1": _host("h1", "a")}
    start = _change(
        "guest.b", Action.START, Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "b"})
    )
    stop = _change(
        "guest.a",
        Action.STOP,
        Operation(kind=OpKind.GUEST_STOP, host="h1", params={"name": "a", "graceful": True}),
    )
    ordered = order_changes([start, stop], _model(**caps), alternatives={}, restart_hints={})
    assert [c.address for c in ordered.changes] == ["guest.a", "guest.b"]
    assert ordered.changes[1].depends_on == ("guest.a",)


def test_ordering_without_a_feasible_order_is_a_plan_error_with_a_report() -> None:
    caps = {"h1": _host("h1", "a")}
    start = _change(
        "guest.b", Action.START, Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "b"})
    )
    with pytest.raises(PlanError) as caught:
        order_changes([start], _model(**caps), alternatives={}, restart_hints={})
    assert "no order of the planned changes fits the capacity of h1" in caught.value.summary
    assert "h1: cores 4" in (caught.value.detail or "")


def test_the_capacity_report_shows_before_and_after_per_host() -> None:
    report = capacity_report(["h1"], _model(h1=_host("h1", "a")))
    assert "h1: cores 4 (widest guest 4 vCPUs); entitlement 200% -> 200% of 400%" in report
    assert "memory 4288 MB -> 4288 MB of 7488 MB" in report


def test_the_final_fit_check_passes_when_the_desired_guests_fit() -> None:
    check_final_fit(["h1"], _model(h1=_host("h1")))


# --------------------------------------------------------------------------------------------
# planner entry points
# --------------------------------------------------------------------------------------------


def _world() -> tuple[DesiredState, ActualState]:
    host = Host(
        name="h1",
        version="6.3",
        hardware=Hardware(cores=4, memory_mb=16384),
        vswitches={"vsw": VSwitch(host="h1", name="vsw", nic="lan0")},
    )
    guest = g(disks=(), nics=(Nic(vswitch="vsw"),))
    actual = ActualGuest(
        guest=dataclasses.replace(guest, nics=(Nic(vswitch="vsw", port=1, mac=0x020000000001),)),
        status=GuestStatus(state="On (OS)", vm_number=1),
    )
    return (
        DesiredState(hosts={"h1": host}, guests={"web01": guest}, digest="d"),
        ActualState(hosts={"h1": host}, guests={"web01": actual}, generation="9"),
    )


def test_make_plan_carries_the_digest_generation_serial_and_lineage() -> None:
    desired, actual = _world()
    plan = make_plan(
        desired,
        actual,
        Inventory(owned=frozenset({"guest.web01", "vswitch.h1.vsw"})),
        state_serial=3,
        state_lineage="L",
    )
    assert (plan.config_digest, plan.runtime_generation) == ("d", "9")
    assert (plan.state_serial, plan.state_lineage) == (3, "L")
    assert plan.actionable == ()
    assert plan.summary().line() == "No changes. The runtime matches the configuration."


def test_a_restart_denied_guest_error_names_the_address_and_how_to_allow_it() -> None:
    desired, actual = _world()
    guest = dataclasses.replace(
        desired.guests["web01"], vcpus=4, lifecycle=Lifecycle(restart="deny")
    )
    desired = dataclasses.replace(desired, guests={"web01": guest})
    with pytest.raises(PlanError) as caught:
        make_plan(desired, actual, Inventory(owned=frozenset({"guest.web01"})))
    assert caught.value.location is not None and caught.value.location.address == "guest.web01"
    assert "set lifecycle.restart: allow on guest.web01" in (caught.value.detail or "").lower()
    assert "--allow-restart guest.web01" in (caught.value.detail or "")


def test_several_problems_are_reported_together() -> None:
    desired, actual = _world()
    deny = Lifecycle(restart="deny")
    guests = {
        "web01": dataclasses.replace(desired.guests["web01"], vcpus=4, lifecycle=deny),
        "web02": dataclasses.replace(desired.guests["web01"], name="web02", host="nowhere"),
    }
    with pytest.raises(PlanError) as caught:
        make_plan(dataclasses.replace(desired, guests=guests), actual, Inventory())
    assert caught.value.summary == "2 problems prevent a plan"
    assert "guest.web02 is placed on host nowhere" in (caught.value.detail or "")


def test_changes_never_diff_in_how_for_ignored_fields() -> None:
    desired, actual = _world()
    life = Lifecycle(ignore_changes=("label",))
    guest = dataclasses.replace(desired.guests["web01"], label="new", lifecycle=life)
    plan = make_plan(dataclasses.replace(desired, guests={"web01": guest}), actual, Inventory())
    assert [f.how for f in plan.drift] == [ChangeHow.IGNORED]
    assert plan.actionable[0].action is Action.ADOPT
    assert plan.actionable[0].operations == ()


def test_a_chain_of_moves_is_ordered_with_a_replay_per_change_and_per_freed_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Host i holds guest i, which moves to host i-1; only host 0 has room at first, and the
    # keys sort the moves last-feasible first: each move waits for the one before it.
    count = 150
    demands = {
        f"g{i}": Demand(name=f"g{i}", vcpus=4, entitlement_pct=50, memory_mb=4096)
        for i in range(1, count + 1)
    }
    caps = {"h0": _host("h0")} | {f"h{i}": _host(f"h{i}", f"g{i}") for i in range(1, count + 1)}
    moves = [
        _change(
            f"guest.m{count - i:04d}",
            Action.MIGRATE,
            Operation(kind=OpKind.GUEST_MIGRATE, host=f"h{i}",
                      params={"name": f"g{i}", "target": f"h{i - 1}", "online": True}),
        )
        for i in range(1, count + 1)
    ]  # fmt: skip
    model = CapacityModel(hosts=caps, demands=demands, migration_demands=demands, final_running={})
    replays = 0
    original = capacity.replay

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal replays
        replays += 1
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(capacity, "replay", counting)
    ordered = order_changes(moves, model, alternatives={}, restart_hints={})
    assert [c.address for c in ordered.changes] == [
        f"guest.m{count - i:04d}" for i in range(1, count + 1)
    ]
    # Looking at every waiting move in every pass would replay about count**2 / 2 times.
    assert replays <= 3 * count


def test_no_op_changes_keep_their_place_in_the_first_pass() -> None:
    caps = {"h1": _host("h1", "a"), "h2": _host("h2", "b")}
    move = _change(
        "guest.b", Action.MIGRATE,
        Operation(kind=OpKind.GUEST_MIGRATE, host="h2",
                  params={"name": "b", "target": "h1", "online": True}),
    )  # fmt: skip
    noops = [Change(address=a, action=Action.NOOP, host="h1") for a in ("guest.c", "guest.0")]
    # The online move does not fit on the full h1: nothing goes in the first pass but the
    # no-ops; the move goes offline (here: a stop) in the second.
    offline = (Operation(kind=OpKind.GUEST_STOP, host="h2", params={"name": "b"}),)
    ordered = order_changes(
        [move, *noops], _model(**caps), alternatives={"guest.b": offline}, restart_hints={}
    )
    assert [c.address for c in ordered.changes] == ["guest.0", "guest.c", "guest.b"]
    assert ordered.changes[2].operations == offline

    start = _change(
        "guest.b", Action.START, Operation(kind=OpKind.GUEST_START, host="h1", params={"name": "b"})
    )
    stop = _change(
        "guest.a", Action.STOP, Operation(kind=OpKind.GUEST_STOP, host="h1", params={"name": "a"})
    )
    ordered = order_changes(
        [start, *noops, stop], _model(h1=_host("h1", "a")), alternatives={}, restart_hints={}
    )
    # stop (rank 1), the no-ops (rank 3, by key), then the start (rank 4)
    assert [c.address for c in ordered.changes] == ["guest.a", "guest.0", "guest.c", "guest.b"]
