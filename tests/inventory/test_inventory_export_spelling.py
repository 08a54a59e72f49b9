"""spec.export spells every value so that the spec loader reads back the same guest.

Random hosts and guests (model objects, no emulator) are exported, loaded with the real
loader, and compared with the planner's own diff: no field may differ, and the host's
version, hardware and vswitches come back unchanged.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.model import (
    ActualGuest,
    Disk,
    DynamicMemory,
    Entitlement,
    Guest,
    GuestStatus,
    Hardware,
    Host,
    Nic,
    ProviderConfig,
    VSwitch,
)
from ivmctl.plan.diff import diff_guest
from ivmctl.spec import load_desired
from ivmctl.spec.export import export_text

HOST = Host(
    name="vmhost01",
    version="6.3",
    hardware=Hardware(cores=16, memory_mb=262144, nics=("lan0", "lan1"), mhz=1596),
    vswitches={
        "vswprod": VSwitch(host="vmhost01", name="vswprod", nic="lan0"),
        "vswlocal": VSwitch(host="vmhost01", name="vswlocal"),
    },
)
PERCENT = st.sampled_from([5.0, 10.0, 12.5, 20.0, 33.3, 50.0, 100.0])
MEMORY = st.integers(1, 64).map(lambda n: n * 512)  # 512M steps: whole GB and not


@st.composite
def guests(draw: st.DrawFn, name: str) -> ActualGuest:
    os = draw(st.sampled_from(["hpux", "linux", "windows", "openvms", "unknown"]))
    vpar = draw(st.booleans()) and os == "hpux"
    memory = draw(MEMORY)
    dynamic = None
    if os == "hpux" and not vpar and draw(st.booleans()):
        dynamic = DynamicMemory(min_mb=512, max_mb=memory + 1024, target_mb=memory)
    minimum = draw(PERCENT)
    maximum = draw(st.sampled_from([minimum, 100.0]))
    nics = []
    places = st.lists(st.sampled_from(["vswprod", "vswlocal", "localnet"]), max_size=3)
    for i, vswitch in enumerate(draw(places)):
        avio = vswitch == "vswprod" and draw(st.booleans())
        nics.append(
            Nic(
                vswitch=vswitch,
                adapter="avio_lan" if avio else "lan",
                vlan=draw(st.sampled_from([None, 0, 4094])) if vswitch == "vswprod" else None,
                mac=0x0ADCFDCB2C00 + i,  # runtime-chosen: exported without them
                port=i,
                address=f"0,{i + 1}",
            )
        )
    stor = draw(st.sampled_from(["avio_stor", "scsi"]))
    disks = [
        Disk(backing="file", path=f"/ivm/{name}/root.img", adapter=stor, address="0,0,1"),
        Disk(backing="lv", path=f"/dev/vg01/rlvol_{name}", shared=draw(st.booleans())),
    ][: draw(st.integers(0, 2))]
    dvd = draw(st.sampled_from(["null", "file", "disk"]))
    dvds = [Disk(devtype="dvd", backing=dvd, path=f"/iso/{name}")][: draw(st.integers(0, 1))]
    running = draw(st.booleans())
    guest = Guest(
        name=name,
        host="vmhost01",
        os=os,
        vcpus=draw(st.integers(1, 16)),
        entitlement=Entitlement(min_pct=minimum, max_pct=maximum),
        memory_mb=memory,
        dynamic_memory=dynamic,
        power="on" if running else "off",
        start=draw(st.sampled_from(["auto", "manual"])),
        label=draw(st.sampled_from(["", "web front end", "a.b-c_d", "on", "0x12", "null", "6.3"])),
        disks=tuple(disks),
        dvds=tuple(dvds),
        nics=tuple(nics),
        online_migration=draw(st.booleans()),
        vm_type="vpar" if vpar else "shared",
    )
    state = "On (OS)" if running else "Off"
    return ActualGuest(guest=guest, status=GuestStatus(state=state, vm_number=1))


@st.composite
def fleets(draw: st.DrawFn) -> list[ActualGuest]:
    return [draw(guests(f"vm{i}")) for i in range(draw(st.integers(1, 3)))]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fleets())
def test_every_exported_guest_loads_back_without_a_difference(fleet: list[ActualGuest]) -> None:
    text = export_text([HOST], fleet, provider=ProviderConfig(name="emulator"))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "exported.yaml").write_text(text, encoding="utf-8")
        desired = load_desired(Path(tmp), variables={}, var_files=(), environ={}, filters={},
                               cache_dir=None)  # fmt: skip
    assert sorted(desired.guests) == sorted(g.guest.name for g in fleet)
    for item in fleet:
        want = desired.guests[item.guest.name]
        power = "on" if item.status.running else "off"
        assert diff_guest(want, item.guest, power) == [], text
        assert want.host == item.guest.host
    host = desired.hosts["vmhost01"]
    assert (host.version, host.hardware) == (HOST.version, HOST.hardware)
    assert {n: v.nic for n, v in host.vswitches.items()} == {"vswprod": "lan0", "vswlocal": None}


def test_an_off_nr_copy_is_not_exported_as_a_guest() -> None:
    copy = ActualGuest(
        guest=Guest(name="moved", host="vmhost01"),
        status=GuestStatus(state="Off (NR)", vm_number=2, runnable=False),
    )
    text = export_text([HOST], [copy])
    assert "moved" not in text
    assert "guests: {}" in text
