"""Canonical formatting of configuration files, keeping comments (ruamel.yaml round-trip).

Keys are put in the order the JSON Schema lists them (apiVersion, provider, hosts,
defaults, profiles, guests; within a guest: host, profile, os, vcpus, ...); object names
(guests, hosts, vswitches) keep the user's order; unknown keys follow the known ones.
Block sequences are indented under their key. Files with template syntax are left alone
(`.j2` files that are plain YAML are formatted). A file is rewritten only when its meaning,
as ivmctl's own loader reads it, is unchanged.
"""

from __future__ import annotations

import difflib
import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RuamelError

from ivmctl.spec.loader import config_files, decode, display_name
from ivmctl.spec.schema import load_schema, schema_at
from ivmctl.spec.templates import is_template
from ivmctl.spec.yamlio import YamlProblem, parse_yaml
from ivmctl.values import frozen


@frozen
class FormatResult:
    """One file's formatting outcome."""

    file: str
    path: Path
    original: str
    formatted: str | None  # None: left alone (template, or could not be formatted)
    note: str | None = None  # why it was left alone
    error: str | None = None  # file:line:col: why it could not be formatted

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original

    def diff(self) -> str:
        if not self.changed or self.formatted is None:
            return ""
        return "".join(
            difflib.unified_diff(
                self.original.splitlines(keepends=True),
                self.formatted.splitlines(keepends=True),
                fromfile=f"a/{self.file}",
                tofile=f"b/{self.file}",
            )
        )


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap long lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    return yaml


def _reorder(node: Any, schema: dict[str, Any]) -> None:
    """Put the keys of `node` in schema order, recursively, moving comments with them."""
    if isinstance(node, CommentedMap):
        props: dict[str, Any] = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        if props:
            order = [k for k in props if k in node] + [k for k in node if k not in props]
            if list(node) != order:
                for key in order:
                    node.move_to_end(key)
        for key, value in node.items():
            if key in props:
                _reorder(value, _resolve(props[key]))
            elif isinstance(extra, dict):
                _reorder(value, _resolve(extra))
    elif isinstance(node, CommentedSeq):
        items = schema.get("items")
        if isinstance(items, dict):
            for value in node:
                _reorder(value, _resolve(items))


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return schema_at(schema["$ref"][2:].split("/"))
    for combinator in ("anyOf", "oneOf"):
        for branch in schema.get(combinator, []):
            resolved = _resolve(branch)
            if resolved.get("type") == "object":
                return resolved
    return schema


def format_text(text: str) -> str:
    """The canonical text of one configuration file (raises YamlProblem if unreadable)."""
    before = parse_yaml(text)
    yaml = _yaml()
    data = yaml.load(text)
    if data is None:
        return text
    _reorder(data, load_schema())
    stream = io.StringIO()
    yaml.dump(data, stream)
    formatted = stream.getvalue()
    if parse_yaml(formatted) != before:
        raise YamlProblem(
            summary="formatting would change the meaning of this file; left as it is",
            detail="Please report this with the file attached.",
        )
    return formatted


def format_dir(config_dir: Path) -> list[FormatResult]:
    """Format every configuration file of a directory (nothing is written here)."""
    return [_format_file(display_name(config_dir, path), path) for path in config_files(config_dir)]


def _format_file(name: str, path: Path) -> FormatResult:
    original = ""

    def unchanged(**outcome: str) -> FormatResult:
        return FormatResult(file=name, path=path, original=original, formatted=None, **outcome)

    try:
        original = decode(path.read_bytes())
        if is_template(original):
            return unchanged(note="template, left alone")
        formatted = format_text(original)
    except YamlProblem as exc:
        where = f":{exc.line}:{exc.column}" if exc.line else ""
        return unchanged(error=f"{name}{where}: {exc.summary}")
    except RuamelError as exc:  # read by ivmctl's loader but not by the round-trip one
        return unchanged(error=f"{name}: cannot be formatted: {exc}")
    return FormatResult(file=name, path=path, original=original, formatted=formatted)
