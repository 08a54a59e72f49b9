"""Parallel apply (issue #6): 200 guests over 20 hosts, 1 s per start, parallelism 1/10/50.

Each run starts from a new emulator world holding only the 20 hosts (no vswitch, no
guest), each with 1 s of latency on every `hpvmstart` (`ivmctl emulator faults HOST
--latency start=1`; the emulator sleeps inside the host's start lock but outside its
SQLite transaction). The real `ivmctl apply --auto-approve --parallelism N` then
creates 3 vswitches per host and 200 guests and starts every guest.

The ideal is the critical path. Integrity VM starts one guest at a time per host, and
apply serialises starts per host too, so no schedule finishes before the busiest host
has done its starts one after the other: max over hosts of (starts on that host x
latency), 10 x 1 s = 10 s here (the starts counted from the world's command log
after the run). Everything else (start-up, load, refresh, plan, creates, verification,
state writes) is the non-latency work, measured by the identical apply with no
latency; the smallest of those runs is added to the critical path. So

    ideal = max_host(starts_h) x latency + min_N(wall of the apply without latency)

and ratio = wall / ideal (1.0 is perfect). With N workers fewer than the hosts, the
starts alone need at least total starts x latency / N; `bound(N)` adds that to the
non-latency work at the same N, showing what the parallelism setting allows.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import Measured, Table, clean_env, ivmctl
from benchmarks.fleet import BenchmarkError, provision_hosts, write_fleet

HOSTS, GUESTS, LATENCY, PARALLELISM = 20, 200, 1.0, (1, 10, 50)
QUICK = (2, 6, 0.02, (1, 4))


def apply_once(
    *, hosts: int, guests: int, latency: float, parallelism: int
) -> tuple[Measured, Counter[str]]:
    """One apply from an empty world; its measurement and the starts done per host."""
    from ivmctl.runtime import World
    from ivmctl.runtime.world import command_kind

    with tempfile.TemporaryDirectory(prefix="ivmctl-apply-") as tmp:
        fleet = write_fleet(Path(tmp), hosts=hosts, guests=guests)
        provision_hosts(fleet, start_latency=latency)
        out = ivmctl(
            fleet.directory,
            "apply",
            "--auto-approve",
            "--parallelism",
            str(parallelism),
            env=clean_env(),
        )
        expected = f"Apply complete: {guests + 3 * hosts} done, 0 failed, 0 skipped."
        if expected not in out.stdout:
            raise BenchmarkError(f"apply did not complete as planned:\n{out.stdout[-1500:]}")
        starts: Counter[str] = Counter()
        with World.open(fleet.world, create=False) as world:
            for host in world.hosts():
                starts[host.name] = sum(
                    1
                    for entry in world.log(host.name)
                    if command_kind(entry.argv[0]) == "hpvmstart" and entry.exit_code == 0
                )
    if sum(starts.values()) != guests:
        raise BenchmarkError(f"expected {guests} starts, the world logged {sum(starts.values())}")
    return out, starts


def run(*, quick: bool, parallelism: Sequence[int] | None = None) -> Table:
    hosts, guests, latency, levels = QUICK if quick else (HOSTS, GUESTS, LATENCY, PARALLELISM)
    levels = tuple(parallelism or levels)
    baseline: dict[int, float] = {}
    walls: dict[int, float] = {}
    starts: Counter[str] = Counter()
    for n in levels:  # without latency first: the non-latency work at each parallelism
        baseline[n] = apply_once(hosts=hosts, guests=guests, latency=0.0, parallelism=n)[0].seconds
    for n in levels:
        out, starts = apply_once(hosts=hosts, guests=guests, latency=latency, parallelism=n)
        walls[n] = out.seconds
    busiest = max(starts.values())
    critical = busiest * latency
    work = min(baseline.values())
    ideal = critical + work
    table = Table(
        name="apply_parallel",
        title=(
            f"Parallel apply: {guests} guests over {hosts} hosts, {latency:g} s per start, "
            "from an empty world"
        ),
        columns=("parallelism", "wall s", "no-latency s", "ideal s", "ratio", "bound(N) s"),
    )
    for n in levels:
        bound = max(critical, sum(starts.values()) * latency / min(n, hosts)) + baseline[n]
        table.rows.append(
            {
                "parallelism": n,
                "wall s": walls[n],
                "no-latency s": baseline[n],
                "ideal s": ideal,
                "ratio": walls[n] / ideal,
                "bound(N) s": bound,
            }
        )
    table.notes += [
        f"ideal = critical path {busiest} starts x {latency:g} s on the busiest host "
        f"= {critical:.2f} s + non-latency work {work:.2f} s (fastest apply without latency).",
        "ratio = wall / ideal; bound(N) = max(critical path, all starts x latency / min(N, "
        "hosts)) + the no-latency apply at N.",
        "wall includes interpreter start-up, load, refresh and plan (the whole command).",
    ]
    return table
