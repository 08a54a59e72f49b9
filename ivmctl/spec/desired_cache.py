"""The built DesiredState of a configuration, reused while none of its inputs changed.

Loading 10,000 guests costs about a second (parse, schema, normalise, check) although a
plan of unchanged files needs the same result as last time. `load_spec` stores what it
built under `<cache_dir>/desired.pickle`, keyed by a digest of every input a load reads:

* the configuration directory as spelt (it is part of every file name shown) and the
  names and bytes of its configuration files;
* each `--var-file` (as given, where it resolves to, its bytes), the `--var` values and
  the `IVMCTL_VAR_*` environment variables;
* the code that builds the result: the source of `ivmctl.spec`, `ivmctl.model`,
  `ivmctl.rules`, `ivmctl.errors` and the JSON Schema, the YAML loaders' versions and the
  Python version (Jinja2's too when a file is a template).

A configuration whose templates may call plugin filters is never cached: a filter is code
outside these inputs. Only valid configurations are stored, so problems are found and
reported afresh every time. The entry is read with an unpickler that builds only the model
classes listed in `_ALLOWED`: a planted file can fail to load, never run code.

`DesiredState.sources` (file:line of every field, used only in problem reports) is not
stored: on a hit it is a `LazySources` that loads the configuration again, uncached, the
first time somebody looks a location up.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import pickle
import re
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from ivmctl.cachefiles import (
    MODEL_VALUES,
    PACKAGE,
    RestrictedUnpickler,
    replace_cache_file,
    sources_digest,
)
from ivmctl.collector import collector_paused
from ivmctl.errors import Location
from ivmctl.lazy import LazyMapping
from ivmctl.model import DesiredState, ProviderConfig
from ivmctl.spec.problems import SpecWarning
from ivmctl.values import frozen

FORMAT = b"ivmctl-desired-cache-2\n"  # bump when what is stored changes
ENTRY = "desired.pickle"
_TEMPLATE_MARKER = re.compile(rb"\{[{%#]")  # templates.is_template, on bytes

_ALLOWED = MODEL_VALUES | {("ivmctl.errors", "Location"), ("ivmctl.spec.problems", "SpecWarning")}


@frozen
class Entry:
    """What a load produced, minus the sources: enough to rebuild its LoadResult."""

    provider: ProviderConfig
    hosts: Mapping[str, Any]
    guests: Mapping[str, Any]
    digest: str
    warnings: tuple[SpecWarning, ...]
    files: tuple[str, ...]


class LazySources(LazyMapping[str, Location]):
    """`DesiredState.sources` of a cached load: built by `rebuild` (a load of the
    configuration again) on first use."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"LazySources({f'{len(self)} entries' if self.is_built else 'not loaded'})"


# --------------------------------------------------------------------------------------------
# The key
# --------------------------------------------------------------------------------------------
_CODE_FILES = ("model.py", "rules.py", "errors.py")
_CODE_DIRS = (("spec", "*.py"), ("schemas", "*.json"))


def code_files() -> list[Path]:
    """The files of the ivmctl package whose content decides what a load builds."""
    files = [PACKAGE / name for name in _CODE_FILES]
    for folder, pattern in _CODE_DIRS:
        files.extend(sorted((PACKAGE / folder).glob(pattern)))
    return files


@cache
def code_digest() -> str:
    """A digest of the code and library versions a load depends on (once per process)."""
    from ivmctl.spec.yamlio import FAST_LOADER_NAME, PARSER_VERSION

    digest = hashlib.sha256()
    digest.update(f"{sys.version}\0{FAST_LOADER_NAME}\0".encode())
    digest.update(f"{PARSER_VERSION}\0{pickle.HIGHEST_PROTOCOL}\0".encode())
    digest.update(sources_digest([*code_files(), *_pyyaml_version_file()]))
    return digest.hexdigest()


def _pyyaml_version_file() -> list[Path]:
    """PyYAML's `__init__.py`, which holds its version: found, not imported (a load that
    the fast loader reads never imports PyYAML, see `yamlexact`)."""
    spec = importlib.util.find_spec("yaml")
    return [Path(spec.origin)] if spec is not None and spec.origin else []


def inputs_key(
    config_dir: Path,
    files: Sequence[Path],
    *,
    var_files: Sequence[Path],
    variables: Mapping[str, str],
    env_variables: Mapping[str, str],
    has_filters: bool,
) -> str | None:
    """The digest of every input of a load, or None when the load must not be cached
    (a file or var file cannot be read, or templates may call plugin filters)."""
    digest = hashlib.sha256(FORMAT)
    try:
        digest.update(code_digest().encode())
    except OSError:  # the package's files cannot be read (a zip import): no cache
        return None

    def field(*parts: str | bytes) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)

    field("dir", str(config_dir))
    templates = False
    try:
        for path in files:
            data = path.read_bytes()
            templates = templates or _TEMPLATE_MARKER.search(data) is not None
            field("file", path.name, data)
        for var_file in var_files:
            field("var-file", str(var_file), str(var_file.resolve()), var_file.read_bytes())
    except OSError:
        return None
    if templates:
        if has_filters:
            return None
        import jinja2

        field("jinja2", jinja2.__version__)
    for name, value in sorted(variables.items()):
        field("var", name, str(value))
    for name, value in sorted(env_variables.items()):
        field("env", name, value)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------
# Reading and writing
# --------------------------------------------------------------------------------------------
def read(cache_dir: Path, key: str) -> Entry | None:
    """The entry stored for `key`, or None (absent, another key, unreadable, refused)."""
    try:
        data = (cache_dir / ENTRY).read_bytes()
    except OSError:
        return None
    header = FORMAT + key.encode() + b"\n"
    if not data.startswith(header):
        return None
    try:
        with collector_paused():  # tens of thousands of objects, no cycles
            stream = io.BytesIO(memoryview(data)[len(header) :])
            digest, warnings, files = RestrictedUnpickler(stream, _ALLOWED).load()
            _api_version, provider, hosts, guests = RestrictedUnpickler(stream, _ALLOWED).load()
    except Exception:  # a damaged or planted entry is only a miss
        return None
    if not (isinstance(provider, ProviderConfig) and isinstance(hosts, dict)):
        return None
    if not (isinstance(guests, dict) and isinstance(digest, str)):
        return None
    return Entry(
        provider=provider,
        hosts=hosts,
        guests=guests,
        digest=digest,
        warnings=tuple(warnings),
        files=tuple(files),
    )


def write(
    cache_dir: Path,
    key: str,
    model: bytes,
    desired: DesiredState,
    warnings: Sequence[SpecWarning],
    files: Sequence[str],
) -> None:
    """Store a load's result for `key`, replacing the previous entry; problems are ignored.

    `model` is the load's `loader.model_bytes` (the pickle its digest was taken of), stored
    as it is after a pickle of the digest, warnings and files.
    """
    try:
        rest = pickle.dumps((desired.digest, tuple(warnings), tuple(files)), protocol=5)
        replace_cache_file(cache_dir / ENTRY, FORMAT + key.encode() + b"\n", rest, model)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        pass
