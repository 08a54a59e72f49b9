"""Write the input files of the planner cases (desired, actual, inventory, options).

Run once to (re)create tests/plan/cases/*/ inputs: `python tests/plan/tools/make_cases.py`.
Expectations are produced by `UPDATE_EXPECTED=1 pytest tests/plan` and reviewed by hand.
The inputs are plain JSON afterwards; this script only saves typing.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

CASES = Path(__file__).resolve().parents[1] / "cases"

HW = {"cores": 8, "memory_mb": 65536, "nics": ["lan0", "lan1"]}
SMALL_HW = {"cores": 4, "memory_mb": 8192, "nics": ["lan0"]}


def host(
    version: str = "6.3", hw: dict[str, Any] | None = None, **vswitches: Any
) -> dict[str, Any]:
    vsw = vswitches or {"vswprod": {"nic": "lan0"}}
    return {"version": version, "hardware": copy.deepcopy(hw or HW), "vswitches": vsw}


def guest(host_name: str = "h1", **over: Any) -> dict[str, Any]:
    g: dict[str, Any] = {
        "host": host_name,
        "os": "hpux",
        "vcpus": 2,
        "memory_mb": 4096,
        "entitlement": {"min_pct": 20.0, "max_pct": 100.0},
        "label": "web",
        "disks": [{"backing": "lv", "path": f"/dev/vg01/rlvol_{over.get('_n', 'web01')}"}],
        "nics": [{"vswitch": "vswprod"}],
    }
    over.pop("_n", None)
    g.update(over)
    return g


def running(
    g: dict[str, Any], vm: int = 1, state: str = "On (OS)", port: int = 1
) -> dict[str, Any]:
    """The actual counterpart of a desired guest: runtime-chosen values filled in."""
    a = copy.deepcopy(g)
    a.pop("lifecycle", None)
    power = a.pop("power", "on")
    a["state"] = state if power == "on" else "Off"
    a["vm_number"] = vm
    for i, d in enumerate(a.get("disks", [])):
        d.setdefault("address", f"0,{i + 1},0")
        d.pop("size_mb", None)
    for i, n in enumerate(a.get("nics", [])):
        n.setdefault("mac", f"0x02AA0000{vm:02X}{i:02X}")
        n.setdefault("port", port + i)
        n.setdefault("address", f"0,{5 + i}")
    return a


def off(g: dict[str, Any], vm: int = 1) -> dict[str, Any]:
    a = running(g, vm)
    a["state"] = "Off"
    return a


def write(
    name: str,
    desired: dict[str, Any],
    actual: dict[str, Any],
    inventory: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> None:
    case = CASES / name
    case.mkdir(parents=True, exist_ok=True)
    (case / "desired.json").write_text(json.dumps(desired, indent=2, sort_keys=True) + "\n")
    (case / "actual.json").write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n")
    inv = inventory if inventory is not None else {"owned": _owned(desired, actual)}
    (case / "inventory.json").write_text(json.dumps(inv, indent=2, sort_keys=True) + "\n")
    if options:
        (case / "options.json").write_text(json.dumps(options, indent=2, sort_keys=True) + "\n")


def _owned(desired: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """By default ivmctl owns every declared object the runtime already has."""
    owned = [f"guest.{n}" for n in desired.get("guests", {}) if n in actual.get("guests", {})]
    for h, body in desired.get("hosts", {}).items():
        have = actual.get("hosts", {}).get(h, {}).get("vswitches", {})
        owned += [f"vswitch.{h}.{v}" for v in body.get("vswitches", {}) if v in have]
    return sorted(owned)


def D(hosts: dict[str, Any], guests: dict[str, Any]) -> dict[str, Any]:
    return {"hosts": hosts, "guests": guests, "digest": "sha256:config"}


def A(hosts: dict[str, Any], guests: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"hosts": hosts, "guests": guests, "generation": "42", **extra}


def one_host() -> dict[str, Any]:
    return {"h1": host()}


def two_hosts(v2: str = "6.3", hw: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"h1": host(hw=hw), "h2": host(v2, hw=hw)}


def main() -> None:
    web = guest()
    # --- no-ops ---------------------------------------------------------------------------
    write(
        "noop_when_runtime_matches",
        D(one_host(), {"web01": web}),
        A(one_host(), {"web01": running(web)}),
    )
    d = guest(
        disks=[{"backing": "file", "path": "/ivm/web01.img", "size_mb": 20480}],
        entitlement={"min_pct": 20, "max_pct": 100},
    )
    a = running(guest(disks=[{"backing": "file", "path": "/ivm/web01.img"}]))
    write(
        "noop_runtime_chosen_values_and_number_spellings_never_diff",
        D(one_host(), {"web01": d}),
        A(one_host(), {"web01": a}),
    )
    write(
        "noop_for_an_off_guest_declared_off",
        D(one_host(), {"web01": guest(power="off")}),
        A(one_host(), {"web01": off(web)}),
    )
    # --- create ---------------------------------------------------------------------------
    d = guest(
        disks=[
            {"backing": "file", "path": "/ivm/web02/root.img", "size_mb": 20480},
            {"backing": "lv", "path": "/dev/vg01/rlvol_web02"},
        ],
        dvds=[{"backing": "null", "path": "/iso"}],
        nics=[{"vswitch": "vswprod", "vlan": 100}, {"vswitch": "localnet"}],
        dynamic_memory={"min_mb": 2048, "max_mb": 8192, "target_mb": 4096},
    )
    hosts_with_ports = {"h1": host(vswprod={"nic": "lan0", "port_vlans": {"1": 100, "2": 200}})}
    write(
        "create_guest_with_file_disk_vlan_port_and_start",
        D(one_host(), {"web01": web, "web02": d}),
        A(hosts_with_ports, {"web01": running(web, port=3)}),
    )
    write(
        "create_guest_declared_off_is_not_started",
        D(one_host(), {"web02": guest(power="off", _n="web02")}),
        A(one_host(), {}),
    )
    h = {"h1": host(vswprod={"nic": "lan0"}, vswback={"nic": "lan1"})}
    write(
        "create_vswitch_before_the_guest_that_uses_it",
        D(h, {"db01": guest(_n="db01", nics=[{"vswitch": "vswback", "vlan": 7}])}),
        A(one_host(), {}),
    )
    shared = guest(
        _n="web02",
        disks=[{"backing": "file", "path": "/ivm/shared.img", "size_mb": 1024, "shared": True}],
    )
    web_sh = guest(disks=[{"backing": "file", "path": "/ivm/shared.img", "shared": True}])
    write(
        "create_guest_on_a_shared_file_in_use_shares_it_and_creates_no_file",
        D(one_host(), {"web01": web_sh, "web02": shared}),
        A(one_host(), {"web01": running(web_sh)}),
    )
    write(
        "owned_guest_missing_from_runtime_is_created_again",
        D(one_host(), {"web01": web}),
        A(one_host(), {}),
        inventory={"owned": ["guest.web01", "vswitch.h1.vswprod"]},
    )
    # --- online updates -------------------------------------------------------------------
    write(
        "entitlement_changes_online",
        D(one_host(), {"web01": guest(entitlement={"min_pct": 35.0, "max_pct": 80.0})}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "label_and_start_attribute_change_online",
        D(one_host(), {"web01": guest(label="front end", start="manual")}),
        A(one_host(), {"web01": running(web)}),
    )
    dm = {"min_mb": 2048, "max_mb": 8192, "target_mb": 4096}
    write(
        "dynamic_memory_target_changes_online",
        D(one_host(), {"web01": guest(dynamic_memory={**dm, "target_mb": 6144})}),
        A(one_host(), {"web01": running(guest(dynamic_memory=dm))}),
    )
    write(
        "avio_disk_is_added_online",
        D(
            one_host(),
            {
                "web01": guest(
                    disks=[
                        {"backing": "lv", "path": "/dev/vg01/rlvol_web01"},
                        {"backing": "lv", "path": "/dev/vg01/rlvol_data"},
                    ]
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    two_nics = guest(nics=[{"vswitch": "vswprod"}, {"vswitch": "vswprod"}])
    write(
        "avio_nic_is_removed_online",
        D(one_host(), {"web01": web}),
        A(one_host(), {"web01": running(two_nics)}),
    )
    write(
        "nic_vlan_changes_online_on_its_port",
        D(one_host(), {"web01": guest(nics=[{"vswitch": "vswprod", "vlan": 200}])}),
        A(
            {"h1": host(vswprod={"nic": "lan0", "port_vlans": {"1": 100}})},
            {"web01": running(guest(nics=[{"vswitch": "vswprod", "vlan": 100}]))},
        ),
    )
    write(
        "nic_with_vlan_added_gets_the_lowest_free_port",
        D(
            one_host(),
            {"web01": guest(nics=[{"vswitch": "vswprod"}, {"vswitch": "vswprod", "vlan": 300}])},
        ),
        A(
            {"h1": host(vswprod={"nic": "lan0", "port_vlans": {"0": 5, "2": 100}})},
            {"web01": running(web)},
        ),
    )
    write(
        "online_migration_flag_changes_online",
        D(one_host(), {"web01": guest(online_migration=False)}),
        A(one_host(), {"web01": running(web)}),
    )
    # --- restarts -------------------------------------------------------------------------
    write(
        "vcpu_change_on_running_guest_needs_restart",
        D(one_host(), {"web01": guest(vcpus=4, label="bigger")}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "memory_change_on_running_guest_needs_restart",
        D(one_host(), {"web01": guest(memory_mb=8192)}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "dynamic_memory_range_and_os_need_restart",
        D(one_host(), {"web01": guest(os="linux", dynamic_memory={**dm, "max_mb": 12288})}),
        A(one_host(), {"web01": running(guest(dynamic_memory=dm))}),
    )
    write(
        "vio_disk_add_needs_restart",
        D(
            one_host(),
            {
                "web01": guest(
                    disks=[
                        {"backing": "lv", "path": "/dev/vg01/rlvol_web01"},
                        {"backing": "disk", "path": "/dev/rdisk/disk9", "adapter": "scsi"},
                    ]
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    h = {"h1": host(vswprod={"nic": "lan0"}, vswback={"nic": "lan1"})}
    write(
        "nic_moved_to_another_vswitch_needs_restart",
        D(h, {"web01": guest(nics=[{"vswitch": "vswback", "vlan": 12}])}),
        A(h, {"web01": running(web)}),
    )
    deny = {"restart": "deny"}
    write(
        "restart_denied_by_lifecycle_is_a_plan_error",
        D(one_host(), {"web01": guest(vcpus=4, lifecycle=deny)}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "restart_allowed_by_the_allow_restart_option",
        D(one_host(), {"web01": guest(vcpus=4, lifecycle=deny)}),
        A(one_host(), {"web01": running(web)}),
        options={"allow_restart": ["guest.web01"]},
    )
    write(
        "needs_off_change_on_an_off_guest_is_a_plain_update",
        D(one_host(), {"web01": guest(vcpus=4, power="off", lifecycle=deny)}),
        A(one_host(), {"web01": off(web)}),
    )
    write(
        "needs_off_change_with_power_off_stops_then_modifies",
        D(one_host(), {"web01": guest(vcpus=4, power="off", lifecycle=deny)}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "needs_off_change_and_power_on_for_an_off_guest_modifies_then_starts",
        D(one_host(), {"web01": guest(memory_mb=8192)}),
        A(one_host(), {"web01": off(web)}),
    )
    write(
        "vm_type_change_is_refused",
        D(one_host(), {"web01": guest(vm_type="vpar")}),
        A(one_host(), {"web01": running(web)}),
    )
    # --- power ----------------------------------------------------------------------------
    write(
        "power_on_starts_an_off_guest",
        D(one_host(), {"web01": web}),
        A(one_host(), {"web01": off(web)}),
    )
    write(
        "power_off_stops_a_running_guest_gracefully",
        D(one_host(), {"web01": guest(power="off")}),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "guest_in_efi_counts_as_running",
        D(one_host(), {"web01": guest(power="off")}),
        A(one_host(), {"web01": running(web, state="On (EFI)")}),
    )
    # --- migration ------------------------------------------------------------------------
    write(
        "host_change_of_running_guest_migrates_online",
        D(two_hosts(), {"web01": guest("h2", entitlement={"min_pct": 30.0, "max_pct": 100.0})}),
        A(two_hosts(), {"web01": running(web)}),
    )
    write(
        "host_change_of_off_guest_migrates_offline",
        D(two_hosts(), {"web01": guest("h2", power="off")}),
        A(two_hosts(), {"web01": off(web)}),
    )
    write(
        "host_change_of_off_guest_declared_on_migrates_offline_and_starts",
        D(two_hosts(), {"web01": guest("h2")}),
        A(two_hosts(), {"web01": off(web)}),
    )
    write(
        "unsupported_online_version_path_moves_offline_with_restart",
        D(two_hosts("6.2"), {"web01": guest("h2")}),
        A(two_hosts("6.2"), {"web01": running(web)}),
    )
    write(
        "online_migration_disabled_and_restart_denied_is_a_plan_error",
        D(two_hosts(), {"web01": guest("h2", online_migration=False, lifecycle=deny)}),
        A(two_hosts(), {"web01": running(guest(online_migration=False))}),
    )
    file_backed = {"disks": [{"backing": "file", "path": "/ivm/web01.img"}]}
    write(
        "migration_of_a_guest_on_a_host_local_file_is_a_plan_error",
        D(two_hosts(), {"web01": guest("h2", **file_backed)}),
        A(two_hosts(), {"web01": running(guest(**file_backed))}),
    )
    quorum_disk = {"disks": [{"backing": "disk", "path": "/dev/rdisk/disk30", "shared": True}]}
    write(
        "migration_of_a_guest_with_a_shared_device_is_a_plan_error",
        D(two_hosts(), {"web01": guest("h2", **quorum_disk)}),
        A(two_hosts(), {"web01": running(guest(**quorum_disk))}),
    )
    write(
        "migration_between_version_families_is_a_plan_error",
        D({"h1": host("4.0"), "h2": host("6.3")}, {"web01": guest("h2", power="off")}),
        A({"h1": host("4.0"), "h2": host("6.3")}, {"web01": off(web)}),
    )
    write(
        "running_guest_declared_off_on_another_host_stops_and_moves",
        D(two_hosts(), {"web01": guest("h2", power="off", lifecycle=deny)}),
        A(two_hosts(), {"web01": running(web)}),
    )
    write(
        "migration_with_needs_off_change_restarts_through_an_offline_move",
        D(two_hosts(), {"web01": guest("h2", vcpus=4)}),
        A(two_hosts(), {"web01": running(web)}),
    )
    # --- capacity ---------------------------------------------------------------------------
    big = {"vcpus": 4, "memory_mb": 4096, "entitlement": {"min_pct": 50.0, "max_pct": 100.0}}
    small2 = two_hosts(hw=SMALL_HW)
    ga = guest("h1", _n="a", **big)
    gb = guest("h2", _n="b", **big)
    write(
        "swap_of_two_big_guests_between_full_hosts_with_restart_denied_is_refused",
        D(
            small2,
            {
                "a": {**guest("h2", _n="a", **big), "lifecycle": deny},
                "b": {**guest("h1", _n="b", **big), "lifecycle": deny},
            },
        ),
        A(small2, {"a": running(ga, 1), "b": running(gb, 2)}),
    )
    write(
        "swap_of_two_big_guests_stops_one_first_when_restart_is_allowed",
        D(small2, {"a": guest("h2", _n="a", **big), "b": guest("h1", _n="b", **big)}),
        A(small2, {"a": running(ga, 1), "b": running(gb, 2)}),
    )
    dyn_big = {**big, "dynamic_memory": {"min_mb": 2048, "max_mb": 6144, "target_mb": 4096}}
    gdyn = guest("h1", _n="d", **dyn_big)
    gsmall = guest("h2", _n="s", vcpus=1, memory_mb=2048)
    write(
        "online_move_short_of_the_dynamic_memory_maximum_moves_offline",
        D(small2, {"d": guest("h2", _n="d", **dyn_big), "s": gsmall}),
        A(small2, {"d": running(gdyn, 1), "s": running(gsmall, 2)}),
    )
    write(
        "online_move_short_of_the_dynamic_memory_maximum_with_restart_denied_is_refused",
        D(small2, {"d": {**guest("h2", _n="d", **dyn_big), "lifecycle": deny}, "s": gsmall}),
        A(small2, {"d": running(gdyn, 1), "s": running(gsmall, 2)}),
    )
    small1 = {"h1": host(hw=SMALL_HW)}
    write(
        "a_stop_is_ordered_before_a_start_on_a_full_host",
        D(small1, {"a": guest(_n="a", power="off", **big), "b": guest(_n="b", **big)}),
        A(small1, {"a": running(ga, 1), "b": off(guest(_n="b", **big), 2)}),
    )
    write(
        "a_departure_is_ordered_before_an_arrival",
        D(small2, {"a": guest("h2", _n="a", **big), "c": guest("h1", _n="c", **big)}),
        A(small2, {"a": running(ga, 1)}),
    )
    write(
        "a_deletion_frees_room_before_a_create_starts",
        D(small1, {"c": guest(_n="c", **big)}),
        A(small1, {"a": running(ga, 1)}),
        inventory={"owned": ["guest.a", "vswitch.h1.vswprod"]},
    )
    write(
        "desired_state_that_does_not_fit_is_refused_with_a_capacity_report",
        D(small1, {"a": guest(_n="a", **big), "b": guest(_n="b", **big)}),
        A(small1, {"a": running(ga, 1)}),
    )
    write(
        "more_vcpus_than_cores_is_refused",
        D(small1, {"a": guest(_n="a", vcpus=6, memory_mb=2048)}),
        A(small1, {}),
    )
    e_hi = {"min_pct": 60.0, "max_pct": 100.0}
    e_lo = {"min_pct": 20.0, "max_pct": 100.0}
    one_core = {"h1": host(hw={"cores": 1, "memory_mb": 65536, "nics": ["lan0"]})}
    write(
        "entitlement_decrease_is_ordered_before_an_increase",
        D(
            one_core,
            {
                "a": guest(_n="a", vcpus=1, entitlement=e_lo),
                "b": guest(_n="b", vcpus=1, entitlement=e_hi),
            },
        ),
        A(
            one_core,
            {
                "a": running(guest(_n="a", vcpus=1, entitlement=e_hi), 1),
                "b": running(guest(_n="b", vcpus=1, entitlement=e_lo), 2, port=5),
            },
        ),
    )
    # --- ownership --------------------------------------------------------------------------
    write(
        "owned_guest_no_longer_declared_is_stopped_and_deleted",
        D(one_host(), {}),
        A(one_host(), {"web01": running(web)}),
        inventory={"owned": ["guest.web01", "vswitch.h1.vswprod"]},
    )
    write(
        "prevent_destroy_refuses_deleting_an_undeclared_guest",
        D(one_host(), {}),
        A(one_host(), {"web01": running(web)}),
        inventory={
            "owned": ["guest.web01", "vswitch.h1.vswprod"],
            "prevent_destroy": ["guest.web01"],
        },
    )
    write(
        "unmanaged_guests_and_vswitches_are_listed_and_left_alone",
        D(one_host(), {"web01": web}),
        A(
            {"h1": host(vswprod={"nic": "lan0"}, vswother={"nic": "lan1"})},
            {"web01": running(web), "legacy": running(guest(_n="legacy"), 2, port=7)},
        ),
    )
    write(
        "declared_existing_guest_is_adopted",
        D(one_host(), {"web01": web}),
        A(one_host(), {"web01": running(web)}),
        inventory={"owned": ["vswitch.h1.vswprod"]},
    )
    write(
        "declared_existing_guest_that_differs_is_adopted_and_updated",
        D(one_host(), {"web01": guest(label="adopted")}),
        A(one_host(), {"web01": running(web)}),
        inventory={"owned": []},
    )
    web_h2 = running(guest("h2"), 5)
    write(
        "off_nr_copy_of_a_migrated_guest_is_not_a_second_guest_and_is_removed",
        D(two_hosts(), {"web01": guest("h2")}),
        A(
            two_hosts(),
            {"web01": web_h2},
            not_runnable=[{"name": "web01", **running(web, 1, state="Off (NR)")}],
        ),
    )
    write(
        "off_nr_copy_not_owned_is_left_alone",
        D(two_hosts(), {}),
        A(
            two_hosts(),
            {"web01": web_h2},
            not_runnable=[{"name": "web01", **running(web, 1, state="Off (NR)")}],
        ),
        inventory={"owned": ["vswitch.h1.vswprod", "vswitch.h2.vswprod"]},
    )
    write(
        "moving_back_to_a_host_with_an_off_nr_copy_removes_the_copy_first",
        D(two_hosts(), {"web01": guest("h1")}),
        A(
            two_hosts(),
            {"web01": web_h2},
            not_runnable=[{"name": "web01", **running(web, 1, state="Off (NR)")}],
        ),
    )
    write(
        "ignore_changes_reports_drift_and_changes_nothing",
        D(
            one_host(),
            {
                "web01": guest(
                    label="declared", vcpus=4, lifecycle={"ignore_changes": ["label", "vcpus"]}
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "ignore_changes_keeps_ignored_fields_out_of_an_update",
        D(
            one_host(),
            {
                "web01": guest(
                    label="declared",
                    memory_mb=8192,
                    entitlement={"min_pct": 40.0, "max_pct": 100.0},
                    lifecycle={"ignore_changes": ["memory"]},
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    # --- vswitches --------------------------------------------------------------------------
    h_two = {"h1": host(vswprod={"nic": "lan0"}, vswold={"nic": "lan1"})}
    old_user = guest(_n="old", nics=[{"vswitch": "vswold"}])
    write(
        "vswitch_is_deleted_after_the_guest_that_used_it",
        D(one_host(), {}),
        A(h_two, {"old": running(old_user)}),
        inventory={"owned": ["guest.old", "vswitch.h1.vswold", "vswitch.h1.vswprod"]},
    )
    write(
        "vswitch_still_used_by_an_unmanaged_guest_cannot_be_deleted",
        D(one_host(), {}),
        A(h_two, {"old": running(old_user)}),
        inventory={"owned": ["vswitch.h1.vswold", "vswitch.h1.vswprod"]},
    )
    write(
        "vswitch_uplink_change_replaces_it",
        D({"h1": host(vswprod={"nic": "lan1"})}, {}),
        A(one_host(), {}),
    )
    write(
        "declared_host_missing_from_the_runtime_is_refused", D(two_hosts(), {}), A(one_host(), {})
    )
    # --- targets and refresh-only ---------------------------------------------------------
    write(
        "targets_keep_the_target_and_its_dependencies",
        D(
            {"h1": host(vswprod={"nic": "lan0"}, vswback={"nic": "lan1"})},
            {
                "web01": guest(label="changed"),
                "db01": guest(_n="db01", nics=[{"vswitch": "vswback"}]),
            },
        ),
        A(one_host(), {"web01": running(web)}),
        options={"targets": ["guest.db01"]},
    )
    write(
        "target_that_names_no_object_is_refused",
        D(one_host(), {"web01": web}),
        A(one_host(), {"web01": running(web)}),
        options={"targets": ["guest.nope"]},
    )
    write(
        "refresh_only_reports_every_difference_as_drift",
        D(
            one_host(),
            {"web01": guest(vcpus=4, label="x", lifecycle=deny), "new01": guest(_n="new01")},
        ),
        A(one_host(), {"web01": running(web), "legacy": running(guest(_n="legacy"), 2, port=7)}),
        options={"refresh_only": True, "state_serial": 7, "state_lineage": "lin-1"},
    )

    # --- more -------------------------------------------------------------------------------
    vl = guest(nics=[{"vswitch": "vswprod", "vlan": 100}])
    write(
        "migration_of_a_guest_with_a_vlan_sets_the_vlan_on_the_target",
        D(two_hosts(), {"web01": guest("h2", nics=[{"vswitch": "vswprod", "vlan": 100}])}),
        A(
            {"h1": host(vswprod={"nic": "lan0", "port_vlans": {"1": 100}}), "h2": host()},
            {"web01": running(vl)},
        ),
    )
    write(
        "a_vswitch_that_is_down_is_warned_about",
        D(one_host(), {"web01": web}),
        A({"h1": host(vswprod={"nic": "lan0", "state": "Down"})}, {"web01": running(web)}),
    )
    no_hw = {"h1": {"version": "6.3", "vswitches": {"vswprod": {"nic": "lan0"}}}}
    write(
        "a_host_without_known_hardware_is_planned_without_capacity_checks",
        D(no_hw, {"web01": web, "big": guest(_n="big", vcpus=64)}),
        A(no_hw, {"web01": off(web)}),
    )
    write(
        "adopting_a_guest_on_another_host_migrates_it",
        D(two_hosts(), {"web01": guest("h2")}),
        A(two_hosts(), {"web01": running(web)}),
        inventory={"owned": ["vswitch.h1.vswprod", "vswitch.h2.vswprod"]},
    )
    write(
        "owned_guest_with_only_off_nr_copies_left_has_them_removed",
        D(two_hosts(), {}),
        A(two_hosts(), {}, not_runnable=[{"name": "web01", **running(web, 1, state="Off (NR)")}]),
        inventory={"owned": ["guest.web01", "vswitch.h1.vswprod", "vswitch.h2.vswprod"]},
    )
    write(
        "creating_on_a_host_with_an_owned_off_nr_copy_removes_the_copy_first",
        D(two_hosts(), {"web01": web}),
        A(two_hosts(), {}, not_runnable=[{"name": "web01", **running(web, 1, state="Off (NR)")}]),
        inventory={"owned": ["guest.web01", "vswitch.h1.vswprod", "vswitch.h2.vswprod"]},
    )
    write(
        "nic_vlan_cleared_online",
        D(one_host(), {"web01": web}),
        A({"h1": host(vswprod={"nic": "lan0", "port_vlans": {"1": 100}})}, {"web01": running(vl)}),
    )
    write(
        "avio_disk_removed_online_and_vio_disk_removed_with_restart",
        D(one_host(), {"web01": web}),
        A(
            one_host(),
            {
                "web01": running(
                    guest(
                        disks=[
                            {"backing": "lv", "path": "/dev/vg01/rlvol_web01"},
                            {"backing": "lv", "path": "/dev/vg01/rlvol_old"},
                            {"backing": "disk", "path": "/dev/rdisk/disk3", "adapter": "scsi"},
                        ]
                    )
                )
            },
        ),
    )
    write(
        "nic_adapter_change_needs_restart_and_keeps_the_mac",
        D(one_host(), {"web01": guest(nics=[{"vswitch": "vswprod", "adapter": "avio_lan"}])}),
        A(one_host(), {"web01": running(guest(nics=[{"vswitch": "vswprod", "adapter": "lan"}]))}),
    )
    write(
        "dvd_backing_change_replaces_the_device",
        D(one_host(), {"web01": guest(dvds=[{"backing": "file", "path": "/iso/hpux.iso"}])}),
        A(
            one_host(),
            {"web01": running(guest(dvds=[{"backing": "null", "path": "/iso/hpux.iso"}]))},
        ),
    )
    write(
        "ignore_changes_on_nics_leaves_the_nics_alone",
        D(
            one_host(),
            {
                "web01": guest(
                    nics=[{"vswitch": "vswprod", "vlan": 5}, {"vswitch": "vswprod"}],
                    lifecycle={"ignore_changes": ["nics"]},
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "disk_shared_flag_is_set_online_in_the_device_database",
        D(
            one_host(),
            {
                "web01": guest(
                    disks=[{"backing": "lv", "path": "/dev/vg01/rlvol_web01", "shared": True}]
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )
    write(
        "vpar_never_migrates_online",
        D(two_hosts(), {"web01": guest("h2", vm_type="vpar")}),
        A(two_hosts(), {"web01": running(guest(vm_type="vpar"))}),
    )
    write(
        "two_new_guests_with_vlans_get_distinct_ports",
        D(
            one_host(),
            {
                "a": guest(_n="a", nics=[{"vswitch": "vswprod", "vlan": 10}]),
                "b": guest(
                    _n="b",
                    nics=[{"vswitch": "vswprod", "vlan": 20}, {"vswitch": "vswprod", "port": 0}],
                ),
            },
        ),
        A(one_host(), {}),
    )
    write(
        "refresh_only_reports_guest_and_vswitch_drift",
        D({"h1": host(vswprod={"nic": "lan1"})}, {"web01": guest(power="off")}),
        A(one_host(), {"web01": running(web)}),
        options={"refresh_only": True},
    )
    write(
        "online_migration_between_supported_versions",
        D({"h1": host("4.3"), "h2": host("6.1")}, {"web01": guest("h2")}),
        A({"h1": host("4.3"), "h2": host("6.1")}, {"web01": running(web)}),
    )
    write(
        "mixed_plan_orders_vswitches_stops_moves_updates_and_creates",
        D(
            {
                "h1": host(hw=SMALL_HW),
                "h2": host(hw=SMALL_HW, vswprod={"nic": "lan0"}, vswnew={"nic": "lan0"}),
            },
            {
                "a": guest("h2", _n="a", **big),
                "b": guest("h1", _n="b", power="off", memory_mb=2048),
                "c": guest("h1", _n="c", **big),
                "n": guest(
                    "h2", _n="n", vcpus=1, memory_mb=1024, nics=[{"vswitch": "vswnew", "vlan": 9}]
                ),
            },
        ),
        A(
            small2,
            {"a": running(ga, 1), "b": running(guest("h1", _n="b", memory_mb=2048), 2, port=4)},
        ),
    )

    write(
        "migration_needs_the_guests_vswitches_on_the_target",
        D(
            {"h1": host(), "h2": host(vswother={"nic": "lan0"})},
            {"web01": guest("h2", nics=[{"vswitch": "vswother"}])},
        ),
        A({"h1": host(), "h2": host(vswother={"nic": "lan0"})}, {"web01": running(web)}),
    )
    write(
        "migration_waits_for_the_vswitches_it_needs_on_the_target",
        D(
            {"h1": host(), "h2": host(vswprod={"nic": "lan0"}, vswback={"nic": "lan1"})},
            {"web01": guest("h2", nics=[{"vswitch": "vswback"}])},
        ),
        A({"h1": host(), "h2": host(vswback={"nic": "lan1"})}, {"web01": running(web)}),
    )
    write(
        "vswitch_uplink_change_is_refused_while_a_guest_uses_it",
        D({"h1": host(vswprod={"nic": "lan1"})}, {"web01": guest(power="off")}),
        A(one_host(), {"web01": off(web)}),
    )

    write(
        "noop_adapter_aliases_and_os_case_never_diff",
        D(
            one_host(),
            {
                "web01": guest(
                    os="HPUX",
                    disks=[
                        {"backing": "lv", "path": "/dev/vg01/rlvol_web01", "adapter": "aviostor"}
                    ],
                    nics=[{"vswitch": "vswprod", "adapter": "aviolan"}],
                )
            },
        ),
        A(one_host(), {"web01": running(web)}),
    )

    write(
        "targeting_one_guest_of_a_swap_keeps_the_other_guests_whole_move",
        D(small2, {"a": guest("h2", _n="a", **big), "b": guest("h1", _n="b", **big)}),
        A(small2, {"a": running(ga, 1), "b": running(gb, 2)}),
        options={"targets": ["guest.a"]},
    )

    write(
        "a_host_target_keeps_every_change_on_that_host",
        D(two_hosts(), {"web01": guest(label="changed"), "db01": guest("h2", _n="db01")}),
        A(two_hosts(), {"web01": running(web)}),
        options={"targets": ["host.h2"]},
    )

    quorum = {"backing": "disk", "path": "/dev/rdisk/disk30", "shared": True}
    write(
        "two_new_guests_sharing_a_new_disk_add_it_one_after_the_other",
        D(
            one_host(),
            {"db01": guest(_n="db01", disks=[quorum]), "db02": guest(_n="db02", disks=[quorum])},
        ),
        A(one_host(), {}),
    )

    write(
        "ignore_changes_on_host_keeps_the_guest_where_it_runs",
        D(two_hosts(), {"web01": guest("h2", lifecycle={"ignore_changes": ["host"]})}),
        A(two_hosts(), {"web01": running(web)}),
    )

    one_core2 = {
        "h1": host(hw={"cores": 1, "memory_mb": 65536, "nics": ["lan0"]}),
        "h2": host(hw={"cores": 1, "memory_mb": 65536, "nics": ["lan0"]}),
    }
    hog = guest("h1", _n="hog", vcpus=1, entitlement={"min_pct": 80.0, "max_pct": 100.0})
    other = guest("h2", _n="other", vcpus=1, entitlement={"min_pct": 50.0, "max_pct": 100.0})
    write(
        "online_migration_needs_room_for_the_entitlement_the_guest_has_now",
        D(
            one_core2,
            {
                "hog": guest(
                    "h2", _n="hog", vcpus=1, entitlement={"min_pct": 20.0, "max_pct": 100.0}
                ),
                "other": other,
            },
        ),
        A(one_core2, {"hog": running(hog, 1), "other": running(other, 2, port=5)}),
    )

    # --- where migrating NICs land ------------------------------------------------------------
    vlan_hosts = {
        "h1": host(vswprod={"nic": "lan0", "port_vlans": {"1": 100, "2": 100}}),
        "h2": host(vswprod={"nic": "lan0", "port_vlans": {"1": 200}}),
    }
    stay = guest("h1", _n="stay", nics=[{"vswitch": "vswprod", "vlan": 100}])
    mover = guest("h2", _n="mover", nics=[{"vswitch": "vswprod", "vlan": 200}])
    write(
        "a_guest_moving_onto_a_taken_port_lands_on_the_lowest_free_one_with_its_vlan",
        D(two_hosts(), {"stay": stay, "mover": {**mover, "host": "h1"}}),
        A(vlan_hosts, {"stay": running(stay, 1), "mover": running(mover, 2)}),
    )
    gone = guest("h1", _n="gone", nics=[{"vswitch": "vswprod", "vlan": 100}])
    fresh = guest("h1", _n="fresh", nics=[{"vswitch": "vswprod"}, {"vswitch": "vswprod"}])
    write(
        "creates_and_deletes_beside_a_guest_moving_in_never_take_its_landing_port",
        D(two_hosts(), {"stay": stay, "mover": {**mover, "host": "h1"}, "fresh": fresh}),
        A(
            vlan_hosts,
            {
                "stay": running(stay, 1),
                "gone": running(gone, 3, port=2),
                "mover": running(mover, 2),
            },
        ),
        {"owned": ["guest.gone", "guest.mover", "guest.stay"]},
    )
    pinned = {**mover, "host": "h1", "nics": [{"vswitch": "vswprod", "vlan": 200, "port": 1}]}
    write(
        "a_moving_nic_pinned_to_a_port_taken_on_the_target_is_refused",
        D(two_hosts(), {"stay": stay, "mover": pinned}),
        A(vlan_hosts, {"stay": running(stay, 1), "mover": running(mover, 2)}),
    )


if __name__ == "__main__":
    main()
