"""What every benchmark shares: running a command as a measured child process, and the
result tables the runner prints and writes as JSON.

Each measured command runs in its own process, so its figures include interpreter
start-up and imports, as a user sees them. Wall time is taken around the child;
peak memory is the child's own `ru_maxrss`, read from `os.wait4` (the rusage of
exactly that child, not the running maximum over all children that
`RUSAGE_CHILDREN` gives).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.fleet import BenchmarkError

ROOT = Path(__file__).resolve().parents[1]
GRACE = 30.0  # seconds a command may take to stop after its Ctrl-C before it is killed


@dataclass(frozen=True, kw_only=True)
class Measured:
    """One child process: how long it took, its peak memory, what it printed."""

    seconds: float
    peak_mib: float
    returncode: int
    stdout: str
    stderr: str
    interrupted: bool = False  # stopped (Ctrl-C, then kill) when its time budget ran out
    killed: bool = False  # still running GRACE seconds after the Ctrl-C: killed


def ivmctl_command() -> list[str]:
    """The installed `ivmctl` next to this interpreter, else `python -m ivmctl`."""
    script = Path(sys.executable).parent / "ivmctl"
    return [str(script)] if script.exists() else [sys.executable, "-m", "ivmctl"]


def measure(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
    budget: float | None = None,
) -> Measured:
    """Run `argv` as a child process and measure it; raises BenchmarkError when it
    exits with a status not in `ok_codes`. After `budget` seconds the child gets a
    Ctrl-C (SIGINT) and is measured until it stops, and GRACE seconds later it is killed;
    then any exit status is accepted."""
    environ = dict(clean_env() if env is None else env)
    # the benchmarks package must import in children; an existing PYTHONPATH (a Rust
    # parser installed aside, for the floor) is kept after it
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environ.get("PYTHONPATH")]))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        child = subprocess.Popen(
            list(argv), cwd=cwd, env=environ, stdin=subprocess.DEVNULL, stdout=out, stderr=err
        )
        timers = []
        if budget is not None:
            timers = [
                threading.Timer(budget, child.send_signal, (signal.SIGINT,)),
                threading.Timer(budget + GRACE, child.send_signal, (signal.SIGKILL,)),
            ]
            for timer in timers:
                timer.start()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        fired = [timer.finished.is_set() for timer in timers]
        for timer in timers:
            timer.cancel()
        interrupted, killed = any(fired), len(fired) == 2 and fired[1]
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", "replace")
        stderr = err.read().decode("utf-8", "replace")
    if child.returncode not in ok_codes and not interrupted:
        raise BenchmarkError(
            f"{' '.join(argv)} exited with {child.returncode}:\n{stderr[-2000:]}{stdout[-2000:]}"
        )
    return Measured(
        seconds=seconds,
        peak_mib=usage.ru_maxrss / 1024,  # Linux reports KiB
        returncode=child.returncode,
        stdout=stdout,
        stderr=stderr,
        interrupted=interrupted,
        killed=killed,
    )


def ivmctl(
    directory: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
    budget: float | None = None,
) -> Measured:
    """`ivmctl -C DIRECTORY ARGS...`, measured."""
    return measure(
        [*ivmctl_command(), "-C", str(directory), *args],
        env=env,
        ok_codes=ok_codes,
        budget=budget,
    )


# Measured runs use compiled bytecode, as an installed ivmctl does (pip compiles it at
# install; a checkout writes it on first run). An environment that sets this (as CI
# sandboxes do) would make every run compile every ivmctl module again: ~0.1 s a command.
NO_BYTECODE = "PYTHONDONTWRITEBYTECODE"


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of measured runs: ours, without IVMCTL_* settings that would
    change what is measured (a latency, another emulator file) or NO_BYTECODE, plus
    `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVMCTL_") and k != NO_BYTECODE}
    env.update(extra)
    return env


def compile_package() -> None:
    """Compile ivmctl's modules before anything is measured (see NO_BYTECODE), so the
    first measured command does not pay for it."""
    import compileall

    compileall.compile_dir(str(ROOT / "ivmctl"), quiet=1)


@dataclass(kw_only=True)
class Table:
    """One benchmark's result: a printed table and the same rows for the JSON file."""

    name: str  # the benchmark's name, as `--only` takes it
    title: str
    columns: tuple[str, ...]  # keys of each row, in print order
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        cells = [[_cell(row.get(col)) for col in self.columns] for row in self.rows]
        widths = [
            max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(self.columns)
        ]
        lines = [self.title, ""]
        lines.append("  ".join(col.ljust(w) for col, w in zip(self.columns, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        numeric = [_numeric(self.rows, col) for col in self.columns]
        for r in cells:
            lines.append(
                "  ".join(
                    c.rjust(w) if right else c.ljust(w)
                    for c, w, right in zip(r, widths, numeric, strict=True)
                ).rstrip()
            )
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)

    def markdown(self) -> str:
        """The table in Markdown, as docs/performance.md shows it."""
        lines = [
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---:" if _numeric(self.rows, c) else "---" for c in self.columns) + "|",
        ]
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(row.get(c)) for c in self.columns) + " |")
        return "\n".join(lines)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Table:
        return cls(
            name=data["name"],
            title=data["title"],
            columns=tuple(data["columns"]),
            rows=list(data["rows"]),
            notes=list(data["notes"]),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "columns": list(self.columns),
            "rows": self.rows,
            "notes": self.notes,
        }


def _numeric(rows: Sequence[Mapping[str, Any]], column: str) -> bool:
    return all(isinstance(row.get(column), int | float | None) for row in rows)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 0.1 else f"{value:.2f}"
    return str(value)
