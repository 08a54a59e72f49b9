"""Pausing Python's cyclic garbage collector while large, acyclic data is built.

Loading 10,000 guests, refreshing 1,000 hosts, planning, encoding and rendering each
allocate hundreds of thousands of small containers, none of them part of a reference
cycle. Every batch of allocations triggers a collection that walks every live object of
the process (the loaded configuration and the refreshed runtime included): at 10,000
guests that was half of a no-op plan's planning time and about a tenth of a refresh.
Reference counting still frees everything these blocks drop; only the cycle search
waits until the block ends. The one home of this for every layer (standard library only).

In a process that ends with its command (the `ivmctl` executable), what a block built is
also moved out of the collector's sight when the block ends (`freeze_after_pauses`):
otherwise the first collections afterwards walk all of it again, about 0.15 s of a
no-op plan at 10,000 guests. Such a process also keeps a command's large results alive
until it exits (`keep_until_exit`), and exits without freeing them: freeing a million
objects one by one, only for the process to end, took about 0.1 s of that plan.
Long-lived processes (tests, a library user) keep the default, so their cyclic garbage
is always found and their objects freed.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False  # see freeze_after_pauses: this process ends with its command
_kept: list[object] = []  # see keep_until_exit


def freeze_after_pauses() -> None:
    """From now on, a paused block's end freezes every object alive (`gc.freeze`): they
    are never walked again, and a cycle among them is never freed. For processes that end
    with their command."""
    global _freeze
    _freeze = True


def keep_until_exit(value: object) -> None:
    """In a process that ends with its command (`freeze_after_pauses`), keep `value` (a
    command's configuration, runtime and plan) alive until the process exits, which then
    skips freeing it (the executable's `os._exit`), or until the next call: one value is
    kept, so a command that plans again and again (`reconcile`) frees each cycle's results
    as the next one keeps its own. Elsewhere nothing: it is freed as usual once unused."""
    if _freeze:
        _kept[:] = [value]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (as it was before, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if _freeze:
                gc.freeze()
            gc.enable()
