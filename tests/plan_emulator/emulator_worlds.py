"""Random small emulator worlds and configurations for the property tests of this directory."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from ivmctl.providers.manager import get_plugin_manager

PM = get_plugin_manager()
HOSTS = ("h1", "h2")
VSWITCHES = {"vswa": "lan0", "vswb": None}  # one with an uplink, one host-local


def _disk_choices(name: str) -> list[list[dict[str, Any]]]:
    """The disk lists a guest may have: none, or its own LV (either adapter) or file, so
    disks come, go and change adapter between configurations."""
    if name == "g1":
        return [[]]
    if name == "g3":
        return [[], [{"backing": "file", "path": f"/ivm/{name}/root.img", "size": "8G"}]]
    lv = f"/dev/vg01/rlvol_{name}"
    return [[], [{"backing": "lv", "path": lv}], [{"backing": "lv", "path": lv, "adapter": "scsi"}]]


@dataclass(frozen=True)
class World:
    """The hosts' fixed hardware and versions, shared by both configurations."""

    hosts: tuple[str, ...]
    cores: dict[str, int]
    memory: dict[str, str]
    versions: dict[str, str]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    hosts = HOSTS[: draw(st.integers(1, 2))]
    return World(
        hosts=hosts,
        cores={h: draw(st.sampled_from([2, 4, 8])) for h in hosts},
        memory={h: draw(st.sampled_from(["8G", "16G"])) for h in hosts},
        versions={h: draw(st.sampled_from(["6.3", "6.3", "6.2", "4.2"])) for h in hosts},
    )


@st.composite
def configurations(draw: st.DrawFn, world: World) -> dict[str, Any]:
    """One ivmctl/v1 document (as data) for `world`."""
    vswitches = {
        h: sorted(draw(st.sets(st.sampled_from(sorted(VSWITCHES)), max_size=2)))
        for h in world.hosts
    }
    hosts = {
        h: {
            "version": world.versions[h],
            "hardware": {"cores": world.cores[h], "memory": world.memory[h], "nics": ["lan0"]},
            "vswitches": {v: ({"nic": VSWITCHES[v]} if VSWITCHES[v] else {}) for v in vswitches[h]},
        }
        for h in world.hosts
    }
    guests: dict[str, Any] = {}
    for i in range(draw(st.integers(0, 4))):
        if not draw(st.booleans()) and i:
            continue  # leave gaps, so guests come and go between configurations
        host = draw(st.sampled_from(world.hosts))
        nics = []
        for vswitch in draw(st.lists(st.sampled_from(["localnet", *vswitches[host]]), max_size=2)):
            nic: dict[str, Any] = {"vswitch": vswitch}
            if VSWITCHES.get(vswitch) is None:
                nic["adapter"] = "lan"  # AVIO needs a vswitch with an uplink
            elif draw(st.booleans()):
                nic["vlan"] = draw(st.sampled_from([100, 200]))
            nics.append(nic)
        minimum = draw(st.sampled_from([10, 20, 50]))
        maximum = draw(st.sampled_from([minimum, 100]))
        os = draw(st.sampled_from(["hpux", "hpux", "linux"]))
        guest: dict[str, Any] = {
            "host": host,
            "os": os,
            "vcpus": draw(st.integers(1, min(4, world.cores[host]))),
            "entitlement": {"min": f"{minimum}%", "max": f"{maximum}%"},
            "memory": draw(st.sampled_from(["1G", "2G", "3G", "4G"])),
            "power": draw(st.sampled_from(["on", "on", "off"])),
            "start": draw(st.sampled_from(["auto", "manual"])),
            "label": draw(st.sampled_from(["", "app"])),
            "disks": draw(st.sampled_from(_disk_choices(f"g{i}"))),
            "nics": nics,
            "online_migration": draw(st.sampled_from([True, True, False])),
        }
        if os == "hpux" and draw(st.booleans()):
            guest["dynamic_memory"] = {
                "min": draw(st.sampled_from(["512M", "1G"])),
                "max": draw(st.sampled_from(["4G", "8G"])),
                "target": draw(st.sampled_from([guest["memory"], "1G"])),
            }
        if draw(st.integers(0, 5)) == 0:
            guest["lifecycle"] = {"restart": "deny"}
        guests[f"g{i}"] = guest
    return {"apiVersion": "ivmctl/v1", "hosts": hosts, "guests": guests}


def write_config(config_dir: Path, document: dict[str, Any]) -> None:
    body = {
        **document,
        "provider": {"name": "emulator", "options": {"path": str(config_dir / "world.db")}},
    }
    (config_dir / "ivmctl.yaml").write_text(json.dumps(body, indent=1), encoding="utf-8")
