"""`make bench`: run every benchmark, print its table, write benchmarks/out/results.json.

    python -m benchmarks [--quick] [--only NAME ...] [--sizes 100,1000] [--profile N]
                         [--repeat N] [--apply-budget SECONDS] [--out FILE]

Benchmarks: cpus (a fixed loop alone and two at once, as the run starts and as it
ends), startup, apply_parallel, scale (with the floors, the scaling table and the
profiles of the largest size), floors (alone). Without --only, all but the standalone
floors run (scale measures them). --quick runs small sizes only, for the smoke test; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import apply_parallel, cpus, floors, scale, startup
from benchmarks.common import ROOT, Table, compile_package

FORMAT_VERSION = 1
NAMES = ("cpus", "startup", "apply_parallel", "scale", "floors")
DEFAULT = ("cpus", "startup", "scale", "apply_parallel")
OUT = ROOT / "benchmarks" / "out" / "results.json"


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes only (smoke test)")
    parser.add_argument("--only", action="append", choices=NAMES, help="run only these")
    parser.add_argument("--sizes", help="guest counts for scale/floors, e.g. 100,1000")
    parser.add_argument(
        "--profile",
        type=int,
        default=None,
        metavar="N",
        help="top N functions profiled at the largest size (default 20, 0 with --quick)",
    )
    parser.add_argument(
        "--apply-budget",
        type=float,
        default=scale.APPLY_BUDGET,
        metavar="SECONDS",
        help="stop (Ctrl-C) an apply create-all that runs longer, report its rate, and "
        "finish the fleet untimed (default %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        metavar="N",
        help="run each scale command N times and report the median (default 3, 1 with --quick)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help="JSON results file")
    args = parser.parse_args(argv)
    names = tuple(dict.fromkeys(args.only or DEFAULT))
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    profile_top = args.profile if args.profile is not None else (0 if args.quick else 20)
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        parser.error("--repeat takes a number of runs, 1 or more")

    began = datetime.datetime.now(datetime.UTC)
    results: list[Table] = []
    timings: dict[str, float] = {}
    print(f"ivmctl benchmarks, {began:%Y-%m-%d %H:%M} UTC, {machine()}", flush=True)
    compile_package()
    # the machine as the run starts, and again as it ends (see benchmarks/cpus.py)
    cpu_rows = [cpus.measure(when="start", quick=args.quick)] if "cpus" in names else []
    for name in names:
        if name == "cpus":
            continue
        start = time.perf_counter()
        tables: list[Table]
        if name == "startup":
            tables = [startup.run(quick=args.quick)]
        elif name == "apply_parallel":
            tables = [apply_parallel.run(quick=args.quick)]
        elif name == "scale":
            tables = scale.run(
                quick=args.quick,
                sizes=sizes,
                profile_top=profile_top,
                apply_budget=args.apply_budget,
                repeat=repeat,
            )
        else:
            chosen = sizes or (scale.QUICK_SIZES if args.quick else scale.SIZES)
            tables = [floors.run(quick=args.quick, sizes=chosen)]
        timings[name] = round(time.perf_counter() - start, 1)
        for table in tables:
            print("\n" + table.render(), flush=True)
        results += tables

    if cpu_rows:
        cpu_rows.append(cpus.measure(when="end", quick=args.quick))
        measured = cpus.table(cpu_rows, quick=args.quick)
        print("\n" + measured.render(), flush=True)
        results.insert(0, measured)

    document = {
        "format_version": FORMAT_VERSION,
        "started": began.isoformat(timespec="seconds"),
        "quick": args.quick,
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": machine(),
        "benchmark_seconds": timings,
        "tables": [t.as_json() for t in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
