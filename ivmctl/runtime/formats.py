"""What hpvmstatus, hpvmnet and hpvmdevmgmt print, kept apart from the rules.

Layouts follow ivm-domain.md section 6 and are written down, with the choices made where
the reference is silent, in docs/emulator-fidelity.md. Providers parse -M, -d, hpvmnet and
hpvmdevmgmt -l output, so those layouts only change together with that page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ivmctl.rules import (
    format_mac,
    format_mac_dashed,
    format_memory_compact,
    format_memory_display,
    guest_overhead_mb,
    host_pool_mb,
    limits_for,
)
from ivmctl.runtime.data import DevEntry, Guest, Host, Nic, Storage, VSwitch, format_attrs
from ivmctl.values import frozen

# What xml.sax.saxutils.quoteattr escapes besides &, < and >.
_ATTR_ENTITIES = (("\n", "&#10;"), ("\r", "&#13;"), ("\t", "&#9;"))


def xml_escape(data: str) -> str:
    """`xml.sax.saxutils.escape(data)`, character for character (& first, then > and <).

    Written out here because importing xml.sax.saxutils loads urllib.request and
    http.client, about 25 ms in every process that prints a listing, reader workers too;
    tests/unit/test_xml_quoting.py compares the two.
    """
    return data.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def xml_quoteattr(data: str) -> str:
    """`xml.sax.saxutils.quoteattr(data)`, character for character: escaped, newline,
    return and tab as character references, in double quotes unless the value holds a
    double quote and no single one (then single quotes); with both, `"` becomes &quot;."""
    data = xml_escape(data)
    for char, reference in _ATTR_ENTITIES:
        data = data.replace(char, reference)
    if '"' not in data:
        return f'"{data}"'
    if "'" not in data:
        return f"'{data}'"
    return '"{}"'.format(data.replace('"', "&quot;"))


def run_state(guest: Guest, host: Host, now: float) -> tuple[str, str]:
    """(state, detail): ("On", "EFI") while booting, ("On", "OS") after, ("Off", "NR")..."""
    if guest.state == "On":
        boot_ends = guest.boot_ends(host)
        return "On", "OS" if boot_ends is not None and now >= boot_ends else "EFI"
    if guest.state == "Off" and guest.not_runnable:
        return "Off", "NR"
    return guest.state, ""


def state_text(guest: Guest, host: Host, now: float) -> str:
    state, detail = run_state(guest, host, now)
    return f"{state} ({detail})" if detail else state


def _flag(value: bool) -> str:
    return "enabled" if value else "disabled"


def _vm_type(guest: Guest) -> str:
    return "VP" if guest.vm_type == "vpar" else "SH"


def _type_name(guest: Guest) -> str:
    return "Integrity vPar" if guest.vm_type == "vpar" else "Integrity VM"


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def machine_line(host: Host, guest: Guest, n_storage: int, n_net: int, now: float) -> str:
    """One `hpvmstatus -M` line: 21 `:`-separated fields (docs/emulator-fidelity.md)."""
    state, detail = run_state(guest, host, now)
    memory = ";".join(
        [
            format_memory_compact(guest.memory_mb),
            guest.dyn_type,
            _opt(guest.dyn_min),
            _opt(guest.dyn_max),
            _opt(guest.dyn_target),
        ]
    )
    fields = [
        guest.name,
        str(guest.number),
        "",
        _type_name(guest),
        guest.uuid,
        guest.os.upper(),
        _vm_type(guest),
        guest.label,
        _flag(guest.runnable),
        _flag(guest.modifiable),
        state,
        guest.start_attr.capitalize(),
        detail,
        _flag(guest.online_migration),
        _flag(guest.visible),
        _flag(guest.registered),
        str(n_storage),
        str(n_net),
        host.name,
        f"{guest.vcpus};{guest.ent_min:.1f};{guest.ent_max:.1f}",
        memory,
    ]
    return ":".join(fields)


@frozen
class SummaryRow:
    guest: Guest
    n_storage: int
    n_net: int


def summary(host: Host, rows: Sequence[SummaryRow], now: float) -> list[str]:
    """`hpvmstatus` with no guest: the [Virtual Machines] table [obs R18][R4]."""
    typed = limits_for(host.version).vm_type
    name_w = max([20, *(len(r.guest.name) for r in rows)])
    head = ["Virtual Machine Name".ljust(name_w), "VM # "]
    rule = ["=" * name_w, "====="]
    if typed:
        head.append("Type")
        rule.append("====")
    head += ["OS Type", "State    ", "#VCPUs", "#Devs", "#Nets", "Memory "]
    rule += ["=======", "=========", "======", "=====", "=====", "======="]
    lines = ["[Virtual Machines]", " ".join(head).rstrip(), " ".join(rule)]
    for row in rows:
        g = row.guest
        cells = [g.name.ljust(name_w), str(g.number).rjust(5)]
        if typed:
            cells.append(_vm_type(g).ljust(4))
        cells += [
            g.os.upper().ljust(7),
            state_text(g, host, now).ljust(9),
            str(g.vcpus).rjust(6),
            str(row.n_storage).rjust(5),
            str(row.n_net).rjust(5),
            format_memory_display(g.memory_mb).rjust(7),
        ]
        lines.append(" ".join(cells).rstrip())
    return lines


def statements(storage: Sequence[Storage], nics: Sequence[Nic]) -> list[str]:
    """`hpvmstatus -P name -d`: fully addressed resource statements [obs R26b]."""
    lines = ["[Storage Interface Details]"]
    lines += [d.resource().format() for d in storage]
    lines.append("[Network Interface Details]")
    lines += [n.resource().format() for n in nics]
    lines += ["[Misc Interface Details]", "serial:com1::tty:console"]
    return lines


def detail(
    host: Host, guest: Guest, storage: Sequence[Storage], nics: Sequence[Nic], now: float
) -> list[str]:
    """`hpvmstatus -P name`: the per-guest tables [obs R18][obs R20]."""
    typed = limits_for(host.version).vm_type
    lines = ["[Virtual Machine Details]"]
    head = "Virtual Machine Name VM #  " + ("Type " if typed else "") + "OS Type State"
    lines += [
        head,
        "==================== ===== " + ("==== " if typed else "") + "======= =========",
    ]
    row = f"{guest.name:<20} {guest.number:>5} " + (f"{_vm_type(guest):<4} " if typed else "")
    lines.append(row + f"{guest.os.upper():<7} {state_text(guest, host, now)}")
    lines += [
        "",
        "[Authorized Administrators]",
        "Oper Groups             : ",
        "Admin Groups            : ",
        "Oper Users              : ",
        "Admin Users             : ",
        "",
    ]
    lines += [
        "[Virtual CPU Details]",
        "#vCPUs Entitlement Maximum",
        "====== =========== =======",
        f"{guest.vcpus:>6} {guest.ent_min:>10.1f}% {guest.ent_max:>6.1f}%",
        "",
    ]
    overhead = guest_overhead_mb(guest.vcpus, guest.memory_mb, vpar=guest.vm_type == "vpar")
    lines += [
        "[Memory Details]",
        "Total    Reserved",
        "=====    ========",
        f"{format_memory_display(guest.memory_mb):<8} {overhead} MB",
        "",
    ]
    lines += [
        "[Storage Interface Details]",
        "Guest                                 Physical",
        "Device  Adaptor    Bus Dev Ftn Tgt Lun Storage   Device",
        "======= ========== === === === === === ========= =========================",
    ]
    for d in storage:
        lines.append(
            f"{d.devtype:<7} {d.adapter:<10} {d.bus:>3} {d.slot:>3} {0:>3} "
            f"{d.target:>3} {0:>3} {d.backing:<9} {d.path}"
        )
    lines += [
        "",
        "[Network Interface Details]",
        "Interface Adaptor    Name/Num   PortNum Bus Dev Ftn Mac Address",
        "========= ========== ========== ======= === === === =================",
    ]
    for n in nics:
        lines.append(
            f"vswitch   {n.adapter:<10} {n.vswitch:<10} {n.port:>7} {n.bus:>3} "
            f"{n.slot:>3} {0:>3} {format_mac_dashed(n.mac)}"
        )
    lines += [
        "",
        "[Misc Interface Details]",
        "Guest                                 Physical",
        "Device  Adaptor    Bus Dev Ftn Tgt Lun Storage   Device",
        "======= ========== === === === === === ========= =========================",
        "serial  com1                           tty       console",
    ]
    return lines


def verbose(
    host: Host, guest: Guest, storage: Sequence[Storage], nics: Sequence[Nic], now: float
) -> list[str]:
    """`hpvmstatus -P name -V`: `key : value` lines [R2][R3][R38][R61]."""
    state, _ = run_state(guest, host, now)

    def kv(key: str, value: object) -> str:
        return f"{key:<37}: {value}"

    lines = [
        "[Virtual Machine Details]",
        kv("Virtual Machine Name", guest.name),
        kv("Virtual Machine UUID", guest.uuid),
        kv("Virtual Machine ID", guest.number),
        kv("Virtual Machine Label", guest.label),
        kv("VM's Model Name", "server Integrity Virtual Machine"),
        kv("VM Type", _type_name(guest)),
        kv("Operating System", guest.os.upper()),
        kv("State", state_text(guest, host, now)),
        kv("Start type", guest.start_attr.capitalize()),
        kv("Runnable status", _flag(guest.runnable)),
        kv("Modify status", _flag(guest.modifiable)),
        kv("Visible status", _flag(guest.visible)),
        kv("Register status", _flag(guest.registered)),
        kv("Online migration status", _flag(guest.online_migration)),
        kv("Running on VM Host", host.name if state == "On" else ""),
        kv("Number of virtual CPUs", guest.vcpus),
        kv("Minimum entitlement", f"{guest.ent_min:.1f}%"),
        kv("Maximum entitlement", f"{guest.ent_max:.1f}%"),
        kv("Memory", format_memory_display(guest.memory_mb)),
        "",
        "[Storage Interface Details]",
    ]
    for d in storage:
        lines += [
            kv("Guest Device type", d.devtype),
            kv("Guest Adaptor type", d.adapter),
            kv("Bus", d.bus),
            kv("Device", d.slot),
            kv("Function", 0),
            kv("Target", d.target),
            kv("Lun", 0),
            kv("Physical Storage type", d.backing),
            kv("Physical device", d.path),
            "",
        ]
    lines.append("[Network Interface Details]")
    for n in nics:
        lines += [
            kv("Physical Storage type", "vswitch"),
            kv("Guest Adaptor type", n.adapter),
            kv("Backing", n.vswitch),
            kv("Vswitch Port", n.port),
            kv("Bus", n.bus),
            kv("Device", n.slot),
            kv("Function", 0),
            kv("Mac Address", format_mac_dashed(n.mac)),
            "",
        ]
    lines += ["[Dynamic Memory Information]", kv("Type", guest.dyn_type)]
    if guest.dyn_type != "none":
        lines += [
            kv("Minimum memory", f"{guest.dyn_min} MB"),
            kv("Target memory", f"{guest.dyn_target} MB"),
            kv("Maximum memory", f"{guest.dyn_max} MB"),
            kv("Boot memory", f"{guest.memory_mb} MB"),
            kv("Memory chunksize", "65536 KB"),
        ]
    return lines


def xml(
    host: Host,
    guests: Sequence[Guest],
    now: float,
    devices: Mapping[int, tuple[Sequence[Storage], Sequence[Nic]]],
) -> list[str]:
    """`hpvmstatus -X` [obs R25]; `devices` (guest id -> storage, NICs) fills each
    guest's `<devices>`: its resource statements, as `hpvmstatus -d` prints them [inf]."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', "<pman>"]
    for g in guests:
        storage, nics = devices.get(g.id, ((), ()))
        state, _ = run_state(g, host, now)
        unit, total = (
            ("GB", g.memory_mb // 1024) if g.memory_mb % 1024 == 0 else ("MB", g.memory_mb)
        )
        lines += [
            f"  <virtual_machine name={xml_quoteattr(g.name)}>",
            f"    <uuid>{xml_escape(g.uuid)}</uuid>",
            f"    <vm_number>{g.number}</vm_number>",
            f"    <vm_state>{state}</vm_state>",
            f"    <os_type>{g.os.upper()}</os_type>",
            f"    <vcpu_number>{g.vcpus}</vcpu_number>",
            f'    <memory><total unit="{unit}">{total}</total></memory>',
            "    <devices>",
            *(f"      <storage>{xml_escape(d.resource().format())}</storage>" for d in storage),
            *(f"      <network>{xml_escape(n.resource().format())}</network>" for n in nics),
            "    </devices>",
            "  </virtual_machine>",
        ]
    lines.append("</pman>")
    return lines


def resources(host: Host, guests: Sequence[Guest], now: float) -> list[str]:
    """`hpvmstatus -r`: entitlement and dynamic-memory tables [obs R19] (our columns)."""
    lines = [
        "[Virtual Machine Entitlement]",
        "Virtual Machine Name VM #  #VCPUs Entitlement Maximum Cores",
        "==================== ===== ====== =========== ======= =====",
    ]
    for g in guests:
        cores = ",".join(str(c) for c in g.cores) if g.state == "On" else ""
        lines.append(
            f"{g.name:<20} {g.number:>5} {g.vcpus:>6} {g.ent_min:>10.1f}% "
            f"{g.ent_max:>6.1f}% {cores}".rstrip()
        )
    lines += [
        "",
        "[Virtual Machine Dynamic Memory]",
        "Virtual Machine Name VM #  Type    DynMem Min DynMem Max DynMem Target Total Memory",
        "==================== ===== ======= ========== ========== ============= ============",
    ]
    for g in guests:

        def mb(v: int | None) -> str:
            return "-" if v is None else f"{v} MB"

        lines.append(
            f"{g.name:<20} {g.number:>5} {g.dyn_type:<7} {mb(g.dyn_min):>10} "
            f"{mb(g.dyn_max):>10} {mb(g.dyn_target):>13} {g.memory_mb:>9} MB"
        )
    return lines


def server(host: Host, running: int) -> list[str]:
    """`hpvmstatus -s`: the host's resources, `key = value` lines [obs R67][inf]."""
    pool = host_pool_mb(host.memory_mb)
    used = ",".join([f"{u:g}" for u in host.core_used])
    return [
        "[HPVM Server System Resources]",
        "",
        f"VM Host name = {host.name}",
        f"Integrity VM version = {host.version}",
        f"Processor speed = {host.mhz} Mhz",
        f"Total number of operable system cores = {host.cores}",
        f"Total physical memory = {host.memory_mb} Mbytes",
        f"VM memory pool = {pool} Mbytes",
        f"Memory in use by running guests = {host.mem_used_mb} Mbytes",
        f"Available VM memory = {pool - host.mem_used_mb} Mbytes",
        f"Entitlement in use per core (%) = {used}",
        "Available entitlement per core (%) = "
        + ",".join([f"{round(100 - u, 1):g}" for u in host.core_used]),
        f"Running guests = {running}",
        f"Host NICs = {','.join(host.nics)}",
    ]


# --------------------------------------------------------------------------------------------
# hpvmnet
# --------------------------------------------------------------------------------------------
def vswitch_table(host: Host, vswitches: Sequence[VSwitch]) -> list[str]:
    """`hpvmnet`: the vswitch table [obs R18]."""
    name_w = max([8, *(len(v.name) for v in vswitches)])
    lines = [
        f"{'Name':<{name_w}} Number State   Mode      NamePPA  MAC Address    IP Address",
        f"{'=' * name_w} ====== ======= ========= ======== ============== ===============",
    ]
    for v in vswitches:
        mac = format_mac(host.nic_mac(v.nic)) if v.nic else "N/A"
        lines.append(
            f"{v.name:<{name_w}} {v.number:>6} {v.state:<7} {'Shared':<9} "
            f"{v.nic or '':<8} {mac:<14} N/A"
        )
    return lines


@frozen
class PortRow:
    port: int
    state: str  # Active | Reserved | Available
    adapter: str
    vlan: int | None
    reserved: str
    active: str


def port_table(rows: Sequence[PortRow]) -> list[str]:
    """`hpvmnet -S name`: [Port Configuration Details] [obs R22]."""
    lines = [
        "[Port Configuration Details]",
        "Port Number  Port State  Adaptor  Untagged VLANID  Reserved VMs  Active VM",
        "===========  ==========  =======  ===============  ============  =========",
    ]
    for r in rows:
        vlan = "none" if r.vlan is None else str(r.vlan)
        lines.append(
            f"{r.port:<11}  {r.state:<10}  {r.adapter:<8} {vlan:<15}  "
            f"{r.reserved:<12}  {r.active}".rstrip()
        )
    return lines


# --------------------------------------------------------------------------------------------
# hpvmdevmgmt
# --------------------------------------------------------------------------------------------
def devmgmt_attrs(entry: DevEntry, exists: bool) -> dict[str, str]:
    """The attributes `hpvmdevmgmt -l` shows, in their printed order."""
    attrs = {
        "CONFIG": entry.klass,
        "EXIST": "YES" if exists else "NO",
        "DEVTYPE": entry.attrs.get("DEVTYPE", "UNKNOWN"),
        "SHARE": entry.attrs.get("SHARE", "NO"),
        "PRESERVE": entry.attrs.get("PRESERVE", "NO"),
    }
    for key in sorted(entry.attrs):
        attrs.setdefault(key, entry.attrs[key])
    return attrs


def devmgmt_line(entry: DevEntry, exists: bool, users: Sequence[str]) -> str:
    """`hpvmdevmgmt -l`: names:attrs:dependents:id [obs R63]."""
    names = ",".join([entry.name, *entry.aliases])
    attrs = format_attrs(devmgmt_attrs(entry, exists))
    return f"{names}:{attrs}:{','.join(sorted(users))}:{entry.uid}"
