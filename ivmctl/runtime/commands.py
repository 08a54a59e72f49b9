"""The hpvm* front end: argv of each command -> the rules -> what the real command prints.

Each handler runs inside the world's transaction for one command. It prints by appending
to ctx.out/ctx.err and refuses by raising Refused; it never sleeps or reads the clock
itself (ctx.now is the command's time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from ivmctl.errors import InsufficientResources, RuleViolation
from ivmctl.resources import NetworkResource, StorageResource, parse_resource
from ivmctl.rules import (
    LOCALNET,
    PORT_RANGE,
    VLAN_RANGE,
    ChangeKind,
    device_change_kind,
    guest_footprint_mb,
    host_pool_mb,
    landing_port,
    limits_for,
    name_problem,
    offline_migration_problem,
    online_migration_problem,
    parse_memory_mb,
)
from ivmctl.runtime import devices, formats
from ivmctl.runtime.context import EXIT_NOT_FOUND, Ctx, Refused
from ivmctl.runtime.data import (
    Guest,
    Host,
    Nic,
    Storage,
    all_dependents,
    dependents,
    dev_entries,
    dev_entry,
    devices_of,
    format_attrs,
    guest_by_name,
    host_by_name,
    insert_guest,
    nics_of,
    save_devices,
    storage_of,
    update_guest,
    update_host,
    used_ports,
    users_of_path,
    vswitch_by_name,
)
from ivmctl.runtime.guests import (
    CHARACTERISTIC_OPTS,
    apply_characteristics,
    capacity_of_host,
    demand_of,
    new_guest,
    parse_characteristics,
    placement_of,
    save_capacity,
)

SSH_ERROR = (
    "hpvmmigrate: SSH execution error. Make sure ssh is setup right on both source and "
    "target systems."
)
# hpvm* commands of the real product that the emulator does not model
KNOWN_UNMODELLED = frozenset(
    {
        "hpvmconsole",
        "hpvmhwmgmt",
        "hpvmsuspend",
        "hpvmresume",
        "hpvmhostrdev",
        "hpvminfo",
        "hpvmmgmt",
        "hpvmcollect",
        "hpvmupgrade",
        "hpvmsar",
        "hpvmpubapi",
        "vparcreate",
        "vparmodify",
        "vparremove",
        "vparstatus",
        "vparboot",
        "vparreset",
        "hpvmhostgdev",
    }
)


def _resource(ctx: Ctx, name: str, text: str) -> StorageResource | NetworkResource:
    try:
        return parse_resource(text)
    except RuleViolation as exc:
        raise ctx.refuse(name, exc.summary + ".") from None


def _with_summary(refused: Refused, ctx: Ctx, summary: str) -> Refused:
    """Guest-changing commands end a refusal with their summary line [obs R18]."""
    if refused.exit_code == 1:
        refused.lines.append(f"{ctx.command}: {summary}")
    return refused


# --------------------------------------------------------------------------------------------
# hpvmcreate / hpvmmodify / hpvmclone
# --------------------------------------------------------------------------------------------
def _check_new_name(ctx: Ctx, name: str) -> None:
    problem = name_problem(name)
    if problem:
        raise ctx.refuse(name, f"Invalid virtual machine name: {problem}.")
    if guest_by_name(ctx.conn, ctx.host.id, name) is not None:
        raise ctx.refuse(name, f"A virtual machine named '{name}' already exists.")


def _save_new_guest(ctx: Ctx, g: Guest, storage: list[Storage], nics: list[Nic]) -> Guest:
    guest_id = insert_guest(ctx.conn, g)
    save_devices(ctx.conn, ctx.host.id, guest_id, [], storage, [], nics)
    devices.ensure_entries(ctx, storage)
    update_host(ctx.conn, ctx.host.id, next_vm_number=g.number + 1)
    return replace(g, id=guest_id)


def hpvmcreate(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:a:F" + CHARACTERISTIC_OPTS)
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    name = next((v for o, v in opts if o == "-P"), None)
    if name is None:
        raise ctx.usage("-P <name> is required.")
    try:
        _check_new_name(ctx, name)
        g = apply_characteristics(ctx, new_guest(ctx, name), parse_characteristics(ctx, opts))
        storage: list[Storage] = []
        nics: list[Nic] = []
        for opt, value in opts:
            if opt == "-a":
                _add_device(ctx, None, g, value, storage, nics)
    except Refused as refused:
        raise _with_summary(refused, ctx, "Unable to create the guest.") from None
    _save_new_guest(ctx, g, storage, nics)


def _add_device(
    ctx: Ctx, current: Guest | None, g: Guest, text: str, storage: list[Storage], nics: list[Nic]
) -> None:
    res = _resource(ctx, g.name, text)
    if g.state == "On" and device_change_kind(res.adapter) is ChangeKind.NEEDS_OFF:
        raise ctx.refuse(
            g.name,
            f"Cannot add a {res.adapter} device while the guest is "
            "running; only AVIO devices are added online.",
        )
    if isinstance(res, StorageResource):
        devices.add_storage(ctx, current, g.name, res, storage, nics)
    else:
        devices.add_nic(ctx, current, g.name, g.uuid, res, storage, nics)


def hpvmmodify(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:a:d:m:F" + CHARACTERISTIC_OPTS)
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    guest = ctx.select_guest(opts)
    try:
        _modify(ctx, guest, opts)
    except Refused as refused:
        raise _with_summary(refused, ctx, "Unable to modify the guest.") from None


def _modify(ctx: Ctx, guest: Guest, opts: Sequence[tuple[str, str]]) -> None:
    chars = parse_characteristics(ctx, opts)
    if not (guest.modifiable and guest.registered):
        flags_only = all(
            o == "-x" and v.split("=")[0].strip().lower().endswith("_status")
            for o, v in opts
            if o not in ("-P", "-p", "-F")
        )
        if not flags_only:
            raise ctx.refuse(
                guest.name,
                "The guest is not modifiable (Not Runnable or "
                "modify_status disabled); re-enable it with -x "
                "register_status=enabled.",
            )
    g = apply_characteristics(ctx, guest, chars)
    before_storage = storage_of(ctx.conn, guest.id)
    before_nics = nics_of(ctx.conn, guest.id)
    storage = list(before_storage)
    nics = list(before_nics)
    removed: list[str] = []
    running = guest.state == "On"
    for opt, value in opts:
        if opt == "-a":
            _add_device(ctx, guest, g, value, storage, nics)
        elif opt == "-d":
            res = _resource(ctx, g.name, value)
            if running and device_change_kind(res.adapter) is ChangeKind.NEEDS_OFF:
                raise ctx.refuse(
                    g.name,
                    f"Cannot delete a {res.adapter} device while the guest "
                    "is running; only AVIO devices are removed online.",
                )
            if isinstance(res, StorageResource):
                dev = devices.find_storage(ctx, g.name, res, storage)
                storage.remove(dev)
                removed.append(dev.path)
            else:
                nics.remove(devices.find_nic(ctx, g.name, res, nics))
        elif opt == "-m":
            res = _resource(ctx, g.name, value)
            if running:
                raise ctx.refuse(
                    g.name,
                    "Cannot modify a device while the guest is running; stop the guest first.",
                )
            if isinstance(res, StorageResource):
                dev = devices.find_storage(ctx, g.name, res, storage)
                if res.adapter != dev.adapter:
                    raise ctx.not_implemented("changing a storage adapter type with -m")
                if res.path != dev.path:
                    problem = devices.backing_refusal(ctx, g.name, res) or devices.sharing_refusal(
                        ctx, guest, g.name, res.path
                    )
                    if problem is not None:
                        raise problem
                    removed.append(dev.path)
                storage[storage.index(dev)] = devices.retarget(dev, res)
            else:
                old = devices.find_nic(ctx, g.name, res, nics, modify=True)
                devices.add_nic(
                    ctx,
                    guest,
                    g.name,
                    g.uuid,
                    replace(res, bus=None, slot=None),
                    storage,
                    nics,
                    replacing=old,
                )
    if running and (g.ent_min, g.ent_max) != (guest.ent_min, guest.ent_max):
        g = replace(g, cores=_change_running_entitlement(ctx, guest, g))
    update_guest(ctx.conn, g)
    save_devices(ctx.conn, ctx.host.id, guest.id, before_storage, storage, before_nics, nics)
    devices.ensure_entries(ctx, storage)
    devices.clean_up_entries(ctx, removed)


def _change_running_entitlement(ctx: Ctx, guest: Guest, g: Guest) -> tuple[int, ...]:
    """Entitlement changes online, if the cores can honour it [R6][R31]."""
    capacity = capacity_of_host(ctx.host, guest)
    try:
        capacity = capacity.with_entitlement(guest.name, g.ent_min)
    except InsufficientResources as exc:
        raise ctx.refuse(g.name, f"Insufficient CPU entitlement: {exc.summary}.") from None
    save_capacity(ctx, ctx.host, capacity)
    return placement_of(capacity, guest.name).cores


def hpvmclone(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:N:a:d:b:F" + CHARACTERISTIC_OPTS)
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    source = ctx.select_guest(opts)
    name = next((v for o, v in opts if o == "-N"), None)
    if name is None:
        raise ctx.usage("-N <new name> is required.")
    try:
        _clone(ctx, source, name, opts)
    except Refused as refused:
        raise _with_summary(refused, ctx, "Unable to clone the guest.") from None


def _clone(ctx: Ctx, source: Guest, name: str, opts: Sequence[tuple[str, str]]) -> None:
    _check_new_name(ctx, name)
    if source.state == "On":
        raise ctx.refuse(source.name, "The source guest must be Off to be cloned.")
    fresh = new_guest(ctx, name)
    g = replace(
        source,
        id=0,
        name=name,
        number=fresh.number,
        uuid=fresh.uuid,
        label=source.label,
        runnable=True,
        modifiable=True,
        visible=True,
        registered=True,
        state="Off",
        started_at=None,
        cores=(),
        footprint_mb=None,
    )
    g = apply_characteristics(ctx, g, parse_characteristics(ctx, opts))
    # the clone references the same backing stores [obs R20]; starting both is refused
    storage = [replace(d, id=None) for d in storage_of(ctx.conn, source.id)]
    nics: list[Nic] = []
    for nic in nics_of(ctx.conn, source.id):
        net = NetworkResource(adapter=nic.adapter, vswitch=nic.vswitch, bus=nic.bus, slot=nic.slot)
        devices.add_nic(ctx, None, name, g.uuid, net, storage, nics)
    copied = False
    for opt, value in opts:
        if opt == "-d":
            res = _resource(ctx, name, value)
            if isinstance(res, StorageResource):
                storage.remove(devices.find_storage(ctx, name, res, storage))
            else:
                nics.remove(devices.find_nic(ctx, name, res, nics))
        elif opt == "-b":
            res = _resource(ctx, name, value)
            if not isinstance(res, StorageResource) or res.bus is None:
                raise ctx.refuse(
                    name,
                    "-b needs a storage statement with the bus,slot[,target] "
                    "of the device to copy and its new backing.",
                )
            dev = devices.find_storage(ctx, name, res, storage)
            _copy_backing(ctx, name, dev, res)
            storage[storage.index(dev)] = devices.retarget(dev, res)
            copied = True
        elif opt == "-a":
            _add_device(ctx, None, g, value, storage, nics)
    _save_new_guest(ctx, g, storage, nics)
    if copied:
        ctx.out.append("hpvmclone: Virtual storage cloned successfully.")


def _copy_backing(ctx: Ctx, name: str, dev: Storage, res: StorageResource) -> None:
    """hpvmclone -b: copy the source's storage into a new backing store [obs R20]."""
    if res.backing == "file":
        if devices.is_present(ctx.conn, ctx.host.id, "file", res.path):
            raise ctx.refuse(name, f"The clone target '{res.path}' already exists.")
        size = 0
        if dev.backing == "file":
            row = ctx.conn.execute(
                "SELECT size_mb FROM files WHERE host_id=? AND path=?", (ctx.host.id, dev.path)
            ).fetchone()
            size = int(row[0]) if row else 0
        ctx.conn.execute(
            "INSERT INTO files (host_id, path, size_mb) VALUES (?, ?, ?)",
            (ctx.host.id, res.path, size or 1024),
        )
        return
    problem = devices.backing_refusal(ctx, name, res) or devices.sharing_refusal(
        ctx, None, name, res.path
    )
    if problem is not None:
        raise problem


# --------------------------------------------------------------------------------------------
# hpvmstart / hpvmstop / hpvmremove
# --------------------------------------------------------------------------------------------
def hpvmstart(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:q")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    guest = ctx.select_guest(opts)
    if guest.state == "On":
        raise ctx.refuse(guest.name, "The virtual machine is already running.")
    if guest.not_runnable:
        raise ctx.refuse(
            guest.name, "The virtual machine is not runnable (Off (NR)); it cannot be started."
        )
    problems = start_problems(ctx, ctx.host, guest)
    if problems:
        raise Refused(*problems)
    if ctx.host.fail_starts > 0:
        host_id, left = ctx.host.id, ctx.host.fail_starts - 1
        ctx.keep_on_failure.append(
            lambda conn: conn.execute("UPDATE hosts SET fail_starts=? WHERE id=?", (left, host_id))
        )
        raise ctx.refuse(
            guest.name,
            "Unable to start the virtual machine: the VM Host failed "
            "to initialise it (injected fault).",
        )
    boot(ctx, ctx.host, guest, started_at=ctx.now)
    ctx.out.append(f"hpvmstart: Successful start initiation of guest '{guest.name}'")


def start_problems(ctx: Ctx, host: Host, guest: Guest, *, migrating: bool = False) -> list[str]:
    """Why `guest` cannot run on `host` now: devices, MACs, admission [R10][R51][obs R49]."""
    problems: list[str] = []
    for dev in storage_of(ctx.conn, guest.id) if not migrating else []:
        if not devices.is_present(ctx.conn, host.id, dev.backing, dev.path):
            problems.append(
                ctx.error(guest.name, f"Device '{dev.path}' does not exist on this VM Host.")
            )
            continue
        if dev.backing == "null" or devices.shared_entry(dev_entry(ctx.conn, host.id, dev.path)):
            continue
        for user in users_of_path(ctx.conn, host.id, dev.path):
            if user.id != guest.id and user.state == "On":
                problems.append(
                    ctx.error(
                        guest.name, f"Device '{dev.path}' is in use by running guest '{user.name}'."
                    )
                )
    if not migrating:
        warnings: list[tuple[str, str]] = []
        for nic in nics_of(ctx.conn, guest.id):
            vswitch = vswitch_by_name(ctx.conn, host.id, nic.vswitch)
            if vswitch is not None and vswitch.state != "Up":
                warnings.append(
                    (
                        nic.vswitch,
                        f"vswitch '{nic.vswitch}' is not active; the guest's network "
                        "device on it will not work until it is booted.",
                    )
                )
            owner = ctx.conn.execute(
                "SELECT g.name FROM nics n JOIN guests g ON g.id = n.guest_id "
                "WHERE n.mac=? AND g.state='On' AND g.id != ? LIMIT 1",
                (nic.mac, guest.id),
            ).fetchone()
            if owner is not None:
                warnings.append(
                    (nic.vswitch, f"Guest MAC address for switch {nic.vswitch} is in use.")
                )
                problems.append(
                    ctx.error(
                        guest.name,
                        f"MAC address of the vNIC on '{nic.vswitch}' is in use by '{owner[0]}'.",
                    )
                )
        if warnings:
            ctx.out.append(f"HPVM guest {guest.name} configuration problems")
            ctx.out += [
                f"    Warning {i} on item {item}: {text}"
                for i, (item, text) in enumerate(warnings, 1)
            ]
            ctx.out.append(f"These problems may prevent HPVM guest {guest.name} from starting.")
    capacity = capacity_of_host(host)
    for problem in capacity.problems(demand_of(guest, for_migration=migrating)):
        problems.append(
            ctx.error(guest.name, f"Insufficient resources on VM Host '{host.name}': {problem}.")
        )
    return problems


def boot(ctx: Ctx, host: Host, guest: Guest, *, started_at: float) -> None:
    """Admit a guest on a host (already checked) and mark it On."""
    capacity = capacity_of_host(host).admit(demand_of(guest))
    placement = placement_of(capacity, guest.name)
    save_capacity(ctx, host, capacity)
    update_guest(
        ctx.conn,
        replace(
            guest,
            state="On",
            started_at=started_at,
            cores=placement.cores,
            footprint_mb=placement.footprint_mb,
        ),
    )


def halt(ctx: Ctx, host: Host, guest: Guest) -> Guest:
    """Release a running guest's cores and memory; returns the guest Off."""
    if guest.state == "On":
        save_capacity(ctx, host, capacity_of_host(host, guest).release(guest.name))
    off = replace(guest, state="Off", started_at=None, cores=(), footprint_mb=None)
    update_guest(ctx.conn, off)
    return off


def hpvmstop(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:gFq")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    guest = ctx.select_guest(opts)
    if guest.state != "On":
        raise ctx.refuse(guest.name, "The virtual machine is not running.")
    halt(ctx, ctx.host, guest)


def hpvmremove(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:Fq")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    guest = ctx.select_guest(opts)
    if guest.state == "On":
        raise ctx.refuse(guest.name, "The virtual machine is running; stop it before removing it.")
    remove_guest(ctx, guest)


def remove_guest(ctx: Ctx, guest: Guest) -> None:
    paths = [d.path for d in storage_of(ctx.conn, guest.id)]
    ctx.conn.execute("DELETE FROM guests WHERE id=?", (guest.id,))
    devices.clean_up_entries(ctx, paths)


# --------------------------------------------------------------------------------------------
# hpvmmigrate
# --------------------------------------------------------------------------------------------
def hpvmmigrate(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:h:obDdsq")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    flags = {o for o, _ in opts}
    target_name = next((v for o, v in opts if o == "-h"), None)
    if target_name is None:
        raise ctx.usage("-h <target VM Host> is required.")
    guest = ctx.select_guest(opts)
    target = host_by_name(ctx.conn, target_name)
    if target is None or target.unreachable:
        raise Refused(SSH_ERROR)
    if target.id == ctx.host.id:
        raise ctx.refuse(guest.name, "The target VM Host is this VM Host.")
    online = "-o" in flags
    tctx = Ctx(conn=ctx.conn, host=target, command=ctx.command, now=ctx.now)
    problems = migration_problems(
        ctx, tctx, guest, online=online, boot_after="-b" in flags, stop_first="-d" in flags
    )
    if problems:
        raise Refused(*problems)
    if "-s" in flags:
        ctx.out.append(f"hpvmmigrate: Guest '{guest.name}' can be migrated to '{target.name}'.")
        return
    if ctx.host.abort_migrations > 0:
        host_id, left = ctx.host.id, ctx.host.abort_migrations - 1
        ctx.keep_on_failure.append(
            lambda conn: conn.execute(
                "UPDATE hosts SET abort_migrations=? WHERE id=?", (left, host_id)
            )
        )
        where = "keeps running" if guest.state == "On" else "stays"
        raise ctx.refuse(
            guest.name,
            f"Migration aborted (injected fault); the guest {where} on the source VM Host.",
        )
    _migrate(ctx, tctx, guest, online=online, boot_after="-b" in flags, delete="-D" in flags)
    ctx.out.append("hpvmmigrate: Guest migrated successfully.")


def migration_problems(
    ctx: Ctx, tctx: Ctx, guest: Guest, *, online: bool, boot_after: bool, stop_first: bool
) -> list[str]:
    """Every reason the migration cannot go ahead [R9][R10][R12][R46][R47][obs R21]."""
    src, dst = ctx.host, tctx.host
    name = guest.name
    out: list[str] = []
    if guest.not_runnable:
        out.append(
            ctx.error(name, "The guest is Not Runnable on this VM Host; it cannot be migrated.")
        )
    if online:
        if guest.vm_type == "vpar":
            out.append(ctx.error(name, "vPars can only be migrated offline."))
        if not guest.online_migration:
            out.append(
                ctx.error(
                    name, "Online migration is disabled for this guest (online_migration=disabled)."
                )
            )
        if guest.state != "On":
            out.append(ctx.error(name, "The guest must be running for an online migration."))
        problem = online_migration_problem(src.version, dst.version)
        if problem:
            out.append(ctx.error(name, problem[0].upper() + problem[1:] + "."))
    else:
        if guest.state == "On" and not stop_first:
            out.append(
                ctx.error(
                    name,
                    "The guest must be Off for an offline migration (use -o "
                    "to migrate it online or -d to stop it first).",
                )
            )
        problem = offline_migration_problem(src.version, dst.version)
        if problem:
            out.append(ctx.error(name, problem[0].upper() + problem[1:] + "."))
    existing = guest_by_name(ctx.conn, dst.id, name)
    if existing is not None and not (
        existing.uuid == guest.uuid and existing.not_runnable and existing.state == "Off"
    ):
        out.append(
            ctx.error(name, f"A guest named '{name}' already exists on VM Host '{dst.name}'.")
        )
    limits = limits_for(dst.version)
    if guest.vcpus > limits.max_vcpus or guest.memory_mb > limits.max_memory_mb:
        out.append(
            ctx.error(
                name, f"The guest exceeds the limits of Integrity VM {dst.version} on the target."
            )
        )
    vswitch_failed = False
    for nic in nics_of(ctx.conn, guest.id):
        there = vswitch_by_name(ctx.conn, dst.id, nic.vswitch)
        here = vswitch_by_name(ctx.conn, src.id, nic.vswitch)
        if there is None or (here is not None and (here.nic is None) != (there.nic is None)):
            vswitch_failed = True
            out.append(
                ctx.error(
                    name,
                    f"vswitch '{nic.vswitch}' is missing or bound "
                    f"differently on VM Host '{dst.name}'.",
                )
            )
    if vswitch_failed:
        out.append("hpvmmigrate: Target VM Host error - vswitch validation failed.")
    missing = False
    for dev in storage_of(ctx.conn, guest.id):
        if dev.backing == "null":
            continue
        if devices.shared_entry(dev_entry(ctx.conn, src.id, dev.path)):
            out.append(
                f"hpvmmigrate: Device {dev.path} is shared.  Guest with shared storage "
                "devices cannot be migrated."
            )
            continue
        if not devices.is_present(ctx.conn, dst.id, dev.backing, dev.path):
            missing = True
            out.append(
                ctx.error(name, f"Device '{dev.path}' does not exist on VM Host '{dst.name}'.")
            )
            continue
        refusal = devices.sharing_refusal(tctx, guest, name, dev.path)
        if refusal is not None:
            out += refusal.lines
    if missing:
        out += [
            "hpvmmigrate: Target VM Host error - Device does not exist.",
            "hpvmmigrate: See HPVM command log file on target VM Host for more detail.",
        ]
    if online or boot_after:
        for problem in capacity_of_host(dst).problems(demand_of(guest, for_migration=online)):
            out.append(
                ctx.error(name, f"Insufficient resources on VM Host '{dst.name}': {problem}.")
            )
    else:
        demand = demand_of(guest)
        footprint = guest_footprint_mb(demand.vcpus, demand.memory_mb, vpar=demand.vpar)
        if guest.vcpus > dst.cores or footprint > host_pool_mb(dst.memory_mb):
            out.append(
                ctx.error(
                    name,
                    f"VM Host '{dst.name}' can never run the guest: it has "
                    f"{dst.cores} cores and a {host_pool_mb(dst.memory_mb)} MB "
                    "memory pool.",
                )
            )
    return out


def _migrate(
    ctx: Ctx, tctx: Ctx, guest: Guest, *, online: bool, boot_after: bool, delete: bool
) -> None:
    src, dst = ctx.host, tctx.host
    existing = guest_by_name(ctx.conn, dst.id, guest.name)
    if existing is not None:  # a Not Runnable copy of this very guest: re-register it
        remove_guest(tctx, existing)
        dst = host_by_name(ctx.conn, dst.name) or dst
    storage = [replace(d, id=None) for d in storage_of(ctx.conn, guest.id)]
    nics: list[Nic] = []
    for nic in nics_of(ctx.conn, guest.id):
        vs = vswitch_by_name(ctx.conn, dst.id, nic.vswitch)
        assert vs is not None
        taken = used_ports(ctx.conn, vs.id) | {n.port for n in nics if n.vswitch == nic.vswitch}
        port = landing_port(nic.port, taken)
        if port is None:
            raise ctx.refuse(guest.name, f"The vswitch '{nic.vswitch}' has no free port.")
        nics.append(replace(nic, id=None, port=port))
    moved = replace(
        guest,
        id=0,
        host_id=dst.id,
        number=dst.next_vm_number,
        state="Off",
        started_at=None,
        cores=(),
        footprint_mb=None,
        runnable=True,
        modifiable=True,
        visible=True,
        registered=True,
    )
    moved_id = insert_guest(ctx.conn, moved)
    moved = replace(moved, id=moved_id)
    save_devices(ctx.conn, dst.id, moved_id, [], storage, [], nics)
    devices.ensure_entries(tctx, storage)
    update_host(ctx.conn, dst.id, next_vm_number=moved.number + 1)
    dst = host_by_name(ctx.conn, dst.name) or dst
    left = halt(ctx, src, guest)
    if online:
        # the guest keeps running: it is already past EFI on the target
        boot(tctx, dst, moved, started_at=guest.started_at or ctx.now)
    elif boot_after:
        boot(tctx, dst, moved, started_at=ctx.now)
    if delete:
        remove_guest(ctx, left)
    else:
        update_guest(ctx.conn, replace(left, runnable=False, modifiable=False, registered=False))


# --------------------------------------------------------------------------------------------
# hpvmstatus
# --------------------------------------------------------------------------------------------
def hpvmstatus(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "P:p:VdMXsr")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    flags = {o for o, _ in opts}
    selected = ctx.select_guest(opts) if flags & {"-P", "-p"} else None
    host, now = ctx.host, ctx.now
    if "-s" in flags:
        running = ctx.conn.execute(
            "SELECT COUNT(*) FROM guests WHERE host_id=? AND state='On'", (host.id,)
        ).fetchone()[0]
        ctx.out += formats.server(host, int(running))
        return
    guests = [selected] if selected else ctx.shared().guests()
    if "-M" in flags:
        counts = _counts(ctx, guests)
        for g in guests:
            n_st, n_net = counts.get(g.id, (0, 0))
            ctx.out.append(formats.machine_line(host, g, n_st, n_net, now))
        return
    if "-X" in flags:
        listed = (
            ctx.shared().devices() if selected is None else devices_of(ctx.conn, host.id, guests)
        )
        ctx.out += formats.xml(host, guests, now, listed)
        return
    if "-r" in flags:
        ctx.out += formats.resources(host, guests, now)
        return
    if flags & {"-d", "-V"}:
        if selected is None:
            raise ctx.usage("-d and -V need -P <name> or -p <number>.")
        storage, nics = storage_of(ctx.conn, selected.id), nics_of(ctx.conn, selected.id)
        if "-d" in flags:
            ctx.out += formats.statements(storage, nics)
        else:
            ctx.out += formats.verbose(host, selected, storage, nics, now)
        return
    if selected is not None:
        storage, nics = storage_of(ctx.conn, selected.id), nics_of(ctx.conn, selected.id)
        ctx.out += formats.detail(host, selected, storage, nics, now)
        return
    counts = ctx.shared().device_counts()
    rows = [
        formats.SummaryRow(
            guest=g, n_storage=counts.get(g.id, (0, 0))[0], n_net=counts.get(g.id, (0, 0))[1]
        )
        for g in guests
        if g.visible
    ]
    ctx.out += formats.summary(host, rows, now)


def _counts(ctx: Ctx, guests: Sequence[Guest]) -> dict[int, tuple[int, int]]:
    if len(guests) == 1:
        g = guests[0]
        return {g.id: (len(storage_of(ctx.conn, g.id)), len(nics_of(ctx.conn, g.id)))}
    return ctx.shared().device_counts()


# --------------------------------------------------------------------------------------------
# hpvmnet
# --------------------------------------------------------------------------------------------
def hpvmnet(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "S:cbhrdn:u:F")
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    flags = {o for o, _ in opts}
    name = next((v for o, v in opts if o == "-S"), None)
    actions = flags & {"-c", "-b", "-h", "-r", "-d", "-u"}
    if len(actions) > 1:
        raise ctx.usage("Give only one of -c, -b, -h, -r, -d, -u.")
    if name is None:
        if actions or "-n" in flags:
            raise ctx.usage("-S <vswitch> is required.")
        ctx.out += formats.vswitch_table(ctx.host, ctx.shared().vswitches())
        return
    if "-c" in flags:
        _vswitch_create(ctx, name, next((v for o, v in opts if o == "-n"), None))
        return
    vswitch = ctx.shared().vswitch(name)  # read before any change this command makes
    if vswitch is None:
        raise ctx.refuse(None, f"ERROR: The vswitch '{name}' does not exist.")
    if "-n" in flags:
        raise ctx.usage("-n is only valid with -c.")
    if "-b" in flags:
        if vswitch.state == "Up":
            raise ctx.refuse(None, f"ERROR: The vswitch '{name}' is already active.")
        ctx.conn.execute("UPDATE vswitches SET state='Up' WHERE id=?", (vswitch.id,))
    elif "-r" in flags:
        ctx.conn.execute("UPDATE vswitches SET state='Up' WHERE id=?", (vswitch.id,))
    elif "-h" in flags:
        if name == LOCALNET:
            raise ctx.refuse(None, "ERROR: The vswitch 'localnet' cannot be halted.")
        if vswitch.state != "Up":
            raise ctx.refuse(None, f"ERROR: The vswitch '{name}' is not active.")
        ctx.conn.execute("UPDATE vswitches SET state='Down' WHERE id=?", (vswitch.id,))
    elif "-d" in flags:
        _vswitch_delete(ctx, name, vswitch.id)
    elif "-u" in flags:
        _vswitch_vlan(ctx, name, vswitch.id, next(v for o, v in opts if o == "-u"))
    else:
        ctx.out += formats.vswitch_table(ctx.host, [vswitch])
        ctx.out.append("")
        ctx.out += formats.port_table(_port_rows(ctx, vswitch.id))


def _vswitch_create(ctx: Ctx, name: str, ppa: str | None) -> None:
    problem = name_problem(name)
    if problem:
        raise ctx.refuse(None, f"ERROR: Invalid vswitch name: {problem}.")
    if vswitch_by_name(ctx.conn, ctx.host.id, name) is not None:
        raise ctx.refuse(None, f"ERROR: The vswitch '{name}' already exists.")
    nic = None
    if ppa is not None:
        nic = ppa if ppa.startswith("lan") else f"lan{ppa}"
        if not nic.removeprefix("lan").isdigit() or nic not in ctx.host.nics:
            raise ctx.refuse(None, f"ERROR: The VM Host has no network interface {nic}.")
    ctx.conn.execute(
        "INSERT INTO vswitches (host_id, name, number, nic, state) VALUES (?, ?, ?, ?, 'Down')",
        (ctx.host.id, name, ctx.host.next_vswitch_number, nic),
    )
    update_host(ctx.conn, ctx.host.id, next_vswitch_number=ctx.host.next_vswitch_number + 1)


def _vswitch_delete(ctx: Ctx, name: str, vswitch_id: int) -> None:
    if name == LOCALNET:
        raise ctx.refuse(None, "ERROR: The vswitch 'localnet' cannot be deleted.")
    users = [
        r[0]
        for r in ctx.conn.execute(
            "SELECT DISTINCT g.name FROM nics n JOIN guests g ON g.id = n.guest_id "
            "WHERE n.vswitch_id=? ORDER BY g.name",
            (vswitch_id,),
        )
    ]
    if users:
        raise ctx.refuse(
            None,
            f"ERROR: The vswitch '{name}' is used by guest(s) "
            f"{', '.join(users)}; remove their network devices first.",
        )
    ctx.conn.execute("DELETE FROM vswitches WHERE id=?", (vswitch_id,))


def _vswitch_vlan(ctx: Ctx, name: str, vswitch_id: int, spec: str) -> None:
    parts = spec.split(":")
    if len(parts) != 4 or parts[0].lower() != "portid" or parts[2].lower() != "vlanid":
        raise ctx.usage("-u expects portid:<port>:vlanid:<vlan>|none.")
    try:
        port = int(parts[1])
        vlan = None if parts[3].lower() == "none" else int(parts[3])
    except ValueError:
        raise ctx.usage(f"Invalid port or VLAN in '{spec}'.") from None
    if port not in PORT_RANGE:
        raise ctx.refuse(None, f"ERROR: Port {port} is outside 0..{PORT_RANGE.stop - 1}.")
    if vlan is not None and vlan not in VLAN_RANGE:
        raise ctx.refuse(None, f"ERROR: VLAN id {vlan} is outside 0..{VLAN_RANGE.stop - 1}.")
    ctx.conn.execute("DELETE FROM port_vlans WHERE vswitch_id=? AND port=?", (vswitch_id, port))
    if vlan is not None:
        ctx.conn.execute(
            "INSERT INTO port_vlans (vswitch_id, port, vlan) VALUES (?, ?, ?)",
            (vswitch_id, port, vlan),
        )


def _port_rows(ctx: Ctx, vswitch_id: int) -> list[formats.PortRow]:
    uses, vlans = ctx.shared().ports(vswitch_id)
    rows: dict[int, formats.PortRow] = {}
    for port, adapter, guest, state in uses:
        on = state == "On"
        rows[port] = formats.PortRow(
            port=port,
            state="Active" if on else "Reserved",
            adapter=adapter,
            vlan=vlans.get(port),
            reserved=guest,
            active=guest if on else "",
        )
    for port, vlan in vlans.items():
        if port not in rows:
            rows[port] = formats.PortRow(
                port=port, state="Available", adapter="", vlan=vlan, reserved="", active=""
            )
    return [rows[p] for p in sorted(rows)]


# --------------------------------------------------------------------------------------------
# hpvmdevmgmt
# --------------------------------------------------------------------------------------------
CLASSES = ("gdev", "rdev", "server", "env")
MODIFIABLE_ATTRS = {
    "SHARE": ("YES", "NO"),
    "PRESERVE": ("YES", "NO"),
    "USAGE": ("DISK", "DVD"),
    "IGNOREWWID": ("YES", "NO"),
}


def hpvmdevmgmt(ctx: Ctx, args: Sequence[str]) -> None:
    opts, rest = ctx.getopt(args, "l:a:m:d:S:")
    actions = [(o, v) for o, v in opts if o in ("-l", "-a", "-m", "-d", "-S")]
    if len(actions) != 1:
        raise ctx.usage("Give exactly one of -l, -a, -m, -d, -S.")
    opt, value = actions[0]
    if opt == "-S":
        if len(rest) != 1:
            raise ctx.usage("-S expects a size and a file name.")
        _create_file(ctx, value, rest[0])
        return
    if rest:
        raise ctx.usage(f"Unexpected argument '{rest[0]}'.")
    klass, _, spec = value.partition(":")
    if klass not in (*CLASSES, "all") or (klass == "all" and opt != "-l"):
        raise ctx.usage(f"Unknown device class '{klass}'; use gdev, rdev, server or env.")
    handlers: dict[str, Callable[[Ctx, str, str], None]] = {
        "-l": _devmgmt_list,
        "-a": _devmgmt_add,
        "-m": _devmgmt_modify,
        "-d": _devmgmt_delete,
    }
    handlers[opt](ctx, klass, spec)


def _create_file(ctx: Ctx, size: str, path: str) -> None:
    try:
        size_mb = parse_memory_mb(size)
    except RuleViolation as exc:
        raise ctx.usage(f"Invalid size '{size}': {exc.summary}.") from None
    if devices.path_kind(path) != "file":
        raise ctx.refuse(None, f"ERROR: '{path}' is not a file path on a VxFS file system.")
    row = ctx.conn.execute(
        "SELECT size_mb FROM files WHERE host_id=? AND path=?", (ctx.host.id, path)
    ).fetchone()
    if row is None:
        ctx.conn.execute(
            "INSERT INTO files (host_id, path, size_mb) VALUES (?, ?, ?)",
            (ctx.host.id, path, size_mb),
        )
    elif int(row[0]) < size_mb:  # -S pre-extends; it never shrinks a file
        ctx.conn.execute(
            "UPDATE files SET size_mb=? WHERE host_id=? AND path=?", (size_mb, ctx.host.id, path)
        )
    ctx.conn.execute("DELETE FROM unpresented WHERE host_id=? AND path=?", (ctx.host.id, path))


def _devmgmt_list(ctx: Ctx, klass: str, spec: str) -> None:
    """`-l CLASS`, `-l CLASS:entry`, `-l CLASS:depend:guest`, `-l CLASS:ATTR=value` [R16]."""
    scope = None if klass == "all" else klass
    if spec.startswith("depend:") or ("=" in spec and not spec.startswith("/")):
        entries = dev_entries(ctx.conn, ctx.host.id, scope)
    elif spec:
        entry = dev_entry(ctx.conn, ctx.host.id, spec)
        if entry is None or (scope is not None and entry.klass != scope):
            raise ctx.refuse(None, f"ERROR: No {klass} entry '{spec}'.")
        entries = [entry]
    else:
        entries = dev_entries(ctx.conn, ctx.host.id, scope)
    # read once for the host: a listing of every entry would otherwise cost queries each
    users_of = all_dependents(ctx.conn, ctx.host.id)
    present = devices.presence(ctx.conn, ctx.host.id)
    for entry in entries:
        users = users_of.get(entry.name, [])
        exists = present(entry.name)
        if spec.startswith("depend:") and spec.removeprefix("depend:") not in users:
            continue
        if "=" in spec and not spec.startswith(("/", "depend:")):
            key, _, value = spec.partition("=")
            if formats.devmgmt_attrs(entry, exists).get(key.upper()) != value.upper():
                continue
        ctx.out.append(formats.devmgmt_line(entry, exists, users))


def _split_attr(ctx: Ctx, spec: str) -> tuple[str, str | None]:
    """`entry[:attr:ATTR=value]` -> (entry, "ATTR=value" or None)."""
    entry, sep, attr = spec.partition(":attr:")
    if not entry:
        raise ctx.usage("An entry name is required.")
    return entry, attr if sep else None


def _set_attr(ctx: Ctx, attrs: dict[str, str], text: str) -> None:
    key, sep, value = text.partition("=")
    key, value = key.upper(), value.upper()
    if not sep or key not in MODIFIABLE_ATTRS or value not in MODIFIABLE_ATTRS[key]:
        raise ctx.refuse(
            None,
            f"ERROR: Invalid attribute '{text}'; settable: "
            + ", ".join(f"{k}={'|'.join(v)}" for k, v in MODIFIABLE_ATTRS.items())
            + ".",
        )
    attrs[key] = value


def _devmgmt_add(ctx: Ctx, klass: str, spec: str) -> None:
    name, attr = _split_attr(ctx, spec)
    users = dependents(ctx.conn, ctx.host.id, name)
    if klass != "gdev" and users:
        raise ctx.refuse(
            None,
            f"ERROR: '{name}' is used by guest(s) {', '.join(users)}; it "
            f"cannot become a {klass} entry.",
        )
    if dev_entry(ctx.conn, ctx.host.id, name) is not None:
        raise ctx.refuse(None, f"ERROR: The entry '{name}' already exists.")
    kind = devices.path_kind(name)
    devtype = {
        "san": "DISK",
        "san-block": "DISK",
        "lv": "LV",
        "lv-block": "LV",
        "file": "FILE",
        "pt": "ATTACH",
    }.get(kind, "UNKNOWN")
    attrs = {"DEVTYPE": devtype, "SHARE": "NO", "PRESERVE": "NO"}
    if attr is not None:
        _set_attr(ctx, attrs, attr)
    ctx.conn.execute(
        "INSERT INTO devdb (host_id, class, name, attrs, uid) VALUES (?, ?, ?, ?, ?)",
        (ctx.host.id, klass, name, format_attrs(attrs), devices.entry_uid(ctx.conn, name)),
    )


def _devmgmt_modify(ctx: Ctx, klass: str, spec: str) -> None:
    name, attr = _split_attr(ctx, spec)
    entry = dev_entry(ctx.conn, ctx.host.id, name)
    if entry is None or entry.klass != klass:
        hint = f" Add it with hpvmdevmgmt -a {klass}:{name}:attr:{attr}." if attr else ""
        raise ctx.refuse(None, f"ERROR: No {klass} entry '{name}'.{hint}")
    if attr is None:
        raise ctx.not_implemented("-m without :attr:")
    attrs = dict(entry.attrs)
    _set_attr(ctx, attrs, attr)
    ctx.conn.execute("UPDATE devdb SET attrs=? WHERE id=?", (format_attrs(attrs), entry.id))
    if entry.attrs.get("PRESERVE") == "YES" and attrs.get("PRESERVE") != "YES":
        devices.clean_up_entries(ctx, [name])  # no longer preserved and nobody uses it


def _devmgmt_delete(ctx: Ctx, klass: str, spec: str) -> None:
    if ":depend:" in spec:
        raise ctx.not_implemented("-d ...:depend:")
    name, attr = _split_attr(ctx, spec)
    entry = dev_entry(ctx.conn, ctx.host.id, name)
    if entry is None or entry.klass != klass:
        raise ctx.refuse(None, f"ERROR: No {klass} entry '{name}'.")
    if attr is not None:
        attrs = dict(entry.attrs)
        key = attr.partition("=")[0].upper()
        if key not in MODIFIABLE_ATTRS or key not in attrs:
            raise ctx.refuse(None, f"ERROR: The entry '{name}' has no removable attribute '{key}'.")
        del attrs[key]
        ctx.conn.execute("UPDATE devdb SET attrs=? WHERE id=?", (format_attrs(attrs), entry.id))
        return
    users = dependents(ctx.conn, ctx.host.id, name)
    if users:
        raise ctx.refuse(None, f"ERROR: The entry '{name}' has dependents: {', '.join(users)}.")
    ctx.conn.execute("DELETE FROM devdb WHERE id=?", (entry.id,))


# --------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------
HANDLERS: dict[str, Callable[[Ctx, Sequence[str]], None]] = {
    "hpvmcreate": hpvmcreate,
    "hpvmmodify": hpvmmodify,
    "hpvmclone": hpvmclone,
    "hpvmstart": hpvmstart,
    "hpvmstop": hpvmstop,
    "hpvmremove": hpvmremove,
    "hpvmmigrate": hpvmmigrate,
    "hpvmstatus": hpvmstatus,
    "hpvmnet": hpvmnet,
    "hpvmdevmgmt": hpvmdevmgmt,
}


def run(ctx: Ctx, argv: Sequence[str]) -> None:
    """Run one command line in ctx; raises Refused when it fails."""
    name = argv[0].rsplit("/", 1)[-1]
    handler = HANDLERS.get(name)
    if handler is None:
        if name in KNOWN_UNMODELLED:
            raise ctx.not_implemented(name)
        raise Refused(f"sh: {name}: not found.", exit_code=EXIT_NOT_FOUND)
    handler(ctx, argv[1:])
