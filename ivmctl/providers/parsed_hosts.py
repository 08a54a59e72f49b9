"""Parsed host listings, reused while a host answers what it answered last time.

A refresh reads every host's listings (`hpvm.HOST_LISTINGS`, then one port table per
vswitch) and parses them. At 1,000 hosts and 10,000 guests that parsing was most of a
no-op plan's time in ivmctl's own process, although most hosts answer byte for byte what
they answered at the last plan. `ParsedHosts` keeps each host's parsed result under a
digest of everything it was parsed from: the host's name, the text of every listing in
order, and the parsing code (the source of `providers/parsers.py`, `providers/hpvm.py`,
`model.py`, `resources.py` and `rules.py`, and the Python version). A host whose digest
matches is not parsed again; a single byte of difference parses it afresh. The listings
themselves are always read: only their parsing is saved, so what the runtime says is
never taken from the cache.

The entries live in one file (`<cache dir>/hosts.pickle`): per host, the digest of its
first round trip's listings, the key, and the pickled result, unpickled only on a hit,
with an unpickler that builds nothing but the model's classes
(`cachefiles.RestrictedUnpickler`): a planted or damaged file is a miss, never code.
`save` rewrites the file when a refresh parsed something new; entries of hosts that
refresh did not read are kept.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import sys
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from ivmctl import model
from ivmctl.cachefiles import (
    MODEL_VALUES,
    PACKAGE,
    RestrictedUnpickler,
    replace_cache_file,
    sources_digest,
)

__all__ = ["ENTRY", "ListingsDigest", "Parsed", "ParsedHosts", "pickled", "unpickle"]

FORMAT = b"ivmctl-parsed-hosts-2\n"  # bump when what is stored changes
ENTRY = "hosts.pickle"
_CODE = ("providers/parsers.py", "providers/hpvm.py", "model.py", "resources.py", "rules.py")

Parsed = tuple[model.Host, list[model.ActualGuest]]


@cache
def code_digest() -> bytes:
    """What the parsed result depends on besides the listings (once per process)."""
    sources = sources_digest(PACKAGE / name for name in _CODE)
    return hashlib.sha256(FORMAT + sys.version.encode() + sources).digest()


class ListingsDigest:
    """The key of a host's parse: its name, its listings' texts in order, the code.

    `first` covers the first round trip's listings alone, so that a host whose stored
    parse cannot match is known before its port tables arrive (and is parsed meanwhile);
    `key` adds the port tables: the key itself.
    """

    def __init__(self, host: str, texts: Sequence[str]) -> None:
        self._digest = _added(hashlib.sha256(code_digest()), host, *texts)
        self.first = self._digest.digest()

    def key(self, tables: Sequence[str]) -> bytes:
        return _added(self._digest.copy(), "\0tables", *tables).digest()


def _added(digest: hashlib._Hash, *parts: str) -> hashlib._Hash:
    """`digest` updated with each part, length first (so no two lists of parts collide)."""
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest


class ParsedHosts:
    """The parsed listings of the hosts of the last refreshes, by host (see the module)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # host -> (digest of its first listings, key, pickle)
        self._entries: dict[str, tuple[bytes, bytes, bytes]] | None = None
        self._changed = False
        self._lock = threading.Lock()  # refresh threads may put at the same time

    def may_hold(self, host: str, first: bytes) -> bool:
        """Whether the stored parse of `host` was made from these first listings (its
        port tables decide the rest)."""
        entry = self._load().get(host)
        return entry is not None and entry[0] == first

    def get(self, host: str, key: bytes) -> Parsed | None:
        """The result stored for `host` if it was parsed from the same listings."""
        data = self.data(host, key)
        return None if data is None else unpickle(data)

    def data(self, host: str, key: bytes) -> bytes | None:
        """The stored result for `host` as it was stored (`pickled`), if it was parsed
        from the same listings; not checked until it is unpickled (`unpickle`)."""
        entry = self._load().get(host)
        return None if entry is None or entry[1] != key else entry[2]

    def put(self, host: str, first: bytes, key: bytes, parsed: Parsed) -> None:
        self.put_data(host, first, key, pickled(parsed))

    def put_data(self, host: str, first: bytes, key: bytes, data: bytes) -> None:
        """Store a result already pickled (`pickled`), e.g. by the process that parsed it."""
        with self._lock:
            self._load()[host] = (first, key, data)
            self._changed = True

    def save(self) -> None:
        """Write the entries if this run added any; problems are ignored (only a miss)."""
        if not self._changed or self._entries is None:
            return
        try:
            replace_cache_file(self.path, FORMAT, pickle.dumps(self._entries, protocol=5))
            self._changed = False
        except (OSError, pickle.PicklingError):
            pass

    def _load(self) -> dict[str, tuple[bytes, bytes, bytes]]:
        if self._entries is None:
            self._entries = _read(self.path)
        return self._entries


def pickled(parsed: Parsed) -> bytes:
    """A host's parse as stored, and as a reader process hands it over."""
    return pickle.dumps(parsed, protocol=5)


def unpickle(data: bytes) -> Parsed | None:
    """A host's parse from `pickled` bytes; None when they are damaged or hold anything
    but the model's classes (a cache file may have been planted: never run code)."""
    try:
        found, guests = RestrictedUnpickler(io.BytesIO(data), MODEL_VALUES).load()
    except Exception:
        return None
    if not isinstance(found, model.Host) or not isinstance(guests, list):
        return None
    return found, guests


def _read(path: Path) -> dict[str, tuple[bytes, bytes, bytes]]:
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    if not data.startswith(FORMAT):
        return {}
    try:
        entries = RestrictedUnpickler(io.BytesIO(data[len(FORMAT) :]), frozenset()).load()
    except Exception:  # damaged: start afresh
        return {}
    if not isinstance(entries, dict):
        return {}
    return {
        host: (first, key, blob)
        for host, value in entries.items()
        if isinstance(host, str)
        and isinstance(value, tuple)
        and len(value) == 3
        and all(isinstance(part, bytes) for part in value)
        for first, key, blob in [value]
    }
