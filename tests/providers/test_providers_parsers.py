"""Recorded hpvm* outputs to parsed values, as tables; malformed output is a clear error."""

from __future__ import annotations

import re

import pytest

from ivmctl import model
from ivmctl.errors import ProviderError
from ivmctl.providers import parsers
from ivmctl.resources import NetworkResource, StorageResource

ON = (
    "web01:1::Integrity VM:6f1c-1:HPUX:SH:web front end:enabled:enabled:On:Auto:OS:enabled:"
    "enabled:enabled:2:1:vmhost01:2;20.0;100.0:4GB;driver;2048;8192;4096"
)
OFF = (
    "db01:12::Integrity VM:6f1c-2:LINUX:SH::enabled:enabled:Off:Manual::disabled:enabled:"
    "enabled:1:1:vmhost01:4;50.0;80.0:4160MB;none;;;"
)
NR = (
    "app01:3::Integrity VM:6f1c-3:HPUX:SH:x:disabled:enabled:Off:Auto:NR:enabled:enabled:"
    "enabled:1:0:vmhost02:1;10.0;100.0:2GB;none;;;"
)
EFI = (
    "vp1:4::Integrity vPar:6f1c-4:UNKNOWN:VP::enabled:enabled:On:Auto:EFI:disabled:enabled:"
    "enabled:0:0:vmhost01:1;100.0;100.0:2GB;none;;;"
)
INVALID = (
    "bad1:5::Integrity VM:6f1c-5:WINDOWS:SH::enabled:enabled:Invalid:Manual::disabled:"
    "enabled:enabled:0:0:vmhost01:1;10.0;100.0:2GB;none;;;"
)

MACHINE_CASES = [
    (ON, {"name": "web01", "vm_number": 1, "vm_type": "shared", "os": "hpux",
          "label": "web front end", "runnable": True, "state": "On (OS)", "start": "auto",
          "online_migration": True, "host": "vmhost01", "vcpus": 2,
          "entitlement": model.Entitlement(min_pct=20.0, max_pct=100.0), "memory_mb": 4096,
          "dynamic_memory": model.DynamicMemory(min_mb=2048, max_mb=8192, target_mb=4096)}),
    (OFF, {"name": "db01", "vm_number": 12, "os": "linux", "label": "", "state": "Off",
           "start": "manual", "online_migration": False, "vcpus": 4,
           "entitlement": model.Entitlement(min_pct=50.0, max_pct=80.0), "memory_mb": 4160,
           "dynamic_memory": None}),
    (NR, {"name": "app01", "runnable": False, "state": "Off (NR)", "host": "vmhost02"}),
    (EFI, {"name": "vp1", "vm_type": "vpar", "os": "unknown", "state": "On (EFI)",
           "storage_count": 0}),
    (INVALID, {"name": "bad1", "os": "windows", "state": "Invalid", "run_state": "Invalid"}),
]  # fmt: skip


@pytest.mark.parametrize(("line", "expected"), MACHINE_CASES,
                         ids=["on", "off", "not runnable", "vpar in efi", "invalid"])  # fmt: skip
def test_machine_readable_status_line_parses_to_its_fields(
    line: str, expected: dict[str, object]
) -> None:
    status = parsers.parse_machine_line(line)
    got = {key: getattr(status, key) for key in expected}
    assert got == expected


def test_machine_readable_status_keeps_output_order_and_skips_blank_lines() -> None:
    statuses = parsers.parse_machine_status(f"{ON}\n\n{OFF}\n")
    assert [s.name for s in statuses] == ["web01", "db01"]
    assert parsers.parse_machine_status("") == ()


def test_one_guests_status_is_its_own_line_and_the_others_are_left_unparsed() -> None:
    text = f"{ON}\n{OFF}\nweb:1::not a line\n"
    assert parsers.machine_status_of(text, "db01") == parsers.parse_machine_line(OFF)
    assert parsers.machine_status_of(text, "web01") == parsers.parse_machine_line(ON)
    assert parsers.machine_status_of(text, "nosuch") is None
    assert parsers.machine_status_of(f"{ON}\n", "web0") is None  # a name, not a prefix of one
    with pytest.raises(ProviderError, match="4 fields"):
        parsers.machine_status_of(text, "web")  # its own line does not parse


BAD_MACHINE = [
    ("web01:1::Integrity VM", "4 fields, expected 21"),
    (ON.replace(":On:", ":Running:"), "run state 'Running'"),
    (ON.replace(":Auto:", ":Sometimes:"), "start attribute 'Sometimes'"),
    (ON.replace("2;20.0;100.0", "2;20.0"), "vCPU field"),
    (ON.replace("4GB;driver", "lots;driver"), "invalid memory amount"),
    (ON.replace("2;20.0;100.0", "two;20.0;100.0"), "vCPU count 'two'"),
    (ON.replace("2;20.0;100.0", "2;90.0;10.0"), "entitlement needs"),
    (ON.replace(":SH:", ":XX:"), "vm type 'XX'"),
    (ON.replace("Integrity VM", "Other VM"), "Integrity VM or vPar"),
    (ON.replace(":enabled:enabled:On", ":maybe:enabled:On"), "runnable_status"),
]


@pytest.mark.parametrize(("line", "message"), BAD_MACHINE, ids=[m for _, m in BAD_MACHINE])
def test_malformed_machine_status_is_a_provider_error_quoting_the_line(
    line: str, message: str
) -> None:
    with pytest.raises(ProviderError, match="hpvmstatus -M") as info:
        parsers.parse_machine_line(line)
    assert message in str(info.value)
    assert line in str(info.value)


def test_device_listing_parses_storage_and_network_and_skips_serial() -> None:
    text = (
        "[Storage Interface Details]\n"
        "disk:scsi:0,0,0:lv:/dev/vg_vmtest/rvmnode2disk\n"
        "dvd:scsi:0,0,1:disk:/dev/rdsk/c1t4d0\n"
        "[Network Interface Details]\n"
        "network:lan:0,1,0xB20EBA14E76C:vswitch:localnet\n"
        "network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vlan2:portid:4\n"
        "[Misc Interface Details]\n"
        "serial:com1::tty:console\n"
    )
    listing = parsers.parse_device_listing(text)
    assert listing.storage == (
        StorageResource(devtype="disk", adapter="scsi", backing="lv",
                        path="/dev/vg_vmtest/rvmnode2disk", bus=0, slot=0, target=0),
        StorageResource(devtype="dvd", adapter="scsi", backing="disk", path="/dev/rdsk/c1t4d0",
                        bus=0, slot=0, target=1),
    )  # fmt: skip
    assert listing.network == (
        NetworkResource(adapter="lan", vswitch="localnet", bus=0, slot=1, mac=0xB20EBA14E76C),
        NetworkResource(adapter="avio_lan", vswitch="vlan2", bus=0, slot=2, mac=0x0ADCFDCB2C62,
                        port=4),
    )  # fmt: skip


def test_device_listing_of_a_guest_without_devices_is_empty() -> None:
    text = "[Storage Interface Details]\n[Network Interface Details]\n[Misc Interface Details]\n"
    assert parsers.parse_device_listing(text) == parsers.DeviceListing()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[Storage Interface Details]\ndisk:floppy::file:/x\n", "unknown storage adapter"),
        ("[Storage Interface Details]\nnetwork:lan::vswitch:x\n", "does not belong"),
    ],
    ids=["bad statement", "statement in the wrong section"],
)
def test_malformed_device_listing_is_a_provider_error(text: str, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        parsers.parse_device_listing(text)


HPVMNET = (
    "Name     Number State   Mode      NamePPA  MAC Address    IP Address\n"
    "======== ====== ======= ========= ======== ============== ===============\n"
    "localnet      1 Up      Shared             N/A            N/A\n"
    "vlan02        2 Up      Shared    lan3     0x000000000000 192.168.1.12\n"
    "vswdown       3 Down    Shared             N/A            N/A\n"
)


def test_vswitch_listing_reads_empty_nic_cells_as_host_local() -> None:
    rows = parsers.parse_vswitch_list(HPVMNET)
    assert rows == (
        parsers.VSwitchRow(name="localnet", number=1, state="Up", nic=None, mac="N/A"),
        parsers.VSwitchRow(name="vlan02", number=2, state="Up", nic="lan3", mac="0x000000000000"),
        parsers.VSwitchRow(name="vswdown", number=3, state="Down", nic=None, mac="N/A"),
    )


def test_vswitch_detail_reads_the_port_table_by_column() -> None:
    text = (
        HPVMNET.splitlines(keepends=True)[0]
        + HPVMNET.splitlines(keepends=True)[1]
        + "vlan02        2 Up      Shared    lan3     0x000000000000 192.168.1.12\n"
        "\n"
        "[Port Configuration Details]\n"
        "Port Number  Port State  Adaptor  Untagged VLANID  Reserved VMs  Active VM\n"
        "===========  ==========  =======  ===============  ============  =========\n"
        "1            Active      avio_lan none             web01         web01\n"
        "4            Reserved    lan      20               db01\n"
        "7            Available            30\n"
    )
    detail = parsers.parse_vswitch_detail(text)
    assert detail.vswitch.name == "vlan02"
    assert detail.ports == (
        parsers.PortRow(port=1, state="Active", adapter="avio_lan", vlan=None,
                        reserved=("web01",), active="web01"),
        parsers.PortRow(port=4, state="Reserved", adapter="lan", vlan=20, reserved=("db01",)),
        parsers.PortRow(port=7, state="Available", adapter="", vlan=30),
    )  # fmt: skip
    assert detail.port_vlans == {4: 20, 7: 30}


def test_vswitch_detail_without_ports() -> None:
    text = HPVMNET.split("vlan02")[0].rsplit("localnet", 1)[0] + (
        "localnet      1 Up      Shared             N/A            N/A\n\n"
        "[Port Configuration Details]\n"
        "Port Number  Port State  Adaptor  Untagged VLANID  Reserved VMs  Active VM\n"
        "===========  ==========  =======  ===============  ============  =========\n"
    )
    detail = parsers.parse_vswitch_detail(text)
    assert detail.vswitch.name == "localnet" and detail.ports == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hpvmnet: Unable to reach the vswitch daemon\n", "expected the Name Number State"),
        ("Name Number\nlocalnet 1\n", "expected a header and a ==== row"),
        (HPVMNET.replace("      2 Up", "    two Up"), "vswitch number 'two'"),
    ],
    ids=["message instead of table", "no underline", "bad number"],
)
def test_malformed_vswitch_listing_is_a_provider_error(text: str, message: str) -> None:
    with pytest.raises(ProviderError, match=message):
        parsers.parse_vswitch_list(text)


def test_a_malformed_port_row_is_quoted_as_its_cells() -> None:
    text = (
        HPVMNET.split("vlan02")[0].rsplit("localnet", 1)[0]
        + "vlan02        2 Up      Shared    lan3     0x000000000000 192.168.1.12\n\n"
        "[Port Configuration Details]\n"
        "Port Number  Port State  Adaptor  Untagged VLANID  Reserved VMs  Active VM\n"
        "===========  ==========  =======  ===============  ============  =========\n"
        "1            Active      avio_lan twenty           web01         web01\n"
    )
    with pytest.raises(ProviderError, match="VLAN id 'twenty'") as caught:
        parsers.parse_vswitch_detail(text)
    assert "'1 Active avio_lan twenty web01 web01'" in str(caught.value.detail)


def test_device_database_entries_and_their_share_flags() -> None:
    text = (
        "/dev/rdisk/disk12,/dev/disk/disk12:CONFIG=gdev,EXIST=YES,DEVTYPE=DISK,SHARE=YES,"
        "PRESERVE=NO:db01,db02:0x60050000abc\n"
        "/ivm/web01/root.img:CONFIG=gdev,EXIST=YES,DEVTYPE=FILE,SHARE=NO,PRESERVE=NO,"
        "SIZE=20480MB:web01:file-3\n"
        "lan0:CONFIG=rdev,EXIST=YES,DEVTYPE=NIC,SHARE=NO,PRESERVE=NO::lan-1\n"
    )
    entries = parsers.parse_device_entries(text)
    assert entries[0] == parsers.DeviceEntry(
        names=("/dev/rdisk/disk12", "/dev/disk/disk12"),
        attrs={"CONFIG": "gdev", "EXIST": "YES", "DEVTYPE": "DISK", "SHARE": "YES",
               "PRESERVE": "NO"},
        dependents=("db01", "db02"),
        id="0x60050000abc",
    )  # fmt: skip
    assert entries[1].attrs["SIZE"] == "20480MB" and not entries[1].shared
    assert entries[2].dependents == ()
    assert parsers.shared_paths(entries) == {"/dev/rdisk/disk12", "/dev/disk/disk12"}


def test_malformed_device_database_line_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="is not KEY=VALUE"):
        parsers.parse_device_entries("/x:CONFIG=gdev,SHARE:web01:file-1\n")
    with pytest.raises(ProviderError, match="names:attrs:dependents:id"):
        parsers.parse_device_entries("just-a-name\n")


def test_parsed_status_and_devices_become_an_actual_guest() -> None:
    status = parsers.parse_machine_line(ON)
    devices = parsers.parse_device_listing(
        "[Storage Interface Details]\n"
        "disk:avio_stor:0,1,0:disk:/dev/rdisk/disk5\n"
        "dvd:avio_stor:0,1,1:file:/iso/hpux.iso\n"
        "tape:scsi:0,4,0:attach:/dev/pt/pt_tape1\n"
        "[Network Interface Details]\n"
        "network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vswprod:portid:4\n"
        "network:avio_lan:0,3,0x0ADCFDCB2C63:vswitch:vswprod:portid:5\n"
    )
    actual = parsers.actual_guest(
        status,
        devices,
        host="vmhost01",
        shared=frozenset({"/dev/rdisk/disk5"}),
        port_vlans={"vswprod": {4: 20}},
    )
    assert actual.guest == model.Guest(
        name="web01", host="vmhost01", os="hpux", vcpus=2,
        entitlement=model.Entitlement(min_pct=20.0, max_pct=100.0), memory_mb=4096,
        dynamic_memory=model.DynamicMemory(min_mb=2048, max_mb=8192, target_mb=4096),
        power="on", start="auto", label="web front end",
        disks=(model.Disk(devtype="disk", backing="disk", path="/dev/rdisk/disk5",
                          adapter="avio_stor", shared=True, address="0,1,0"),),
        dvds=(model.Disk(devtype="dvd", backing="file", path="/iso/hpux.iso",
                         adapter="avio_stor", address="0,1,1"),),
        nics=(model.Nic(vswitch="vswprod", adapter="avio_lan", vlan=20, mac=0x0ADCFDCB2C62,
                        port=4, address="0,2"),
              model.Nic(vswitch="vswprod", adapter="avio_lan", vlan=None, mac=0x0ADCFDCB2C63,
                        port=5, address="0,3")),
        online_migration=True, vm_type="shared",
    )  # fmt: skip
    assert actual.status == model.GuestStatus(state="On (OS)", vm_number=1, uuid="6f1c-1")


def test_a_not_runnable_copy_is_marked_so() -> None:
    actual = parsers.actual_guest(
        parsers.parse_machine_line(NR), parsers.DeviceListing(), host="vmhost02"
    )
    assert actual.status.runnable is False
    assert actual.status.state == "Off (NR)"
    assert actual.guest.power == "off"


SERVER = """[HPVM Server System Resources]

VM Host name = vmhost01
Integrity VM version = 6.3
Processor speed = 1600 Mhz
Total number of operable system cores = 8
Total physical memory = 65536 Mbytes
VM memory pool = 60288 Mbytes
Host NICs = lan0,lan1
"""


def test_server_resources_give_version_and_hardware() -> None:
    assert parsers.parse_server_resources(SERVER) == model.Host(
        name="vmhost01",
        version="6.3",
        hardware=model.Hardware(cores=8, memory_mb=65536, nics=("lan0", "lan1"), mhz=1600),
    )


def test_a_host_without_nics_has_an_empty_nic_list() -> None:
    host = parsers.parse_server_resources(SERVER.replace("lan0,lan1", ""))
    assert host.hardware is not None and host.hardware.nics == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hpvmstatus: not running\n", "expected the [HPVM Server System Resources] section"),
        (SERVER.replace("Integrity VM version = 6.3\n", ""), "missing Integrity VM version"),
        (SERVER.replace("= 8\n", "= eight\n"), "'eight' is not a number"),
    ],
    ids=["no section", "missing key", "bad number"],
)
def test_malformed_server_resources_are_a_provider_error(text: str, message: str) -> None:
    with pytest.raises(ProviderError, match=re.escape(message)):
        parsers.parse_server_resources(text)
