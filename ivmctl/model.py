"""Normalised value types for hosts, vswitches and guests.

The spec produces them from YAML (DesiredState), providers produce them from the
runtime (ActualState), and the planner compares the two. Units are normalised here:
memory in MB (64 MB granules), entitlement in percent, MACs as integers. A field
left None in a desired object means "whatever the runtime chooses" and never diffs.
Standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from functools import lru_cache
from typing import Any

from ivmctl.errors import Location
from ivmctl.rules import (
    DEFAULT_ENTITLEMENT_MAX_PCT,
    DEFAULT_ENTITLEMENT_PCT,
    DEFAULT_MEMORY_MB,
    DEFAULT_VCPUS,
    LOCALNET,
)
from ivmctl.values import frozen

# --------------------------------------------------------------------------------------------
# Addresses: "host.vmhost01", "vswitch.vmhost01.vswprod", "guest.web01"
# --------------------------------------------------------------------------------------------


def host_address(name: str) -> str:
    return f"host.{name}"


def vswitch_address(host: str, name: str) -> str:
    return f"vswitch.{host}.{name}"


def guest_address(name: str) -> str:
    return f"guest.{name}"


# --------------------------------------------------------------------------------------------
# Hosts and vswitches
# --------------------------------------------------------------------------------------------


@frozen
class Hardware:
    """A VM Host's physical resources."""

    cores: int  # physical cores (hyperthreads never count) [R6]
    memory_mb: int  # physical memory
    nics: tuple[str, ...] = ()  # physical NICs, e.g. ("lan0", "lan1")
    mhz: int | None = None  # processor speed; None = not declared


@frozen
class VSwitch:
    """A virtual switch on one host. `nic` None means host-local (no uplink)."""

    host: str
    name: str
    nic: str | None = None
    state: str = "Up"  # actual only: Up | Down
    port_vlans: Mapping[int, int] = field(default_factory=dict)  # actual only: port -> VLAN

    @property
    def address(self) -> str:
        return vswitch_address(self.host, self.name)


@frozen
class Host:
    """A VM Host (VSP) with the Integrity VM version it runs and its vswitches.

    `vswitches` never holds `localnet`, which every host has [R23].
    """

    name: str
    version: str
    hardware: Hardware | None = None  # None = not declared (desired) / unknown (actual)
    vswitches: Mapping[str, VSwitch] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return host_address(self.name)

    def usable_vswitches(self) -> frozenset[str]:
        """The vswitches a guest on this host may use: localnet, and those declared."""
        return frozenset({LOCALNET, *self.vswitches})

    def has_vswitch(self, name: str) -> bool:
        """`name in usable_vswitches()`, without building the set."""
        return name == LOCALNET or name in self.vswitches


# --------------------------------------------------------------------------------------------
# Guests
# --------------------------------------------------------------------------------------------


@frozen
class Entitlement:
    """CPU entitlement per vCPU, percent of one core: guaranteed minimum and cap [R1]."""

    min_pct: float = DEFAULT_ENTITLEMENT_PCT
    max_pct: float = DEFAULT_ENTITLEMENT_MAX_PCT

    def __post_init__(self) -> None:
        if not 0 < self.min_pct <= self.max_pct <= 100:
            raise ValueError(f"entitlement needs 0 < min <= max <= 100, got {self}")


@frozen
class DynamicMemory:
    """Dynamic memory range and target in MB, HP-UX guests only [R60]."""

    min_mb: int
    max_mb: int
    target_mb: int


# Guests of one profile (desired) or one size (actual) share these values: one frozen
# object per value instead of one per guest (fewer objects to build, cache and load).
# Which objects are shared shows in the desired digest (spec.loader.model_bytes), so the
# caches never evict: equal values are one object whatever was built before.
@lru_cache(maxsize=None, typed=True)  # typed: 20 and 20.0 print differently in the digest
def entitlement(min_pct: float, max_pct: float) -> Entitlement:
    """The Entitlement(min_pct, max_pct), shared."""
    return Entitlement(min_pct=min_pct, max_pct=max_pct)


@lru_cache(maxsize=None, typed=True)
def dynamic_memory(min_mb: int, max_mb: int, target_mb: int) -> DynamicMemory:
    """The DynamicMemory(min_mb, max_mb, target_mb), shared. Listings only: desired
    guests have always had one each, and sharing them would change digests."""
    return DynamicMemory(min_mb=min_mb, max_mb=max_mb, target_mb=target_mb)


@frozen
class Disk:
    """A virtual storage device (disk or DVD) and its backing.

    Identity within a guest is (devtype, path): the same path never appears twice.
    """

    devtype: str = "disk"  # disk | dvd
    backing: str  # disk | lv | file | null
    path: str
    adapter: str = "avio_stor"  # avio_stor | scsi
    size_mb: int | None = None  # file backing: size to create it with; never read back
    shared: bool = False  # SHARE=YES in the device database: several guests may use it
    address: str | None = None  # "bus,slot[,target]" when pinned; None = runtime chooses

    @property
    def key(self) -> tuple[str, str]:
        return (self.devtype, self.path)


@frozen
class Nic:
    """A virtual NIC on a vswitch. None fields are chosen by the runtime unless pinned."""

    vswitch: str
    adapter: str = "avio_lan"  # avio_lan | lan
    vlan: int | None = None  # untagged VLAN of the vswitch port
    mac: int | None = None  # None = "auto"
    port: int | None = None  # vswitch port
    address: str | None = None  # "bus,slot"


@frozen
class Lifecycle:
    """What ivmctl may do to a guest (desired only)."""

    prevent_destroy: bool = False  # refuse any plan that deletes or replaces it
    restart: str = "allow"  # allow | deny: may ivmctl stop and start it to apply a change
    ignore_changes: tuple[str, ...] = ()  # fields whose drift is reported, never corrected


@frozen
class Guest:
    """A guest as configured: the part of a VM that desired and actual state share."""

    name: str
    host: str
    os: str = "unknown"  # hpux | linux | windows | openvms | unknown
    vcpus: int = DEFAULT_VCPUS
    entitlement: Entitlement = field(default_factory=Entitlement)
    memory_mb: int = DEFAULT_MEMORY_MB  # boot memory, a multiple of 64
    dynamic_memory: DynamicMemory | None = None
    power: str = "on"  # on | off (desired); actual: derived from the run state
    start: str = "auto"  # auto | manual: start attribute [R2]
    label: str = ""
    disks: tuple[Disk, ...] = ()
    dvds: tuple[Disk, ...] = ()
    nics: tuple[Nic, ...] = ()
    online_migration: bool = True
    vm_type: str = "shared"  # shared | vpar (6.x)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    @property
    def address(self) -> str:
        return guest_address(self.name)


@frozen
class GuestStatus:
    """Runtime facts about a guest that are never declared."""

    state: str  # "On (OS)" | "On (EFI)" | "Off" | "Off (NR)" | "Invalid"
    vm_number: int
    uuid: str = ""
    runnable: bool = True  # False for the Off (NR) copy left behind by a migration

    @property
    def running(self) -> bool:
        return self.state.startswith("On")


@frozen
class ActualGuest:
    """A guest as the runtime has it: its configuration plus runtime status."""

    guest: Guest
    status: GuestStatus


# --------------------------------------------------------------------------------------------
# Whole states
# --------------------------------------------------------------------------------------------


@frozen
class ProviderConfig:
    """The `provider:` block: which provider plugin and its options."""

    name: str = "emulator"
    options: Mapping[str, Any] = field(default_factory=dict)


@frozen
class DesiredState:
    """Everything the configuration declares, normalised.

    `sources` maps an address (and "address:field.path") to where it was written, for
    error messages; `digest` identifies the configuration for saved plans.
    """

    provider: ProviderConfig = field(default_factory=ProviderConfig)
    hosts: Mapping[str, Host] = field(default_factory=dict)
    guests: Mapping[str, Guest] = field(default_factory=dict)
    sources: Mapping[str, Location] = field(default_factory=dict)
    digest: str = ""


@frozen
class ActualState:
    """What the runtime has on the refreshed hosts.

    `guests` holds every runnable guest by name; `not_runnable` holds the Off (NR)
    copies migrations leave on source hosts, keyed by (host, name).
    `generation` is the runtime's change counter at refresh time (stale-plan checks).
    `unreachable` holds the hosts that did not answer, with what the connection said;
    nothing is known about them (they are in none of the other fields).
    """

    hosts: Mapping[str, Host] = field(default_factory=dict)
    guests: Mapping[str, ActualGuest] = field(default_factory=dict)
    not_runnable: Mapping[tuple[str, str], ActualGuest] = field(default_factory=dict)
    generation: str = ""
    unreachable: Mapping[str, str] = field(default_factory=dict)
