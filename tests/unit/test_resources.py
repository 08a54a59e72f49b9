"""The resource-statement grammar: every documented example parses and prints back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivmctl import resources
from ivmctl.errors import RuleViolation
from ivmctl.resources import NetworkResource, StorageResource, parse_resource

# Examples from ivm-domain.md section 3.11 and 6.5.
ROUND_TRIP = [
    "disk:scsi::lv:/dev/vg_vmtest/rivm1d1",
    "dvd:scsi::disk:/dev/rdsk/c1t4d0",
    "disk:avio_stor::disk:/dev/rdisk/disk1",
    "dvd:scsi::file:/iso/hpux.iso",
    "dvd:avio_stor::null:/iso",
    "tape:scsi:0,4:attach:/dev/pt/pt_tape1",
    "disk:scsi:0,2,0:lv:/dev/vg/rlv",
    "network:avio_lan::vswitch:swlan1",
    "network:lan:0,1,0xB20EBA14E76C:vswitch:localnet",
    "network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vlan2:portid:4",
]


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_documented_statements_print_back_unchanged(text: str) -> None:
    assert parse_resource(text).format() == text


def test_aliases_become_canonical_adapter_names() -> None:
    assert parse_resource("disk:aviostor::file:/a").format() == "disk:avio_stor::file:/a"
    assert parse_resource("network:aviolan::vswitch:v").format() == "network:avio_lan::vswitch:v"


def test_a_mac_only_address_keeps_bus_and_slot_open() -> None:
    nic = parse_resource("network:lan:,,aa-bb-cc-00-11-22:vswitch:x")
    assert isinstance(nic, NetworkResource)
    assert (nic.bus, nic.slot, nic.mac) == (None, None, 0xAABBCC001122)


@pytest.mark.parametrize(
    ("text", "why"),
    [("disk:scsi", "too few"), ("floppy:scsi::file:/a", "unknown device type"),
     ("disk:ide::file:/a", "unknown storage adapter"), ("disk:scsi::nfs:/a", "unknown backing"),
     ("disk:scsi:9,0:file:/a", "bus 9 is outside 0..7"), ("disk:scsi:0:file:/a", "bus,slot"),
     ("disk:scsi::file:", "path is empty"), ("network:scsi::vswitch:v", "network adapter"),
     ("network:lan::bridge:v", "vswitch:<name>"), ("network:lan::vswitch:v:port:3", "portid"),
     ("network:lan::vswitch:v:portid:600", "port 600 is outside 0..511"),
     ("network:lan:,,0xZZ:vswitch:v", "invalid MAC")],
)  # fmt: skip
def test_bad_statements_say_what_is_wrong(text: str, why: str) -> None:
    with pytest.raises(RuleViolation, match=why):
        parse_resource(text)


@given(
    st.sampled_from(["disk", "dvd"]),
    st.sampled_from(["scsi", "avio_stor"]),
    st.sampled_from(["disk", "lv", "file", "null"]),
    st.from_regex(r"/[a-z0-9_/.]{1,30}", fullmatch=True),
    st.none() | st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 127)),
)
def test_any_storage_statement_survives_a_round_trip(
    devtype: str, adapter: str, backing: str, path: str, address: tuple[int, int, int] | None
) -> None:
    bus, slot, target = address if address else (None, None, None)
    resource = StorageResource(devtype=devtype, adapter=adapter, backing=backing, path=path,
                               bus=bus, slot=slot, target=target)  # fmt: skip
    assert parse_resource(resource.format()) == resource


def test_a_nic_pinned_to_a_slot_without_a_mac_prints_bus_and_slot_only() -> None:
    nic = NetworkResource(adapter="avio_lan", vswitch="vsw1", bus=0, slot=6, port=3)
    assert nic.format() == "network:avio_lan:0,6:vswitch:vsw1:portid:3"
    assert parse_resource(nic.format()) == nic


_ADDRESSES = [
    "",
    "0,1",
    "7,7,127",
    "8,0",
    "0,8",
    "0,0,128",
    "0,1,0x0A0000000101",
    ",,0x0a0000000101",
    "0,1,aa-bb-cc-00-11-22",
    " 1,2",
    "1,+2",
    "0",
    "0,1,0x0A00",
]
_STATEMENTS = st.tuples(
    st.sampled_from(["disk", "dvd", "hba", "DVD", "network", "floppy"]),
    st.sampled_from(["scsi", "avio_stor", "AvioStor", "lan", "avio_lan", "aviolan", "ide"]),
    st.sampled_from(_ADDRESSES),
    st.sampled_from(["lv", "file", "null", "npiv", "FILE", "vswitch", "VSwitch", "nfs"]),
    st.sampled_from(["/a", "/a:b", "vsw1", "", " x"]),
    st.sampled_from(["", ":portid:0", ":portid:511", ":portid:512", ":PortID:3", ":portid:",
                     ":portid:1:2", ":port:3", ":x"]),
).map(lambda parts: ":".join(parts[:5]) + parts[5])  # fmt: skip


@settings(max_examples=500)
@given(_STATEMENTS, st.sampled_from(["", " ", "\n"]))
def test_the_canonical_shortcut_reads_statements_as_the_field_reader_does(
    statement: str, pad: str
) -> None:
    text = pad + statement + pad
    try:
        expected: object = resources._parse_fields(text, text.strip().split(":"))
    except RuleViolation as exc:
        expected = exc.summary
    try:
        found: object = parse_resource(text)
    except RuleViolation as exc:
        found = exc.summary
    assert found == expected
