"""Cache files: written whole, read back building only the classes a cache may hold.

The desired-state cache (`spec/desired_cache.py`), the per-file parse cache
(`spec/yamlio.py`) and the parsed host listings (`providers/parsed_hosts.py`) keep
derived data under `.ivmctl/cache`. A cache entry is only ever a shortcut: a reader that
finds it missing, damaged or of another format rebuilds what it holds. The one home of
how such files are written and unpickled, for every layer (standard library only).
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Iterable, Set
from pathlib import Path
from typing import Any

# The model's value classes (ivmctl/model.py): frozen dataclasses of plain values, which
# any cache may hold and which are safe to build from a file.
MODEL_VALUES = frozenset(
    ("ivmctl.model", name)
    for name in (
        "ProviderConfig",
        "Host",
        "Hardware",
        "VSwitch",
        "ActualGuest",
        "GuestStatus",
        "Guest",
        "Entitlement",
        "DynamicMemory",
        "Disk",
        "Nic",
        "Lifecycle",
    )
)


PACKAGE = Path(__file__).resolve().parent  # the ivmctl package directory


def sources_digest(files: Iterable[Path]) -> bytes:
    """A digest of source files (each one's folder and name, then its bytes): part of the
    key of anything derived by that code. An unreadable file is an OSError."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path.parent.name}/{path.name}\0".encode())
        digest.update(path.read_bytes())
    return digest.digest()


def replace_cache_file(path: Path, *chunks: bytes) -> None:
    """Write a cache entry whole, through a temporary file, so a reader sees the old entry
    or the new one (no fsync: a cache entry lost to a power cut is only a miss)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent runs never collide
    with open(tmp, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
    tmp.replace(path)


class RestrictedUnpickler(pickle.Unpickler):
    """Builds only the (module, name) classes of `allowed`: a planted or damaged file can
    fail to load (pickle.UnpicklingError), never run code."""

    def __init__(self, stream: io.BytesIO, allowed: Set[tuple[str, str]]) -> None:
        super().__init__(stream)
        self._allowed = allowed

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"{module}.{name} may not be in a cache file")
        found = _FOUND.get((module, name))
        if found is None:
            found = _FOUND[module, name] = super().find_class(module, name)
        return found


# Classes already looked up, by (module, name): each of a refresh's 1,000 hosts comes as a
# pickle of its own naming the same ten classes, and the unpickler's own lookup (an audit
# event, the module, the attribute) took 1.5 us each time.
_FOUND: dict[tuple[str, str], Any] = {}
