"""The JSON Schema of a configuration file, and schema errors in the user's words.

The schema (schemas/ivmctl-v1.schema.json, Draft 2020-12) is package data, loaded from the
installed `ivmctl/schemas/` with importlib.resources. Each file's document is validated on
its own (a file holds part of a configuration), with jsonschema-rs when installed (fast
enough for 10,000 guests) and the `jsonschema` package otherwise. Both report through the
same `Issue` shape, which this module turns into messages: unknown fields with a
did-you-mean, enum values with a did-you-mean, YAML 1.1 words (`yes`, `on`) where a boolean
belongs, and the inner error of a one-of (entitlement `{mn: 20}` names `mn`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any, Protocol

from ivmctl.errors import SchemaError
from ivmctl.spec.problems import Problem, Spot, did_you_mean
from ivmctl.values import frozen

SCHEMA_FILE = "ivmctl-v1.schema.json"
API_VERSION = "ivmctl/v1"
_YAML11_BOOLEANS = {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO"}
_TYPE_NAMES = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "a mapping",
    "array": "a list",
    "null": "null",
}


@cache
def load_schema() -> dict[str, Any]:
    """The schema, read from the installed package data."""
    text = resources.files("ivmctl").joinpath("schemas", SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@frozen
class Issue:
    """One schema violation, whichever validator found it."""

    keyword: str  # additionalProperties | required | type | enum | const | oneOf | ...
    path: tuple[str | int, ...]  # instance path
    schema_path: tuple[str | int, ...]
    instance: Any
    message: str  # the validator's own text, used when nothing better is known
    unexpected: tuple[str, ...] = ()  # additionalProperties
    missing: str | None = None  # required
    branches: tuple[tuple[Issue, ...], ...] = ()  # oneOf / anyOf


class _Validator(Protocol):
    def issues(self, document: Any) -> list[Issue]: ...


class _RustValidator:
    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema_rs

        self._validator = jsonschema_rs.validator_for(schema)

    def issues(self, document: Any) -> list[Issue]:
        if self._validator.is_valid(document):
            return []
        return [self._issue(e) for e in self._validator.iter_errors(document)]

    def _issue(self, error: Any) -> Issue:
        kind = error.kind
        name = kind.name
        extra: dict[str, Any] = {}
        if name == "additionalProperties":
            extra["unexpected"] = tuple(kind.unexpected)
        elif name == "required":
            extra["missing"] = str(kind.property)
        elif name in ("oneOf", "anyOf"):
            extra["branches"] = tuple(
                tuple(self._issue(inner) for inner in branch) for branch in kind.context
            )
        return Issue(
            keyword=name,
            path=tuple(error.instance_path),
            schema_path=tuple(error.schema_path),
            instance=error.instance,
            message=error.message,
            **extra,
        )


class _PythonValidator:
    def __init__(self, schema: dict[str, Any]) -> None:
        import jsonschema

        cls = jsonschema.validators.validator_for(schema)
        self._validator = cls(schema)

    def issues(self, document: Any) -> list[Issue]:
        if _has_non_string_key(document):
            raise ValueError("a key is not a string")  # as jsonschema-rs does
        return [self._issue(e) for e in self._validator.iter_errors(document)]

    def _issue(self, error: Any) -> Issue:
        name = str(error.validator)
        extra: dict[str, Any] = {}
        if name == "additionalProperties":
            allowed = set(error.schema.get("properties", {}))
            extra["unexpected"] = tuple(k for k in error.instance if k not in allowed)
        elif name == "required":
            extra["missing"] = str(error.message).split("'")[1]
        elif name in ("oneOf", "anyOf"):
            groups: dict[int, list[Issue]] = {}
            for inner in error.context or ():
                groups.setdefault(inner.schema_path[0], []).append(self._issue(inner))
            extra["branches"] = tuple(tuple(groups[k]) for k in sorted(groups))
        return Issue(
            keyword=name,
            path=tuple(error.absolute_path),
            schema_path=tuple(error.absolute_schema_path),
            instance=error.instance,
            message=str(error.message),
            **extra,
        )


@cache
def validator(engine: str = "auto") -> _Validator:
    """`rust` (jsonschema-rs), `python` (jsonschema), or `auto`: rust when installed."""
    if engine in ("auto", "rust"):
        try:
            return _RustValidator(load_schema())
        except ImportError:
            if engine == "rust":
                raise
    return _PythonValidator(load_schema())


def schema_at(schema_path: Sequence[str | int]) -> dict[str, Any]:
    """The subschema a schema path leads to, following local `$ref`s on the way."""
    root = load_schema()
    node: Any = root
    for item in schema_path:
        node = _deref(root, node)
        if item == "$ref":
            continue
        if isinstance(node, dict):
            node = node.get(str(item), {})
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node = node[item]
        else:
            return {}
    node = _deref(root, node)
    return node if isinstance(node, dict) else {}


def _deref(root: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and node["$ref"].startswith("#/"):
        target: Any = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


# --------------------------------------------------------------------------------------------
# Turning issues into problems
# --------------------------------------------------------------------------------------------
def validate_document(document: Any, file: str, *, engine: str = "auto") -> list[Problem]:
    """Schema problems of one file's document, each at its spot."""
    try:
        issues = validator(engine).issues(document)
    except ValueError:  # a key that JSON cannot hold (jsonschema-rs refuses the document)
        return list(_non_string_keys(document, file, ()))
    problems: list[Problem] = []
    for issue in issues:
        problems.extend(_explain(issue, file))
    return problems


def _has_non_string_key(data: Any) -> bool:
    if isinstance(data, dict):
        return any(not isinstance(k, str) or _has_non_string_key(v) for k, v in data.items())
    if isinstance(data, list):
        return any(_has_non_string_key(v) for v in data)
    return False


def _non_string_keys(data: Any, file: str, path: tuple[Any, ...]) -> Iterator[Problem]:
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                yield _problem(
                    f"key {key!r} is not text",
                    file,
                    (*path, key),
                    key=True,
                    detail="Field and object names are strings; quote the key.",
                )
            else:
                yield from _non_string_keys(value, file, (*path, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _non_string_keys(value, file, (*path, index))


def _problem(
    summary: str,
    file: str,
    path: tuple[str | int, ...],
    *,
    key: bool = False,
    detail: str | None = None,
) -> Problem:
    address, field_path = split_path(path)
    return Problem(
        summary=summary,
        detail=detail,
        spot=Spot(file=file, ypath=path, key=key),
        address=address,
        path=field_path,
        kind=SchemaError,
    )


def split_path(path: Sequence[str | int]) -> tuple[str | None, str | None]:
    """("guests", "web01", "nics", 0, "vswitch") -> ("guest.web01", "nics[0].vswitch")."""
    kinds = {"guests": "guest", "hosts": "host", "profiles": "profile"}
    rest: Sequence[str | int]
    if len(path) >= 2 and path[0] in kinds:
        head = path[0]
        address = f"{kinds[str(head)]}.{path[1]}"
        rest = path[2:]
        if head == "hosts" and len(rest) >= 2 and rest[0] == "vswitches":
            address = f"vswitch.{path[1]}.{rest[1]}"
            rest = rest[2:]
    elif len(path) >= 2 and path[0] == "defaults":
        address = f"defaults.{path[1]}"
        rest = path[2:]
    elif path:
        address, rest = str(path[0]), path[1:]
    else:
        return None, None
    return address, format_field_path(rest) or None


def format_field_path(path: Sequence[str | int]) -> str:
    text = ""
    for item in path:
        index = isinstance(item, int) and not isinstance(item, bool)
        text += f"[{item}]" if index else (f".{item}" if text else str(item))
    return text


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


def _explain(issue: Issue, file: str) -> list[Problem]:
    path = issue.path
    keyword = issue.keyword
    if keyword == "additionalProperties" and issue.unexpected:
        parent = schema_at(issue.schema_path[:-1])
        known = set(parent.get("properties", {}))
        return [
            _problem(
                f'unknown field "{name}"{did_you_mean(name, known)}',
                file,
                (*path, name),
                key=True,
                detail=f"Known fields here: {', '.join(sorted(known))}." if known else None,
            )
            for name in issue.unexpected
        ]
    if keyword == "required" and issue.missing:
        return [_problem(f'missing required field "{issue.missing}"', file, path)]
    if keyword == "const" and path == ("apiVersion",):
        return [
            _problem(
                f"unsupported apiVersion {_describe(issue.instance)}",
                file,
                path,
                detail=f"This ivmctl reads {API_VERSION}.",
            )
        ]
    if keyword == "enum":
        options = [
            str(o) for o in schema_at(issue.schema_path[:-1]).get("enum", []) if isinstance(o, str)
        ]
        hint = did_you_mean(str(issue.instance), options) if isinstance(issue.instance, str) else ""
        return [
            _problem(
                f"{_describe(issue.instance)} is not one of "
                + ", ".join(f'"{o}"' for o in options)
                + hint,
                file,
                path,
            )
        ]
    if keyword == "type":
        subschema = schema_at(issue.schema_path[:-1])
        expected = subschema.get("type", [])
        types = [expected] if isinstance(expected, str) else list(expected)
        wanted = " or ".join(_TYPE_NAMES.get(t, t) for t in types)
        if "title" in subschema and subschema.get("examples"):
            wanted = f"{_a(subschema['title'])} such as {_example(subschema['examples'][0])}"
        detail = None
        if (
            "boolean" in types
            and isinstance(issue.instance, str)
            and issue.instance in _YAML11_BOOLEANS
        ):
            detail = f"YAML 1.2 reads {issue.instance} as text, not a boolean; write true or false."
        return [
            _problem(
                f"expected {wanted}, got {_describe(issue.instance)}", file, path, detail=detail
            )
        ]
    if keyword in ("oneOf", "anyOf"):
        return _explain_alternatives(issue, file)
    return [_problem(issue.message, file, path)]


def _explain_alternatives(issue: Issue, file: str) -> list[Problem]:
    """Show the inner errors of the one alternative that matches the value's shape."""
    shaped = [
        branch
        for branch in issue.branches
        if branch and not all(i.keyword == "type" and i.path == issue.path for i in branch)
    ]
    if len(shaped) == 1:
        return [p for inner in shaped[0] for p in _explain(inner, file)]
    subschema = schema_at(issue.schema_path[:-1])
    title = subschema.get("title", "value")
    examples = subschema.get("examples", [])
    example = f" such as {_example(examples[0])}" if examples else ""
    return [
        _problem(
            f"expected {_a(title)}{example}, got {_describe(issue.instance)}", file, issue.path
        )
    ]


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _example(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_example(v)}" for k, v in value.items()) + "}"
    return str(value)
