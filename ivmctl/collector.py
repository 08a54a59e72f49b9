"""Pausing Python's cyclic garbage collector while large, acyclic data is built.

Loading 10,000 guests, refreshing 1,000 hosts, planning, encoding and rendering each
allocate hundreds of thousands of small containers, none of them part of a reference
cycle. Every batch of allocations triggers a collection that walks every live object of
the process (the loaded configuration and the refreshed runtime included): at 10,000
guests that was half of a no-op plan's planning time and about a tenth of a refresh.
Reference counting still frees everything these blocks drop; only the cycle search
waits until the block ends. The one home of this for every layer (standard library only).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (as it was before, afterwards)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
