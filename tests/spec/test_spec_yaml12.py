"""One YAML meaning whichever loader reads a file: the fast libyaml path, its pure-Python
fallback and ruamel.yaml's round-trip loader (used by fmt) all speak YAML 1.2."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from ivmctl.spec import yamlio
from ivmctl.spec.yamlio import PurePythonYaml12Loader, YamlProblem, cached_parse, parse_yaml

CORPUS = Path(__file__).parent / "cases" / "yaml12_corpus.txt"
VALUES = [
    line for line in CORPUS.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
]


def plain(value: Any) -> Any:
    """ruamel's round-trip types (ScalarInt, CommentedMap, ...) as plain Python values."""
    if isinstance(value, dict):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if hasattr(value, "value") and hasattr(value, "tag"):  # TaggedScalar, e.g. `=`
        return str(value.value)
    return str(value)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def ruamel_value(text: str) -> Any:
    document = YAML(typ="rt").load(f"k: {text}\n")
    return plain(document["k"])


@pytest.mark.parametrize("text", VALUES)
def test_fast_loader_reads_every_corpus_value_as_ruamel_round_trip_does(text: str) -> None:
    ours = parse_yaml(f"k: {text}\n")["k"]
    theirs = ruamel_value(text)
    assert same(ours, theirs) or (isinstance(ours, dict | list) and ours == theirs), (
        f"{text!r}: fast loader {ours!r}, ruamel {theirs!r}"
    )


@pytest.mark.parametrize("text", VALUES)
def test_pure_python_fallback_reads_the_corpus_like_the_fast_loader(text: str) -> None:
    fast = parse_yaml(f"k: {text}\n")["k"]
    fallback = parse_yaml(f"k: {text}\n", loader_class=PurePythonYaml12Loader)["k"]
    assert same(fast, fallback) or fast == fallback


def test_power_on_means_the_string_on_not_a_yaml_1_1_boolean() -> None:
    assert parse_yaml("power: on\n") == {"power": "on"}
    assert parse_yaml("power: off\n") == {"power": "off"}


def test_leading_zero_is_decimal_as_in_yaml_1_2() -> None:
    assert parse_yaml("vcpus: 017\n") == {"vcpus": 17}


def test_timestamps_stay_text_on_purpose() -> None:
    assert parse_yaml("label: 2024-01-01\n") == {"label": "2024-01-01"}


def test_duplicate_keys_are_refused_with_both_lines() -> None:
    with pytest.raises(YamlProblem) as caught:
        parse_yaml("a: 1\nb: 2\na: 3\n")
    assert caught.value.summary == 'key "a" appears twice in one mapping: here and on line 1'
    assert (caught.value.line, caught.value.column) == (3, 1)


def test_duplicate_keys_are_refused_by_the_round_trip_loader_too() -> None:
    from ruamel.yaml.constructor import DuplicateKeyError

    with pytest.raises(DuplicateKeyError):
        YAML(typ="rt").load("a: 1\na: 3\n")


def test_merge_keys_may_override_without_being_duplicates() -> None:
    assert parse_yaml("base: &b {x: 1, y: 2}\nc:\n  <<: *b\n  y: 3\n")["c"] == {"x": 1, "y": 3}


def test_python_tags_are_refused() -> None:
    with pytest.raises(YamlProblem, match=r"unsupported YAML tag .*python/object/apply"):
        parse_yaml("a: !!python/object/apply:os.system [echo]\n")


@pytest.mark.parametrize(
    ("text", "value"),
    [("!!str 017", "017"), ("!!int '42'", 42), ("!!float 1", 1.0), ("!!null ''", None)],
)
def test_core_schema_tags_are_honoured(text: str, value: object) -> None:
    assert parse_yaml(f"a: {text}\n") == {"a": value}


@pytest.mark.parametrize("text", ["!!timestamp 2024-01-01", "!!binary aGk=", "!!set {a}", "!foo x"])
def test_other_tags_are_refused_with_their_position(text: str) -> None:
    with pytest.raises(YamlProblem, match="unsupported YAML tag") as caught:
        parse_yaml(f"x: 1\na: {text}\n")
    assert (caught.value.line, caught.value.column) == (2, 4)


def test_an_invalid_explicit_int_is_refused() -> None:
    with pytest.raises(YamlProblem, match="'abc' is not a valid int"):
        parse_yaml("a: !!int abc\n")


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefghi", "bcdefghij", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    with pytest.raises(YamlProblem, match="aliases expand this document to 4,412,961,516 nodes"):
        parse_yaml("\n".join(lines) + "\n")


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlProblem, match="refers to the node that contains it"):
        parse_yaml("a: &x [*x]\n")


def test_deep_flow_nesting_is_refused_before_libyaml_sees_it() -> None:
    with pytest.raises(YamlProblem, match="nested more than 100 levels"):
        parse_yaml("a: " + "[" * 200_000 + "]" * 200_000 + "\n")


def test_deep_block_nesting_is_refused_before_libyaml_sees_it() -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(2000))
    with pytest.raises(YamlProblem, match="nested more than 100 levels"):
        parse_yaml(text)


def test_moderate_nesting_and_many_flow_maps_are_fine() -> None:
    text = "".join(f"g{i}: {{a: [1, {{b: 2}}]}}\n" for i in range(500))
    assert len(parse_yaml(text)) == 500


def test_an_unchanged_file_is_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "guests: {web01: {host: h}}\n"
    first = cached_parse(text, tmp_path)

    def fail(_: str) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yamlio, "parse_yaml", fail)
    assert cached_parse(text, tmp_path) == first
    assert len(list(tmp_path.rglob("*.marshal"))) == 1


def test_a_corrupt_cache_entry_is_ignored(tmp_path: Path) -> None:
    text = "a: 1\n"
    cached_parse(text, tmp_path)
    for entry in tmp_path.rglob("*.marshal"):
        entry.write_bytes(b"\x00garbage")
    assert cached_parse(text, tmp_path) == {"a": 1}


def test_the_cache_forgets_old_versions_of_files(tmp_path: Path) -> None:
    from ivmctl.spec.yamlio import prune_cache

    used: set[Path] = set()
    for n in range(10):
        cached_parse(f"a: {n}\n", tmp_path)
    cached_parse("a: current\n", tmp_path, used)
    prune_cache(tmp_path, used, slack=5)
    assert list(tmp_path.rglob("*.marshal")) == list(used)
    prune_cache(tmp_path, used, slack=5)  # nothing more to do
    assert len(list(tmp_path.rglob("*.marshal"))) == 1
