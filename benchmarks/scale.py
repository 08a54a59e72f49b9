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

Each command runs `repeat` times (`--repeat`, 3 by default) and its row gives the run of
median time, with the range of all of them: one run of a command that keeps both CPUs
busy moved by a fifth from one bench to the next. A repeated cold plan removes the
cache each time; the repeated "right after the apply" plans follow a write that changes
nothing but the world's revision, so the emulator makes every listing afresh as after
the apply; a repeated apply starts again from an empty world (the caches kept); each
repeated drift relabels the same guests.

Every plan runs with `--detailed-exitcode`, and its exit status and summary line are
checked, so a benchmark that silently planned the wrong thing fails instead of
reporting a figure. The scaling table divides each command's time at the largest size
by its time at the size ten times smaller (12 or less means the cost grows linearly,
with the interpreter start-up as slack).
"""

from __future__ import annotations

import re
import shutil
import statistics
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import GRACE, Measured, Table, clean_env, ivmctl
from benchmarks.fleet import (
    BenchmarkError,
    complete,
    drift,
    drifted_guests,
    make_listings_afresh,
    write_fleet,
)
from benchmarks.floors import libyaml_once, measure_floors
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
    repeat: int = 1,
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """Rows (one per command and floor) for one fleet size, and the profiles asked for;
    each command is run `repeat` times and its row gives the median run."""
    hosts = max(1, guests // 10)
    env = runs_env or clean_env()
    rows: list[dict[str, Any]] = []
    profiles: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix=f"ivmctl-scale-{guests}-") as tmp:
        fleet = write_fleet(Path(tmp) / "plain", hosts=hosts, guests=guests)
        templated = write_fleet(Path(tmp) / "jinja", hosts=hosts, guests=guests, templated=True)
        directory = fleet.directory
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

        def record(command: str, runs: Sequence[Measured], **more: Any) -> None:
            """One row for the runs of a command: the run of median time (its summary is
            the detail), the largest peak memory, every run's seconds, and `more`."""
            chosen = sorted(runs, key=lambda out: out.seconds)[(len(runs) - 1) // 2]
            times = [out.seconds for out in runs]
            rows.append(
                {
                    **base,
                    "command": command,
                    "wall s": chosen.seconds,
                    "range s": f"{min(times):.2f}-{max(times):.2f}" if len(runs) > 1 else None,
                    "runs s": times,
                    "peak MiB": max(out.peak_mib for out in runs),
                    "detail": _summary(chosen),
                    **more,
                }
            )

        def timed(
            *args: str,
            before: Callable[[int], object] = lambda index: None,
            where: Path = directory,
            ok_codes: tuple[int, ...] = (0,),
            expect: str | None = None,
        ) -> list[Measured]:
            """`ivmctl ARGS` `repeat` times, each after `before(run index)`."""
            runs = []
            for index in range(repeat):
                before(index)
                out = ivmctl(where, *args, env=env, ok_codes=ok_codes)
                if expect is not None:
                    _expect(" ".join(args), out, expect)
                runs.append(out)
            return runs

        def cold(index: int, where: Path = directory) -> None:
            shutil.rmtree(where / ".ivmctl" / "cache", ignore_errors=True)

        record("validate (cold)", timed("validate", before=cold))
        record("validate (warm)", timed("validate"))
        record(
            "validate Jinja (cold)",
            timed("validate", where=templated.directory,
                  before=lambda index: cold(index, templated.directory)),
        )  # fmt: skip

        total = guests + hosts * 4
        record(
            "plan create-all",
            timed("plan", "--detailed-exitcode", before=cold, ok_codes=(2,),
                  expect=rf"Plan: {total} to add, 0 to change"),
        )  # fmt: skip

        applied: list[Measured] = []
        for index in range(repeat):
            if index:  # again from an empty world and state, with the same caches
                _forget_runtime(directory)
            out = ivmctl(directory, "apply", "--auto-approve", env=env, budget=apply_budget)
            if out.interrupted:
                # Out of budget: report the rate reached, then finish the world untimed.
                # "done (k/N)" counts every finished change, skipped ones too: count the done
                count = len(re.findall(rf": done \(\d+/{total}\)", out.stdout))
                record("apply create-all", [out])
                how = (
                    f"killed {GRACE:g} s after a Ctrl-C that did not stop it"
                    if out.killed
                    else "stopped by Ctrl-C"
                )
                rows[-1]["detail"] = (
                    f"over the {apply_budget:g} s budget, {how}: {count} of {total} changes "
                    f"done ({count / out.seconds:.1f}/s); the rest completed untimed"
                )
                rows[-1]["complete"] = False
                complete(fleet, environ=env)
                applied.clear()
                break
            _expect("apply create-all", out, rf"Apply complete: {total} done, 0 failed")
            applied.append(out)
        if applied:
            record("apply create-all", applied)

        def cold_after_apply(index: int) -> None:
            cold(index)
            if index:  # the first comes right after the apply; the others as if
                make_listings_afresh(fleet)

        no_changes = "No changes"
        record(
            "plan no-op (cold)",
            timed("plan", "--detailed-exitcode", before=cold_after_apply, expect=no_changes),
        )
        record("plan no-op (warm)", timed("plan", "--detailed-exitcode", expect=no_changes))

        if profile_top:
            profiles["plan no-op (warm)"] = profile_command(
                directory, "plan", "--detailed-exitcode", top=profile_top
            )
        # the target's figure, so each run is paired with a floor parsed just before it:
        # the floors at the top of a size come minutes earlier, and this machine's speed
        # moved by half within minutes on a busy evening
        paired: list[float] = []

        def cold_with_floor(index: int) -> None:
            cold(index)
            paired.append(libyaml_once(fleet.yaml_files()))

        settled = timed("plan", "--detailed-exitcode", before=cold_with_floor, expect=no_changes)
        record("plan no-op (cold, settled)", settled, **{"paired floors s": paired})

        # with the caches of the warm no-op plan: only the drifted hosts' listings differ
        changed = drifted_guests(fleet, DRIFT)
        record(
            "plan 1% drift",
            timed("plan", "--detailed-exitcode", ok_codes=(2,),
                  before=lambda index: drift(fleet, DRIFT, label=f"drifted {index}"),
                  expect=rf"Plan: 0 to add, {len(changed)} to change"),
        )  # fmt: skip

        if profile_top:
            cold(0)
            profiles["validate (cold)"] = profile_command(directory, "validate", top=profile_top)

    libyaml = floors["libyaml"]["seconds"]
    rust = floors["rust"]["seconds"]
    for row in rows:
        if row["command"].startswith("floor") or row["wall s"] is None:
            continue
        row["x libyaml"] = row["wall s"] / libyaml if libyaml else None
        row["x rust"] = row["wall s"] / rust if rust else None
    return rows, profiles


def _forget_runtime(directory: Path) -> None:
    """Remove the emulator world and the state of `directory`, keeping its caches: the next
    apply starts from an empty world, as the first one did."""
    state_dir = directory / ".ivmctl"
    for path in state_dir.iterdir() if state_dir.exists() else ():
        if path.name == "cache":
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


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
    repeat: int = 1,
) -> list[Table]:
    """The scale table, the scaling table and (at the largest size) the profiles; every
    command `repeat` times, its median run in the table."""
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
            "range s",
            "peak MiB",
            "x libyaml",
            "x rust",
            "detail",
        ),
    )
    runs = "one run each" if repeat == 1 else f"the median of {repeat} runs (range s: all of them)"
    table.notes += [
        f"floors: parse only, best of 3, gc paused for 'libyaml'; commands: {runs}.",
        "x libyaml / x rust: the command's wall time over that floor's parse time.",
    ]
    tables = [table]
    for guests in chosen:
        rows, profiles = measure_size(
            guests,
            profile_top=profile_top if guests == chosen[-1] else 0,
            apply_budget=apply_budget,
            repeat=repeat,
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
    tables.insert(2, paired(table.rows))
    return tables


def paired(rows: Sequence[dict[str, Any]]) -> Table:
    """The settled cold plan against the libyaml floor parsed just before each of its runs
    (the target of issue #7: 1.5x at most)."""
    table = Table(
        name="paired",
        title="Settled cold no-op plan against the libyaml floor parsed just before each run",
        columns=("guests", "floor s", "plan s", "x libyaml", "x libyaml (median)"),
    )
    table.notes.append(
        "each run's floor is one parse in a fresh process, right before the plan; "
        "the ratio is that run's plan over its floor, the median over the runs"
    )
    for row in rows:
        if row["command"] != "plan no-op (cold, settled)" or "paired floors s" not in row:
            continue
        floors, plans = row["paired floors s"], row["runs s"]
        ratios = [plan / floor for plan, floor in zip(plans, floors, strict=True)]
        table.rows.append(
            {
                "guests": row["guests"],
                "floor s": " ".join(f"{f:.3f}" for f in floors),
                "plan s": " ".join(f"{p:.2f}" for p in plans),
                "x libyaml": " ".join(f"{r:.2f}" for r in ratios),
                "x libyaml (median)": statistics.median(ratios),
            }
        )
    return table
