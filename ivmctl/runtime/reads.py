"""What the listings of one batch read about their host, read once and shared.

A refresh asks each host for `hpvmstatus -M` and `-X`, `hpvmnet` and one `hpvmnet -S` per
vswitch in one batch, on one read snapshot. Each listing used to read the host's guests,
devices, vswitches and ports again; at 1,000 hosts those repeated reads were most of a
refresh. `HostReads` reads each of them once, the first time a listing asks, with one
query for the whole host.

It lives exactly as long as one snapshot (`World._read`) or one command: rows read here
must never outlive the transaction they were read in, since the world changes between
commands. A command that writes must not read through it after writing.
"""

from __future__ import annotations

import sqlite3

from ivmctl.runtime.data import (
    Guest,
    Host,
    Nic,
    Storage,
    VSwitch,
    devices_of,
    guests_of,
    vswitches_of,
)

# A NIC on a vswitch port: (port, adapter, name of the guest holding the port, that
# guest's state). A plain tuple: a refresh reads one per NIC of the fleet.
PortUse = tuple[int, str, str, str]


class HostReads:
    """One host's rows as one snapshot shows them, each read on first use."""

    def __init__(self, conn: sqlite3.Connection, host: Host) -> None:
        self._conn = conn
        self._host = host
        self._guests: list[Guest] | None = None
        self._devices: dict[int, tuple[list[Storage], list[Nic]]] | None = None
        self._vswitches: list[VSwitch] | None = None
        self._ports: dict[int, tuple[list[PortUse], dict[int, int]]] | None = None

    def guests(self) -> list[Guest]:
        """The host's guests by number (the caller must not change the list)."""
        if self._guests is None:
            self._guests = guests_of(self._conn, self._host.id)
        return self._guests

    def devices(self) -> dict[int, tuple[list[Storage], list[Nic]]]:
        """guest id -> (storage, NICs) in address order, for every guest of the host."""
        if self._devices is None:
            self._devices = devices_of(self._conn, self._host.id, self.guests())
        return self._devices

    def device_counts(self) -> dict[int, tuple[int, int]]:
        """guest id -> (storage devices, network devices), for every guest of the host.

        Counted from `devices`, which a batch with `-X` reads anyway, rather than by a
        query of its own."""
        return {gid: (len(st), len(nets)) for gid, (st, nets) in self.devices().items()}

    def vswitches(self) -> list[VSwitch]:
        """The host's vswitches by number."""
        if self._vswitches is None:
            self._vswitches = vswitches_of(self._conn, self._host.id)
        return self._vswitches

    def vswitch(self, name: str) -> VSwitch | None:
        return next((v for v in self.vswitches() if v.name == name), None)

    def ports(self, vswitch_id: int) -> tuple[list[PortUse], dict[int, int]]:
        """(the NICs on a vswitch of the host, port -> untagged VLAN id of its ports).

        Two queries for every vswitch of the host: a batch lists them all."""
        if self._ports is None:
            found: dict[int, tuple[list[PortUse], dict[int, int]]] = {
                v.id: ([], {}) for v in self.vswitches()
            }
            for vs, port, vlan in self._conn.execute(
                "SELECT p.vswitch_id, p.port, p.vlan FROM vswitches v "
                "JOIN port_vlans p ON p.vswitch_id = v.id WHERE v.host_id=?",
                (self._host.id,),
            ):
                found[vs][1][port] = vlan
            for vs, port, adapter, guest, state in self._conn.execute(
                "SELECT n.vswitch_id, n.port, n.adapter, g.name, g.state FROM vswitches v "
                "JOIN nics n ON n.vswitch_id = v.id JOIN guests g ON g.id = n.guest_id "
                "WHERE v.host_id=?",
                (self._host.id,),
            ):
                found[vs][0].append((port, adapter, guest, state))
            self._ports = found
        return self._ports.get(vswitch_id, ([], {}))
