"""A scripted session built from the domain reference's examples, run end to end.

Each step is a command line from ivm-domain.md (sections 3, 6, 7, 10) with the result the
reference documents: exit status and a line the real command prints.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from ivmctl.runtime import World

# (host, command line, exit status, text expected in stdout+stderr or "")
SESSION: list[tuple[str, str, int, str]] = [
    ("vmhost01", "hpvmnet", 0, "localnet      1 Up      Shared             N/A            N/A"),
    ("vmhost01", "hpvmnet -c -S vmlan4 -n 1", 0, ""),  # 3.9 / R21
    ("vmhost01", "hpvmnet -b -S vmlan4", 0, ""),
    ("vmhost01", "hpvmnet -c -S vsw_prod -n 0", 0, ""),
    ("vmhost01", "hpvmnet -b -S vsw_prod", 0, ""),
    ("vmhost02", "hpvmnet -c -S vsw_prod -n 0", 0, ""),
    ("vmhost02", "hpvmnet -b -S vsw_prod", 0, ""),
    ("vmhost01", "hpvmcreate -P ivm1 -O hpux", 0, ""),  # 3.1: 1 vCPU, 10 %, 2 GB
    ("vmhost01", "hpvmstatus -M -P ivm1", 0, "ivm1:1::Integrity VM:"),
    (
        "vmhost01",
        "hpvmcreate -P db01 -O hpux -c 4 -e 50 -r 16G -B manual "
        "-a disk:avio_stor::disk:/dev/rdisk/disk12 -a network:avio_lan::vswitch:vsw_prod",
        0,
        "",
    ),
    ("vmhost01", "hpvmcreate -P vp1 -B auto -x vm_type=vpar", 0, ""),
    ("vmhost01", "hpvmstatus", 0, "db01                     2 SH   HPUX    Off            4"),
    ("vmhost01", "hpvmmodify -P ivm1 -c 2", 0, ""),  # 3.2 resize
    ("vmhost01", "hpvmmodify -P ivm1 -r 4G", 0, ""),
    (
        "vmhost01",
        "hpvmmodify -P ivm1 -a disk:scsi::lv:/dev/vg_vmtest/ivm1d1",
        1,
        "Expecting a character device file for disk backing file",
    ),  # 10, block device
    ("vmhost01", "hpvmmodify -P ivm1 -a disk:scsi::lv:/dev/vg_vmtest/rivm1d1", 0, ""),
    ("vmhost01", "hpvmmodify -P ivm1 -a network:lan:0,1,0xB20EBA14E76C:vswitch:localnet", 0, ""),
    (
        "vmhost01",
        "hpvmmodify -P ivm1 -a network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:localnet",
        1,
        "need a vswitch backed by a host NIC",
    ),  # 8: AVIO needs a NIC-backed vswitch
    (
        "vmhost01",
        "hpvmmodify -P ivm1 -a network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vmlan4:portid:4",
        0,
        "",
    ),  # 3.11
    ("vmhost01", "hpvmstart -P ivm1", 0, "hpvmstart: Successful start initiation of guest 'ivm1'"),
    ("vmhost01", "hpvmstatus -P ivm1", 0, "On (EFI)"),
    ("vmhost01", "hpvmmodify -P ivm1 -c 1", 1, "Cannot change the number of vCPUs"),  # 4.2
    ("vmhost01", "hpvmmodify -P ivm1 -e 20", 0, ""),  # 4.1 entitlement online
    (
        "vmhost01",
        "hpvmstatus -P ivm1 -d",
        0,
        "network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vmlan4:portid:4",
    ),  # 6.5
    ("vmhost01", "hpvmstop -P ivm1 -g -F", 0, ""),  # 3.4
    ("vmhost01", "hpvmstart -P db01", 0, "Successful start initiation of guest 'db01'"),
    (
        "vmhost01",
        "hpvmmigrate -o -P db01 -h vmhost02",
        0,
        "hpvmmigrate: Guest migrated successfully.",
    ),  # 3.7 / R23
    ("vmhost01", "hpvmstatus", 0, "Off (NR)"),  # 7.3
    ("vmhost02", "hpvmstatus -M -P db01", 0, ":On:Manual:"),
    ("vmhost01", "hpvmstart -P db01", 1, "not runnable"),
    ("vmhost01", "hpvmmodify -P db01 -x register_status=enabled", 0, ""),  # 7.3 re-enable
    ("vmhost01", "hpvmremove -P db01 -F", 0, ""),
    ("vmhost01", "hpvmclone -P ivm1 -N ivm2", 0, ""),  # 3.6
    ("vmhost01", "hpvmstart -P ivm2", 0, ""),
    ("vmhost01", "hpvmstart -P ivm1", 1, "is in use by running guest 'ivm2'"),
    ("vmhost01", "hpvmdevmgmt -m gdev:/dev/vg_vmtest/rivm1d1:attr:PRESERVE=YES", 0, ""),
    ("vmhost01", "hpvmdevmgmt -a rdev:/dev/rdisk/disk3", 0, ""),  # 3.10
    ("vmhost01", "hpvmdevmgmt -l rdev", 0, "/dev/rdisk/disk3:CONFIG=rdev"),
    ("vmhost01", "hpvmnet -S vmlan4 -u portid:4:vlanid:20", 0, ""),  # 3.9 VLAN
    ("vmhost01", "hpvmnet -S vmlan4", 0, "4            Reserved    avio_lan 20               ivm1"),
    ("vmhost01", "hpvmnet -h -S vmlan4", 0, ""),
]


def test_the_reference_session_gives_the_documented_results(tmp_path: Path) -> None:
    world = World.open(tmp_path / "w.db", clock=lambda: 1_800_000_000.0, sleep=lambda s: None)
    try:
        world.add_host(name="vmhost01", cores=8, memory_mb=64 * 1024, nics=("lan0", "lan1"))
        world.add_host(name="vmhost02", cores=8, memory_mb=64 * 1024, nics=("lan0", "lan1"))
        assert len(SESSION) >= 20
        for host, line, code, text in SESSION:
            result = world.execute(host, shlex.split(line))
            output = result.stdout + result.stderr
            assert result.exit_code == code, f"{host}$ {line}\n{output}"
            assert text in output, f"{host}$ {line}: {text!r} not in\n{output}"
        log = world.log("vmhost01")
        assert len(log) == sum(1 for h, *_ in SESSION if h == "vmhost01")
        assert [e.exit_code for e in log if e.argv[0] == "hpvmstart"] == [0, 0, 1, 0, 1]
    finally:
        world.close()
