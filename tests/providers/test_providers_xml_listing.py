"""`hpvmstatus -X` read without an XML parser when it is in the hosts' own layout: the
result is always the XML parser's, and anything else goes to the parser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivmctl.errors import ProviderError
from ivmctl.providers.parsers import (
    _plain_xml_machines,
    _xml_machines,
    parse_xml_devices,
)
from ivmctl.runtime import World

GUESTS = [
    "hpvmdevmgmt -S 1G /ivm/g1/root.img",
    "hpvmcreate -P g1 -O hpux -c 2 -r 4G -a disk:avio_stor::file:/ivm/g1/root.img "
    "-a disk:avio_stor::lv:/dev/vg01/rlvol1 -a dvd:avio_stor::null:/var/iso/install.iso "
    "-a network:lan:,,0x02AABBCCDDEE:vswitch:localnet",
    "hpvmcreate -P g2 -r 1536M -a network:lan::vswitch:localnet",
    "hpvmcreate -P g3",
]


def _listing(tmp_path: Path, commands: list[str]) -> str:
    with World.open(tmp_path / "world.db", create=True) as world:
        world.add_host(name="vmhost01", cores=8, memory_mb=65536, nics=("lan0",))
        for command in commands:
            assert world.execute("vmhost01", command.split()).exit_code == 0, command
        world.execute("vmhost01", ["hpvmstart", "-P", "g1"])
        result = world.execute("vmhost01", ["hpvmstatus", "-X"])
    assert result.exit_code == 0
    return result.stdout


@pytest.fixture(scope="module")
def listing(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _listing(tmp_path_factory.mktemp("xml"), GUESTS)


def test_the_emulators_listing_is_read_without_the_xml_parser_and_alike(listing: str) -> None:
    plain = _plain_xml_machines(listing)
    assert plain is not None
    assert plain == _xml_machines(listing)
    assert [name for name, _ in plain] == ["g1", "g2", "g3"]
    assert [tag for tag, _ in plain[0][1]] == ["storage", "storage", "storage", "network"]
    devices = parse_xml_devices(listing)
    assert [d.path for d in devices["g1"].storage] == [
        "/ivm/g1/root.img",
        "/dev/vg01/rlvol1",
        "/var/iso/install.iso",
    ]
    assert devices["g3"].storage == devices["g3"].network == ()


def test_a_path_the_host_escapes_goes_to_the_xml_parser(tmp_path: Path) -> None:
    escaped = [
        "hpvmdevmgmt -S 1G /ivm/a&b.img",
        "hpvmcreate -P g1 -a disk:avio_stor::file:/ivm/a&b.img",
    ]
    listing = _listing(tmp_path, escaped)
    assert "/ivm/a&amp;b.img" in listing
    assert _plain_xml_machines(listing) is None
    assert [d.path for d in parse_xml_devices(listing)["g1"].storage] == ["/ivm/a&b.img"]


STORAGE = "<storage>disk:avio_stor:0,0,0:file:/ivm/g1/root.img</storage>"
CDATA = STORAGE.replace(">disk", "><![CDATA[disk").replace("</storage>", "]]></storage>")
# Each a change to the emulator's listing that takes it out of the hosts' own layout.
VARIANTS: dict[str, Callable[[str], str]] = {
    "a comment": lambda text: text.replace("<pman>", "<pman><!-- read me -->"),
    "CDATA": lambda text: text.replace(STORAGE, CDATA),
    "a character reference": lambda text: text.replace("/ivm/g1/root", "/ivm/g1/r&#111;ot"),
    "a carriage return": lambda text: text.replace("root.img</", "root.img\r</"),
    "a tab in the name": lambda text: text.replace('name="g2"', 'name="g\t2"'),
    "single quotes": lambda text: text.replace('name="g2"', "name='g2'"),
    "no declaration": lambda text: text.split("\n", 1)[1],
    "a second devices block": lambda text: text.replace(
        "</devices>", "</devices><devices></devices>", 1
    ),
    "an unknown device": lambda text: text.replace(STORAGE, "<tape>tape:scsi::null:</tape>"),
    "a closing tag that does not match": lambda text: text.replace("</storage>", "</network>", 1),
    "text after the document": lambda text: text + "trailing",
    "no closing pman": lambda text: text.replace("</pman>", ""),
    "a control character": lambda text: text.replace("root.img", "root\x01.img"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_document_in_another_layout_is_left_to_the_xml_parser(listing: str, variant: str) -> None:
    text = VARIANTS[variant](listing)
    assert text != listing
    assert _plain_xml_machines(text) is None
    try:
        devices = parse_xml_devices(text)
    except ProviderError as exc:  # the parser's refusal stands
        assert "cannot parse the output of hpvmstatus -X" in exc.summary
        return
    assert set(devices) == {name for name, _ in _xml_machines(text)}


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_one_character_changed_anywhere_reads_as_the_xml_parser_reads_it(
    listing: str, data: st.DataObject
) -> None:
    at = data.draw(st.integers(min_value=0, max_value=len(listing)))
    edit = data.draw(st.sampled_from(["insert", "delete", "replace"]))
    char = data.draw(st.sampled_from([*"<>&\"'/= \t\r\n\x00x:!?-[]", "\u2003", "é"]))
    if edit == "insert":
        text = listing[:at] + char + listing[at:]
    elif edit == "delete":
        text = listing[:at] + listing[at + 1 :]
    else:
        text = listing[:at] + char + listing[at + 1 :]
    plain = _plain_xml_machines(text)
    try:
        parsed = _xml_machines(text)
    except ProviderError:
        assert plain is None, "read a document the XML parser refuses"
        return
    assert plain is None or plain == parsed
