"""The machine's CPUs as a run finds them: a fixed loop alone, then two copies at once.

A shared machine's speed moves within minutes, and its two CPUs are not always equal.
On 2026-11-24 two copies of one loop at once took 1.90 and 2.91 s where one alone took
1.91 s: the second CPU gave two thirds of the first. A ratio against a floor parsed on
one CPU cancels a machine that is slow on the whole, but not that: a plan uses both
CPUs (ivmctl and its reader) and slows more than the floor. `make bench` measures this
as it starts and as it ends, so every run says which machine it had.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from benchmarks.common import Table, clean_env

LOOP = 5_000_000  # additions in a Python loop: about 0.45 s on this machine at its usual speed
QUICK_LOOP = 200_000
ROUNDS = 3
# the child times its own loop, so interpreter start-up is not in the figure
_PROGRAM = (
    "import sys, time\n"
    "count = int(sys.argv[1])\n"
    "began = time.perf_counter()\n"
    "total = 0\n"
    "for i in range(count):\n"
    "    total += i\n"
    "print(time.perf_counter() - began)\n"
)


def loop_seconds(copies: int, *, count: int) -> list[float]:
    """Seconds each of `copies` children, started together, took for the loop."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _PROGRAM, str(count)],
            stdout=subprocess.PIPE,
            env=clean_env(),
            text=True,
        )
        for _ in range(copies)
    ]
    return [float(child.communicate()[0]) for child in children]


def _sizes(quick: bool) -> tuple[int, int]:
    """(additions in the loop, rounds)."""
    return (QUICK_LOOP, 1) if quick else (LOOP, ROUNDS)


def measure(*, when: str, quick: bool) -> dict[str, Any]:
    """One row: the loop alone, then two copies at once, and the slower copy over the
    loop alone (1.0: two free CPUs; 2.0: one CPU for both). Three rounds (one with
    `quick`), the round of median ratio shown: the loop alone moves by a third from one
    second to the next on this machine."""
    count, times = _sizes(quick)
    rounds = []
    for _ in range(times):
        (alone,) = loop_seconds(1, count=count)
        both = loop_seconds(2, count=count)
        rounds.append((max(both) / alone, alone, both))
    ratio, alone, both = sorted(rounds)[(len(rounds) - 1) // 2]
    return {
        "when": when,
        "alone s": alone,
        "two at once s": " ".join(f"{s:.2f}" for s in both),
        "two at once runs s": both,  # unrounded, in the JSON only
        "slower / alone": ratio,
    }


def table(rows: list[dict[str, Any]], *, quick: bool) -> Table:
    count, times = _sizes(quick)
    return Table(
        name="cpus",
        title=f"The CPUs: a loop of {count:,} additions alone, then two copies at once "
        f"(the median of {times} rounds)",
        columns=("when", "alone s", "two at once s", "slower / alone"),
        rows=rows,
        notes=[
            "slower / alone: 1.0 when two CPUs are free, 2.0 when both copies share one;"
            " a plan uses two CPUs, the floors one",
        ],
    )
