"""One YAML meaning whichever loader reads a file: the fast libyaml path, its pure-Python
fallback and ruamel.yaml's round-trip loader (used by fmt) all speak YAML 1.2."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from ivmctl.spec import yamlexact, yamlio
from ivmctl.spec.yamlexact import PurePythonYaml12Loader
from ivmctl.spec.yamlio import YamlProblem, cached_parse, parse_yaml

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


def test_deep_flow_nesting_is_found_among_other_characters_of_any_script() -> None:
    # the brackets are picked out of the UTF-8 bytes: no other character adds or hides one
    deep = "a: " + "[é€𝄞" * 150 + "]" * 150 + "\n"
    with pytest.raises(YamlProblem, match="nested more than 100 levels"):
        parse_yaml(deep)
    shallow = "".join(f"k{i}: [「{i}」, {{b: ünï}}]\n" for i in range(200))
    assert yamlio.depth_problem(shallow) is None
    assert parse_yaml(shallow)["k7"] == ["「7」", {"b": "ünï"}]


def test_moderate_nesting_and_many_flow_maps_are_fine() -> None:
    text = "".join(f"g{i}: {{a: [1, {{b: 2}}]}}\n" for i in range(500))
    assert len(parse_yaml(text)) == 500


def test_an_unchanged_file_is_not_parsed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "base: &b {host: h}\nguests: {web01: {<<: *b}}\n"  # for the exact loader
    first = cached_parse(text, tmp_path)

    def fail(_: str) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(yamlio, "parse_yaml", fail)
    assert cached_parse(text, tmp_path) == first
    assert len(list(tmp_path.rglob("*.marshal"))) == 1


def test_text_the_fast_loader_reads_is_not_cached(tmp_path: Path) -> None:
    assert cached_parse("guests: {web01: {host: h}}\n", tmp_path) == {
        "guests": {"web01": {"host": "h"}}
    }
    assert list(tmp_path.rglob("*.marshal")) == []


def test_without_yaml_rs_every_parse_is_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlio, "FAST_LOADER", None)
    cached_parse("guests: {web01: {host: h}}\n", tmp_path)
    assert len(list(tmp_path.rglob("*.marshal"))) == 1


def test_a_corrupt_cache_entry_is_ignored(tmp_path: Path) -> None:
    text = "a: !!int 1\n"
    cached_parse(text, tmp_path)
    for entry in tmp_path.rglob("*.marshal"):
        entry.write_bytes(b"\x00garbage")
    assert cached_parse(text, tmp_path) == {"a": 1}


def test_the_cache_forgets_old_versions_of_files(tmp_path: Path) -> None:
    from ivmctl.spec.yamlio import prune_cache

    used: set[Path] = set()
    for n in range(10):
        cached_parse(f"a: !!str {n}\n", tmp_path)
    cached_parse("a: !!str current\n", tmp_path, used)
    prune_cache(tmp_path, used, slack=5)
    assert list(tmp_path.rglob("*.marshal")) == list(used)
    prune_cache(tmp_path, used, slack=5)  # nothing more to do
    assert len(list(tmp_path.rglob("*.marshal"))) == 1


# --------------------------------------------------------------------------------------------
# The fast path (yaml-rs) and its fallback
# --------------------------------------------------------------------------------------------
def exact(text: str) -> Any:
    """What the exact (libyaml) loader reads, or its problem as (summary, line, column)."""
    try:
        return parse_yaml(text, loader_class=yamlexact.Yaml12Loader)
    except YamlProblem as exc:
        return ("problem", exc.summary, exc.line, exc.column)


def either(text: str) -> Any:
    """What `parse_yaml` reads (the fast path where it applies), in the same shape."""
    try:
        return parse_yaml(text)
    except YamlProblem as exc:
        return ("problem", exc.summary, exc.line, exc.column)


def same_data(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return len(a) == len(b) and all(
            same_data(ka, kb) and same_data(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_data(x, y) for x, y in zip(a, b, strict=True))
        )
    return same(a, b)


def test_the_fast_loader_pyproject_pins_is_installed() -> None:
    # Without it every test below would only compare the exact loader with itself.
    assert yamlio.FAST_LOADER is not None
    assert yamlio.FAST_LOADER_NAME.startswith("yaml-rs ")


def test_ordinary_configuration_is_read_by_the_fast_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = (
        "apiVersion: ivmctl/v1\n"
        "hosts:\n  h1:\n    version: '6.3'\n    vswitches: {vswprod: {nic: lan0}}\n"
        "guests:\n  web01: {host: h1, memory: 4G, entitlement: 20%, power: on}\n"
    )

    def no_libyaml(_: str) -> None:
        raise AssertionError("the exact loader was used")

    monkeypatch.setattr(yamlexact, "Yaml12Loader", no_libyaml)
    assert not yamlio.needs_exact_loader(text)
    assert parse_yaml(text)["guests"]["web01"] == {
        "host": "h1",
        "memory": "4G",
        "entitlement": "20%",
        "power": "on",
    }


# Each reads differently with yaml-rs 0.1.6 than with ruamel.yaml's round-trip loader.
DIVERGENT = [
    "a: 0X1F\n",  # yaml-rs: 31
    "a: 0B1\n",
    "a: 0O7\n",
    "a: _52\n",  # yaml-rs: 52
    "a: 1_0_\n",
    "a: .5E7\n",  # ruamel: text
    "a: [_9]\n",
    "_9: v\n",
    "a: {b: 1, <<: {c: 2}}\n",  # yaml-rs keeps "<<" as a key
    "base: &b {x: 1}\nc:\n  <<: *b\n",
    "a: &x [*x]\n",  # yaml-rs: [None]
    "a: !!python/object/apply:os.system [echo]\n",  # yaml-rs: ["echo"]
    "a: !!binary aGk=\n",
    "? [1, 2]\n: v\n",  # yaml-rs: a tuple key
    "[1, 2]: x\n",
    "k: {[1]: 2}\n",
    "a: 1\n---\nb: 2\n",  # yaml-rs: a list of two documents
    "k: [?B, x]\n",  # libyaml: {B: null}
    "- \tx\n",  # libyaml refuses the tab
    "k: [:x, y]\n",
    '{"k":>x}\n',
    "- : x\n",
    "a: |\n  x\n",
    "%YAML 1.2\n---\na: 1\n",
]


@pytest.mark.parametrize("text", DIVERGENT)
def test_text_the_fast_loader_reads_differently_goes_to_the_exact_loader(text: str) -> None:
    assert yamlio.needs_exact_loader(text)
    assert same_data(either(text), exact(text))


def _generated_scalars() -> list[str]:
    """Every token of one or two characters and seeded random longer ones, over the
    characters where YAML loaders disagree."""
    import itertools
    import random

    alphabet = [*"0123456789._+-eExXoObB:%G?!&<>[]{},#'\"", "inf", "nan", "true", "null"]
    alphabet += ["~", "a", "f", " ", "\t"]
    tokens = {"".join(pair) for pair in itertools.product(alphabet, repeat=2)}
    tokens.update(alphabet)
    rng = random.Random(7)
    for _ in range(3000):
        tokens.add("".join(rng.choice(alphabet) for _ in range(rng.randint(3, 8))))
    return sorted(tokens)


def test_the_fast_path_reads_generated_scalars_exactly_as_the_exact_loader() -> None:
    differ = []
    for token in _generated_scalars():
        for text in (
            f"k: {token}\n",
            f"k: [{token}, x]\n",
            f"{token}: v\n",
            f'{{"k":{token}}}\n',
            f"- {token}\n",
        ):
            if not same_data(either(text), exact(text)):
                differ.append(text)
    assert differ == []


def test_a_pattern_is_skipped_only_for_text_it_cannot_match() -> None:
    """needs_exact_loader searches a pattern only when the text holds one of its needles:
    every match, over the generated texts and the divergent ones, holds one."""
    texts = [*DIVERGENT, "k: -0X1F\n", "k: [+0B1]\n", "k: -.5E7\n"]
    for token in _generated_scalars():
        texts += [f"k: {token}\n", f"k: [{token}, x]\n", f"{token}: v\n", f'{{"k":{token}}}\n']
    for needles, pattern in yamlio._EXACT_ONLY:
        matched = [m.group(0) for t in texts if (m := pattern.search("\n" + t)) is not None]
        assert matched, pattern.pattern  # the texts exercise every pattern
        if needles:
            missed = [m for m in matched if not any(needle in m for needle in needles)]
            assert missed == [], pattern.pattern


@pytest.mark.parametrize("text", VALUES)
def test_without_yaml_rs_the_corpus_reads_the_same(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = parse_yaml(f"k: {text}\n")["k"]
    monkeypatch.setattr(yamlio, "FAST_LOADER", None)
    fallback = parse_yaml(f"k: {text}\n")["k"]
    assert same(fast, fallback) or fast == fallback


def test_without_yaml_rs_the_exact_loader_reads_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    used: list[str] = []

    class Spy(yamlexact.Yaml12Loader):  # type: ignore[misc]
        def __init__(self, stream: str) -> None:
            used.append(stream)
            super().__init__(stream)

    monkeypatch.setattr(yamlio, "FAST_LOADER", None)
    monkeypatch.setattr(yamlexact, "Yaml12Loader", Spy)
    assert parse_yaml("a: 1\n") == {"a": 1}
    assert used == ["a: 1\n"]


def test_a_problem_the_fast_loader_finds_is_reported_by_the_exact_loader_with_its_line() -> None:
    text = "guests:\n  web01:\n    host: h1\n    vcpus: 2\n    host: h2\n"
    assert not yamlio.needs_exact_loader(text)
    with pytest.raises(YamlProblem) as caught:
        parse_yaml(text)
    assert caught.value.summary == 'key "host" appears twice in one mapping: here and on line 3'
    assert (caught.value.line, caught.value.column) == (5, 5)


def test_a_syntax_error_has_the_exact_loaders_line_and_column() -> None:
    text = "a: 1\nb: [1, 2\nc: 3\n"
    assert either(text) == exact(text)
    assert either(text)[2:] == (3, 2)


def test_a_failing_fast_loader_falls_back_to_the_exact_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(_: str) -> None:
        raise ValueError("internal error")

    monkeypatch.setattr(yamlio, "FAST_LOADER", broken)
    assert parse_yaml("a: [1, 2]\n") == {"a": [1, 2]}
