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
no-op plan at 10,000 guests. Long-lived processes (tests, a library user) keep the
default, so their cyclic garbage is always found.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_freeze = False  # see freeze_after_pauses


def freeze_after_pauses() -> None:
    """From now on, a paused block's end freezes every object alive (`gc.freeze`): they
    are never walked again, and a cycle among them is never freed. For processes that end
    with their command."""
    global _freeze
    _freeze = True


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
