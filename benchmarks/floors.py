"""Parsing floors: the least any YAML reader in Python pays for a fleet's files.

For the same files the commands read, measured in a fresh child process each (so the
peak memory is comparable with the commands' own):

* `libyaml`: PyYAML's C loader (`yaml.load(text, Loader=yaml.CSafeLoader)`) with
  the garbage collector paused during the load, as a fast loader would run it;
* `libyaml-gc`: the same with the collector running (what a naive loader pays);
* `rust`: the fastest Rust-backed parser importable here (`yaml_rs.loads`, then
  rapidyaml's `ryml`), or "not installed";
* `json`: the same data as JSON through `json.loads` (the floor of any text format).

Only parse time is timed (files are read first); interpreter start-up is not included.

    python -m benchmarks.floors DIRECTORY   # prints one JSON object
"""

from __future__ import annotations

import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import Table, measure
from benchmarks.fleet import BenchmarkError, write_fleet

RUNS = 3
KINDS = ("libyaml", "libyaml-gc", "rust", "json")


def _rust_loader() -> tuple[str, Callable[[str], Any]] | None:
    try:
        import yaml_rs  # type: ignore[import-not-found]

        return f"yaml-rs {getattr(yaml_rs, '__version__', '?')}", yaml_rs.loads
    except ImportError:
        pass
    try:
        import ryml  # type: ignore[import-not-found]

        def load(text: str) -> Any:
            return ryml.parse_in_arena(text.encode())  # a tree, not Python objects

        return f"rapidyaml {getattr(ryml, '__version__', '?')} (tree only)", load
    except ImportError:
        return None


def _best(action: Callable[[], object], runs: int) -> float:
    best = float("inf")
    for _ in range(runs):
        began = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - began)
    return best


def parse_floor(kind: str, paths: Sequence[Path], runs: int = RUNS) -> dict[str, Any]:
    """Seconds (best of `runs`) to parse every file with parser `kind`; in this process."""
    import yaml

    texts = [p.read_text(encoding="utf-8") for p in paths]
    if kind in ("libyaml", "libyaml-gc"):
        paused = kind == "libyaml"

        def action() -> None:
            if paused:
                gc.disable()
            try:
                for text in texts:
                    yaml.load(text, Loader=yaml.CSafeLoader)
            finally:
                gc.enable()

        return {"parser": f"PyYAML {yaml.__version__} CSafeLoader", "seconds": _best(action, runs)}
    if kind == "rust":
        found = _rust_loader()
        if found is None:
            return {"parser": "not installed (pip install yaml-rs)", "seconds": None}
        name, load = found
        return {"parser": name, "seconds": _best(lambda: [load(t) for t in texts], runs)}
    if kind == "json":
        data = [json.dumps(yaml.load(t, Loader=yaml.CSafeLoader)) for t in texts]
        seconds = _best(lambda: [json.loads(d) for d in data], runs)
        return {"parser": "json.loads", "seconds": seconds}
    raise ValueError(f"unknown floor {kind!r}")


def measure_floors(paths: Sequence[Path], runs: int = RUNS) -> dict[str, dict[str, Any]]:
    """Every floor over `paths`, each in a fresh child process; adds its peak memory."""
    return {kind: _in_child(kind, paths, runs) for kind in KINDS}


def libyaml_once(paths: Sequence[Path]) -> float:
    """The libyaml floor over `paths`, parsed once in a fresh child process: measured
    beside a command's run, so both see the machine as it is then (`scale`'s paired
    ratio)."""
    seconds = _in_child("libyaml", paths, runs=1)["seconds"]
    if seconds is None:
        raise BenchmarkError("the libyaml floor could not be measured (no PyYAML C loader)")
    return float(seconds)


def _in_child(kind: str, paths: Sequence[Path], runs: int) -> dict[str, Any]:
    """Floor `kind` over `paths` (`parse_floor`) in a fresh child process, with its peak
    memory."""
    done = measure(
        [sys.executable, "-m", "benchmarks.floors", "--kind", kind, "--runs", str(runs),
         *map(str, paths)]
    )  # fmt: skip
    result: dict[str, Any] = json.loads(done.stdout)
    result["peak_mib"] = done.peak_mib if result["seconds"] is not None else None
    return result


def run(*, quick: bool, sizes: Sequence[int]) -> Table:
    """The floors alone, for each fleet size (the scale benchmark measures them too)."""
    import tempfile

    table = Table(
        name="floors",
        title="Parse floors (best of 3, parse only, fresh process each)",
        columns=("guests", "MB", "parser", "parse s", "peak MiB"),
    )
    for guests in sizes:
        with tempfile.TemporaryDirectory(prefix="ivmctl-floors-") as tmp:
            fleet = write_fleet(Path(tmp), hosts=max(1, guests // 10), guests=guests)
            floors = measure_floors(fleet.yaml_files(), runs=1 if quick else RUNS)
            for kind, result in floors.items():
                table.rows.append(
                    {
                        "guests": guests,
                        "MB": round(fleet.size_bytes / 1e6, 2),
                        "parser": f"{kind}: {result['parser']}",
                        "parse s": result["seconds"],
                        "peak MiB": result["peak_mib"],
                    }
                )
    return table


def main(argv: Sequence[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Measure one parse floor; prints JSON.")
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        print(json.dumps(parse_floor(args.kind, args.files, args.runs)))
    except BenchmarkError as exc:
        raise SystemExit(str(exc)) from None


if __name__ == "__main__":
    main()
