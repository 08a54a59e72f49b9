"""The exact YAML loader: PyYAML's libyaml parser with YAML 1.2 resolution, and where data
sits in a file.

`yamlio.parse_yaml` reads ordinary configuration with the fast loader; this module reads
the rest (text the fast loader may read differently or refuses, and every file when
yaml-rs is missing) and composes a file again to locate a problem (`compose`, `locate`).
It is imported only then: PyYAML's import was a fifth of ivmctl's own before a plan's
first host was asked for. What it reads means what ruamel.yaml's round-trip loader makes
of it (see `yamlio`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from ivmctl.collector import collector_paused
from ivmctl.spec.yamlio import (
    ALIAS_ALLOWANCE,
    MAX_ALIAS_GROWTH,
    PathItem,
    YamlProblem,
    parse_yaml,
    too_deep,
)


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
# Reading, locating
# --------------------------------------------------------------------------------------------
def parse_exact(text: str, loader_class: type[Any]) -> Any:
    """The exact loader's reading of `text` (`yamlio.parse_yaml`, which has run the depth
    guard): the data, or a YamlProblem with line and column."""
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
        raise too_deep() from None
    finally:
        loader.dispose()


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
