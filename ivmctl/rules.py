"""Integrity VM domain rules, in one pure module.

The emulator enforces these rules and the planner predicts them; both import this
module so that the two can never disagree. Standard library only, no I/O.
Facts carry the reference tag of ../shared/reference/ivm-domain.md they follow;
choices where the reference marks an inference are written down in
docs/emulator-fidelity.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Container, Iterable, Sequence
from dataclasses import field, replace
from enum import StrEnum
from functools import lru_cache

from ivmctl.errors import InsufficientResources, RuleViolation
from ivmctl.values import frozen

# --------------------------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------------------------
MEMORY_GRANULE_MB = 64  # [R27] memory is allocated in 64 MB granules

_MEMORY_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")
_MEMORY_UNITS_MB: dict[str, float] = {
    "": 1,  # a bare number means MB, as hpvm* -r does for a unit-less amount [inf]
    "m": 1,
    "mb": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gib": 1024,
    "t": 1024 * 1024,
    "tb": 1024 * 1024,
    "tib": 1024 * 1024,
}


def parse_memory_mb(value: str | int) -> int:
    """Parse a memory amount (`4G`, `4096M`, `4GiB`, `2048`) into whole MB (binary units).

    The result is not rounded to granules; see `round_to_granule`. Fractions of a MB are
    rounded up, since memory is never given out in smaller pieces.
    """
    if isinstance(value, bool):
        raise RuleViolation(f"invalid memory amount {value!r}", detail="Use e.g. 4G or 2048M.")
    if isinstance(value, int):
        if value <= 0:
            raise RuleViolation(f"memory must be positive, got {value}")
        return value
    match = _MEMORY_RE.match(str(value))
    if not match:
        raise RuleViolation(
            f"invalid memory amount {value!r}",
            detail="Use a number with M, G, MiB or GiB, e.g. 4G.",
        )
    number, unit = match.groups()
    factor = _MEMORY_UNITS_MB.get(unit.lower())
    if factor is None:
        raise RuleViolation(
            f"unknown memory unit {unit!r} in {value!r}", detail="Use M, G, MiB or GiB."
        )
    mb = math.ceil(float(number) * factor)
    if mb <= 0:
        raise RuleViolation(f"memory must be positive, got {value!r}")
    return mb


@lru_cache(maxsize=4096, typed=True)  # typed: True is not 1
def memory_mb_of(value: str | int) -> int:
    """`parse_memory_mb`, remembered: a fleet (and its hosts' listings) spells its sizes a
    few ways, many times. For hashable spellings; anything else goes to parse_memory_mb."""
    return parse_memory_mb(value)


def round_to_granule(mb: int, *, up: bool = True) -> int:
    """Round MB to the 64 MB granule: up as the CLI does, down as the runtime does [R27]."""
    if up:
        return -(-mb // MEMORY_GRANULE_MB) * MEMORY_GRANULE_MB
    return (mb // MEMORY_GRANULE_MB) * MEMORY_GRANULE_MB


def format_memory_arg(mb: int) -> str:
    """Memory as an hpvm* command argument: `4G` when whole gigabytes, else `4160M`."""
    return f"{mb // 1024}G" if mb % 1024 == 0 else f"{mb}M"


def format_memory_display(mb: int) -> str:
    """Memory as hpvmstatus prints it: `2 GB`, `16 GB`, `4160 MB` [obs R18]."""
    return f"{mb // 1024} GB" if mb % 1024 == 0 else f"{mb} MB"


def format_memory_compact(mb: int) -> str:
    """Memory as the machine-readable status prints it: `4GB` or `4160MB` [obs R23]."""
    return f"{mb // 1024}GB" if mb % 1024 == 0 else f"{mb}MB"


def parse_percent(value: str | int | float) -> float:
    """Parse an entitlement percentage (`20%`, `20`, `12.5`) into a float in (0, 100]."""
    if isinstance(value, bool):
        raise RuleViolation(f"invalid percentage {value!r}")
    text = str(value).strip()
    if text.endswith("%"):
        text = text[:-1].strip()
    try:
        pct = float(text)
    except ValueError:
        raise RuleViolation(
            f"invalid percentage {value!r}", detail="Use a number such as 20 or 20%."
        ) from None
    if not (0 < pct <= 100) or math.isnan(pct):
        raise RuleViolation(f"percentage {value!r} is out of range", detail="Use 0 < value <= 100.")
    return round(pct, 1)


def format_percent(pct: float) -> str:
    """An entitlement as a command argument: `20` or `12.5`."""
    return f"{pct:g}"


# --------------------------------------------------------------------------------------------
# Names, labels, enumerations
# --------------------------------------------------------------------------------------------
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,255}$")  # [inf] label charset, see fidelity
LABEL_RE = re.compile(r"^[A-Za-z0-9_. -]*$")  # [R2] A-Z a-z 0-9 - _ . (quoted spaces allowed)
MAX_NAME_LENGTH = 256


class OsType(StrEnum):
    HPUX = "hpux"
    LINUX = "linux"
    WINDOWS = "windows"
    OPENVMS = "openvms"
    UNKNOWN = "unknown"


class StartAttr(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"


class Power(StrEnum):
    ON = "on"
    OFF = "off"


class StorageAdapter(StrEnum):
    SCSI = "scsi"
    AVIO_STOR = "avio_stor"


class NetAdapter(StrEnum):
    LAN = "lan"
    AVIO_LAN = "avio_lan"


ADAPTER_ALIASES = {"aviostor": "avio_stor", "aviolan": "avio_lan"}  # [R22]
AVIO_ADAPTERS = frozenset({StorageAdapter.AVIO_STOR.value, NetAdapter.AVIO_LAN.value})


def canonical_adapter(name: str) -> str:
    """`aviostor` -> `avio_stor`, `aviolan` -> `avio_lan`; other names unchanged."""
    lowered = name.lower()
    return ADAPTER_ALIASES.get(lowered, lowered)


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid guest or vswitch name, or None when it is."""
    if not name:
        return "a name must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"a name may have at most {MAX_NAME_LENGTH} characters"
    if not NAME_RE.match(name):
        return (
            f"{name!r} has characters outside A-Z a-z 0-9 - _ . "
            "(and must start with a letter or digit)"
        )
    return None


def label_problem(label: str, version: str) -> str | None:
    """Why `label` is not valid on a host of `version`, or None when it is [R2][R36]."""
    limit = limits_for(version).max_label_length
    if len(label) > limit:
        return f"a label may have at most {limit} characters on Integrity VM {version}"
    if not LABEL_RE.match(label):
        return "a label may only use A-Z a-z 0-9 - _ . and spaces"
    return None


# --------------------------------------------------------------------------------------------
# Limits per version  [R5][R26b][R40][R42][R28][R55][R18]
# --------------------------------------------------------------------------------------------
@frozen
class VersionLimits:
    """What one Integrity VM version allows."""

    version: str
    max_vcpus: int  # vCPUs per guest
    max_memory_mb: int  # boot memory per guest
    max_devices: int  # virtual devices per guest
    max_label_length: int
    entitlement_cap: bool  # entitlement maximum (`-e min:max`) exists, 4.0+ [R40]
    online_migration: bool  # hpvmmigrate -o, 4.1+ [R12]
    vm_type: bool  # vm_type=shared|vpar, 6.x [R4]


_GB = 1024
LIMITS: dict[str, VersionLimits] = {
    v.version: v
    for v in (
        VersionLimits(version="3.5", max_vcpus=4, max_memory_mb=64 * _GB, max_devices=30,
                      max_label_length=256, entitlement_cap=False, online_migration=False,
                      vm_type=False),
        VersionLimits(version="4.0", max_vcpus=8, max_memory_mb=128 * _GB, max_devices=30,
                      max_label_length=256, entitlement_cap=True, online_migration=False,
                      vm_type=False),
        VersionLimits(version="4.1", max_vcpus=8, max_memory_mb=128 * _GB, max_devices=30,
                      max_label_length=256, entitlement_cap=True, online_migration=True,
                      vm_type=False),
        VersionLimits(version="4.2", max_vcpus=8, max_memory_mb=128 * _GB, max_devices=128,
                      max_label_length=256, entitlement_cap=True, online_migration=True,
                      vm_type=False),
        VersionLimits(version="4.2.5", max_vcpus=16, max_memory_mb=128 * _GB, max_devices=128,
                      max_label_length=256, entitlement_cap=True, online_migration=True,
                      vm_type=False),
        VersionLimits(version="4.3", max_vcpus=16, max_memory_mb=128 * _GB, max_devices=128,
                      max_label_length=256, entitlement_cap=True, online_migration=True,
                      vm_type=False),
        VersionLimits(version="6.1", max_vcpus=16, max_memory_mb=256 * _GB, max_devices=256,
                      max_label_length=255, entitlement_cap=True, online_migration=True,
                      vm_type=True),
        VersionLimits(version="6.2", max_vcpus=16, max_memory_mb=256 * _GB, max_devices=256,
                      max_label_length=255, entitlement_cap=True, online_migration=True,
                      vm_type=True),
        VersionLimits(version="6.3", max_vcpus=32, max_memory_mb=256 * _GB, max_devices=256,
                      max_label_length=255, entitlement_cap=True, online_migration=True,
                      vm_type=True),
    )
}  # fmt: skip
SUPPORTED_VERSIONS: tuple[str, ...] = tuple(LIMITS)
DEFAULT_VERSION = "6.3"


def limits_for(version: str) -> VersionLimits:
    """The limits of an Integrity VM version (`6.3`, also `6.3.5` -> 6.3)."""
    if version in LIMITS:
        return LIMITS[version]
    short = ".".join(version.split(".")[:2])
    if short in LIMITS:
        return LIMITS[short]
    raise RuleViolation(
        f"unknown Integrity VM version {version!r}",
        detail=f"Supported versions: {', '.join(SUPPORTED_VERSIONS)}.",
    )


# Creation defaults of hpvmcreate [R1][R2]
DEFAULT_VCPUS = 1
DEFAULT_ENTITLEMENT_PCT = 10.0
DEFAULT_ENTITLEMENT_MAX_PCT = 100.0
DEFAULT_MEMORY_MB = 2 * 1024
DEFAULT_OS = OsType.UNKNOWN
DEFAULT_START = StartAttr.AUTO

VLAN_RANGE = range(0, 4095)  # [R21] untagged VLAN ids 0..4094
PORT_RANGE = range(0, 512)  # [R21] vswitch ports 0..511
PCI_BUS_RANGE = range(0, 8)  # [R17] 8 buses x 8 slots
PCI_SLOT_RANGE = range(0, 8)
AVIO_TARGET_RANGE = range(0, 128)  # [R17]
LOCALNET = "localnet"  # [R23] always present, no uplink


def first_free_port(taken: Container[int]) -> int | None:
    """The port a vswitch gives a NIC that names none: the lowest free port from 1 [inf]."""
    return next((p for p in PORT_RANGE if p >= 1 and p not in taken), None)


def landing_port(port: int, taken: Container[int]) -> int | None:
    """The port a migrating NIC gets on the target's vswitch: its own when free there,
    else the lowest free port from 1 [inf]; None when the vswitch has no free port."""
    return port if port not in taken else first_free_port(taken)


def nic_port(pinned: int | None, kept: int | None, taken: Container[int]) -> int | None:
    """The port a NIC statement (`-a`, `-m`) gives a NIC: the one it pins, else the one the
    NIC keeps (`kept`: modified on the vswitch it is on), else the lowest free one from 1
    [inf]; None when there is no free port. Whether a pinned port is free is checked apart."""
    if pinned is not None:
        return pinned
    if kept is not None:
        return kept
    return first_free_port(taken)


# --------------------------------------------------------------------------------------------
# What may change while a guest runs  [R6][R22][R60][R29b] and DESIGN.md section 4
# --------------------------------------------------------------------------------------------


class ChangeKind(StrEnum):
    """How a guest attribute change can be carried out."""

    ONLINE = "online"  # takes effect on a running guest
    NEEDS_OFF = "needs_off"  # refused while the guest is On; stop, modify, start


# Field names follow the desired-state format (DESIGN.md section 2).
ONLINE_FIELDS = frozenset(
    {"entitlement", "dynamic_memory.target", "label", "start", "online_migration"}
)
NEEDS_OFF_FIELDS = frozenset({"vcpus", "memory", "os", "dynamic_memory.min", "dynamic_memory.max",
                              "dynamic_memory"})  # fmt: skip


def device_change_kind(adapter: str) -> ChangeKind:
    """AVIO devices are added and removed online [R22]; VIO ones need the guest Off [inf]."""
    avio = canonical_adapter(adapter) in AVIO_ADAPTERS
    return ChangeKind.ONLINE if avio else ChangeKind.NEEDS_OFF


def field_change_kind(field_path: str) -> ChangeKind:
    """How a change of a scalar guest field (dotted path) can be made."""
    if field_path in ONLINE_FIELDS:
        return ChangeKind.ONLINE
    if field_path in NEEDS_OFF_FIELDS or field_path.startswith("dynamic_memory"):
        return ChangeKind.NEEDS_OFF
    raise RuleViolation(f"no change rule for field {field_path!r}")


class DynamicMemoryProblem(StrEnum):
    """What is wrong with a dynamic-memory range; each front end words it its own way."""

    MIN_NOT_BELOW_MAX = "min_not_below_max"
    TARGET_OUTSIDE = "target_outside"


def dynamic_memory_problem(
    *, min_mb: int, max_mb: int, target_mb: int
) -> DynamicMemoryProblem | None:
    """The rule for a dynamic-memory range [R60][R53]: `ram_dyn_min` strictly below
    `ram_dyn_max`, the target between them (inclusive)."""
    if not min_mb < max_mb:
        return DynamicMemoryProblem.MIN_NOT_BELOW_MAX
    if not min_mb <= target_mb <= max_mb:
        return DynamicMemoryProblem.TARGET_OUTSIDE
    return None


# --------------------------------------------------------------------------------------------
# Admission arithmetic  [R7][R27][R28][R31][R34][R45]
# --------------------------------------------------------------------------------------------
MEMORY_POOL_FRACTION = 0.92  # [R45] the VM memory pool is ~92 % of the host's memory


def host_pool_mb(physical_mb: int) -> int:
    """Memory guests may use on a host: 92 % of physical, in whole granules [R45][inf]."""
    return round_to_granule(int(physical_mb * MEMORY_POOL_FRACTION), up=False)


def guest_overhead_mb(vcpus: int, memory_mb: int, *, vpar: bool = False) -> int:
    """Per-guest memory overhead at start, rounded up to a granule [R28].

    6.3: `vcpus x mem x 0.4 % + 64 MB` for VMs, `mem x 0.4 % + 64 MB` for vPars.
    """
    factor = 1 if vpar else vcpus
    return round_to_granule(math.ceil(factor * memory_mb * 0.004) + 64)


def guest_footprint_mb(vcpus: int, memory_mb: int, *, vpar: bool = False) -> int:
    """Memory a running guest holds: its boot memory plus overhead."""
    return round_to_granule(memory_mb) + guest_overhead_mb(vcpus, memory_mb, vpar=vpar)


def held_memory_mb(memory_mb: int, dynamic_max_mb: int | None, *, migration: bool) -> int:
    """Memory a guest must be granted: its boot memory; a migration target must hold the
    dynamic-memory maximum too, since the guest may grow to it there [R29b]."""
    if migration and dynamic_max_mb is not None:
        return max(memory_mb, dynamic_max_mb)
    return memory_mb


@frozen
class Demand:
    """What a running guest holds on its host."""

    name: str
    vcpus: int
    entitlement_pct: float
    memory_mb: int  # boot memory; for migration checks, the dynamic-memory maximum
    vpar: bool = False

    @property
    def footprint_mb(self) -> int:
        return guest_footprint_mb(self.vcpus, self.memory_mb, vpar=self.vpar)


@frozen
class Placement:
    """Where a running guest sits: the cores its vCPUs use and what it holds."""

    guest: str
    cores: tuple[int, ...]
    entitlement_pct: float
    footprint_mb: int


@frozen
class HostCapacity:
    """A host's resources and what its running guests hold (an immutable snapshot).

    `core_used_pct[i]` is the entitlement committed on physical core i; `placements`
    remembers on which cores each running guest's vCPUs sit, so it can be released.
    """

    name: str
    cores: int
    pool_mb: int
    core_used_pct: tuple[float, ...] = ()
    placements: tuple[Placement, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.core_used_pct:
            object.__setattr__(self, "core_used_pct", (0.0,) * self.cores)
        if len(self.core_used_pct) != self.cores:
            raise ValueError("core_used_pct must have one entry per core")

    @classmethod
    def empty(cls, *, name: str, cores: int, physical_memory_mb: int) -> HostCapacity:
        return cls(name=name, cores=cores, pool_mb=host_pool_mb(physical_memory_mb))

    @property
    def memory_used_mb(self) -> int:
        return sum(p.footprint_mb for p in self.placements)

    @property
    def memory_free_mb(self) -> int:
        return self.pool_mb - self.memory_used_mb

    @property
    def running(self) -> tuple[str, ...]:
        return tuple(p.guest for p in self.placements)

    @property
    def entitlement_used_pct(self) -> float:
        """Entitlement committed over all cores, in core-percent (400 = four full cores)."""
        return round(sum(self.core_used_pct), 1)

    def problems(self, demand: Demand) -> list[str]:
        """Why `demand` cannot be admitted now (empty when it can) [R5][R31][R7]."""
        return self._assess(demand)[1]

    def _assess(self, demand: Demand) -> tuple[list[int] | None, list[str]]:
        """(the cores `demand`'s vCPUs would take, why it cannot be admitted): the one
        admission rule, for `problems` and `admit`; the words are built only for a
        refusal."""
        found: list[str] = []
        cores = None
        if demand.vcpus > self.cores:
            found.append(f"{demand.vcpus} vCPUs exceed the host's {self.cores} physical cores")
        else:
            cores = place_vcpus(self.core_used_pct, demand.vcpus, demand.entitlement_pct)
            if cores is None:
                found.append(_entitlement_problem(self.core_used_pct, demand))
        need = demand.footprint_mb
        if need > self.memory_free_mb:
            found.append(
                f"needs {need} MB of memory (boot memory plus overhead), "
                f"{self.memory_free_mb} MB free of {self.pool_mb} MB"
            )
        return cores, found

    def admit(self, demand: Demand) -> HostCapacity:
        """The capacity after `demand` starts; raises InsufficientResources if it cannot."""
        if any(p.guest == demand.name for p in self.placements):
            raise RuleViolation(f"guest {demand.name!r} is already running on {self.name}")
        cores, found = self._assess(demand)
        if found or cores is None:
            raise InsufficientResources(
                f"guest {demand.name!r} cannot start on host {self.name}: " + "; ".join(found),
                detail="Stop another guest, or lower the guest's vCPUs, entitlement or memory.",
            )
        placement = Placement(
            guest=demand.name,
            cores=tuple(cores),
            entitlement_pct=demand.entitlement_pct,
            footprint_mb=demand.footprint_mb,
        )
        return self._with(placement)

    def release(self, name: str) -> HostCapacity:
        """The capacity after guest `name` stops (unchanged if it was not running)."""
        for placement in self.placements:
            if placement.guest == name:
                used = list(self.core_used_pct)
                for core in placement.cores:
                    used[core] = round(max(0.0, used[core] - placement.entitlement_pct), 1)
                rest = tuple(p for p in self.placements if p.guest != name)
                return replace(self, core_used_pct=tuple(used), placements=rest)
        return self

    def with_entitlement(self, name: str, entitlement_pct: float) -> HostCapacity:
        """The capacity after a running guest's entitlement changes online [R6]."""
        current = next((p for p in self.placements if p.guest == name), None)
        if current is None:
            return self
        released = self.release(name)
        demand = Demand(name=name, vcpus=len(current.cores), entitlement_pct=entitlement_pct,
                        memory_mb=0)  # fmt: skip
        cores = place_vcpus(released.core_used_pct, demand.vcpus, entitlement_pct)
        if cores is None:
            raise InsufficientResources(
                f"guest {name!r} on host {self.name}: "
                + _entitlement_problem(released.core_used_pct, demand),
                detail="Lower the entitlement or stop another guest first.",
            )
        return released._with(replace(current, cores=tuple(cores), entitlement_pct=entitlement_pct))

    def _with(self, placement: Placement) -> HostCapacity:
        used = list(self.core_used_pct)
        for core in placement.cores:
            used[core] = round(used[core] + placement.entitlement_pct, 1)
        return replace(self, core_used_pct=tuple(used), placements=(*self.placements, placement))


def _entitlement_problem(core_used_pct: Sequence[float], demand: Demand) -> str:
    free = sorted((round(100.0 - u, 1) for u in core_used_pct), reverse=True)
    return (
        f"{demand.vcpus} vCPUs at {demand.entitlement_pct:g}% need that much free "
        f"entitlement on {demand.vcpus} distinct cores; free per core: "
        + ", ".join(f"{f:g}%" for f in free)
    )


def place_vcpus(
    core_used_pct: Sequence[float], vcpus: int, entitlement_pct: float
) -> list[int] | None:
    """Cores for each vCPU, each on a distinct core with enough free entitlement, or None.

    Greedy, most-free core first [R31][R34][inf]; ties go to the lowest core number so
    the placement is deterministic.
    """
    if vcpus > len(core_used_pct):
        return None
    order = sorted(range(len(core_used_pct)), key=lambda i: (core_used_pct[i], i))
    chosen = [i for i in order[:vcpus] if round(100.0 - core_used_pct[i], 1) >= entitlement_pct]
    return sorted(chosen) if len(chosen) == vcpus else None


def capacity_of(
    *, name: str, cores: int, physical_memory_mb: int, running: Iterable[Demand]
) -> HostCapacity:
    """Capacity of a host with `running` guests admitted in the given order."""
    capacity = HostCapacity.empty(name=name, cores=cores, physical_memory_mb=physical_memory_mb)
    for demand in running:
        capacity = capacity.admit(demand)
    return capacity


# --------------------------------------------------------------------------------------------
# MAC addresses  [R20][R24][R52b]
# --------------------------------------------------------------------------------------------
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_MAC_RE = re.compile(r"^(?:0x([0-9A-Fa-f]{12})|([0-9A-Fa-f]{2}(?:[-:][0-9A-Fa-f]{2}){5}))$")


def parse_mac(text: str) -> int:
    """`0xAABBCC001122` or `aa-bb-cc-00-11-22` (or colons) -> 48-bit integer."""
    if len(text) == 14 and text[:2] == "0x" and _HEX_DIGITS.issuperset(text[2:]):
        return int(text[2:], 16)  # the spelling every listing prints
    match = _MAC_RE.match(text.strip())
    if not match:
        raise RuleViolation(
            f"invalid MAC address {text!r}", detail="Use 0xAABBCC001122 or aa-bb-cc-00-11-22."
        )
    digits = match.group(1) or re.sub(r"[-:]", "", match.group(2))
    return int(digits, 16)


def format_mac(value: int) -> str:
    """The resource-statement spelling of a MAC: `0xAABBCC001122` [obs R26b]."""
    return f"0x{value:012X}"


def format_mac_dashed(value: int) -> str:
    """The hpvmstatus table spelling of a MAC: `aa-bb-cc-00-11-22` [obs R18]."""
    raw = f"{value:012x}"
    return "-".join(raw[i : i + 2] for i in range(0, 12, 2))


def mac_problem(value: int) -> str | None:
    """Why a MAC cannot be given to a vNIC: it must be locally administered unicast [R20]."""
    first = value >> 40
    if first & 0x01:
        return "a guest MAC must be unicast (multicast bit clear)"
    if not first & 0x02:
        return "a guest MAC must be locally administered (bit 0x02 of the first octet set)"
    return None


def generate_mac(seed: int) -> int:
    """A deterministic locally administered unicast MAC for a counter `seed`.

    The emulator feeds its own counter so generated MACs are reproducible in tests.
    """
    mixed = (seed * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFF  # spread consecutive seeds
    return (0x02 << 40) | mixed


# --------------------------------------------------------------------------------------------
# Migration  [R9][R12][R46][R46c][R47]
# --------------------------------------------------------------------------------------------
_ONLINE_PATHS: dict[str, frozenset[str]] = {
    "4.1": frozenset({"4.1", "4.2"}),
    "4.2": frozenset({"4.2", "4.2.5", "4.3"}),
    "4.2.5": frozenset({"4.2.5", "4.3"}),
    "4.3": frozenset({"4.3", "6.1"}),
    "6.1": frozenset({"6.1", "6.2", "6.3"}),  # [inf] forward within 6.x
    "6.2": frozenset({"6.2", "6.3"}),
    "6.3": frozenset({"6.3"}),
}


def _family(version: str) -> str:
    major, _, rest = version.partition(".")
    minor = rest.split(".")[0]
    if major == "3":
        return "3.5"
    if major == "4" and minor == "0":
        return "4.0"
    return "4.1+"


def offline_migration_problem(source_version: str, target_version: str) -> str | None:
    """Offline paths: 3.5<->3.5, 4.0<->4.0, 4.1+<->4.1+ [R9][R46]."""
    if _family(source_version) != _family(target_version):
        return (
            f"offline migration from Integrity VM {source_version} to {target_version} "
            "is not supported"
        )
    return None


def online_migration_problem(source_version: str, target_version: str) -> str | None:
    """Online paths are forward only, and need 4.1+ on both ends [R46][R46c]."""
    src = limits_for(source_version).version
    dst = limits_for(target_version).version
    allowed = _ONLINE_PATHS.get(src)
    if allowed is None:
        return f"Integrity VM {source_version} has no online migration (needs 4.1 or later)"
    if dst not in allowed:
        return (
            f"online migration from Integrity VM {source_version} to {target_version} "
            f"is not supported (allowed targets: {', '.join(sorted(allowed))})"
        )
    return None


def migration_device_problem(*, backing: str, path: str, shared: bool) -> str | None:
    """Why one storage device of a guest blocks its migration, or None [obs R21][R9][R12].

    A shared device (SHARE=YES) never migrates; a file backing lives on its own host's
    file system, and ivmctl copies no storage during a migration [inf], so a guest with
    one cannot move. Disks and LVs are presented to every host; empty DVDs hold nothing.
    """
    if backing == "null":
        return None
    if shared:
        return f"{path} is shared; a guest with shared storage devices cannot be migrated"
    if backing == "file":
        return f"{path} is a file on the source host's file system; migrations do not copy storage"
    return None


# --------------------------------------------------------------------------------------------
# Backing paths
# --------------------------------------------------------------------------------------------


def backing_path_problem(path: str) -> str | None:
    """Why a host path cannot be handed to an hpvm* command, or None.

    Commands are argument lists, so shell metacharacters are harmless and pass literally;
    what is refused would make the command act elsewhere than declared (`..`, a relative
    path), break the colon-separated resource-statement grammar (`:`), or break the
    line-oriented output a refresh parses (control characters).
    """
    if not path.startswith("/"):
        return "it is not an absolute path"
    if any(part in (".", "..") for part in path.split("/")):
        return "it has a '.' or '..' component"
    if ":" in path:
        return "it contains ':', the separator of resource statements"
    if _CONTROL_CHARACTER.search(path):
        return "it contains a control character"
    return None


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")
