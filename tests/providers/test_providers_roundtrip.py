"""End to end against the real emulator: what the provider writes, it reads back identically.

Every step runs through the hpvm* front end of an `ivmctl.runtime.World`, exactly as
`apply` runs it; the state is then refreshed by parsing the listings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ivmctl import model
from ivmctl.core.reachability import require_reachable
from ivmctl.errors import ProviderError
from ivmctl.plan.model import Operation, OpKind
from ivmctl.providers.emulator import EmulatorProvider, create_provider
from ivmctl.resources import NetworkResource, StorageResource
from ivmctl.rules import format_mac

HARDWARE = model.Hardware(cores=8, memory_mb=64 * 1024, nics=("lan0", "lan1"))
HOSTS = ("vmhost01", "vmhost02")


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[EmulatorProvider]:
    made = create_provider({"path": "world.db"}, config_dir=tmp_path, environ={})
    for name in HOSTS:
        made.ensure_host(model.Host(name=name, version="6.3", hardware=HARDWARE))
        made.emulator.world.set_faults(name, boot_delay=0.0)
        run(made, Operation(kind=OpKind.VSWITCH_CREATE, host=name,
                            params={"name": "vswprod", "nic": "lan0"}))  # fmt: skip
    yield made
    made.close()


def run(provider: EmulatorProvider, operation: Operation) -> None:
    for step in provider.steps(operation):
        result = provider.execute(step)
        assert result.ok, f"{step.command_line}: {result.output}"


def create_operations(guest: model.Guest) -> list[Operation]:
    """The operations a planner emits to bring a declared guest into being."""
    ops: list[Operation] = []
    devices: list[str] = []
    for disk in (*guest.disks, *guest.dvds):
        if disk.backing == "file" and disk.size_mb:
            ops.append(Operation(kind=OpKind.FILE_CREATE, host=guest.host,
                                 params={"path": disk.path, "size_mb": disk.size_mb}))  # fmt: skip
        bus = slot = target = None
        if disk.address:
            bus, slot, target = (int(x) for x in disk.address.split(","))
        devices.append(StorageResource(devtype=disk.devtype, adapter=disk.adapter,
                                       backing=disk.backing, path=disk.path, bus=bus, slot=slot,
                                       target=target).format())  # fmt: skip
    for nic in guest.nics:
        devices.append(NetworkResource(adapter=nic.adapter, vswitch=nic.vswitch, mac=nic.mac,
                                       port=nic.port).format())  # fmt: skip
    dyn = guest.dynamic_memory
    ops.append(
        Operation(
            kind=OpKind.GUEST_CREATE,
            host=guest.host,
            params={
                "name": guest.name, "os": guest.os, "vcpus": guest.vcpus,
                "entitlement": {"min": guest.entitlement.min_pct,
                                "max": guest.entitlement.max_pct},
                "memory_mb": guest.memory_mb, "start": guest.start, "label": guest.label,
                "dynamic_memory": None if dyn is None else
                {"min_mb": dyn.min_mb, "max_mb": dyn.max_mb, "target_mb": dyn.target_mb},
                "online_migration": guest.online_migration, "devices": devices,
            },
        )
    )  # fmt: skip
    for disk in guest.disks:
        if disk.shared:
            ops.append(Operation(kind=OpKind.DEVICE_SHARE, host=guest.host,
                                 params={"path": disk.path}))  # fmt: skip
    for nic in guest.nics:
        if nic.vlan is not None and nic.port is not None:
            ops.append(Operation(kind=OpKind.PORT_VLAN, host=guest.host,
                                 params={"vswitch": nic.vswitch, "port": nic.port,
                                         "vlan": nic.vlan}))  # fmt: skip
    if guest.power == "on":
        ops.append(Operation(kind=OpKind.GUEST_START, host=guest.host, params={"name": guest.name}))
    return ops


def as_declared(actual: model.Guest, declared: model.Guest) -> model.Guest:
    """The actual guest with what the declaration left to the runtime blanked out."""

    def disk(got: model.Disk, want: model.Disk) -> model.Disk:
        return replace(got, size_mb=want.size_mb, address=want.address and got.address)

    def nic(got: model.Nic, want: model.Nic) -> model.Nic:
        return replace(got, mac=want.mac and got.mac, port=want.port and got.port,
                       address=want.address and got.address)  # fmt: skip

    return replace(
        actual,
        disks=tuple(disk(g, w) for g, w in zip(actual.disks, declared.disks, strict=True)),
        dvds=tuple(disk(g, w) for g, w in zip(actual.dvds, declared.dvds, strict=True)),
        nics=tuple(nic(g, w) for g, w in zip(actual.nics, declared.nics, strict=True)),
    )


ROUND_TRIP = [
    model.Guest(
        name="web01", host="vmhost01", os="hpux", vcpus=2,
        entitlement=model.Entitlement(min_pct=20.0, max_pct=100.0), memory_mb=4096,
        dynamic_memory=model.DynamicMemory(min_mb=2048, max_mb=8192, target_mb=4096),
        label="web front end",
        disks=(model.Disk(backing="file", path="/ivm/web01/root.img", size_mb=20480),),
        nics=(model.Nic(vswitch="vswprod", vlan=20, port=3),),
    ),
    model.Guest(
        name="db01", host="vmhost01", os="linux", vcpus=4,
        entitlement=model.Entitlement(min_pct=50.0, max_pct=80.0), memory_mb=4160,
        power="off", start="manual", online_migration=False,
        disks=(model.Disk(backing="file", path="/ivm/db01/data.img", size_mb=1024,
                          adapter="scsi", address="0,3,0", shared=True),),
        dvds=(model.Disk(devtype="dvd", backing="file", path="/iso/rhel.iso", size_mb=64),),
        nics=(model.Nic(vswitch="localnet", adapter="lan", mac=0x02AABBCC0011),),
    ),
    model.Guest(name="tiny", host="vmhost02", power="off", label="lab"),
]  # fmt: skip


@pytest.mark.parametrize("declared", ROUND_TRIP, ids=[g.name for g in ROUND_TRIP])
def test_a_created_guest_reads_back_as_declared(
    provider: EmulatorProvider, declared: model.Guest
) -> None:
    for operation in create_operations(declared):
        run(provider, operation)
    state = provider.refresh(HOSTS)
    actual = state.guests[declared.name]
    assert as_declared(actual.guest, declared) == declared
    assert actual.status.runnable and actual.status.vm_number >= 1
    assert provider.read_guest(declared.host, declared.name) == actual


def test_runtime_chosen_values_are_read_back_concretely(provider: EmulatorProvider) -> None:
    for operation in create_operations(ROUND_TRIP[0]):
        run(provider, operation)
    (nic,) = provider.read_guest("vmhost01", "web01").guest.nics  # type: ignore[union-attr]
    assert nic.mac is not None and format_mac(nic.mac).startswith("0x")
    assert nic.port == 3 and nic.address is not None
    state = provider.refresh(HOSTS)
    assert state.hosts["vmhost01"].vswitches["vswprod"].port_vlans == {3: 20}
    assert state.hosts["vmhost01"].vswitches["vswprod"].nic == "lan0"


def modify(name: str, *, online: bool, **params: Any) -> Operation:
    return Operation(kind=OpKind.GUEST_MODIFY, host="vmhost01",
                     params={"name": name, "online": online, **params})  # fmt: skip


def test_online_changes_are_read_back_on_the_running_guest(provider: EmulatorProvider) -> None:
    for operation in create_operations(ROUND_TRIP[0]):
        run(provider, operation)
    run(provider, modify("web01", online=True, set={
        "entitlement": {"min": 30.0, "max": 90.0}, "label": "web tier", "start": "manual",
        "dynamic_memory.target": 3136}))  # fmt: skip
    after = provider.read_guest("vmhost01", "web01")
    assert after is not None and after.status.running
    guest = after.guest
    assert guest.entitlement == model.Entitlement(min_pct=30.0, max_pct=90.0)
    assert (guest.label, guest.start) == ("web tier", "manual")
    assert guest.dynamic_memory is not None and guest.dynamic_memory.target_mb == 3136


def test_offline_changes_and_device_changes_read_back(provider: EmulatorProvider) -> None:
    for operation in create_operations(ROUND_TRIP[0]):
        run(provider, operation)
    run(provider, Operation(kind=OpKind.GUEST_STOP, host="vmhost01",
                            params={"name": "web01", "graceful": True}))  # fmt: skip
    run(provider, Operation(kind=OpKind.FILE_CREATE, host="vmhost01",
                            params={"path": "/ivm/web01/data.img", "size_mb": 2048}))  # fmt: skip
    run(provider, modify("web01", online=False, set={"vcpus": 4, "memory_mb": 8192},
                         add=["disk:avio_stor::file:/ivm/web01/data.img"]))  # fmt: skip
    run(provider, Operation(kind=OpKind.GUEST_START, host="vmhost01", params={"name": "web01"}))
    after = provider.read_guest("vmhost01", "web01")
    assert after is not None and after.guest.power == "on"
    assert (after.guest.vcpus, after.guest.memory_mb) == (4, 8192)
    assert [d.path for d in after.guest.disks] == ["/ivm/web01/root.img", "/ivm/web01/data.img"]


@pytest.mark.parametrize("online", [True, False], ids=["online", "offline"])
def test_a_migration_then_remove_stale_moves_the_guest_and_leaves_no_copy(
    provider: EmulatorProvider, online: bool
) -> None:
    for operation in create_operations(replace(ROUND_TRIP[2], host="vmhost01", power="on")):
        run(provider, operation)
    if not online:
        run(provider, Operation(kind=OpKind.GUEST_STOP, host="vmhost01",
                                params={"name": "tiny", "graceful": False}))  # fmt: skip
    move = {"name": "tiny", "target": "vmhost02", "online": online}
    run(provider, Operation(kind=OpKind.GUEST_MIGRATE, host="vmhost01", params=move))
    state = provider.refresh(HOSTS)
    assert state.guests["tiny"].guest.host == "vmhost02"
    assert state.guests["tiny"].guest.power == ("on" if online else "off")
    assert state.not_runnable[("vmhost01", "tiny")].status.state == "Off (NR)"
    # The planner follows every migration with the removal of the source's copy.
    run(provider, Operation(kind=OpKind.GUEST_REMOVE_STALE, host="vmhost01",
                            params={"name": "tiny"}))  # fmt: skip
    assert provider.refresh(HOSTS).not_runnable == {}


def test_a_stale_not_runnable_copy_is_seen_and_removed(provider: EmulatorProvider) -> None:
    for operation in create_operations(replace(ROUND_TRIP[2], host="vmhost01")):
        run(provider, operation)
    world = provider.emulator.world
    moved = world.execute("vmhost01", ["hpvmmigrate", "-P", "tiny", "-h", "vmhost02"])
    assert moved.exit_code == 0, moved.stderr
    state = provider.refresh(HOSTS)
    assert state.guests["tiny"].guest.host == "vmhost02"
    stale = state.not_runnable[("vmhost01", "tiny")]
    assert stale.status.state == "Off (NR)" and not stale.status.runnable
    run(provider, Operation(kind=OpKind.GUEST_REMOVE_STALE, host="vmhost01",
                            params={"name": "tiny"}))  # fmt: skip
    assert provider.refresh(HOSTS).not_runnable == {}


def test_deletes_leave_nothing_behind(provider: EmulatorProvider) -> None:
    for operation in create_operations(replace(ROUND_TRIP[0], power="off")):
        run(provider, operation)
    run(provider, Operation(kind=OpKind.PORT_VLAN, host="vmhost01",
                            params={"vswitch": "vswprod", "port": 3, "vlan": None}))  # fmt: skip
    run(provider, Operation(kind=OpKind.GUEST_DELETE, host="vmhost01", params={"name": "web01"}))
    run(provider, Operation(kind=OpKind.VSWITCH_DELETE, host="vmhost01",
                            params={"name": "vswprod"}))  # fmt: skip
    state = provider.refresh(HOSTS)
    assert "web01" not in state.guests
    assert state.hosts["vmhost01"].vswitches == {}
    assert provider.read_guest("vmhost01", "web01") is None


def test_a_refused_step_is_a_failed_result_with_the_emulators_words(
    provider: EmulatorProvider,
) -> None:
    big = replace(ROUND_TRIP[2], name="big", host="vmhost01", vcpus=16, power="off")
    for operation in create_operations(big):
        run(provider, operation)
    (step,) = provider.steps(Operation(kind=OpKind.GUEST_START, host="vmhost01",
                                       params={"name": "big"}))  # fmt: skip
    result = provider.execute(step)
    assert not result.ok
    assert "big" in result.output


def test_generation_changes_with_every_change_and_not_with_refresh(
    provider: EmulatorProvider,
) -> None:
    before = provider.generation()
    assert provider.refresh(HOSTS).generation == before
    assert provider.generation() == before
    run(provider, Operation(kind=OpKind.GUEST_CREATE, host="vmhost01", params={"name": "g"}))
    assert int(provider.generation()) > int(before)


def test_a_provisioned_host_with_other_hardware_is_refused(provider: EmulatorProvider) -> None:
    other = model.Host(name="vmhost01", version="6.3", hardware=replace(HARDWARE, cores=16))
    with pytest.raises(ProviderError, match="vmhost01 has 8 cores, declared 16"):
        provider.ensure_host(other)


def test_the_world_path_comes_from_the_environment(tmp_path: Path) -> None:
    environ = {"IVMCTL_EMULATOR": str(tmp_path / "env-world.db")}
    made = create_provider({"path": "ignored.db"}, config_dir=tmp_path, environ=environ)
    made.ensure_host(model.Host(name="h1", version="6.3", hardware=HARDWARE))
    made.close()
    assert (tmp_path / "env-world.db").exists() and not (tmp_path / "ignored.db").exists()


def test_a_provisioned_host_reads_back_with_its_hardware(provider: EmulatorProvider) -> None:
    params = {"name": "vmhost03", "version": "4.3", "cores": 4, "memory_mb": 32768,
              "nics": ["lan0"], "mhz": 1800}  # fmt: skip
    run(provider, Operation(kind=OpKind.HOST_PROVISION, host="vmhost03", params=params))
    host = provider.refresh(["vmhost03"]).hosts["vmhost03"]
    assert host == model.Host(
        name="vmhost03",
        version="4.3",
        hardware=model.Hardware(cores=4, memory_mb=32768, nics=("lan0",), mhz=1800),
    )
    run(provider, Operation(kind=OpKind.HOST_PROVISION, host="vmhost03", params=params))


def test_steps_on_several_hosts_run_concurrently_through_one_world(
    provider: EmulatorProvider,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    guests = [replace(ROUND_TRIP[2], name=f"g{i}", host=HOSTS[i % 2], power="on")
              for i in range(6)]  # fmt: skip

    def bring_up(guest: model.Guest) -> None:
        for operation in create_operations(guest):
            run(provider, operation)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(bring_up, guests))
    state = provider.refresh(HOSTS)
    assert sorted(state.guests) == [g.name for g in guests]
    assert all(state.guests[g.name].guest.host == g.host for g in guests)
    assert all(a.status.running for a in state.guests.values())


def test_a_file_that_is_not_a_world_is_a_provider_error_and_stays_untouched(
    tmp_path: Path,
) -> None:
    (tmp_path / "notes.db").write_text("my notes\n", encoding="utf-8")
    made = create_provider({"path": "notes.db"}, config_dir=tmp_path, environ={})
    with pytest.raises(ProviderError, match="cannot open the emulator world"):
        made.refresh(["vmhost01"])
    assert (tmp_path / "notes.db").read_text(encoding="utf-8") == "my notes\n"


def test_an_unreachable_host_fails_refresh_and_steps_with_the_ssh_words(
    provider: EmulatorProvider,
) -> None:
    provider.emulator.world.set_faults("vmhost02", unreachable=True)
    actual = provider.refresh(HOSTS)
    assert set(actual.hosts) == {"vmhost01"}
    assert "Connection refused" in actual.unreachable["vmhost02"]
    with pytest.raises(ProviderError, match="cannot read host vmhost02") as info:
        require_reachable(actual)
    assert "Connection refused" in str(info.value)
    (step,) = provider.steps(Operation(kind=OpKind.GUEST_START, host="vmhost02",
                                       params={"name": "x"}))  # fmt: skip
    result = provider.execute(step)
    assert result.exit_code == 255 and "Connection refused" in result.output


def test_a_host_the_world_does_not_have_is_a_provider_error_when_used(
    provider: EmulatorProvider,
) -> None:
    with pytest.raises(ProviderError, match="could not run hpvmstatus on nosuch"):
        provider.read_guest("nosuch", "web01")


def test_reader_processes_read_the_same_fleet_as_the_provider_itself(
    provider: EmulatorProvider, tmp_path: Path
) -> None:
    for name in ("web01", "web02"):
        guest = model.Guest(name=name, host="vmhost01", memory_mb=2048,
                            nics=(model.Nic(vswitch="vswprod"),))  # fmt: skip
        for operation in create_operations(guest):
            run(provider, operation)
    in_process = provider.refresh(list(HOSTS))
    assert set(in_process.guests) == {"web01", "web02"}
    assert provider.emulator.reader_processes == 0  # two hosts: not worth a worker
    pooled = create_provider({"path": "world.db", "processes": 2}, config_dir=tmp_path,
                             environ={})  # fmt: skip
    try:
        assert pooled.refresh(list(HOSTS)) == in_process
        assert pooled.emulator.reader_processes == 2
        assert pooled.read_guest("vmhost01", "web01") == in_process.guests["web01"]
    finally:
        pooled.close()
