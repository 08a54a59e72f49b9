"""Parsers for the machine-readable output of the hpvm* commands, and the state built from it.

The formats are those of docs/emulator-fidelity.md section 2 (the emulator prints them,
a real VM Host prints the same): `hpvmstatus -M`, `hpvmstatus -d -P NAME`, `hpvmnet`,
`hpvmnet -S NAME`, `hpvmdevmgmt -l all` and `hpvmstatus -s`. Parsers take text and return
small frozen values; `actual_guest` combines them into the model's ActualGuest. Anything
that does not fit the format is a ProviderError quoting the offending line, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import field
from functools import lru_cache
from xml.etree import ElementTree

from ivmctl import model
from ivmctl.errors import IvmctlError, ProviderError
from ivmctl.resources import NetworkResource, StorageResource, parse_resource
from ivmctl.rules import memory_mb_of
from ivmctl.values import frozen

MACHINE_FIELDS = 21


def _bad(command: str, line: str | Sequence[str], why: str) -> ProviderError:
    """The error for `line`; a table row may be given as its cells (joined only here)."""
    if not isinstance(line, str):
        line = " ".join(line)
    return ProviderError(
        f"cannot parse the output of {command}: {why}",
        detail=f"Offending line: {line!r}. The host may run an unsupported Integrity VM "
        "version; run the command by hand to compare with docs/emulator-fidelity.md.",
    )


# --------------------------------------------------------------------------------------------
# hpvmstatus -M
# --------------------------------------------------------------------------------------------


@frozen
class MachineStatus:
    """One line of `hpvmstatus -M`: a guest's configuration and run state."""

    name: str
    vm_number: int
    vm_type: str  # shared | vpar
    uuid: str
    os: str  # lower case: hpux | linux | windows | openvms | unknown
    label: str
    runnable: bool
    run_state: str  # On | Off | Invalid
    start: str  # auto | manual
    state_detail: str  # OS | EFI | NR | ""
    online_migration: bool
    host: str  # the VM Host name the guest reports
    storage_count: int
    network_count: int
    vcpus: int
    entitlement: model.Entitlement
    memory_mb: int
    dynamic_memory: model.DynamicMemory | None

    @property
    def state(self) -> str:
        """The State column as hpvmstatus shows it: `On (OS)`, `Off`, `Off (NR)`."""
        return f"{self.run_state} ({self.state_detail})" if self.state_detail else self.run_state


def _enabled(command: str, line: str, value: str, what: str) -> bool:
    if value not in ("enabled", "disabled"):
        raise _bad(command, line, f"{what} is {value!r}, expected enabled or disabled")
    return value == "enabled"


def _int(command: str, line: str | Sequence[str], value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _bad(command, line, f"{what} {value!r} is not a number") from None


def _float(command: str, line: str, value: str, what: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise _bad(command, line, f"{what} {value!r} is not a number") from None


def parse_machine_line(line: str) -> MachineStatus:
    """Parse one `hpvmstatus -M` line (21 `:`-separated fields)."""
    command = "hpvmstatus -M"
    fields = line.split(":")
    if len(fields) != MACHINE_FIELDS:
        raise _bad(command, line, f"{len(fields)} fields, expected {MACHINE_FIELDS}")
    if not fields[0]:
        raise _bad(command, line, "the guest name is empty")
    if fields[3] not in ("Integrity VM", "Integrity vPar"):
        raise _bad(command, line, f"field 3 is {fields[3]!r}, expected Integrity VM or vPar")
    if fields[6] not in ("SH", "VP"):
        raise _bad(command, line, f"vm type {fields[6]!r}, expected SH or VP")
    if fields[10] not in ("On", "Off", "Invalid"):
        raise _bad(command, line, f"run state {fields[10]!r}, expected On, Off or Invalid")
    if fields[11] not in ("Auto", "Manual"):
        raise _bad(command, line, f"start attribute {fields[11]!r}, expected Auto or Manual")
    cpu = fields[19].split(";")
    if len(cpu) != 3:
        raise _bad(command, line, f"vCPU field {fields[19]!r}, expected vcpus;min;max")
    mem = fields[20].split(";")
    if len(mem) != 5:
        raise _bad(command, line, f"memory field {fields[20]!r}, expected 5 ';' parts")
    try:
        memory_mb = memory_mb_of(mem[0])
        entitlement = model.entitlement(
            _float(command, line, cpu[1], "entitlement"),
            _float(command, line, cpu[2], "entitlement maximum"),
        )
    except (IvmctlError, ValueError) as exc:
        if isinstance(exc, ProviderError):
            raise
        raise _bad(command, line, str(exc)) from None
    dynamic = None
    if mem[1] not in ("none", ""):
        dynamic = model.dynamic_memory(
            _int(command, line, mem[2], "dynamic memory minimum"),
            _int(command, line, mem[3], "dynamic memory maximum"),
            _int(command, line, mem[4], "dynamic memory target"),
        )
    return MachineStatus(
        name=fields[0],
        vm_number=_int(command, line, fields[1], "VM number"),
        vm_type="vpar" if fields[6] == "VP" else "shared",
        uuid=fields[4],
        os=fields[5].lower(),
        label=fields[7],
        runnable=_enabled(command, line, fields[8], "runnable_status"),
        run_state=fields[10],
        start=fields[11].lower(),
        state_detail=fields[12],
        online_migration=_enabled(command, line, fields[13], "online_migration"),
        host=fields[18],
        storage_count=_int(command, line, fields[16], "storage count"),
        network_count=_int(command, line, fields[17], "network count"),
        vcpus=_int(command, line, cpu[0], "vCPU count"),
        entitlement=entitlement,
        memory_mb=memory_mb,
        dynamic_memory=dynamic,
    )


def parse_machine_status(text: str) -> tuple[MachineStatus, ...]:
    """Parse `hpvmstatus -M`: one MachineStatus per non-blank line, in output order."""
    return tuple(parse_machine_line(line) for line in text.splitlines() if line.strip())


def machine_status_of(text: str, name: str) -> MachineStatus | None:
    """The MachineStatus of guest `name` in `hpvmstatus -M`, None when no line names it.
    Only that line is parsed: re-reading one guest after a change, the host's other
    guests are not asked about (and a line of theirs that does not parse is not this
    guest's problem; a refresh reads every line)."""
    prefix = f"{name}:"
    for line in text.splitlines():
        if line.startswith(prefix):
            return parse_machine_line(line)
    return None


# --------------------------------------------------------------------------------------------
# hpvmstatus -d -P NAME
# --------------------------------------------------------------------------------------------


@frozen
class DeviceListing:
    """The devices of one guest, from `hpvmstatus -d -P NAME`, in output order."""

    storage: tuple[StorageResource, ...] = ()
    network: tuple[NetworkResource, ...] = ()


_STORAGE_SECTION = "[Storage Interface Details]"
_NETWORK_SECTION = "[Network Interface Details]"


def parse_device_listing(text: str) -> DeviceListing:
    """Parse `hpvmstatus -d`; the misc section (serial consoles) is skipped."""
    command = "hpvmstatus -d"
    storage: list[StorageResource] = []
    network: list[NetworkResource] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        if section not in (_STORAGE_SECTION, _NETWORK_SECTION):
            continue
        try:
            resource = parse_resource(line)
        except IvmctlError as exc:
            raise _bad(command, line, exc.summary) from None
        if section == _STORAGE_SECTION and isinstance(resource, StorageResource):
            storage.append(resource)
        elif section == _NETWORK_SECTION and isinstance(resource, NetworkResource):
            network.append(resource)
        else:
            raise _bad(command, line, f"statement does not belong in {section}")
    return DeviceListing(storage=tuple(storage), network=tuple(network))


_XML_COMMAND = "hpvmstatus -X"


def parse_xml_devices(text: str) -> dict[str, DeviceListing]:
    """Parse `hpvmstatus -X`: guest name -> its devices (the `<devices>` of each
    `<virtual_machine>`, resource statements as `hpvmstatus -d` prints them)."""
    machines = _plain_xml_machines(text)
    if machines is None:
        machines = _xml_machines(text)
    found: dict[str, DeviceListing] = {}
    for name, elements in machines:
        storage: list[StorageResource] = []
        network: list[NetworkResource] = []
        for tag, statement in elements:
            try:
                resource = parse_resource(statement)
            except IvmctlError as exc:
                raise _bad(_XML_COMMAND, statement, exc.summary) from None
            if tag == "storage" and isinstance(resource, StorageResource):
                storage.append(resource)
            elif tag == "network" and isinstance(resource, NetworkResource):
                network.append(resource)
            else:
                raise _bad(_XML_COMMAND, statement, f"statement does not belong in <{tag}>")
        found[name] = DeviceListing(storage=tuple(storage), network=tuple(network))
    return found


# A guest's name and its devices' (tag, statement) pairs, in document order.
_Machines = list[tuple[str, list[tuple[str, str]]]]


def _xml_machines(text: str) -> _Machines:
    """The `<virtual_machine>` elements of any well-formed `hpvmstatus -X` document, read
    with an XML parser."""
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as exc:
        first = text.strip().splitlines()[0] if text.strip() else ""
        raise _bad(_XML_COMMAND, first, str(exc)) from None
    machines: _Machines = []
    for machine in root.iter("virtual_machine"):
        name = machine.get("name")
        if not name:
            raise _bad(_XML_COMMAND, "<virtual_machine>", "a virtual machine without a name")
        elements = [
            (element.tag, (element.text or "").strip())
            for devices in machine
            if devices.tag == "devices"
            for element in devices
        ]
        machines.append((name, elements))
    return machines


# The layout a VM Host prints (docs/emulator-fidelity.md): the declaration, <pman>, then
# each <virtual_machine> with its simple elements and one <devices>. A document written
# so, without entity references (&), comments, CDATA or processing instructions, and
# whose texts hold no character an XML parser would change (carriage returns; in the
# name attribute, tabs and newlines too), is read by these expressions, in half
# the XML parser's time; any other document, well-formed or not, goes to the parser.
_XML_SPACE = r"[ \t\r\n]*"
# A character of text an XML parser keeps as it is (no markup, no carriage return, none
# that XML forbids); in the name attribute, no tab, newline or quote either.
_XML_TEXT = r"[^<>&\r\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"
_XML_NAME = r"[^<>&\"\t\r\n\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"
_XML_HEAD = re.compile(rf'<\?xml version="1\.0" encoding="UTF-8"\?>{_XML_SPACE}<pman>{_XML_SPACE}')
_XML_MACHINE = re.compile(
    rf'<virtual_machine name="({_XML_NAME}+)">{_XML_SPACE}'
    rf"(?:<(?P<simple>uuid|vm_number|vm_state|os_type|vcpu_number)>{_XML_TEXT}*</(?P=simple)>"
    rf'{_XML_SPACE}|<memory><total unit="[A-Za-z]+">[0-9]+</total></memory>{_XML_SPACE})*'
    rf"<devices>{_XML_SPACE}"
    rf"(?P<devices>(?:<(?P<tag>storage|network)>{_XML_TEXT}*</(?P=tag)>{_XML_SPACE})*)"
    rf"</devices>{_XML_SPACE}</virtual_machine>{_XML_SPACE}"
)
_XML_DEVICE = re.compile("<(storage|network)>([^<]*)</")
_XML_TAIL = re.compile(rf"</pman>{_XML_SPACE}\Z")


def _plain_xml_machines(text: str) -> _Machines | None:
    """What `_xml_machines` reads from a document in the hosts' own layout (above), read
    without an XML parser; None for any other document."""
    head = _XML_HEAD.match(text)
    if head is None:
        return None
    machines: _Machines = []
    position = head.end()
    while (machine := _XML_MACHINE.match(text, position)) is not None:
        elements = [
            (tag, statement.strip())
            for tag, statement in _XML_DEVICE.findall(machine.group("devices"))
        ]
        machines.append((machine.group(1), elements))
        position = machine.end()
    return machines if _XML_TAIL.match(text, position) else None


# --------------------------------------------------------------------------------------------
# Column tables (hpvmnet)
# --------------------------------------------------------------------------------------------


_UNDERLINE = re.compile(r"=+")


@lru_cache(maxsize=256)
def _columns(underline: str) -> tuple[slice, ...] | None:
    """The columns a `====` underline marks, each from its start to the next one's (the
    last to the end of the line); None when `underline` is not one. A host prints the
    same few tables many times: each underline is read once."""
    if not underline.strip() or not set(underline.strip()) <= {"=", " "}:
        return None
    starts = [match.start() for match in _UNDERLINE.finditer(underline)]
    return tuple(map(slice, starts, [*starts[1:], None]))


def _table_rows(lines: Sequence[str], command: str) -> list[list[str]]:
    """Rows of a header + `====` underline table, cut at the underline's column starts."""
    columns = _columns(lines[1]) if len(lines) >= 2 else None
    if columns is None:
        raise _bad(command, lines[0] if lines else "", "expected a header and a ==== row")
    rows: list[list[str]] = []
    for line in lines[2:]:
        if not line.strip():
            break
        rows.append([line[column].strip() for column in columns])
    return rows


@frozen
class VSwitchRow:
    """One row of the `hpvmnet` listing."""

    name: str
    number: int
    state: str  # Up | Down
    nic: str | None  # NamePPA, e.g. "lan0"; None for localnet and host-local switches
    mac: str  # the uplink's MAC or N/A


_VSWITCH_COLUMNS = 7


def parse_vswitch_list(text: str) -> tuple[VSwitchRow, ...]:
    """Parse the `hpvmnet` listing (and the vswitch row that heads `hpvmnet -S`)."""
    command = "hpvmnet"
    lines = [line for line in text.splitlines()]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines or not lines[0].lstrip().startswith("Name"):
        raise _bad(command, lines[0] if lines else "", "expected the Name Number State header")
    result = []
    for cells in _table_rows(lines, command):
        if len(cells) != _VSWITCH_COLUMNS:
            raise _bad(command, cells, f"expected {_VSWITCH_COLUMNS} columns")
        result.append(
            VSwitchRow(
                name=cells[0],
                number=_int(command, cells, cells[1], "vswitch number"),
                state=cells[2],
                nic=cells[4] or None,
                mac=cells[5],
            )
        )
    return tuple(result)


@frozen
class PortRow:
    """One row of the `[Port Configuration Details]` of `hpvmnet -S NAME`."""

    port: int
    state: str  # Active | Reserved | Available
    adapter: str  # lan | avio_lan | "" for a port with only a VLAN
    vlan: int | None  # untagged VLAN id; None when `none`
    reserved: tuple[str, ...] = ()
    active: str = ""


@frozen
class VSwitchDetail:
    """`hpvmnet -S NAME`: the vswitch row and its port table."""

    vswitch: VSwitchRow
    ports: tuple[PortRow, ...] = field(default=())

    @property
    def port_vlans(self) -> dict[int, int]:
        return {p.port: p.vlan for p in self.ports if p.vlan is not None}


_PORT_SECTION = "[Port Configuration Details]"
_PORT_COLUMNS = 6


def parse_vswitch_detail(text: str) -> VSwitchDetail:
    """Parse `hpvmnet -S NAME`: the listing row, then the port table."""
    command = "hpvmnet -S"
    head, sep, tail = text.partition(_PORT_SECTION)
    rows = parse_vswitch_list(head)
    if len(rows) != 1:
        raise _bad(command, head.strip(), f"expected one vswitch row, found {len(rows)}")
    ports: list[PortRow] = []
    if sep:
        lines = [line for line in tail.splitlines() if line.strip()]
        for cells in _table_rows(lines, command) if lines else []:
            if len(cells) != _PORT_COLUMNS:
                raise _bad(command, cells, f"expected {_PORT_COLUMNS} port columns")
            vlan = None if cells[3] in ("none", "") else _int(command, cells, cells[3], "VLAN id")
            ports.append(
                PortRow(
                    port=_int(command, cells, cells[0], "port number"),
                    state=cells[1],
                    adapter=cells[2],
                    vlan=vlan,
                    reserved=tuple(filter(None, cells[4].split(","))),
                    active=cells[5],
                )
            )
    return VSwitchDetail(vswitch=rows[0], ports=tuple(ports))


# --------------------------------------------------------------------------------------------
# hpvmdevmgmt -l all
# --------------------------------------------------------------------------------------------


@frozen
class DeviceEntry:
    """One entry of the device database: names, attributes, dependent guests, id."""

    names: tuple[str, ...]
    attrs: Mapping[str, str]
    dependents: tuple[str, ...]
    id: str

    @property
    def shared(self) -> bool:
        return self.attrs.get("SHARE", "NO").upper() == "YES"


def parse_device_entries(text: str) -> tuple[DeviceEntry, ...]:
    """Parse `hpvmdevmgmt -l`: one `names:attrs:dependents:id` line per entry."""
    command = "hpvmdevmgmt -l"
    entries = []
    # A database repeats a few attribute lists (one per kind of device): each is read once,
    # and its entries share the mapping.
    read: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = line.rsplit(":", 3)
        if len(parts) != 4 or not parts[0]:
            raise _bad(command, line, "expected names:attrs:dependents:id")
        names, attrs_text, dependents, ident = parts
        attrs = read.get(attrs_text)
        if attrs is None:
            attrs = read[attrs_text] = {}
            for item in attrs_text.split(","):
                if not item:
                    continue
                key, eq, value = item.partition("=")
                if not eq:
                    raise _bad(command, line, f"attribute {item!r} is not KEY=VALUE")
                attrs[key] = value
        entries.append(
            DeviceEntry(
                names=tuple(filter(None, names.split(","))),
                attrs=attrs,
                dependents=tuple(filter(None, dependents.split(","))),
                id=ident,
            )
        )
    return tuple(entries)


def shared_paths(entries: Sequence[DeviceEntry]) -> frozenset[str]:
    """Every name (entry or alias) of an entry marked SHARE=YES."""
    return frozenset(name for entry in entries if entry.shared for name in entry.names)


# --------------------------------------------------------------------------------------------
# hpvmstatus -s
# --------------------------------------------------------------------------------------------

_SERVER_SECTION = "[HPVM Server System Resources]"


def _number_before_unit(command: str, key: str, value: str) -> int:
    return _int(command, f"{key} = {value}", value.split()[0] if value else "", key)


def parse_server_resources(text: str) -> model.Host:
    """Parse `hpvmstatus -s`: the host's name, Integrity VM version and hardware."""
    command = "hpvmstatus -s"
    if _SERVER_SECTION not in text:
        raise _bad(command, text.strip().splitlines()[0] if text.strip() else "",
                   f"expected the {_SERVER_SECTION} section")  # fmt: skip
    values: dict[str, str] = {}
    for line in text.split(_SERVER_SECTION, 1)[1].splitlines():
        key, eq, value = line.partition(" = ")
        if eq:
            values[key.strip()] = value.strip()
    wanted = (
        "VM Host name",
        "Integrity VM version",
        "Processor speed",
        "Total number of operable system cores",
        "Total physical memory",
        "Host NICs",
    )
    missing = [key for key in wanted if key not in values]
    if missing:
        raise _bad(command, _SERVER_SECTION, f"missing {', '.join(missing)}")
    return model.Host(
        name=values["VM Host name"],
        version=values["Integrity VM version"],
        hardware=model.Hardware(
            cores=_number_before_unit(command, wanted[3], values[wanted[3]]),
            memory_mb=_number_before_unit(command, wanted[4], values[wanted[4]]),
            nics=tuple(n for n in values["Host NICs"].split(",") if n),
            mhz=_number_before_unit(command, wanted[2], values[wanted[2]]),
        ),
    )


# --------------------------------------------------------------------------------------------
# Building the model
# --------------------------------------------------------------------------------------------


_NO_PORTS: Mapping[int, int] = {}
# Listings show no lifecycle: every guest read has the default one, shared (a refresh
# reads 10,000 of them, and pickles each once per host, not once per guest).
_LISTED_LIFECYCLE = model.Lifecycle()


def actual_guest(
    status: MachineStatus,
    devices: DeviceListing,
    *,
    host: str,
    shared: frozenset[str] = frozenset(),
    port_vlans: Mapping[str, Mapping[int, int]] | None = None,
) -> model.ActualGuest:
    """The ActualGuest of one guest on `host` from its parsed status and devices.

    `shared` holds the SHARE=YES paths of the host's device database; `port_vlans` maps a
    vswitch name to its port -> untagged VLAN table. Devices other than disks, DVDs and
    NICs (tapes, changers, HBAs) have no place in the model and are left out.
    """
    vlans = port_vlans or {}
    disks: list[model.Disk] = []
    dvds: list[model.Disk] = []
    for res in devices.storage:
        if res.devtype == "disk":
            found = disks
        elif res.devtype == "dvd":
            found = dvds
        else:
            continue
        found.append(
            model.Disk(
                devtype=res.devtype,
                backing=res.backing,
                path=res.path,
                adapter=res.adapter,
                shared=res.path in shared,
                address=res.address or None,
            )
        )
    nics = tuple(
        [
            model.Nic(
                vswitch=res.vswitch,
                adapter=res.adapter,
                vlan=None if res.port is None else vlans.get(res.vswitch, _NO_PORTS).get(res.port),
                mac=res.mac,
                port=res.port,
                address=None if res.bus is None else f"{res.bus},{res.slot}",
            )
            for res in devices.network
        ]
    )
    guest = model.Guest(
        name=status.name,
        host=host,
        os=status.os,
        vcpus=status.vcpus,
        entitlement=status.entitlement,
        memory_mb=status.memory_mb,
        dynamic_memory=status.dynamic_memory,
        power="on" if status.run_state == "On" else "off",
        start=status.start,
        label=status.label,
        disks=tuple(disks),
        dvds=tuple(dvds),
        nics=nics,
        online_migration=status.online_migration,
        vm_type=status.vm_type,
        lifecycle=_LISTED_LIFECYCLE,
    )
    runnable = status.runnable and status.state_detail != "NR"
    return model.ActualGuest(
        guest=guest,
        status=model.GuestStatus(
            state=status.state, vm_number=status.vm_number, uuid=status.uuid, runnable=runnable
        ),
    )
