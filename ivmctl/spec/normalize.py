"""From merged, schema-valid documents to the normalised model (ivmctl.model).

One meaning, one value: memory becomes MB rounded up to 64 MB granules (with a warning
when rounding happens), entitlement becomes `Entitlement(min_pct, max_pct)` whatever its
spelling (`20%`, `20`, `{min: 20%}`), adapters lose their aliases, MACs become integers and
`auto` becomes None, `power` true/false becomes on/off.

Where a guest field comes from, first found wins: the guest itself, then its profile,
then `defaults.guests`, then the hpvmcreate defaults (rules.DEFAULT_*). Values replace
whole, except `lifecycle`, whose keys are taken one by one through the same layers.

Every unit and limit rule comes from ivmctl.rules; this module only applies them and says
where a value was written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any, NamedTuple

from ivmctl import model, rules
from ivmctl.errors import RuleViolation, SpecError
from ivmctl.model import (
    Disk,
    DynamicMemory,
    Entitlement,
    Guest,
    Hardware,
    Host,
    Lifecycle,
    Nic,
    ProviderConfig,
    VSwitch,
    guest_address,
    host_address,
    vswitch_address,
)
from ivmctl.spec.problems import Problem, Spot, did_you_mean, spot_at
from ivmctl.spec.yamlio import PathItem
from ivmctl.values import frozen


@frozen
class Item:
    """One named object as written: its data and where."""

    name: str
    data: Mapping[str, Any]
    file: str
    ypath: tuple[PathItem, ...]

    @property
    def spot(self) -> Spot:
        return Spot(file=self.file, ypath=self.ypath, key=True)


@dataclass(kw_only=True)
class Merged:
    """The configuration's top-level maps, merged over all files (names are unique)."""

    provider: Item | None = None
    hosts: dict[str, Item] = field(default_factory=dict)
    profiles: dict[str, Item] = field(default_factory=dict)
    guests: dict[str, Item] = field(default_factory=dict)
    guest_defaults: dict[str, Item] = field(default_factory=dict)  # field -> one-field item
    # Schema problems do not stop the other checks. An object whose identity is in doubt
    # (not a mapping, a required field missing or wrong) is left out: `broken`. A field
    # with a problem is dropped, `dropped[address]`, and checks that would judge its
    # default instead of the user's value are skipped (see checks.Unknowns).
    broken: set[str] = field(default_factory=set)  # "guest.x", "host.h", "profile.p"
    dropped: dict[str, set[str]] = field(default_factory=dict)  # address -> fields
    unsure_vswitches: set[tuple[str, str]] = field(default_factory=set)  # (host, vswitch)
    _default_layers: tuple[tuple[Mapping[str, Any], str, tuple[PathItem, ...]], ...] | None = None
    _guest_bases: dict[str | None, Fields] = field(default_factory=dict)

    def dropped_fields(self, address: str) -> set[str]:
        return self.dropped.get(address, set())

    def default_layers(self) -> tuple[tuple[Mapping[str, Any], str, tuple[PathItem, ...]], ...]:
        """`defaults.guests` as guest layers, one per field (built once, after merging)."""
        if self._default_layers is None:
            self._default_layers = tuple(
                ({name: d.data[name]}, d.file, d.ypath) for name, d in self.guest_defaults.items()
            )
        return self._default_layers

    def guest_base(self, profile: str | None) -> Fields:
        """The fields a guest of `profile` (None: no profile) takes from the profile and
        `defaults.guests`: the same for all its guests, so found once (after merging)."""
        base = self._guest_bases.get(profile)
        if base is None:
            layers = self.default_layers()
            if profile is not None:
                p = self.profiles[profile]
                layers = ((p.data, p.file, p.ypath), *layers)
            base = self._guest_bases[profile] = Layers(layers=layers).fields()
        return base


@dataclass(kw_only=True)
class Collector:
    """Problems, warnings and source spots gathered while building."""

    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    sources: dict[str, tuple[Spot, str, str | None]] = field(default_factory=dict)
    # Source records of guests, run by `all_sources()`: a load of 10,000 guests records
    # about 170,000 of them, which only a problem report or a planner error ever reads.
    deferred: list[Callable[[], None]] = field(default_factory=list)

    def error(
        self,
        summary: str,
        spot: Spot | None,
        address: str,
        path: str | None,
        *,
        detail: str | None = None,
        kind: type[SpecError] | type[RuleViolation] = RuleViolation,
    ) -> None:
        self.errors.append(
            Problem(
                summary=summary, detail=detail, spot=spot, address=address, path=path, kind=kind
            )
        )

    def warn(self, summary: str, spot: Spot | None, address: str, path: str | None) -> None:
        self.warnings.append(Problem(summary=summary, spot=spot, address=address, path=path))

    def source(self, key: str, spot: Spot, address: str, path: str | None = None) -> None:
        self.sources[key] = (spot, address, path)

    def all_sources(self) -> dict[str, tuple[Spot, str, str | None]]:
        """Every source recorded, the deferred ones included."""
        records, self.deferred = self.deferred, []
        for record in records:
            record()
        return self.sources


class Value(NamedTuple):
    """A field's value and where it was written: `file` and the data path `(*parent,
    name)` (file None: a built-in default).

    A NamedTuple holding the parts of its Spot, built only when asked for: one is made for
    every field of every guest, and few spots are ever used.
    """

    value: Any
    file: str | None
    parent: tuple[PathItem, ...] = ()
    name: PathItem = ""

    @property
    def spot(self) -> Spot | None:
        if self.file is None:
            return None
        return spot_at(self.file, (*self.parent, self.name))

    def at(self, *sub: PathItem, key: bool = False) -> Spot | None:
        if self.file is None:
            return None
        return spot_at(self.file, (*self.parent, self.name, *sub), key)


_new_tuple = tuple.__new__


def _value(value: Any, file: str, parent: tuple[PathItem, ...], name: PathItem) -> Value:
    """`Value(value, file, parent, name)` without the NamedTuple's Python-level `__new__`
    (one is made for every field a guest sets)."""
    return _new_tuple(Value, (value, file, parent, name))


# --------------------------------------------------------------------------------------------
# Hosts
# --------------------------------------------------------------------------------------------
def version_text(value: Any) -> str:
    """`6.3` written as a number and `"6.3"` mean the same version."""
    return str(value)


def build_provider(item: Item | None) -> ProviderConfig:
    if item is None:
        return ProviderConfig()
    data = item.data
    return ProviderConfig(
        name=str(data.get("name", "emulator")), options=_sorted(data.get("options") or {})
    )


def _sorted(value: Any) -> Any:
    """Mappings with sorted keys, recursively: option order is not meaning."""
    if isinstance(value, Mapping):
        return {k: _sorted(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def build_host(item: Item, out: Collector) -> Host:
    data = item.data
    address = host_address(item.name)
    out.source(address, item.spot, address)
    for field_name in ("version", "hardware", "vswitches"):
        if field_name in data:
            field_spot = Spot(file=item.file, ypath=(*item.ypath, field_name))
            out.source(f"{address}:{field_name}", field_spot, address, field_name)
    problem = rules.name_problem(item.name)
    if problem:
        out.error(f"invalid host name: {problem}", item.spot, address, None)
    version = version_text(data.get("version", rules.DEFAULT_VERSION))
    hardware = None
    hw = data.get("hardware")
    if hw is not None:
        hw_value = Value(hw, item.file, item.ypath, "hardware")
        memory_mb = _memory(
            hw["memory"], hw_value, ("memory",), address, "hardware.memory", out, granule=False
        )
        hardware = Hardware(
            cores=int(hw["cores"]),
            memory_mb=memory_mb or 1,
            nics=tuple(hw.get("nics") or ()),
            mhz=hw.get("mhz"),
        )
    vswitches: dict[str, VSwitch] = {}
    for name, spec in sorted((data.get("vswitches") or {}).items()):
        vs_address = vswitch_address(item.name, name)
        spot = Spot(file=item.file, ypath=(*item.ypath, "vswitches", name), key=True)
        out.source(vs_address, spot, vs_address)
        if isinstance(spec, dict) and "nic" in spec:
            nic_field = Spot(file=item.file, ypath=(*item.ypath, "vswitches", name, "nic"))
            out.source(f"{vs_address}:nic", nic_field, vs_address, "nic")
        nic = (spec or {}).get("nic")
        if name == rules.LOCALNET:
            out.error(
                f'"{rules.LOCALNET}" exists on every host and cannot be declared',
                spot,
                vs_address,
                None,
                detail="Remove it from vswitches; guests may use localnet without declaring it.",
            )
            continue
        problem = rules.name_problem(name)
        if problem:
            out.error(f"invalid vswitch name: {problem}", spot, vs_address, None)
        if nic is not None and hardware is not None and nic not in hardware.nics:
            nic_spot = Spot(file=item.file, ypath=(*item.ypath, "vswitches", name, "nic"))
            out.error(
                f'host {item.name} has no NIC "{nic}" in hardware.nics'
                + did_you_mean(nic, list(hardware.nics)),
                nic_spot,
                vs_address,
                "nic",
                kind=SpecError,
            )
        vswitches[name] = VSwitch(host=item.name, name=name, nic=nic)
    return Host(name=item.name, version=version, hardware=hardware, vswitches=vswitches)


# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
def _memory(
    raw: Any,
    where: Value,
    sub: tuple[PathItem, ...],
    address: str,
    path: str,
    out: Collector,
    *,
    granule: bool = True,
) -> int | None:
    """`raw` in MB, written at `where.at(*sub)` (found only for a problem)."""
    try:
        mb = rules.memory_mb_of(raw) if isinstance(raw, str | int) else rules.parse_memory_mb(raw)
    except RuleViolation as exc:
        out.error(exc.summary, where.at(*sub), address, path, detail=exc.detail)
        return None
    if granule:
        rounded = rules.round_to_granule(mb)
        if rounded != mb:
            out.warn(
                f"{raw} is not a multiple of {rules.MEMORY_GRANULE_MB} MB; "
                f"rounded up to {rounded} MB",
                where.at(*sub),
                address,
                path,
            )
        return rounded
    return mb


@lru_cache(maxsize=4096, typed=True)
def _percent_of(raw: str | int | float) -> float:
    return rules.parse_percent(raw)


def _percent(
    raw: Any, where: Value, sub: tuple[PathItem, ...], address: str, path: str, out: Collector
) -> float | None:
    """`raw` in percent, written at `where.at(*sub)` (found only for a problem)."""
    try:
        if isinstance(raw, str | int | float):
            return _percent_of(raw)
        return rules.parse_percent(raw)
    except RuleViolation as exc:
        out.error(exc.summary, where.at(*sub), address, path, detail=exc.detail)
        return None


def entitlement_of(value: Value, address: str, out: Collector) -> Entitlement:
    raw = value.value
    if isinstance(raw, Mapping):
        low: float | None = rules.DEFAULT_ENTITLEMENT_PCT
        if "min" in raw:
            low = _percent(raw["min"], value, ("min",), address, "entitlement.min", out)
        high = rules.DEFAULT_ENTITLEMENT_MAX_PCT
        if "max" in raw:
            high = _percent(raw["max"], value, ("max",), address, "entitlement.max", out) or high
    else:
        low = _percent(raw, value, (), address, "entitlement", out)
        high = rules.DEFAULT_ENTITLEMENT_MAX_PCT
    if low is None:
        return Entitlement()
    if low > high:
        out.error(
            f"entitlement minimum {low:g}% is above its maximum {high:g}%",
            value.at(),
            address,
            "entitlement",
        )
        return model.entitlement(rules.DEFAULT_ENTITLEMENT_PCT, rules.DEFAULT_ENTITLEMENT_MAX_PCT)
    return model.entitlement(low, high)


def mac_of(
    raw: Any, where: Value, sub: tuple[PathItem, ...], address: str, path: str, out: Collector
) -> int | None:
    """`raw` as a MAC (None: auto), written at `where.at(*sub)` (found only for a problem)."""
    if raw is None or str(raw).lower() == "auto":
        return None
    try:
        # unquoted 0x0A0000000101 is a YAML integer: the same MAC, spelt in hex
        mac = rules.parse_mac(f"0x{raw:012X}" if isinstance(raw, int) and raw >= 0 else str(raw))
    except RuleViolation as exc:
        out.error(exc.summary, where.at(*sub), address, path, detail=exc.detail)
        return None
    problem = rules.mac_problem(mac)
    if problem:
        out.error(
            f"MAC {raw}: {problem}",
            where.at(*sub),
            address,
            path,
            detail="Use a MAC whose first octet has bit 0x02 set and bit 0x01 clear, "
            "e.g. 0x0A.., or leave it auto.",
        )
    return mac


def pci_address_problem(text: str, *, storage: bool) -> str | None:
    """Why `text` is not a `bus,slot[,target]` (storage) or `bus,slot` (network) address."""
    parts = text.split(",")
    allowed = (2, 3) if storage else (2,)
    shape = "bus,slot[,target]" if storage else "bus,slot"
    if len(parts) not in allowed or not all(p.strip().isdigit() for p in parts):
        return f"address {text!r} must be {shape}"
    numbers = [int(p) for p in parts]
    ranges = (rules.PCI_BUS_RANGE, rules.PCI_SLOT_RANGE, rules.AVIO_TARGET_RANGE)
    names = ("bus", "slot", "target")
    for number, allowed_range, name in zip(numbers, ranges, names, strict=False):
        if number not in allowed_range:
            return (
                f"{name} {number} in address {text!r} is outside "
                f"{allowed_range.start}..{allowed_range.stop - 1}"
            )
    return None


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------
GUEST_FIELDS = (
    "os",
    "vcpus",
    "entitlement",
    "memory",
    "dynamic_memory",
    "power",
    "start",
    "label",
    "disks",
    "dvds",
    "nics",
    "online_migration",
    "vm_type",
    "lifecycle",
)


_GUEST_FIELD_SET = frozenset(GUEST_FIELDS)


@frozen
class Fields:
    """A guest's fields and `lifecycle` keys, each from the most specific layer setting it."""

    fields: Mapping[str, Value]
    lifecycle: Mapping[str, Value]


_NO_FIELDS = Fields(fields={}, lifecycle={})


@frozen
class Layers:
    """The places a guest's field may come from, most specific first."""

    layers: tuple[tuple[Mapping[str, Any], str, tuple[PathItem, ...]], ...]

    def fields(self, base: Fields = _NO_FIELDS) -> Fields:
        """Every guest field and lifecycle key some layer sets, from the most specific
        layer setting it; then those `base` (less specific layers, found already) sets."""
        chosen: dict[str, Value] = {}
        lifecycle: dict[str, Value] = {}
        for data, file, ypath in self.layers:
            for name, value in data.items():
                if name not in chosen and name in _GUEST_FIELD_SET:
                    chosen[name] = _value(value, file, ypath, name)
        for data, file, ypath in self.layers:
            block = data.get("lifecycle") or {}
            for key, value in block.items():
                if key not in lifecycle:
                    lifecycle[key] = _value(value, file, (*ypath, "lifecycle"), key)
        for found, more in ((chosen, base.fields), (lifecycle, base.lifecycle)):
            for name, value in more.items():
                if name not in found:
                    found[name] = value
        return Fields(fields=chosen, lifecycle=lifecycle)


def guest_fields(item: Item, merged: Merged) -> Fields:
    """The guest's own fields, then those of its profile and `defaults.guests`."""
    profile = item.data.get("profile")
    if profile is not None and profile not in merged.profiles:
        profile = None
    own = Layers(layers=((item.data, item.file, item.ypath),))
    return own.fields(merged.guest_base(profile))


def build_guest(item: Item, merged: Merged, hosts: Mapping[str, Host], out: Collector) -> Guest:
    name = item.name
    address = guest_address(name)
    chosen = guest_fields(item, merged)
    found = chosen.fields
    out.deferred.append(partial(_guest_sources, item, address, found, out))
    host_name = str(item.data["host"])

    memory_mb = rules.DEFAULT_MEMORY_MB
    if "memory" in found:
        memory = found["memory"]
        memory_mb = _memory(memory.value, memory, (), address, "memory", out) or memory_mb
    entitlement = model.entitlement(
        rules.DEFAULT_ENTITLEMENT_PCT, rules.DEFAULT_ENTITLEMENT_MAX_PCT
    )
    if "entitlement" in found:
        entitlement = entitlement_of(found["entitlement"], address, out)
    dynamic = None
    if "dynamic_memory" in found and found["dynamic_memory"].value is not None:
        dynamic = _dynamic_memory(found["dynamic_memory"], memory_mb, address, out)
    lifecycle_values = chosen.lifecycle
    lifecycle = _lifecycle(
        bool(_val(lifecycle_values, "prevent_destroy", False)),
        str(_val(lifecycle_values, "restart", "allow")),
        tuple(_val(lifecycle_values, "ignore_changes", ())),
    )
    disks = _disks(found.get("disks"), "disk", address, out)
    dvds = _disks(found.get("dvds"), "dvd", address, out)
    nics = _nics(found.get("nics"), address, out)
    os_, vcpus, power, start, label, online_migration, vm_type = map(found.get, _PLAIN_FIELDS)
    return Guest(
        name=name,
        host=host_name,
        os=rules.DEFAULT_OS.value if os_ is None else str(os_.value),
        vcpus=rules.DEFAULT_VCPUS if vcpus is None else int(vcpus.value),
        entitlement=entitlement,
        memory_mb=memory_mb,
        dynamic_memory=dynamic,
        power="on" if power is None else _power(power.value),
        start=rules.DEFAULT_START.value if start is None else str(start.value),
        label="" if label is None else str(label.value),
        disks=disks,
        dvds=dvds,
        nics=nics,
        online_migration=True if online_migration is None else bool(online_migration.value),
        vm_type="shared" if vm_type is None else str(vm_type.value),
        lifecycle=lifecycle,
    )


# The fields build_guest takes as written (converted to their type, nothing more).
_PLAIN_FIELDS = ("os", "vcpus", "power", "start", "label", "online_migration", "vm_type")


def _guest_sources(item: Item, address: str, found: Mapping[str, Value], out: Collector) -> None:
    """Where a guest, its fields and its devices were written (see Collector.deferred)."""
    out.source(address, item.spot, address)
    for field_name, value in found.items():
        if value.spot is not None:
            out.source(f"{address}:{field_name}", value.spot, address, field_name)
    if "profile" in item.data:
        spot = Spot(file=item.file, ypath=(*item.ypath, "profile"))
        out.source(f"{address}:profile", spot, address, "profile")
    out.source(
        f"{address}:host", Spot(file=item.file, ypath=(*item.ypath, "host")), address, "host"
    )
    for kind in ("disks", "dvds", "nics"):
        devices = found.get(kind)
        if devices is None or not devices.value:
            continue
        for index in range(len(devices.value)):
            path = f"{kind}[{index}]"
            out.source(f"{address}:{path}", devices.at(index) or Spot(file=""), address, path)
            if kind == "nics" and devices.spot is not None:
                out.source(
                    f"{address}:{path}.vswitch",
                    devices.at(index, "vswitch") or Spot(file=""),
                    address,
                    f"{path}.vswitch",
                )


# Guests of one profile share their lifecycle values (as their entitlement, see
# model.entitlement): one frozen object instead of one per guest. Which objects are shared
# shows in the desired digest, so, like model.entitlement, the cache never evicts.
@lru_cache(maxsize=None, typed=True)
def _lifecycle(prevent_destroy: bool, restart: str, ignore_changes: tuple[str, ...]) -> Lifecycle:
    return Lifecycle(
        prevent_destroy=prevent_destroy, restart=restart, ignore_changes=ignore_changes
    )


def _val(values: Mapping[str, Value], key: str, default: Any) -> Any:
    value = values.get(key)
    return default if value is None else value.value


def _power(raw: Any) -> str:
    if raw is True:
        return rules.Power.ON.value
    if raw is False:
        return rules.Power.OFF.value
    return str(raw)


def _dynamic_memory(value: Value, boot_mb: int, address: str, out: Collector) -> DynamicMemory:
    raw = value.value
    low = _memory(raw["min"], value, ("min",), address, "dynamic_memory.min", out) or 0
    high = _memory(raw["max"], value, ("max",), address, "dynamic_memory.max", out) or 0
    target = boot_mb
    if "target" in raw:
        target = (
            _memory(raw["target"], value, ("target",), address, "dynamic_memory.target", out)
            or boot_mb
        )
    return DynamicMemory(min_mb=low, max_mb=high, target_mb=target)


def _disks(value: Value | None, devtype: str, address: str, out: Collector) -> tuple[Disk, ...]:
    if value is None or not value.value:
        return ()
    kind = "disks" if devtype == "disk" else "dvds"
    result: list[Disk] = []
    for index, raw in enumerate(value.value):
        path = f"{kind}[{index}]"
        size_mb = None
        if raw.get("size") is not None:
            size_mb = _memory(
                raw["size"], value, (index, "size"), address, f"{path}.size", out, granule=False
            )
            if raw["backing"] != "file":  # None (YAML null) is the null backing
                out.error(
                    f"size applies to file backing only, not {raw['backing']}",
                    value.at(index, "size", key=True),
                    address,
                    f"{path}.size",
                    detail="Remove size; ivmctl creates only file backing stores.",
                )
        pinned = raw.get("address")
        if pinned is not None:
            problem = pci_address_problem(str(pinned), storage=True)
            if problem:
                out.error(problem, value.at(index, "address"), address, f"{path}.address")
        result.append(
            Disk(
                devtype=devtype,
                backing="null" if raw["backing"] is None else str(raw["backing"]),
                path=str(raw["path"]),
                adapter=rules.canonical_adapter(str(raw.get("adapter", "avio_stor"))),
                size_mb=size_mb,
                shared=bool(raw.get("shared", False)),
                address=None if pinned is None else str(pinned),
            )
        )
    return tuple(result)


def _nics(value: Value | None, address: str, out: Collector) -> tuple[Nic, ...]:
    if value is None or not value.value:
        return ()
    result: list[Nic] = []
    for index, raw in enumerate(value.value):
        path = f"nics[{index}]"
        vlan = raw.get("vlan")
        if vlan is not None and vlan not in rules.VLAN_RANGE:
            out.error(
                f"VLAN {vlan} is outside 0..{rules.VLAN_RANGE.stop - 1}",
                value.at(index, "vlan"),
                address,
                f"{path}.vlan",
            )
        port = raw.get("port")
        if port is not None and port not in rules.PORT_RANGE:
            out.error(
                f"port {port} is outside 0..{rules.PORT_RANGE.stop - 1}",
                value.at(index, "port"),
                address,
                f"{path}.port",
            )
        pinned = raw.get("address")
        if pinned is not None:
            problem = pci_address_problem(str(pinned), storage=False)
            if problem:
                out.error(problem, value.at(index, "address"), address, f"{path}.address")
        result.append(
            Nic(
                vswitch=str(raw["vswitch"]),
                adapter=rules.canonical_adapter(str(raw.get("adapter", "avio_lan"))),
                vlan=vlan,
                mac=mac_of(raw.get("mac"), value, (index, "mac"), address, f"{path}.mac", out),
                port=port,
                address=None if pinned is None else str(pinned),
            )
        )
    return tuple(result)
