"""Property tests: random sequences of hpvm* commands never break the world's invariants.

Commands may be refused (that is the point); whatever happens, no running host is
over-committed on memory, no core carries more than 100 % entitlement, stored aggregates
match the running guests, and every device is owned consistently.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections import defaultdict
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ivmctl.rules import host_pool_mb
from ivmctl.runtime import World

HOSTS = ("h1", "h2")
GUESTS = ("g0", "g1", "g2")
# most commands go to h1 so that guests meet; h2 is where migrations land
DISKS = tuple(f"/dev/rdisk/disk{i}" for i in range(4))

guest = st.sampled_from(GUESTS)
host = st.sampled_from(("h1", "h1", "h1", "h2"))
disk = st.sampled_from(DISKS)


@st.composite
def create(draw: st.DrawFn) -> tuple[str, list[str]]:
    argv = [
        "hpvmcreate",
        "-P",
        draw(guest),
        "-c",
        str(draw(st.integers(1, 3))),
        "-e",
        str(draw(st.sampled_from([10, 25, 50, 90]))),
        "-r",
        draw(st.sampled_from(["1G", "4G", "8G", "14G"])),
    ]
    if draw(st.booleans()):
        argv += ["-a", f"disk:avio_stor::disk:{draw(disk)}"]
    if draw(st.booleans()):
        argv += ["-a", "network:avio_lan::vswitch:vsw1"]
    if draw(st.booleans()):
        argv += ["-O", "hpux", "-x", "ram_dyn_type=driver", "-x", "ram_dyn_max=15G"]
    return draw(host), argv


def simple(*words: str) -> st.SearchStrategy[tuple[str, list[str]]]:
    return st.tuples(host, guest).map(lambda hg: (hg[0], [w.replace("G", hg[1]) for w in words]))


command = st.one_of(
    create(),
    simple("hpvmstart", "-P", "G"),
    simple("hpvmstart", "-P", "G"),
    simple("hpvmstart", "-P", "G"),
    create(),
    simple("hpvmstop", "-F", "-P", "G"),
    simple("hpvmremove", "-F", "-P", "G"),
    st.tuples(host, guest, st.sampled_from([5, 30, 60, 100])).map(
        lambda t: (t[0], ["hpvmmodify", "-P", t[1], "-e", str(t[2])])
    ),
    st.tuples(host, guest, st.integers(1, 5)).map(
        lambda t: (t[0], ["hpvmmodify", "-P", t[1], "-c", str(t[2])])
    ),
    st.tuples(host, guest, disk, st.sampled_from(["-a", "-d"])).map(
        lambda t: (t[0], ["hpvmmodify", "-P", t[1], t[3], f"disk:avio_stor::disk:{t[2]}"])
    ),
    st.tuples(host, guest, st.sampled_from([[], ["-o"], ["-b"], ["-D"]])).map(
        lambda t: (t[0], ["hpvmmigrate", "-P", t[1], "-h", "h2" if t[0] == "h1" else "h1", *t[2]])
    ),
    st.tuples(host, guest, guest).map(lambda t: (t[0], ["hpvmclone", "-P", t[1], "-N", t[2]])),
    st.tuples(host, disk).map(
        lambda t: (t[0], ["hpvmdevmgmt", "-m", f"gdev:{t[1]}:attr:SHARE=YES"])
    ),
    st.tuples(host, guest).map(
        lambda t: (t[0], ["hpvmmodify", "-P", t[1], "-x", "register_status=enabled"])
    ),
)


def add_hosts(world: World) -> None:
    """The hosts the command strategy drives, each with vswitch vsw1 up on lan0."""
    for name in HOSTS:
        world.add_host(name=name, cores=4, memory_mb=16 * 1024, nics=("lan0",))
        world.execute(name, ["hpvmnet", "-c", "-S", "vsw1", "-n", "0"])
        world.execute(name, ["hpvmnet", "-b", "-S", "vsw1"])


def check_invariants(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        for h in conn.execute("SELECT * FROM hosts"):
            running = conn.execute(
                "SELECT * FROM guests WHERE host_id=? AND state='On'", (h["id"],)
            ).fetchall()
            footprint = sum(g["footprint_mb"] for g in running)
            assert footprint == h["mem_used_mb"], "stored memory in use drifted"
            assert footprint <= host_pool_mb(h["memory_mb"]), "host over-committed on memory"
            per_core: dict[int, float] = defaultdict(float)
            for g in running:
                cores = [int(c) for c in g["cores"].split(",")]
                assert len(cores) == len(set(cores)) == g["vcpus"], "vCPUs not on distinct cores"
                for c in cores:
                    per_core[c] += g["ent_min"]
            stored = [float(x) for x in h["core_used"].split(",")]
            for core, used in enumerate(stored):
                assert used <= 100.0 + 1e-9, "a core carries more than 100 % entitlement"
                assert abs(used - per_core.get(core, 0.0)) < 0.05, "stored entitlement drifted"
            for g in conn.execute("SELECT * FROM guests WHERE host_id=?", (h["id"],)):
                if not (g["runnable"] and g["registered"]):
                    assert g["state"] == "Off", "a Not Runnable guest is running"
            # devices: a non-shared backing is held by at most one running guest, and
            # every backing in use has its device-database entry
            for row in conn.execute(
                "SELECT s.path, COUNT(DISTINCT g.id) AS n, SUM(g.state='On') AS on_ "
                "FROM storage s JOIN guests g ON g.id = s.guest_id "
                "WHERE s.host_id=? GROUP BY s.path",
                (h["id"],),
            ):
                entry = conn.execute(
                    "SELECT attrs FROM devdb WHERE host_id=? AND name=?", (h["id"], row["path"])
                ).fetchone()
                assert entry is not None, f"{row['path']} in use without a device entry"
                if "SHARE=YES" not in entry["attrs"]:
                    assert row["on_"] <= 1, f"{row['path']} held by two running guests"
            for entry in conn.execute(
                "SELECT name, attrs FROM devdb WHERE host_id=? AND class='gdev'", (h["id"],)
            ):
                if "PRESERVE=YES" in entry["attrs"]:
                    continue
                users = conn.execute(
                    "SELECT COUNT(*) FROM storage WHERE host_id=? AND path=?",
                    (h["id"], entry["name"]),
                ).fetchone()[0]
                assert users > 0, f"{entry['name']} left in the device database without users"
        duplicates = conn.execute(
            "SELECT n.mac FROM nics n JOIN guests g ON g.id = n.guest_id "
            "GROUP BY n.mac HAVING COUNT(DISTINCT g.uuid) > 1"
        ).fetchall()
        assert not duplicates, "a MAC is shared by two different guests"
        running_macs = conn.execute(
            "SELECT n.mac FROM nics n JOIN guests g ON g.id = n.guest_id WHERE g.state='On' "
            "GROUP BY n.mac HAVING COUNT(*) > 1"
        ).fetchall()
        assert not running_macs, "a MAC is live twice"
    finally:
        conn.close()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(command, min_size=15, max_size=50))
def test_random_command_sequences_keep_the_invariants(
    steps: list[tuple[str, list[str]]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "w.db"
        world = World.open(path, clock=lambda: 1_800_000_000.0, sleep=lambda s: None)
        try:
            add_hosts(world)
            for name, argv in steps:
                result = world.execute(name, argv)
                assert result.exit_code in (0, 1), (argv, result.stderr)
                event(f"{argv[0]} {'ok' if result.exit_code == 0 else 'refused'}")
                check_invariants(path)
        finally:
            world.close()
