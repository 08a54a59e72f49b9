"""Recorded hpvm* outputs (docs/emulator-fidelity.md section 2) and a world that replays them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

MACHINE = (
    "web01:1::Integrity VM:6f1c0a4e-0001:HPUX:SH:web front end:enabled:enabled:On:Auto:OS:"
    "enabled:enabled:enabled:2:1:vmhost01:2;20.0;100.0:4GB;driver;2048;8192;4096\n"
    "db01:2::Integrity VM:6f1c0a4e-0002:LINUX:SH::enabled:enabled:Off:Manual::"
    "disabled:enabled:enabled:1:1:vmhost01:4;50.0;80.0:4160MB;none;;;\n"
    "app01:3::Integrity VM:6f1c0a4e-0003:HPUX:SH:moved away:disabled:enabled:Off:Auto:NR:"
    "enabled:enabled:enabled:1:0:vmhost01:1;10.0;100.0:2GB;none;;;\n"
)

DEVICES = {
    "web01": (
        "[Storage Interface Details]\n"
        "disk:avio_stor:0,1,0:file:/ivm/web01/root.img\n"
        "dvd:avio_stor:0,1,1:file:/iso/hpux.iso\n"
        "[Network Interface Details]\n"
        "network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vswprod:portid:4\n"
        "[Misc Interface Details]\n"
        "serial:com1::tty:console\n"
    ),
    "db01": (
        "[Storage Interface Details]\n"
        "disk:scsi:0,0,0:disk:/dev/rdisk/disk12\n"
        "[Network Interface Details]\n"
        "network:lan:0,3,0x02AABBCC0011:vswitch:localnet:portid:1\n"
        "[Misc Interface Details]\n"
        "serial:com1::tty:console\n"
    ),
    "app01": (
        "[Storage Interface Details]\n"
        "disk:avio_stor:0,1,0:file:/ivm/app01/root.img\n"
        "[Network Interface Details]\n"
        "[Misc Interface Details]\n"
        "serial:com1::tty:console\n"
    ),
}

XML = """<?xml version="1.0" encoding="UTF-8"?>
<pman>
  <virtual_machine name="web01">
    <uuid>6f1c0a4e-0001</uuid>
    <vm_number>1</vm_number>
    <vm_state>On</vm_state>
    <os_type>HPUX</os_type>
    <vcpu_number>2</vcpu_number>
    <memory><total unit="GB">4</total></memory>
    <devices>
      <storage>disk:avio_stor:0,1,0:file:/ivm/web01/root.img</storage>
      <storage>dvd:avio_stor:0,1,1:file:/iso/hpux.iso</storage>
      <network>network:avio_lan:0,2,0x0ADCFDCB2C62:vswitch:vswprod:portid:4</network>
    </devices>
  </virtual_machine>
  <virtual_machine name="db01">
    <uuid>6f1c0a4e-0002</uuid>
    <vm_number>2</vm_number>
    <vm_state>Off</vm_state>
    <os_type>LINUX</os_type>
    <vcpu_number>4</vcpu_number>
    <memory><total unit="MB">4160</total></memory>
    <devices>
      <storage>disk:scsi:0,0,0:disk:/dev/rdisk/disk12</storage>
      <network>network:lan:0,3,0x02AABBCC0011:vswitch:localnet:portid:1</network>
    </devices>
  </virtual_machine>
  <virtual_machine name="app01">
    <uuid>6f1c0a4e-0003</uuid>
    <vm_number>3</vm_number>
    <vm_state>Off</vm_state>
    <os_type>HPUX</os_type>
    <vcpu_number>1</vcpu_number>
    <memory><total unit="GB">2</total></memory>
    <devices>
      <storage>disk:avio_stor:0,1,0:file:/ivm/app01/root.img</storage>
    </devices>
  </virtual_machine>
</pman>
"""

VSWITCH_HEADER = (
    "Name     Number State   Mode      NamePPA  MAC Address    IP Address\n"
    "======== ====== ======= ========= ======== ============== ===============\n"
)
VSWITCH_ROWS = {
    "localnet": "localnet      1 Up      Shared             N/A            N/A\n",
    "vswprod": "vswprod       2 Up      Shared    lan0     0x001A4B000100 N/A\n",
    "vswlab": "vswlab        3 Down    Shared             N/A            N/A\n",
}
HPVMNET = VSWITCH_HEADER + "".join(VSWITCH_ROWS.values())

PORT_HEADER = (
    "[Port Configuration Details]\n"
    "Port Number  Port State  Adaptor  Untagged VLANID  Reserved VMs  Active VM\n"
    "===========  ==========  =======  ===============  ============  =========\n"
)
PORTS = {
    "localnet": "1            Reserved    lan      none             db01\n",
    "vswprod": (
        "4            Active      avio_lan 20               web01         web01\n"
        "7            Available            30\n"
    ),
    "vswlab": "",
}

DEVMGMT = (
    "/dev/rdisk/disk12:CONFIG=gdev,EXIST=YES,DEVTYPE=DISK,SHARE=YES,PRESERVE=NO:db01:"
    "0x600508b4000f\n"
    "/ivm/web01/root.img:CONFIG=gdev,EXIST=YES,DEVTYPE=FILE,SHARE=NO,PRESERVE=NO,"
    "SIZE=20480MB:web01:file-3\n"
    "/iso/hpux.iso:CONFIG=gdev,EXIST=YES,DEVTYPE=FILE,SHARE=NO,PRESERVE=NO::file-4\n"
    "lan0:CONFIG=rdev,EXIST=YES,DEVTYPE=NIC,SHARE=NO,PRESERVE=NO::lan-1\n"
)


SERVER = (
    "[HPVM Server System Resources]\n"
    "\n"
    "VM Host name = vmhost01\n"
    "Integrity VM version = 6.3\n"
    "Processor speed = 1600 Mhz\n"
    "Total number of operable system cores = 8\n"
    "Total physical memory = 65536 Mbytes\n"
    "VM memory pool = 60288 Mbytes\n"
    "Memory in use by running guests = 4224 Mbytes\n"
    "Available VM memory = 56064 Mbytes\n"
    "Entitlement in use per core (%) = 20,20,0,0,0,0,0,0\n"
    "Available entitlement per core (%) = 80,80,100,100,100,100,100,100\n"
    "Running guests = 1\n"
    "Host NICs = lan0,lan1\n"
)


def vswitch_detail(name: str) -> str:
    return VSWITCH_HEADER + VSWITCH_ROWS[name] + "\n" + PORT_HEADER + PORTS[name]


@dataclass
class Result:
    exit_code: int
    stdout: str = ""
    stderr: str = ""


@dataclass
class FakeHost:
    name: str
    version: str
    cores: int
    memory_mb: int
    nics: tuple[str, ...]
    mhz: int = 1600


@dataclass
class FakeWorld:
    """Replays recorded outputs for vmhost01; records every command it is given."""

    hosts_: list[FakeHost] = field(default_factory=list)
    outputs: dict[tuple[str, tuple[str, ...]], Result] = field(default_factory=dict)
    log: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    batches: list[tuple[str, list[tuple[str, ...]]]] = field(default_factory=list)
    generation: int = 7
    closed: bool = False

    def hosts(self) -> list[FakeHost]:
        return list(self.hosts_)

    def has_host(self, name: str) -> bool:
        return any(host.name == name for host in self.hosts_)

    def add_host(self, **kwargs: Any) -> None:
        self.hosts_.append(FakeHost(**kwargs))
        self.generation += 1

    def execute(self, host: str, argv: Sequence[str]) -> Result:
        key = (host, tuple(argv))
        self.log.append(key)
        return self.outputs.get(key, Result(0, ""))

    def simulates_delays(self) -> bool:
        return False

    def execute_many(self, host: str, argvs: Sequence[Sequence[str]]) -> list[Result]:
        self.batches.append((host, [tuple(argv) for argv in argvs]))
        return [self.execute(host, argv) for argv in argvs]

    def close(self) -> None:
        self.closed = True


def recorded_world() -> FakeWorld:
    world = FakeWorld(
        hosts_=[FakeHost(name="vmhost01", version="6.3", cores=8, memory_mb=65536,
                         nics=("lan0", "lan1"))]
    )  # fmt: skip
    h = "vmhost01"
    world.outputs[(h, ("hpvmstatus", "-s"))] = Result(0, SERVER)
    world.outputs[(h, ("hpvmstatus", "-M"))] = Result(0, MACHINE)
    world.outputs[(h, ("hpvmstatus", "-X"))] = Result(0, XML)
    world.outputs[(h, ("hpvmnet",))] = Result(0, HPVMNET)
    world.outputs[(h, ("hpvmdevmgmt", "-l", "all"))] = Result(0, DEVMGMT)
    for name, text in DEVICES.items():
        world.outputs[(h, ("hpvmstatus", "-d", "-P", name))] = Result(0, text)
    for name in VSWITCH_ROWS:
        world.outputs[(h, ("hpvmnet", "-S", name))] = Result(0, vswitch_detail(name))
    return world


@pytest.fixture
def world() -> FakeWorld:
    return recorded_world()
