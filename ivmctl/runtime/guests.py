"""Guest characteristics (-O -c -e -E -r -l -B -x) and host capacity, checked with rules.py.

hpvmcreate, hpvmmodify and hpvmclone share these options [R1]. Which changes a running
guest accepts comes from rules.field_change_kind; admission arithmetic from
rules.HostCapacity, fed with the host's stored per-core entitlement and memory in use, so a
start never reads the other running guests.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ivmctl.errors import RuleViolation
from ivmctl.rules import (
    DEFAULT_ENTITLEMENT_MAX_PCT,
    DEFAULT_ENTITLEMENT_PCT,
    DEFAULT_MEMORY_MB,
    DEFAULT_OS,
    DEFAULT_START,
    DEFAULT_VCPUS,
    ChangeKind,
    Demand,
    DynamicMemoryProblem,
    HostCapacity,
    OsType,
    Placement,
    StartAttr,
    dynamic_memory_problem,
    field_change_kind,
    held_memory_mb,
    host_pool_mb,
    label_problem,
    limits_for,
    parse_memory_mb,
    parse_percent,
    round_to_granule,
)
from ivmctl.runtime.context import Ctx
from ivmctl.runtime.data import Guest, Host, update_host
from ivmctl.runtime.store import bump_meta

UUID_NAMESPACE = uuidlib.UUID("5b0c7f4e-3f0a-4c55-9a57-6d1f4b2e9c11")
CHARACTERISTIC_OPTS = "O:c:e:E:r:l:B:x:"

# -x keywords -> the desired-state field whose change rule applies (rules.field_change_kind)
X_FIELDS = {
    "ram_dyn_type": "dynamic_memory",
    "ram_dyn_min": "dynamic_memory.min",
    "ram_dyn_max": "dynamic_memory.max",
    "ram_dyn_target_start": "dynamic_memory.target",
    "ram_target": "dynamic_memory.target",
    "online_migration": "online_migration",
}
# Status flags change online [R3]; vm_type only with the guest shut down [R4].
STATUS_FLAGS = {
    "runnable_status": "runnable",
    "modify_status": "modifiable",
    "visible_status": "visible",
    "register_status": "registered",
}
WHAT = {
    "vcpus": "the number of vCPUs",
    "memory": "the memory size",
    "os": "the OS type",
    "dynamic_memory": "the dynamic memory type",
    "dynamic_memory.min": "the dynamic memory minimum",
    "dynamic_memory.max": "the dynamic memory maximum",
    "vm_type": "the VM type",
}


@dataclass(kw_only=True)
class Characteristics:
    """Characteristic options as given on the command line (None = not given)."""

    os: str | None = None
    vcpus: str | None = None
    ent: str | None = None  # -e pct[:max]
    ent_mhz: str | None = None  # -E mhz[:max]
    memory: str | None = None
    label: str | None = None
    start: str | None = None
    xs: list[tuple[str, str]] = field(default_factory=list)


def parse_characteristics(ctx: Ctx, opts: Sequence[tuple[str, str]]) -> Characteristics:
    chars = Characteristics()
    for opt, value in opts:
        if opt == "-O":
            chars.os = value
        elif opt == "-c":
            chars.vcpus = value
        elif opt == "-e":
            chars.ent = value
        elif opt == "-E":
            chars.ent_mhz = value
        elif opt == "-r":
            chars.memory = value
        elif opt == "-l":
            chars.label = value
        elif opt == "-B":
            chars.start = value
        elif opt == "-x":
            key, sep, val = value.partition("=")
            if not sep:
                raise ctx.usage(f"-x expects keyword=value, got '{value}'.")
            chars.xs.append((key.strip().lower(), val.strip()))
    if chars.ent is not None and chars.ent_mhz is not None:
        raise ctx.usage("-e and -E are mutually exclusive.")
    return chars


def new_guest(ctx: Ctx, name: str) -> Guest:
    """A guest with hpvmcreate's defaults [R1][R2]."""
    counter = bump_meta(ctx.conn, "uid_counter")
    return Guest(
        id=0,
        host_id=ctx.host.id,
        name=name,
        number=ctx.host.next_vm_number,
        uuid=str(uuidlib.uuid5(UUID_NAMESPACE, f"{ctx.host.name}/{name}/{counter}")),
        label="",
        os=DEFAULT_OS.value,
        vcpus=DEFAULT_VCPUS,
        ent_min=DEFAULT_ENTITLEMENT_PCT,
        ent_max=DEFAULT_ENTITLEMENT_MAX_PCT,
        memory_mb=DEFAULT_MEMORY_MB,
        start_attr=DEFAULT_START.value,
        vm_type="shared",
        dyn_type="none",
        dyn_min=None,
        dyn_max=None,
        dyn_target=None,
        runnable=True,
        modifiable=True,
        visible=True,
        registered=True,
        online_migration=limits_for(ctx.host.version).online_migration,
        state="Off",
        started_at=None,
        cores=(),
        footprint_mb=None,
    )


def _memory(ctx: Ctx, name: str, text: str) -> int:
    try:
        return round_to_granule(parse_memory_mb(text))
    except RuleViolation as exc:
        raise ctx.refuse(name, f"Invalid memory value '{text}': {exc.summary}.") from None


def _entitlement(ctx: Ctx, g: Guest, chars: Characteristics) -> tuple[float, float]:
    raw = chars.ent if chars.ent is not None else chars.ent_mhz
    assert raw is not None
    low, sep, high = raw.partition(":")
    limits = limits_for(ctx.host.version)
    if sep and not limits.entitlement_cap:
        raise ctx.refuse(
            g.name,
            f"An entitlement maximum needs Integrity VM 4.0 or later; "
            f"this VM Host runs {ctx.host.version}.",
        )

    def pct(text: str) -> float:
        try:
            if chars.ent_mhz is not None:
                mhz = float(text)
                if mhz <= 0 or mhz > ctx.host.mhz:
                    raise ctx.refuse(
                        g.name,
                        f"Entitlement {text} MHz is outside 1..{ctx.host.mhz} "
                        "(the processor speed).",
                    )
                return round(max(0.1, mhz * 100.0 / ctx.host.mhz), 1)
            return parse_percent(text)
        except (RuleViolation, ValueError) as exc:
            raise ctx.refuse(g.name, f"Invalid entitlement '{raw}': {exc}.") from None

    ent_min = pct(low)
    ent_max = pct(high) if sep else max(g.ent_max, ent_min)
    if ent_min > ent_max:
        raise ctx.refuse(
            g.name, f"The minimum entitlement {ent_min:g}% exceeds the maximum {ent_max:g}%."
        )
    return ent_min, ent_max


def _flag(ctx: Ctx, name: str, key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("enabled", "enable", "true", "1", "yes"):
        return True
    if lowered in ("disabled", "disable", "false", "0", "no"):
        return False
    raise ctx.refuse(name, f"Invalid value '{value}' for {key}; use enabled or disabled.")


def apply_characteristics(ctx: Ctx, g: Guest, chars: Characteristics) -> Guest:
    """The guest with `chars` applied; refuses what the version or the run state forbids."""
    limits = limits_for(ctx.host.version)
    running = g.state == "On"
    old = g
    touched: list[str] = []  # desired-state field paths that actually change
    if chars.os is not None:
        try:
            g = replace(g, os=OsType(chars.os.lower()).value)
        except ValueError:
            raise ctx.refuse(
                g.name, f"Invalid OS type '{chars.os}'; use hpux, linux, windows or openvms."
            ) from None
        touched.append("os")
    if chars.vcpus is not None:
        try:
            vcpus = int(chars.vcpus)
        except ValueError:
            raise ctx.refuse(g.name, f"Invalid number of vCPUs '{chars.vcpus}'.") from None
        if not 1 <= vcpus <= limits.max_vcpus:
            raise ctx.refuse(
                g.name,
                f"The number of vCPUs must be 1..{limits.max_vcpus} on "
                f"Integrity VM {ctx.host.version}.",
            )
        g = replace(g, vcpus=vcpus)
        touched.append("vcpus")
    if chars.ent is not None or chars.ent_mhz is not None:
        ent_min, ent_max = _entitlement(ctx, g, chars)
        g = replace(g, ent_min=ent_min, ent_max=ent_max)
        touched.append("entitlement")
    if chars.memory is not None:
        memory = _memory(ctx, g.name, chars.memory)
        if memory > limits.max_memory_mb and g.vm_type != "vpar":
            raise ctx.refuse(
                g.name,
                f"Memory {memory} MB exceeds the {limits.max_memory_mb} MB "
                f"a guest may have on Integrity VM {ctx.host.version}.",
            )
        g = replace(g, memory_mb=memory)
        touched.append("memory")
    if chars.label is not None:
        problem = label_problem(chars.label, ctx.host.version)
        if problem:
            raise ctx.refuse(g.name, f"Invalid label: {problem}.")
        g = replace(g, label=chars.label)
        touched.append("label")
    if chars.start is not None:
        try:
            g = replace(g, start_attr=StartAttr(chars.start.lower()).value)
        except ValueError:
            raise ctx.refuse(
                g.name, f"Invalid start attribute '{chars.start}'; use auto or manual."
            ) from None
        touched.append("start")
    g = _apply_x(ctx, g, chars.xs, touched)
    if running:
        for path in touched:
            kind = ChangeKind.NEEDS_OFF if path == "vm_type" else field_change_kind(path)
            if kind is ChangeKind.NEEDS_OFF and _changed(old, g, path):
                raise ctx.refuse(
                    g.name,
                    f"Cannot change {WHAT.get(path, path)} while the guest "
                    "is running; stop the guest first.",
                )
    return _check_dynamic_memory(ctx, g)


def _changed(old: Guest, new: Guest, path: str) -> bool:
    columns = {
        "os": ("os",),
        "vcpus": ("vcpus",),
        "memory": ("memory_mb",),
        "vm_type": ("vm_type",),
        "dynamic_memory": ("dyn_type", "dyn_min", "dyn_max"),
        "dynamic_memory.min": ("dyn_min",),
        "dynamic_memory.max": ("dyn_max",),
    }.get(path, ())
    return any(getattr(old, c) != getattr(new, c) for c in columns)


def _set(g: Guest, column: str, value: object) -> Guest:
    """The guest with one column (named at run time) replaced."""
    return replace(g, **{column: value})  # type: ignore[arg-type]


def _apply_x(ctx: Ctx, g: Guest, xs: Sequence[tuple[str, str]], touched: list[str]) -> Guest:
    limits = limits_for(ctx.host.version)
    for key, value in xs:
        if key in STATUS_FLAGS:
            flag = _flag(ctx, g.name, key, value)
            g = _set(g, STATUS_FLAGS[key], flag)
            if key == "register_status" and flag:  # re-registering makes it runnable [R35]
                g = replace(g, runnable=True, modifiable=True)
        elif key == "online_migration":
            g = replace(g, online_migration=_flag(ctx, g.name, key, value))
            touched.append("online_migration")
        elif key == "vm_type":
            if not limits.vm_type:
                raise ctx.refuse(
                    g.name, f"vm_type needs Integrity VM 6.x; this VM Host runs {ctx.host.version}."
                )
            if value.lower() not in ("shared", "vpar"):
                raise ctx.refuse(g.name, f"Invalid vm_type '{value}'; use shared or vpar.")
            g = replace(g, vm_type=value.lower())
            touched.append("vm_type")
        elif key == "resources_reserved":
            if value.lower() in ("true", "1", "yes"):
                raise ctx.not_implemented("-x resources_reserved=true")
            if value.lower() not in ("false", "0", "no"):
                raise ctx.refuse(g.name, f"Invalid resources_reserved '{value}'.")
        elif key == "ram_dyn_type":
            if value.lower() not in ("none", "any", "driver"):
                raise ctx.refuse(
                    g.name, f"Invalid ram_dyn_type '{value}'; use none, any or driver."
                )
            g = replace(g, dyn_type=value.lower())
            if g.dyn_type == "none":  # setting none strips the ranges [R60]
                g = replace(g, dyn_min=None, dyn_max=None, dyn_target=None)
            touched.append(X_FIELDS[key])
        elif key in ("ram_dyn_min", "ram_dyn_max", "ram_dyn_target_start", "ram_target"):
            mb = _memory(ctx, g.name, value)
            column = {"ram_dyn_min": "dyn_min", "ram_dyn_max": "dyn_max"}.get(key, "dyn_target")
            if g.dyn_type == "none" and key != "ram_dyn_target_start":
                raise ctx.refuse(
                    g.name, f"{key} needs dynamic memory (ram_dyn_type=any or driver)."
                )
            g = _set(g, column, mb)
            touched.append(X_FIELDS[key])
        else:
            raise ctx.not_implemented(f"-x {key}")
    return g


def _check_dynamic_memory(ctx: Ctx, g: Guest) -> Guest:
    """Dynamic memory: HP-UX VMs only; min < max; min <= target <= max [R60][R53]."""
    if g.dyn_type == "none":
        return replace(g, dyn_min=None, dyn_max=None, dyn_target=None)
    if g.vm_type == "vpar":
        raise ctx.refuse(g.name, "vPars cannot use dynamic memory.")
    if g.os not in ("hpux", "unknown"):
        raise ctx.refuse(g.name, "Dynamic memory is only supported for HP-UX guests.")
    dyn_max = g.dyn_max if g.dyn_max is not None else g.memory_mb
    dyn_min = g.dyn_min if g.dyn_min is not None else round_to_granule(max(g.memory_mb // 4, 512))
    dyn_min = min(dyn_min, dyn_max - 64) if g.dyn_min is None else dyn_min
    target = g.dyn_target if g.dyn_target is not None else min(max(g.memory_mb, dyn_min), dyn_max)
    limit = limits_for(ctx.host.version).max_memory_mb
    if dyn_max > limit:
        raise ctx.refuse(g.name, f"ram_dyn_max {dyn_max} MB exceeds the {limit} MB limit.")
    problem = dynamic_memory_problem(min_mb=dyn_min, max_mb=dyn_max, target_mb=target)
    if problem is DynamicMemoryProblem.MIN_NOT_BELOW_MAX:
        raise ctx.refuse(
            g.name, f"ram_dyn_min ({dyn_min} MB) must be less than ram_dyn_max ({dyn_max} MB)."
        )
    if problem is DynamicMemoryProblem.TARGET_OUTSIDE:
        raise ctx.refuse(
            g.name,
            f"The dynamic memory target {target} MB must lie between "
            f"ram_dyn_min ({dyn_min} MB) and ram_dyn_max ({dyn_max} MB).",
        )
    return replace(g, dyn_min=dyn_min, dyn_max=dyn_max, dyn_target=target)


# --------------------------------------------------------------------------------------------
# Capacity
# --------------------------------------------------------------------------------------------
OTHERS = "(other running guests)"


def demand_of(g: Guest, *, for_migration: bool = False) -> Demand:
    """What a guest needs to run; a migration target must hold the dyn-mem maximum [R29b]."""
    dyn_max = g.dyn_max if g.dyn_type != "none" else None
    memory = held_memory_mb(g.memory_mb, dyn_max, migration=for_migration)
    return Demand(
        name=g.name,
        vcpus=g.vcpus,
        entitlement_pct=g.ent_min,
        memory_mb=memory,
        vpar=g.vm_type == "vpar",
    )


def capacity_of_host(host: Host, holder: Guest | None = None) -> HostCapacity:
    """The host's capacity snapshot; `holder` (a running guest) gets its own placement."""
    placements: list[Placement] = []
    others = host.mem_used_mb
    if holder is not None and holder.state == "On":
        held = holder.footprint_mb or 0
        placements.append(
            Placement(
                guest=holder.name,
                cores=holder.cores,
                entitlement_pct=holder.ent_min,
                footprint_mb=held,
            )
        )
        others -= held
    placements.append(Placement(guest=OTHERS, cores=(), entitlement_pct=0.0, footprint_mb=others))
    return HostCapacity(
        name=host.name,
        cores=host.cores,
        pool_mb=host_pool_mb(host.memory_mb),
        core_used_pct=host.core_used,
        placements=tuple(placements),
    )


def save_capacity(ctx: Ctx, host: Host, capacity: HostCapacity) -> None:
    update_host(
        ctx.conn, host.id, core_used=capacity.core_used_pct, mem_used_mb=capacity.memory_used_mb
    )


def placement_of(capacity: HostCapacity, name: str) -> Placement:
    return next(p for p in capacity.placements if p.guest == name)
