"""Start-up (issue #7): `ivmctl --help` and `ivmctl validate` on the quickstart.

Both run in a fresh process, best of 5, against the bare interpreter start-up
(`python -c pass`) and the target of 0.5 s: what a user waits for on the smallest
configuration is imports, so this shows whether the CLI imports lazily.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.common import ROOT, Table, clean_env, ivmctl_command, measure

TARGET = 0.5  # seconds, issue #7
RUNS = 5


def run(*, quick: bool) -> Table:
    runs = 1 if quick else RUNS
    env = clean_env()
    table = Table(
        name="startup",
        title=f"Start-up: best of {runs}, fresh process each (target {TARGET} s)",
        columns=("command", "wall s", "peak MiB", "target s"),
    )
    with tempfile.TemporaryDirectory(prefix="ivmctl-startup-") as tmp:
        quickstart = Path(tmp) / "quickstart"
        shutil.copytree(ROOT / "examples" / "quickstart", quickstart)
        cases = [
            ("python -c pass", [sys.executable, "-c", "pass"], None),
            ("ivmctl --help", [*ivmctl_command(), "--help"], TARGET),
            (
                "ivmctl validate (quickstart)",
                [*ivmctl_command(), "-C", str(quickstart), "validate"],
                TARGET,
            ),
        ]
        for name, argv, target in cases:
            best = min((measure(argv, env=env) for _ in range(runs)), key=lambda m: m.seconds)
            table.rows.append(
                {
                    "command": name,
                    "wall s": best.seconds,
                    "peak MiB": best.peak_mib,
                    "target s": target,
                }
            )
    return table
