"""Reading YAML: one meaning (YAML 1.2), fast, and exact when something is wrong.

`parse_yaml(text)` is the one place configuration text becomes data. Two loaders sit
behind it, with one meaning:

* the fast path, yaml-rs (a Rust YAML 1.2 parser, pinned in pyproject.toml), about 8x
  faster than libyaml. It is used only for text that has none of the features where its
  results differ from ruamel.yaml's round-trip loader (see `needs_exact_loader`), and
  anything it refuses is read again by the exact loader, which says where and why;
* the exact loader: PyYAML's libyaml-backed parser (`CSafeLoader`'s) with a resolver and
  constructor that follow the YAML 1.2 rules ruamel.yaml's round-trip loader applies, so
  `power: on` is the string "on" whichever of the two reads it, and `017` is 17, not 15.
  It is also the fallback when yaml-rs is not installed. It lives in `yamlexact`, which
  imports PyYAML, and is imported only when it reads.

The corpus in tests/spec/cases/yaml12_corpus.txt and generated scalars pin the loaders to
each other (tests/spec/test_spec_yaml12.py).

Differences from ruamel.yaml's round-trip results, on purpose: timestamps stay strings
(the format has no date fields, and JSON Schema sees text), and the `=` value key is a
plain string.

Guards run before and while parsing: a nesting-depth scan (libyaml's composer recurses in
C and would crash on deep input), an alias-expansion budget (billion laughs), and duplicate
keys. Errors carry the 1-based line and column; on the happy path no position is kept.
`yamlexact.locate()` finds the position of a data path afterwards by composing the text
again.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ivmctl.cachefiles import replace_cache_file
from ivmctl.collector import collector_paused

__all__ = [
    "FAST_LOADER",
    "PathItem",
    "YamlProblem",
    "cached_parse",
    "needs_exact_loader",
    "parse_yaml",
    "prune_cache",
]

PARSER_VERSION = "2"  # bump when parse results change, so cached results are not reused

_FastLoader = Callable[[str], Any]
FAST_LOADER: _FastLoader | None  # None: yaml-rs is not installed; tests set it to None too
try:  # the fast path (see the module docstring)
    import yaml_rs

    def _rust_loads(text: str) -> Any:
        return yaml_rs.loads(text, parse_datetime=False)  # timestamps stay text, as below

    FAST_LOADER = _rust_loads
    FAST_LOADER_NAME = f"yaml-rs {yaml_rs._yaml_rs._VERSION}"
except ImportError:  # pragma: no cover - depends on the installation
    FAST_LOADER = None
    FAST_LOADER_NAME = "none"
MAX_DEPTH = 100  # nesting levels; real configurations use fewer than 10
MAX_ALIAS_GROWTH = 10  # expanded nodes may be at most this many times the written ones...
ALIAS_ALLOWANCE = 100_000  # ...plus this many


class YamlProblem(Exception):
    """Text that cannot be read as configuration YAML, with where (1-based) and why."""

    def __init__(
        self,
        *,
        summary: str,
        detail: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(summary)
        self.summary = summary
        self.detail = detail
        self.line = line
        self.column = column


# --------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------
# A line whose block indentation and indicators are wider than MAX_DEPTH * 4 characters
# (searched from a literal newline, so at C speed).
_DEEP_BLOCK = re.compile(rf"\n[ \t?:-]{{{MAX_DEPTH * 4 + 1}}}[ \t?:-]*\S")
# every byte but the brackets: deleted by bytes.translate, at C speed (a regular expression
# matching runs of other characters tests each one against a class, 20 times as slow).
# UTF-8 encodes every non-ASCII character without ASCII bytes, so none is mistaken for one.
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def depth_problem(text: str) -> YamlProblem | None:
    """A cheap bound on nesting depth, checked before libyaml sees the text.

    Flow depth: matched `[]`/`{}` pairs are removed pass by pass (each pass at C speed);
    needing more than MAX_DEPTH passes means deeper nesting. Block depth: every block level
    needs at least one more character of indentation or indicator at the start of a line.
    """
    if text.count("[") + text.count("{") > MAX_DEPTH:
        brackets = text.encode("utf-8", "surrogatepass").translate(None, _NOT_BRACKET)
        for _ in range(MAX_DEPTH + 1):
            reduced = brackets.replace(b"[]", b"").replace(b"{}", b"")
            if reduced == brackets:
                break
            brackets = reduced
        else:
            return too_deep()
    if len(text) > MAX_DEPTH * 4 and _DEEP_BLOCK.search("\n" + text):
        return too_deep()  # keeps construct()'s recursion far below the limit
    return None


def too_deep() -> YamlProblem:
    """The problem of text nested too deep (found here, or by the exact loader's recursion)."""
    return YamlProblem(
        summary=f"the YAML is nested more than {MAX_DEPTH} levels deep",
        detail="An ivmctl configuration needs fewer than 10 levels; check the file's structure.",
    )


# --------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------
# Where yaml-rs and the exact loader (so ruamel.yaml's round-trip loader, which the corpus
# pins it to) disagree, found by comparing them on the corpus and on hundreds of thousands
# of generated documents: merge keys (yaml-rs keeps `<<` as a key), tags (it drops unknown
# ones silently: `!!python/...` would load), anchors (a recursive alias becomes null; alias
# budgets differ), complex and collection keys (tuples), several documents (a list), plain
# scalars that look like numbers (`0X1F`, `0B1`, `0O7` are ints for yaml-rs and text for
# ruamel; `_52`, `1_0_`, `.5E7`), and syntax libyaml refuses but yaml-rs reads (tabs
# before a token, `?`, `>` or `:` starting a flow scalar, `:` inside one). Text with any of
# these characters or shapes goes to the exact loader: ordinary configuration has none, and
# the rare file that has them is read exactly, only slower. Each pattern starts with a
# literal, so `re` scans for it at C speed; a pattern with needles (characters one of
# which every match holds) is searched only when the text has one of them, which `in`
# finds faster still (memchr): these scans were about 40 % of the fast loader's own time
# at 10,000 guests, and ordinary configuration has few of these characters.
_EXACT_ONLY_TEXT = ("!", "&", "<<", "?", "\t", "|", ">")
_EXACT_ONLY = tuple(
    (needles, re.compile(pattern))
    for needles, pattern in (
        ((), r"\n(?:---|\.\.\.|%)"),  # document markers, directives
        ((), r":(?=\S)"),  # `a:b`, `{"k":v}`: the two parsers split these differently in flow
        ((), r"\n[ -]*:"),  # an empty key in a block mapping
        (("[",), r"\[ *:"),  # a flow scalar or key starting with `:`
        (("{",), r"\{ *:"),
        ((",",), r", *:"),
        (("]",), r"\] *:"),  # a flow sequence as a key
        (("}",), r"\} *:"),  # a flow mapping as a key
        (("X", "O", "B"), r"0(?<=[\s\[{,:]0)[XOB]"),  # 0X1F, 0B1, 0O7
        (("X", "O", "B"), r"0(?<=[\s\[{,:][-+]0)[XOB]"),
        ((), r"\.(?<=[\s\[{,:]\.)[0-9][^\s,\[\]{}]*[eE]"),  # .5E7
        ((), r"\.(?<=[\s\[{,:][-+]\.)[0-9][^\s,\[\]{}]*[eE]"),
    )
)
# A plain scalar starting with [-+]?.?[0-9_] that holds an underscore; searched in the
# reversed text, where it starts with the literal `_`.
_UNDERSCORE_NUMBER_REVERSED = re.compile(r"_(?:[^\s,\[\]{}]*[0-9_])?\.?[-+]?[\s\[{,:]")


def needs_exact_loader(text: str) -> bool:
    """True when `text` uses a feature the fast loader may read differently."""
    if any(marker in text for marker in _EXACT_ONLY_TEXT):
        return True
    framed = "\n" + text  # the start of the text is a line and token start like any other
    for needles, pattern in _EXACT_ONLY:
        if needles and not any(needle in text for needle in needles):
            continue
        if pattern.search(framed):
            return True
    return "_" in text and _UNDERSCORE_NUMBER_REVERSED.search(framed[::-1]) is not None


def parse_yaml(text: str, *, loader_class: type[Any] | None = None) -> Any:
    """Parse one YAML document (YAML 1.2 meaning); raise YamlProblem with line and column.

    The fast loader reads the text when it is installed and the text needs nothing it
    reads differently; otherwise, and for any text it refuses, the exact loader
    (`loader_class`, by default libyaml's) reads it and reports the problem.
    """
    return _parse(text, loader_class=loader_class)


def _parse(text: str, *, loader_class: type[Any] | None, fast_ok: bool | None = None) -> Any:
    """`parse_yaml`; `fast_ok` is `not needs_exact_loader(text)` when the caller knows it
    (the scan reads the whole text)."""
    problem = depth_problem(text)
    if problem:
        raise problem
    if loader_class is None:
        fast = FAST_LOADER
        if fast is not None and fast_ok is None:
            fast_ok = not needs_exact_loader(text)
        if fast is not None and fast_ok:
            try:
                with collector_paused():
                    return fast(text)
            except Exception:  # any doubt: the exact loader decides, and says where
                pass
    from ivmctl.spec import yamlexact  # PyYAML: imported only when the exact loader reads

    return yamlexact.parse_exact(text, loader_class or yamlexact.Yaml12Loader)


PathItem = str | int  # mapping keys are str (int, bool, None only in non-text-key problems)


# --------------------------------------------------------------------------------------------
# Cache of parse results by content hash
# --------------------------------------------------------------------------------------------
_CACHE_TAG = f"{PARSER_VERSION}-{FAST_LOADER_NAME}-py{sys.version_info[0]}{sys.version_info[1]}"


def cached_parse(text: str, cache_dir: Path | None, used: set[Path] | None = None) -> Any:
    """`parse_yaml(text)`, reusing an earlier result for the same text from `cache_dir`.

    Results are stored with `marshal` (plain data only; loading never runs code). Only
    successful parses are stored; any cache read or write problem just means a parse.
    The entry read or written is added to `used` (see `prune_cache`). Text the fast loader
    reads is not cached: parsing it again costs about as much as reading the entry.
    """
    fast_ok = FAST_LOADER is not None and not needs_exact_loader(text)
    if cache_dir is None or fast_ok:
        return _parse(text, loader_class=None, fast_ok=fast_ok)
    digest = hashlib.sha256(f"{_CACHE_TAG}\0{text}".encode()).hexdigest()
    entry = cache_dir / digest[:2] / f"{digest}.marshal"
    if used is not None:
        used.add(entry)
    try:
        with collector_paused():
            return marshal.loads(entry.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):
        pass
    data = _parse(text, loader_class=None, fast_ok=fast_ok)
    with contextlib.suppress(OSError, ValueError):  # a cache that cannot be written
        replace_cache_file(entry, marshal.dumps(data))
    return data


def prune_cache(cache_dir: Path, used: set[Path], *, slack: int = 64) -> None:
    """Delete entries this run did not use once there are `slack` more than it used.

    Every edit of a file leaves its old parse behind; this keeps the cache about the size
    of the configuration. Problems (permissions, a concurrent prune) are ignored.
    """
    try:
        entries = list(cache_dir.glob("*/*.marshal"))
        if len(entries) <= len(used) + slack:
            return
        for entry in entries:
            if entry not in used:
                entry.unlink(missing_ok=True)
    except OSError:
        pass
