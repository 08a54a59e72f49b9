"""Where the time goes: cProfile of one ivmctl command, summarised as the top functions.

The command runs in a child process (`python -m benchmarks.profile OUT ARGS...`) with
one cProfile profiler per thread: the main thread's, and one for every thread started
during the run (refresh and apply work in thread pools, which `python -m cProfile`
alone would show only as time spent waiting on a lock). The profiles are merged and
the functions with the largest cumulative time are reported, leaving out frames that
merely contain everything (import machinery, click, the CLI layer, thread pools and
lock waits). Thread times add up, so "% of run" is relative to the main thread's
total and a pool's work can exceed it. Profiling slows Python code down (roughly
1.5-2x): these seconds rank the hotspots; the unprofiled figures are in the scale
table.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

from benchmarks.common import measure

# Frames that contain everything, not hotspots of their own.
_WRAPPERS = (
    "<frozen importlib",
    "<built-in method builtins.exec>",
    "click/core.py",
    "click/decorators.py",
    "ivmctl/cli/",
    "cProfile.py",
    "benchmarks/profile.py",
    "threading.py",
    "concurrent/futures",
    "{method 'enable'",
    "<method 'acquire'",
    "<method 'get' of '_queue.SimpleQueue'",
    "<string>:1(<module>)",
)


def _label(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name
    parts = Path(filename).parts
    for anchor in ("ivmctl", "site-packages"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            start = index if anchor == "ivmctl" else index + 1
            return f"{'/'.join(parts[start:])}:{line}({name})"
    return f"{Path(filename).name}:{line}({name})"


def profile_command(directory: Path, *args: str, top: int = 20) -> list[dict[str, Any]]:
    """Profile `ivmctl -C DIRECTORY ARGS...`; the `top` functions by cumulative time."""
    with tempfile.TemporaryDirectory(prefix="ivmctl-profile-") as tmp:
        out = Path(tmp) / "profile.out"
        measure(
            [sys.executable, "-m", "benchmarks.profile", str(out), "-C", str(directory), *args],
            ok_codes=(0, 2),
        )
        stats = pstats.Stats(str(out))
    rows: list[dict[str, Any]] = []
    entries = stats.stats  # type: ignore[attr-defined]
    total = max(ct for (_, _, _, ct, _) in entries.values())
    ranked = sorted(entries.items(), key=lambda item: item[1][3], reverse=True)
    for func, (_, ncalls, tottime, cumtime, _) in ranked:
        label = _label(func)
        if any(w in func[0] or w in label for w in _WRAPPERS) or label.startswith("<built-in"):
            continue
        rows.append(
            {
                "function": label,
                "cumulative s": round(cumtime, 3),
                "own s": round(tottime, 3),
                "calls": ncalls,
                "% of run": round(100 * cumtime / total, 1),
            }
        )
        if len(rows) == top:
            break
    return rows


def main() -> None:
    """Run `ivmctl ARGS...` here with every thread profiled; write merged stats to OUT."""
    out, args = sys.argv[1], sys.argv[2:]
    profiles: list[cProfile.Profile] = []
    guard = threading.Lock()
    original = threading.Thread.run

    def profiled_run(thread: threading.Thread) -> None:
        profile = cProfile.Profile()
        with guard:
            profiles.append(profile)
        profile.runcall(original, thread)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]
    main_profile = cProfile.Profile()
    sys.argv = ["ivmctl", *args]
    code: object = 0
    main_profile.enable()
    try:
        # imported while profiled, as the executable imports them
        from ivmctl import cli
        from ivmctl.collector import freeze_after_pauses

        # as the executable runs (`cli.console`), except that it ends the process at
        # once (`cli.exit_now`), and the profile must be written first
        freeze_after_pauses()
        cli.main(args)
    except SystemExit as exc:
        code = exc.code
    finally:
        main_profile.disable()
    stats = pstats.Stats(main_profile)
    for profile in profiles:
        stats.add(profile)
    stats.dump_stats(out)
    raise SystemExit(code)


if __name__ == "__main__":
    main()
