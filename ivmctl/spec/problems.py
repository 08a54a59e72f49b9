"""Problems found while loading, and where they are, resolved to file:line:column lazily.

Every stage records a Problem with a Spot (file + data path inside that file's document)
instead of a line number: the fast YAML path keeps no positions. Only when problems are
reported (or a planner asks `DesiredState.sources` for one) is the file composed again to
turn the data path into a line and column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from difflib import get_close_matches
from typing import TYPE_CHECKING, NamedTuple

from ivmctl.errors import IvmctlError, Location, SpecError
from ivmctl.spec.yamlio import PathItem
from ivmctl.values import frozen

if TYPE_CHECKING:
    from yaml.nodes import Node


class Spot(NamedTuple):
    """Where a value was written: a file and the data path inside its document.

    A NamedTuple rather than a frozen dataclass: one is made for every field of every
    guest, and tuples are several times cheaper to build.
    """

    file: str  # display name, relative to the configuration directory
    ypath: tuple[PathItem, ...] = ()
    key: bool = False  # point at the mapping key rather than the value
    line: int | None = None  # known already (parse errors); skips locating
    column: int | None = None


_new_tuple = tuple.__new__


def spot_at(file: str, ypath: tuple[PathItem, ...], key: bool = False) -> Spot:
    """`Spot(file=file, ypath=ypath, key=key)` without the NamedTuple's Python-level
    `__new__`: normalising 10,000 guests makes over 100,000 of them."""
    return _new_tuple(Spot, (file, ypath, key, None, None))


@frozen
class Problem:
    """One error or warning, before its position is known."""

    summary: str
    detail: str | None = None
    spot: Spot | None = None
    address: str | None = None
    path: str | None = None
    kind: type[IvmctlError] = SpecError


@frozen
class SpecWarning:
    """Something accepted but worth telling (e.g. memory rounded up to a granule)."""

    summary: str
    location: Location | None = None
    detail: str | None = None

    def __str__(self) -> str:
        where = str(self.location) if self.location else ""
        return f"{where}: {self.summary}" if where else self.summary


def did_you_mean(word: str, candidates: Sequence[str] | set[str] | frozenset[str]) -> str:
    """` (did you mean "x"?)` when a candidate is close to `word`, else ``."""
    match = get_close_matches(str(word), sorted(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{match[0]}"?)' if match else ""


@dataclass(kw_only=True)
class SourceTexts:
    """The (rendered) text of every file, composed on demand to locate data paths."""

    texts: dict[str, str] = field(default_factory=dict)
    templates: dict[str, str] = field(default_factory=dict)  # template source of rendered files
    _trees: dict[str, Node | None] = field(default_factory=dict)
    _index: dict[int, dict[str, tuple[Node, Node]]] = field(default_factory=dict)

    def position(self, spot: Spot) -> tuple[int | None, int | None]:
        if spot.line is not None:
            return spot.line, spot.column
        if not spot.ypath or spot.file not in self.texts:  # a whole-file problem: no position
            return None, None
        from ivmctl.spec.yamlexact import compose, locate  # PyYAML: only to locate

        if spot.file not in self._trees:
            try:
                self._trees[spot.file] = compose(self.texts[spot.file])
            except Exception:  # unreadable YAML was reported already; no position then
                self._trees[spot.file] = None
        tree = self._trees[spot.file]
        if tree is None:
            return None, None
        return locate(tree, spot.ypath, key=spot.key, index=self._index)

    def location(
        self, spot: Spot | None, *, address: str | None = None, path: str | None = None
    ) -> Location:
        if spot is None:
            return Location(address=address, path=path)
        line, column = self.position(spot)
        if line is not None and spot.file in self.templates:
            line, column = self._template_position(spot.file, line, column)
        return Location(file=spot.file, line=line, column=column, address=address, path=path)

    def _template_position(self, file: str, line: int, column: int | None) -> tuple[int, int]:
        """Map a line of a template's output back to the template line that wrote it, when
        exactly one template line can have produced it; else keep the output line."""
        output = self.texts[file].splitlines()
        text = output[line - 1] if line <= len(output) else ""
        source = self.templates[file].splitlines()
        origin = template_origin(source, text)
        if origin is None:
            return line, column or 1
        same_prefix = column is not None and source[origin - 1][: column - 1] == text[: column - 1]
        return origin, column if same_prefix and column is not None else 1

    def error(self, problem: Problem) -> IvmctlError:
        location = self.location(problem.spot, address=problem.address, path=problem.path)
        detail = self._detail(problem.detail, problem.spot)
        return problem.kind(problem.summary, detail=detail, location=location)

    def warning(self, problem: Problem) -> SpecWarning:
        location = self.location(problem.spot, address=problem.address, path=problem.path)
        detail = self._detail(problem.detail, problem.spot)
        return SpecWarning(summary=problem.summary, detail=detail, location=location)

    def _detail(self, detail: str | None, spot: Spot | None) -> str | None:
        """In a template, say which line of the output the problem is on."""
        if spot is None or spot.file not in self.templates:
            return detail
        line, _ = self.position(spot)
        if line is None:
            return detail
        output = self.texts[spot.file].splitlines()
        shown = output[line - 1].strip() if line <= len(output) else ""
        note = f"Rendered line {line}: {shown}" if shown else f"Rendered line {line}."
        return f"{detail} {note}" if detail else note

    def where(self, spot: Spot) -> str:
        """`file:line:col` of a spot, for details such as "first defined at ..."."""
        return str(self.location(spot))


_EXPRESSION = re.compile(r"\{\{.*?\}\}|\{#.*?#\}|\{%.*?%\}")


def template_origin(source: Sequence[str], output_line: str) -> int | None:
    """The 1-based template line that produced `output_line`, if exactly one can have.

    Each template line becomes a pattern: literal text as is, `{{ ... }}` as any text,
    statements and comments as nothing. Lines that are only a statement never match.
    """
    found = None
    target = output_line.rstrip()
    for number, text in enumerate(source, start=1):
        if not text.strip() or (_EXPRESSION.sub("", text).strip() == "" and "{{" not in text):
            continue
        parts = _EXPRESSION.split(text.rstrip())
        tags = _EXPRESSION.findall(text.rstrip())
        pattern = ""
        for index, part in enumerate(parts):
            pattern += re.escape(part)
            if index < len(tags):
                pattern += ".*?" if tags[index].startswith("{{") else ""
        if re.fullmatch(pattern, target):
            if found is not None:
                return None  # two template lines could have written it: do not guess
            found = number
    return found


class SourceMap(Mapping[str, Location]):
    """`DesiredState.sources`: address (or "address:field.path") -> Location, lazily.

    The entries themselves (`entries()`, where each was written) are gathered on first
    use and lines computed on first lookup, so loading a large configuration does not pay
    for positions nobody asks for.
    """

    def __init__(
        self,
        entries: Callable[[], Mapping[str, tuple[Spot, str, str | None]]],
        texts: SourceTexts,
    ) -> None:
        self._gather: Callable[[], Mapping[str, tuple[Spot, str, str | None]]] | None = entries
        self._gathered: Mapping[str, tuple[Spot, str, str | None]] = {}
        self._texts = texts
        self._resolved: dict[str, Location] = {}

    @property
    def _entries(self) -> Mapping[str, tuple[Spot, str, str | None]]:
        if self._gather is not None:
            self._gathered, self._gather = self._gather(), None
        return self._gathered

    def __getitem__(self, key: str) -> Location:
        if key not in self._resolved:
            spot, address, path = self._entries[key]
            self._resolved[key] = self._texts.location(spot, address=address, path=path)
        return self._resolved[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"SourceMap({len(self._entries)} entries)"
