"""A test seam: kill this process with SIGKILL at a numbered crash point.

The reliability tests stop `ivmctl apply` at precise moments to prove that nothing is
lost: before and after each step, inside an emulator command's transaction (the change
is made but not committed), and while the state file is being replaced. The moments
call `crash_point(name)`; the points are numbered in the order a process passes them.

* `IVMCTL_TEST_KILL_AT=N` — SIGKILL this process when it reaches point N (1-based).
  `IVMCTL_TEST_KILL_AT=TEXT#K` — at the Kth point whose name contains TEXT (`#K` may be
  left out for the first), so a test can name a moment whatever the thread timing.
* `IVMCTL_TEST_KILL_TRACE=FILE` — append `N name` to FILE for every point passed, so a
  test can list the points of a run before it kills another run at each of them.

With neither variable set (normal use), `crash_point` returns at once and does nothing.
The variables are read once, as this module is imported: a seam belongs to a process from
its start, and an apply of 10,000 guests passes about 150,000 points (looked up each
time, the two variables took 2 µs a point).
It lives in runtime/, the lowest layer that has crash points, so one counter serves the
emulator, the state backend (through an injected hook) and the apply walk.
"""

from __future__ import annotations

import os
import signal
import threading

KILL_AT_ENV = "IVMCTL_TEST_KILL_AT"
KILL_TRACE_ENV = "IVMCTL_TEST_KILL_TRACE"

_KILL_AT = os.environ.get(KILL_AT_ENV, "")
_TRACE = os.environ.get(KILL_TRACE_ENV, "")

_guard = threading.Lock()
_count = 0
_matched = 0


def crash_point(name: str) -> None:
    """Count this point; SIGKILL the process if it is the one IVMCTL_TEST_KILL_AT names."""
    global _count, _matched
    if not _KILL_AT and not _TRACE:
        return
    with _guard:
        _count += 1
        if _TRACE:
            with open(_TRACE, "a", encoding="utf-8") as handle:
                handle.write(f"{_count} {name}\n")
        if not _KILL_AT:
            return
        if _KILL_AT.isdigit():
            hit = _count == int(_KILL_AT)
        else:
            text, _, nth = _KILL_AT.rpartition("#") if "#" in _KILL_AT else (_KILL_AT, "", "1")
            _matched += text in name
            hit = text in name and str(_matched) == nth
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)
