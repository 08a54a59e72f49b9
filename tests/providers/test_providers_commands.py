"""Operations to hpvm* command lines, as a table: operation in, exact argument lists out."""

from __future__ import annotations

from typing import Any

import pytest

from ivmctl.errors import ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.base import Step
from ivmctl.providers.commands import STEP_BUILDERS, steps_for


def op(kind: OpKind, host: str = "vmhost01", **params: Any) -> Operation:
    return Operation(kind=kind, host=host, params=params)


WEB01 = {
    "name": "web01",
    "os": "hpux",
    "vcpus": 2,
    "entitlement": {"min": 20.0, "max": 100.0},
    "memory_mb": 4096,
    "start": "auto",
    "label": "web front end",
    "dynamic_memory": None,
    "online_migration": True,
    "devices": [
        "disk:avio_stor::file:/ivm/web01/root.img",
        "network:avio_lan::vswitch:vswprod",
    ],
}

# (case id, operation, expected argv of each step)
CASES: list[tuple[str, Operation, list[list[str]]]] = [
    (
        "guest create with devices",
        op(OpKind.GUEST_CREATE, **WEB01),
        [["hpvmcreate", "-P", "web01", "-O", "hpux", "-c", "2", "-e", "20:100", "-r", "4G",
          "-B", "auto", "-l", "web front end",
          "-a", "disk:avio_stor::file:/ivm/web01/root.img",
          "-a", "network:avio_lan::vswitch:vswprod",
          "-x", "online_migration=enabled"]],
    ),
    (
        "guest create with dynamic memory",
        op(OpKind.GUEST_CREATE, **{**WEB01, "devices": [], "label": "",
                                   "dynamic_memory": {"min_mb": 2048, "max_mb": 8192,
                                                      "target_mb": 4096}}),
        [["hpvmcreate", "-P", "web01", "-O", "hpux", "-c", "2", "-e", "20:100", "-r", "4G",
          "-B", "auto", "-x", "online_migration=enabled",
          "-x", "ram_dyn_type=driver", "-x", "ram_dyn_min=2048", "-x", "ram_dyn_max=8192",
          "-x", "ram_dyn_target_start=4096"]],
    ),
    (
        "guest create of unknown os, odd memory, fractional entitlement",
        op(OpKind.GUEST_CREATE, name="lab1", os="unknown", vcpus=1,
           entitlement={"min": 12.5, "max": 50.0}, memory_mb=4160, start="manual", label="",
           dynamic_memory=None, online_migration=False, devices=[]),
        [["hpvmcreate", "-P", "lab1", "-c", "1", "-e", "12.5:50", "-r", "4160M",
          "-B", "manual", "-x", "online_migration=disabled"]],
    ),
    (
        "online modify of entitlement, label and dynamic memory target",
        op(OpKind.GUEST_MODIFY, name="web01", online=True,
           set={"entitlement": {"min": 30.0, "max": 80.0}, "label": "web tier",
                "dynamic_memory.target": 3136}),
        [["hpvmmodify", "-P", "web01", "-e", "30:80", "-l", "web tier",
          "-x", "ram_target=3136"]],
    ),
    (
        "offline modify of vcpus and memory",
        op(OpKind.GUEST_MODIFY, name="db01", online=False, set={"vcpus": 4, "memory_mb": 16384}),
        [["hpvmmodify", "-P", "db01", "-c", "4", "-r", "16G"]],
    ),
    (
        "modify start attribute, os, online migration and dynamic memory",
        op(OpKind.GUEST_MODIFY, name="db01", online=False,
           set={"start": "manual", "os": "linux", "online_migration": False,
                "dynamic_memory": {"min_mb": 1024, "max_mb": 4096, "target_mb": 2048}}),
        [["hpvmmodify", "-P", "db01", "-O", "linux", "-B", "manual",
          "-x", "online_migration=disabled",
          "-x", "ram_dyn_type=driver", "-x", "ram_dyn_min=1024", "-x", "ram_dyn_max=4096",
          "-x", "ram_dyn_target_start=2048"]],
    ),
    (
        "modify that turns dynamic memory off",
        op(OpKind.GUEST_MODIFY, name="db01", online=False, set={"dynamic_memory": None}),
        [["hpvmmodify", "-P", "db01", "-x", "ram_dyn_type=none"]],
    ),
    (
        "device changes remove before add, then modify",
        op(OpKind.GUEST_MODIFY, name="web01", online=True, set={},
           add=["disk:avio_stor::file:/ivm/web01/data.img"],
           remove=["disk:avio_stor:0,1,1:file:/ivm/web01/old.img"],
           modify=["network:avio_lan:0,2:vswitch:vswtest"]),
        [["hpvmmodify", "-P", "web01",
          "-d", "disk:avio_stor:0,1,1:file:/ivm/web01/old.img",
          "-a", "disk:avio_stor::file:/ivm/web01/data.img",
          "-m", "network:avio_lan:0,2:vswitch:vswtest"]],
    ),
    (
        "modify with nothing to change has no step",
        op(OpKind.GUEST_MODIFY, name="web01", online=True, set={}, add=[], remove=[], modify=[]),
        [],
    ),
    ("start", op(OpKind.GUEST_START, name="web01"), [["hpvmstart", "-P", "web01"]]),
    (
        "graceful stop",
        op(OpKind.GUEST_STOP, name="web01", graceful=True),
        [["hpvmstop", "-P", "web01", "-g", "-F"]],
    ),
    (
        "hard stop",
        op(OpKind.GUEST_STOP, name="web01", graceful=False),
        [["hpvmstop", "-P", "web01", "-F"]],
    ),
    (
        "online migration runs on the source host",
        op(OpKind.GUEST_MIGRATE, host="vmhost01", name="web01", target="vmhost02", online=True),
        [["hpvmmigrate", "-P", "web01", "-h", "vmhost02", "-o"]],
    ),
    (
        "offline migration; the planner's remove_stale step drops the source copy",
        op(OpKind.GUEST_MIGRATE, name="web01", target="vmhost02", online=False),
        [["hpvmmigrate", "-P", "web01", "-h", "vmhost02"]],
    ),
    ("delete", op(OpKind.GUEST_DELETE, name="web01"), [["hpvmremove", "-P", "web01", "-F"]]),
    (
        "remove a stale not-runnable copy",
        op(OpKind.GUEST_REMOVE_STALE, name="web01"),
        [["hpvmremove", "-P", "web01", "-F"]],
    ),
    (
        "vswitch on a NIC is created and booted",
        op(OpKind.VSWITCH_CREATE, name="vswprod", nic="lan0"),
        [["hpvmnet", "-c", "-S", "vswprod", "-n", "0"], ["hpvmnet", "-b", "-S", "vswprod"]],
    ),
    (
        "host-local vswitch",
        op(OpKind.VSWITCH_CREATE, name="vswlocal", nic=None),
        [["hpvmnet", "-c", "-S", "vswlocal"], ["hpvmnet", "-b", "-S", "vswlocal"]],
    ),
    (
        "vswitch delete halts first",
        op(OpKind.VSWITCH_DELETE, name="vswprod"),
        [["hpvmnet", "-h", "-S", "vswprod", "-F"], ["hpvmnet", "-d", "-S", "vswprod", "-F"]],
    ),
    (
        "port VLAN",
        op(OpKind.PORT_VLAN, vswitch="vswprod", port=4, vlan=20),
        [["hpvmnet", "-S", "vswprod", "-u", "portid:4:vlanid:20"]],
    ),
    (
        "port VLAN cleared",
        op(OpKind.PORT_VLAN, vswitch="vswprod", port=4, vlan=None),
        [["hpvmnet", "-S", "vswprod", "-u", "portid:4:vlanid:none"]],
    ),
    (
        "backing file",
        op(OpKind.FILE_CREATE, path="/ivm/web01/root.img", size_mb=20480),
        [["hpvmdevmgmt", "-S", "20G", "/ivm/web01/root.img"]],
    ),
    (
        "shared device",
        op(OpKind.DEVICE_SHARE, path="/dev/rdisk/disk5"),
        [["hpvmdevmgmt", "-m", "gdev:/dev/rdisk/disk5:attr:SHARE=YES"]],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "expected"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_operation_becomes_exact_hpvm_command_lines(
    operation: Operation, expected: list[list[str]]
) -> None:
    steps = steps_for(operation)
    assert [list(s.argv) for s in steps] == expected
    assert all(s.host == operation.host for s in steps)
    assert all(s.description for s in steps)


def test_every_hpvm_operation_kind_has_a_step_builder_and_a_case() -> None:
    # host.provision is no hpvm* command: only providers that provision hosts expand it.
    hpvm_kinds = set(OpKind) - {OpKind.HOST_PROVISION}
    assert set(STEP_BUILDERS) == hpvm_kinds
    assert {c[1].kind for c in CASES} == hpvm_kinds


def test_command_line_quotes_for_display_only() -> None:
    (step,) = steps_for(op(OpKind.GUEST_CREATE, **{**WEB01, "devices": []}))
    assert "-l 'web front end'" in step.command_line
    assert step.argv[step.argv.index("-l") + 1] == "web front end"


def test_a_label_with_shell_characters_stays_one_argument() -> None:
    step = Step(host="h", argv=("hpvmmodify", "-P", "x", "-l", "a; rm -rf /"), description="d")
    assert step.command_line == "hpvmmodify -P x -l 'a; rm -rf /'"


@pytest.mark.parametrize(
    ("operation", "message"),
    [
        (op(OpKind.GUEST_START), "lacks the parameter 'name'"),
        (op(OpKind.GUEST_CREATE, name="x", vcpus="two"), "parameter 'vcpus' is 'two'"),
        (op(OpKind.GUEST_MODIFY, name="x", set={"colour": "red"}), "cannot change colour"),
        (op(OpKind.VSWITCH_CREATE, name="v", nic="eth0"), "NIC 'eth0' is not lanN"),
        (op(OpKind.PORT_VLAN, vswitch="v", port=True, vlan=1), "parameter 'port' is True"),
        (op(OpKind.GUEST_MODIFY, name="x", set={"entitlement": 20}), "needs min and max"),
    ],
    ids=["missing name", "ill-typed vcpus", "unknown field", "bad nic", "bool port", "bad ent"],
)
def test_a_malformed_operation_is_a_provider_error_naming_it(
    operation: Operation, message: str
) -> None:
    with pytest.raises(ProviderError, match=message):
        steps_for(operation)


def test_step_generation_is_pure_and_repeatable() -> None:
    operation = op(OpKind.GUEST_CREATE, **WEB01)
    assert steps_for(operation) == steps_for(operation)
