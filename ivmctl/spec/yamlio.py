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
  It is also the fallback when yaml-rs is not installed.

The corpus in tests/spec/cases/yaml12_corpus.txt and generated scalars pin the loaders to
each other (tests/spec/test_spec_yaml12.py).

Differences from ruamel.yaml's round-trip results, on purpose: timestamps stay strings
(the format has no date fields, and JSON Schema sees text), and the `=` value key is a
plain string.

Guards run before and while parsing: a nesting-depth scan (libyaml's composer recurses in
C and would crash on deep input), an alias-expansion budget (billion laughs), and duplicate
keys. Errors carry the 1-based line and column; on the happy path no position is kept.
`locate()` finds the position of a data path afterwards by composing the text again.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ivmctl.cachefiles import replace_cache_file
from ivmctl.collector import collector_paused

__all__ = [
    "FAST_LOADER",
    "HAVE_LIBYAML",
    "Node",
    "PathItem",
    "PurePythonYaml12Loader",
    "Yaml12Loader",
    "YamlProblem",
    "cached_parse",
    "compose",
    "locate",
    "needs_exact_loader",
    "parse_yaml",
    "prune_cache",
]
from yaml.composer import Composer
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner


class PurePythonParser(Reader, Scanner, Parser, Composer):
    """PyYAML's pure-Python parser, used where PyYAML was built without libyaml."""

    def __init__(self, stream: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)


_Parser: type[Any]
try:  # the libyaml (C) parser
    from yaml._yaml import CParser

    _Parser = CParser
    HAVE_LIBYAML = True
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    _Parser = PurePythonParser
    HAVE_LIBYAML = False

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
# YAML 1.2 resolution (ruamel.yaml's rules for version 1.2)
# --------------------------------------------------------------------------------------------
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_INT = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0o?[0-7_]+
    |[-+]?[0-9_]+
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_MERGE = re.compile(r"^(?:<<)$")


class Yaml12Resolver(BaseResolver):
    """Implicit tags of YAML 1.2 as ruamel.yaml resolves them (no 1.1 `yes`/`on`/octal)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 - PyYAML's class-level table


for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", _BOOL, "tTfF"),
    ("tag:yaml.org,2002:float", _FLOAT, "-+0123456789."),
    ("tag:yaml.org,2002:int", _INT, "-+0123456789"),
    ("tag:yaml.org,2002:merge", _MERGE, "<"),
    ("tag:yaml.org,2002:null", _NULL, ["~", "n", "N", ""]),
):
    Yaml12Resolver.add_implicit_resolver(_tag, _regexp, list(_first))


def _int(text: str) -> int:
    text = text.replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text.startswith("0b"):
        return sign * int(text[2:], 2)
    if text.startswith("0x"):
        return sign * int(text[2:], 16)
    if text.startswith("0o"):
        return sign * int(text[2:], 8)
    return sign * int(text, 10)  # `017` is 17 in YAML 1.2


def _float(text: str) -> float:
    text = text.replace("_", "").lower()
    if text.endswith(".inf"):
        return float("-inf") if text.startswith("-") else float("inf")
    if text == ".nan":
        return float("nan")
    return float(text)


_SCALARS: dict[str, Any] = {
    "tag:yaml.org,2002:str": str,
    "tag:yaml.org,2002:null": lambda _: None,
    "tag:yaml.org,2002:bool": lambda text: text in ("true", "True", "TRUE"),
    "tag:yaml.org,2002:int": _int,
    "tag:yaml.org,2002:float": _float,
}
_MERGE_TAG = "tag:yaml.org,2002:merge"


def _problem_at(node: Node, summary: str, detail: str | None = None) -> YamlProblem:
    mark = node.start_mark
    return YamlProblem(summary=summary, detail=detail, line=mark.line + 1, column=mark.column + 1)


def construct(node: Node, memo: dict[int, Any] | None = None) -> Any:
    """Plain data from a node tree: dicts, lists, str, int, float, bool, None.

    A small constructor of its own instead of PyYAML's SafeConstructor: twice as fast, and
    it refuses what configuration has no use for (duplicate keys, unhashable keys, tags
    other than the core ones such as !!python/object or !!timestamp). Recursion is bounded
    by `depth_problem`, which runs first.
    """
    memo = {} if memo is None else memo
    known = memo.get(id(node))
    if known is not None:  # an alias: the same object, as PyYAML builds it
        return known
    if isinstance(node, ScalarNode):
        convert = _SCALARS.get(node.tag)
        if convert is None:
            raise _problem_at(
                node,
                f"unsupported YAML tag {node.tag}",
                "Configuration uses plain values only; remove the tag.",
            )
        try:
            return convert(node.value)
        except ValueError:
            raise _problem_at(
                node, f"{node.value!r} is not a valid {node.tag.rsplit(':', 1)[-1]}"
            ) from None
    if isinstance(node, SequenceNode):
        if node.tag != "tag:yaml.org,2002:seq":
            raise _problem_at(node, f"unsupported YAML tag {node.tag}")
        items: list[Any] = []
        memo[id(node)] = items
        for child in node.value:  # a loop, not a generator: one frame per level
            items.append(construct(child, memo))
        return items
    if isinstance(node, MappingNode):
        if node.tag != "tag:yaml.org,2002:map":
            raise _problem_at(node, f"unsupported YAML tag {node.tag}")
        result: dict[Any, Any] = {}
        memo[id(node)] = result
        merged: dict[Any, Any] = {}
        first_seen: dict[Any, Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    data = construct(source, memo)
                    if not isinstance(data, dict):
                        raise _problem_at(
                            source, "a merge key (<<) needs a mapping or a list of mappings"
                        )
                    for key, value in data.items():
                        merged.setdefault(key, value)  # the first source wins
                continue
            key = construct(key_node, memo)
            try:
                first = first_seen.get(key)
            except TypeError:
                raise _problem_at(
                    key_node, "a mapping key must be a plain value, not a list or mapping"
                ) from None
            if first is not None:
                raise _problem_at(
                    key_node,
                    f'key "{key}" appears twice in one mapping: here and on line '
                    f"{first.start_mark.line + 1}",
                    "A key may appear once per mapping; remove or rename one.",
                )
            first_seen[key] = key_node
            result[key] = construct(value_node, memo)
        if merged:
            own = dict(result)
            result.clear()
            result.update(merged)
            result.update(own)  # explicit keys win over merged ones
        return result
    raise _problem_at(node, "unsupported YAML node")  # pragma: no cover


class Yaml12Loader(_Parser, Yaml12Resolver):  # type: ignore[misc]
    """libyaml parser with YAML 1.2 resolution; `construct()` builds the data."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        Yaml12Resolver.__init__(self)


class PurePythonYaml12Loader(PurePythonParser, Yaml12Resolver):
    """The same meaning without libyaml (the fallback; tests pin it to the fast one)."""

    def __init__(self, stream: str) -> None:
        PurePythonParser.__init__(self, stream)
        Yaml12Resolver.__init__(self)


# --------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------
# A line whose block indentation and indicators are wider than MAX_DEPTH * 4 characters
# (searched from a literal newline, so at C speed).
_DEEP_BLOCK = re.compile(rf"\n[ \t?:-]{{{MAX_DEPTH * 4 + 1}}}[ \t?:-]*\S")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def depth_problem(text: str) -> YamlProblem | None:
    """A cheap bound on nesting depth, checked before libyaml sees the text.

    Flow depth: matched `[]`/`{}` pairs are removed pass by pass (each pass at C speed);
    needing more than MAX_DEPTH passes means deeper nesting. Block depth: every block level
    needs at least one more character of indentation or indicator at the start of a line.
    """
    if text.count("[") + text.count("{") > MAX_DEPTH:
        brackets = _NOT_BRACKET.sub("", text)
        for _ in range(MAX_DEPTH + 1):
            reduced = brackets.replace("[]", "").replace("{}", "")
            if reduced == brackets:
                break
            brackets = reduced
        else:
            return _too_deep()
    if len(text) > MAX_DEPTH * 4 and _DEEP_BLOCK.search("\n" + text):
        return _too_deep()  # keeps construct()'s recursion far below the limit
    return None


def _too_deep() -> YamlProblem:
    return YamlProblem(
        summary=f"the YAML is nested more than {MAX_DEPTH} levels deep",
        detail="An ivmctl configuration needs fewer than 10 levels; check the file's structure.",
    )


def alias_problem(root: Node) -> YamlProblem | None:
    """Refuse alias bombs: count the nodes the aliases would expand to, without expanding."""
    sizes: dict[int, int] = {}
    written = 0
    stack: list[tuple[Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            active.discard(key)
            children = _children(node)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            continue
        if key in sizes:
            continue
        if key in active:
            return YamlProblem(
                summary="an alias refers to the node that contains it",
                detail="Recursive anchors cannot be configuration.",
                line=node.start_mark.line + 1,
                column=node.start_mark.column + 1,
            )
        written += 1
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in sizes)
    expanded = sizes[id(root)]
    if expanded > MAX_ALIAS_GROWTH * written + ALIAS_ALLOWANCE:
        return YamlProblem(
            summary=f"aliases expand this document to {expanded:,} nodes "
            f"from {written:,} written ones",
            detail="This looks like an alias bomb (billion laughs); use fewer nested aliases.",
        )
    return None


def _children(node: Node) -> list[Node]:
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, SequenceNode):
        return list(node.value)
    return []


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
# literal, so `re` scans for it at C speed (a few ms for a 10,000-guest fleet).
_EXACT_ONLY_TEXT = ("!", "&", "<<", "?", "\t", "|", ">")
_EXACT_ONLY = tuple(
    re.compile(pattern)
    for pattern in (
        r"\n(?:---|\.\.\.|%)",  # document markers, directives
        r":(?=\S)",  # `a:b`, `{"k":v}`: the two parsers split these differently in flow
        r"\n[ -]*:",  # an empty key in a block mapping
        r"\[ *:",  # a flow scalar or key starting with `:`
        r"\{ *:",
        r", *:",
        r"\] *:",  # a flow sequence as a key
        r"\} *:",  # a flow mapping as a key
        r"0(?<=[\s\[{,:]0)[XOB]",  # 0X1F, 0B1, 0O7
        r"0(?<=[\s\[{,:][-+]0)[XOB]",
        r"\.(?<=[\s\[{,:]\.)[0-9][^\s,\[\]{}]*[eE]",  # .5E7
        r"\.(?<=[\s\[{,:][-+]\.)[0-9][^\s,\[\]{}]*[eE]",
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
    if any(pattern.search(framed) for pattern in _EXACT_ONLY):
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
        loader_class = Yaml12Loader
    loader = loader_class(text)
    try:
        with collector_paused():
            node = loader.get_single_node()
            if node is None:
                return None
            if "&" in text:
                problem = alias_problem(node)
                if problem:
                    raise problem
            return construct(node)
    except yaml.MarkedYAMLError as exc:
        raise _marked_problem(exc) from None
    except yaml.YAMLError as exc:
        raise YamlProblem(summary=f"not valid YAML: {exc}") from None
    except RecursionError:
        raise _too_deep() from None
    finally:
        loader.dispose()


def _marked_problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark else None
    column = mark.column + 1 if mark else None
    what = exc.problem or exc.context or "syntax error"
    if "expected a single document" in str(exc.context or ""):
        return YamlProblem(
            summary="a file may hold only one YAML document",
            detail="Split the documents (---) into separate files.",
            line=line,
            column=column,
        )
    context = f" ({exc.context})" if exc.context and exc.problem else ""
    return YamlProblem(summary=f"not valid YAML: {what}{context}", line=line, column=column)


def compose(text: str) -> Node | None:
    """The node tree of already-validated text, with positions (used only to locate)."""
    loader = Yaml12Loader(text)
    try:
        node: Node | None = loader.get_single_node()
        return node
    finally:
        loader.dispose()


PathItem = str | int  # mapping keys are str (int, bool, None only in non-text-key problems)


def locate(
    root: Node | None,
    path: Sequence[PathItem],
    *,
    key: bool = False,
    index: dict[int, dict[str, tuple[Node, Node]]] | None = None,
) -> tuple[int, int]:
    """1-based (line, column) of the node at `path`, or of its deepest existing ancestor.

    With `key`, the position of the mapping key holding the last path item is returned
    (used for unknown and duplicate fields). `index` (kept by the caller, with the tree
    alive) makes repeated lookups in big mappings cheap.
    """
    if root is None:
        return (1, 1)
    node: Node = root
    holder: Node | None = None  # the key node under which `node` sits
    for position, item in enumerate(path):
        if isinstance(node, MappingNode):
            if index is None or not isinstance(item, str):
                pair = next((p for p in _pairs(node) if _key_matches(p[0], item)), None)
            else:  # many lookups in one file: index each mapping once
                if id(node) not in index:
                    table: dict[str, tuple[Node, Node]] = {}
                    for pair_found in _pairs(node):
                        if isinstance(pair_found[0], ScalarNode):
                            table.setdefault(pair_found[0].value, pair_found)
                    index[id(node)] = table
                pair = index[id(node)].get(str(item))
            if pair is None:
                break
            if key and position == len(path) - 1:
                node, holder = pair[0], None
                break
            holder, node = pair
        elif isinstance(node, SequenceNode) and isinstance(item, int):
            if not 0 <= item < len(node.value):
                break
            node, holder = node.value[item], None
        else:
            break
    if holder is not None and isinstance(node, MappingNode | SequenceNode):
        node = holder  # a whole block object is best shown by the line naming it
    mark = node.start_mark
    return (mark.line + 1, mark.column + 1)


def _pairs(node: MappingNode) -> Iterator[tuple[Node, Node]]:
    for key_node, value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            merged = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in merged:
                if isinstance(source, MappingNode):
                    yield from _pairs(source)
        else:
            yield key_node, value_node


def _key_matches(node: Node, item: Any) -> bool:
    if not isinstance(node, ScalarNode):
        return False
    if isinstance(item, str):
        return bool(node.value == item)
    if node.style:  # quoted: text, never equal to a number or boolean key
        return False
    try:  # a plain scalar key such as `1` or `true`, compared by its YAML 1.2 value
        value = parse_yaml(f"k: {node.value}\n")["k"]
    except YamlProblem:
        return False
    return bool(type(value) is type(item) and value == item)


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
