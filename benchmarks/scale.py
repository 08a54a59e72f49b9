"""Fleet scale (issue #7): every command at 100 / 1,000 / 10,000 guests, against the floors.

For each size a plain fleet (hosts = guests / 10) is generated in a temporary
directory and the real `ivmctl` runs on it in a fresh process per command, in this
order (the emulator world starts empty):

1. floors: bare parse of the same files (see `benchmarks.floors`);
2. `validate`, cold (no parse cache) then warm (cache filled by the cold run);
3. `validate` of the Jinja-templated variant of the same fleet, cold;
4. `plan` of everything to create (hosts provisioned, vswitches, guests), cold cache;
5. `apply --auto-approve` of everything to create (default parallelism, no latency);
6. no-op `plan`, cold (`.ivmctl/cache` removed: no parsed files, desired state or parsed
   host listings) then warm (unchanged files and runtime, caches filled), then cold again
   with the runtime unchanged since the last read ("settled": the emulator gives the
   listings it kept, as real hosts answer from their own CPUs; the first cold plan comes
   right after the apply, so the emulator makes every listing afresh on ivmctl's CPUs);
7. `plan` after 1 % of the guests drifted in the runtime (warm caches: the listings of
   the hosts of the drifted guests are parsed again, the others reused).

Every plan runs with `--detailed-exitcode`, and its exit status and summary line are
checked, so a benchmark that silently planned the wrong thing fails instead of
reporting a figure. The scaling table divides each command's time at the largest size
by its time at the size ten times smaller (12 or less means the cost grows linearly,
with the interpreter start-up as slack).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import GRACE, Measured, Table, clean_env, ivmctl
from benchmarks.fleet import BenchmarkError, complete, drift, write_fleet
from benchmarks.floors import measure_floors
from benchmarks.profile import profile_command

SIZES = (100, 1000, 10000)
QUICK_SIZES = (20, 200)
DRIFT = 0.01
APPLY_BUDGET = 240.0  # seconds; a longer apply is stopped (Ctrl-C) and its rate reported

COMMANDS = (
    "validate (cold)",
    "validate (warm)",
    "validate Jinja (cold)",
    "plan create-all",
    "apply create-all",
    "plan no-op (cold)",
    "plan no-op (warm)",
    "plan no-op (cold, settled)",
    "plan 1% drift",
)
# What each command is compared with: its own time / the floor's parse time.
FLOOR_OF = {"libyaml": "libyaml", "rust": "rust"}


def _summary(out: Measured) -> str:
    for line in reversed(out.stdout.splitlines()):
        if line.startswith(("Plan:", "No changes", "Apply complete", "The configuration")):
            return line.strip()
    return ""


def _expect(what: str, out: Measured, pattern: str) -> None:
    if not re.search(pattern, out.stdout):
        raise BenchmarkError(
            f"{what}: expected output matching {pattern!r}, got:\n{out.stdout[-1500:]}"
        )


def measure_size(
    guests: int,
    *,
    profile_top: int = 0,
    runs_env: dict[str, str] | None = None,
    apply_budget: float | None = None,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Rows (one per command and floor) for one fleet size, and the profiles asked for."""
    hosts = max(1, guests // 10)
    env = runs_env or clean_env()
    rows: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix=f"ivmctl-scale-{guests}-") as tmp:
        fleet = write_fleet(Path(tmp) / "plain", hosts=hosts, guests=guests)
        templated = write_fleet(Path(tmp) / "jinja", hosts=hosts, guests=guests, templated=True)
        directory, cache = fleet.directory, fleet.directory / ".ivmctl" / "cache"
        base = {"guests": guests, "hosts": hosts, "MB": round(fleet.size_bytes / 1e6, 2)}

        floors = measure_floors(fleet.yaml_files())
        for kind, floor in floors.items():
            rows.append(
                {
                    **base,
                    "command": f"floor {kind}",
                    "wall s": floor["seconds"],
                    "peak MiB": floor["peak_mib"],
                    "detail": floor["parser"],
                }
            )

        def record(command: str, out: Measured) -> None:
            rows.append(
                {
                    **base,
                    "command": command,
                    "wall s": out.seconds,
                    "peak MiB": out.peak_mib,
                    "detail": _summary(out),
                }
            )

        record("validate (cold)", ivmctl(directory, "validate", env=env))
        record("validate (warm)", ivmctl(directory, "validate", env=env))
        record("validate Jinja (cold)", ivmctl(templated.directory, "validate", env=env))

        shutil.rmtree(cache, ignore_errors=True)
        out = ivmctl(directory, "plan", "--detailed-exitcode", env=env, ok_codes=(2,))
        _expect("plan create-all", out, rf"Plan: {guests + hosts * 4} to add, 0 to change")
        record("plan create-all", out)

        total = guests + hosts * 4
        out = ivmctl(directory, "apply", "--auto-approve", env=env, budget=apply_budget)
        if out.interrupted:
            # Out of budget: report the rate reached, then finish the world untimed.
            # "done (k/N)" counts every finished change, skipped ones too: count the done
            count = len(re.findall(rf": done \(\d+/{total}\)", out.stdout))
            record("apply create-all", out)
            how = (
                f"killed {GRACE:g} s after a Ctrl-C that did not stop it"
                if out.killed
                else "stopped by Ctrl-C"
            )
            rows[-1]["detail"] = (
                f"over the {apply_budget:g} s budget, {how}: {count} of {total} changes done "
                f"({count / out.seconds:.1f}/s); the rest completed untimed"
            )
            rows[-1]["complete"] = False
            complete(fleet, environ=env)
        else:
            _expect("apply create-all", out, rf"Apply complete: {total} done, 0 failed")
            record("apply create-all", out)

        shutil.rmtree(cache, ignore_errors=True)
        record("plan no-op (cold)", ivmctl(directory, "plan", "--detailed-exitcode", env=env))
        record("plan no-op (warm)", ivmctl(directory, "plan", "--detailed-exitcode", env=env))

        if profile_top:
            profiles["plan no-op (warm)"] = profile_command(
                directory, "plan", "--detailed-exitcode", top=profile_top
            )
        shutil.rmtree(cache, ignore_errors=True)
        out = ivmctl(directory, "plan", "--detailed-exitcode", env=env)
        record("plan no-op (cold, settled)", out)

        # with the caches of the warm no-op plan: only the drifted hosts' listings differ
        changed = drift(fleet, DRIFT)
        out = ivmctl(directory, "plan", "--detailed-exitcode", env=env, ok_codes=(2,))
        _expect("plan 1% drift", out, rf"Plan: 0 to add, {len(changed)} to change")
        record("plan 1% drift", out)

        if profile_top:
            shutil.rmtree(cache, ignore_errors=True)
            profiles["validate (cold)"] = profile_command(directory, "validate", top=profile_top)

    libyaml = floors["libyaml"]["seconds"]
    rust = floors["rust"]["seconds"]
    for row in rows:
        if row["command"].startswith("floor") or row["wall s"] is None:
            continue
        row["x libyaml"] = row["wall s"] / libyaml if libyaml else None
        row["x rust"] = row["wall s"] / rust if rust else None
    return rows, profiles


def scaling(rows: Sequence[dict[str, Any]], sizes: Sequence[int]) -> Table:
    """Each command's time per size, and the ratio largest / one tenth of it."""
    columns = ["command", *(f"{n:,} s" for n in sizes)]
    big, small = sizes[-1], sizes[-1] // 10
    ratio = f"{big:,}/{small:,}" if small in sizes else None
    if ratio:
        columns.append(ratio)
    table = Table(
        name="scaling",
        title="Scaling: wall seconds per fleet size (hosts = guests / 10)",
        columns=tuple(columns),
    )
    if ratio:
        table.notes.append(f"{ratio} <= 12 means linear cost (10x the guests, 12x the time).")
    by = {(r["command"], r["guests"]): r["wall s"] for r in rows}
    names = [c for c in dict.fromkeys(r["command"] for r in rows)]
    for command in names:
        row: dict[str, Any] = {"command": command}
        for n in sizes:
            row[f"{n:,} s"] = by.get((command, n))
        if ratio:
            a, b = by.get((command, big)), by.get((command, small))
            row[ratio] = a / b if a and b else None
        table.rows.append(row)
    return table


def run(
    *,
    quick: bool,
    sizes: Sequence[int] | None = None,
    profile_top: int = 0,
    apply_budget: float | None = APPLY_BUDGET,
) -> list[Table]:
    """The scale table, the scaling table and (at the largest size) the profiles."""
    chosen = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    table = Table(
        name="scale",
        title="Fleet scale: each command in a fresh process (wall s includes start-up)",
        columns=(
            "guests",
            "hosts",
            "MB",
            "command",
            "wall s",
            "peak MiB",
            "x libyaml",
            "x rust",
            "detail",
        ),
    )
    table.notes += [
        "floors: parse only, best of 3, gc paused for 'libyaml'; commands: one run each.",
        "x libyaml / x rust: the command's wall time over that floor's parse time.",
    ]
    tables = [table]
    for guests in chosen:
        rows, profiles = measure_size(
            guests,
            profile_top=profile_top if guests == chosen[-1] else 0,
            apply_budget=apply_budget,
        )
        table.rows += rows
        for command, top in profiles.items():
            tables.append(
                Table(
                    name=f"profile {command}",
                    title=f"Where the time goes: {command} at {guests:,} guests (cProfile)",
                    columns=("function", "cumulative s", "own s", "calls", "% of run"),
                    rows=top,
                )
            )
    tables.insert(1, scaling(table.rows, chosen))
    return tables
