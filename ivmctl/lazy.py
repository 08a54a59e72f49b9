"""A read-only mapping built the first time it is read (standard library only).

For data most runs never look at: the source locations of a configuration loaded from
the desired cache (`spec.desired_cache.LazySources`) and the views of a plan's unchanged
guests (`plan.views.LazyView`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LazyMapping(Mapping[K, V]):
    """The mapping `build()` returns, called on the first read and kept. Two threads
    reading first may both build it: `build` must return the same mapping each time."""

    __slots__ = ("_build", "_built")

    def __init__(self, build: Callable[[], Mapping[K, V]]) -> None:
        self._build = build
        self._built: Mapping[K, V] | None = None

    @property
    def is_built(self) -> bool:
        return self._built is not None

    def built(self) -> Mapping[K, V]:
        """The mapping itself, built now if it was not."""
        if self._built is None:
            self._built = self._build()
        return self._built

    def __getitem__(self, key: K) -> V:
        return self.built()[key]

    def __iter__(self) -> Iterator[K]:
        return iter(self.built())

    def __len__(self) -> int:
        return len(self.built())
