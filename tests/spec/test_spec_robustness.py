"""Whatever the files hold, loading either succeeds or raises InvalidConfig: never another
exception, never a traceback. Documents are generated from the format's own vocabulary,
with values of every YAML type in every place."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ivmctl.spec import InvalidConfig, SpecOptions, load_spec
from ivmctl.spec.schema import load_schema

FIELDS = sorted(
    {
        name
        for definition in load_schema()["$defs"].values()
        for name in definition.get("properties", {})
    }
    | set(load_schema()["properties"])
    | {"vmhost01", "web01", "vswprod", "localnet", "small", "guests"}
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [
            "on",
            "off",
            "yes",
            "4G",
            "20%",
            "auto",
            "lan0",
            "vmhost01",
            "vswprod",
            "hpux",
            "file",
            "null",
            "0x0A0000000101",
            "",
            "6.3",
            "9.9",
            "0,1",
            "{{ x }}",
        ]
    ),
    st.text(max_size=8),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4),
    ),
    max_leaves=25,
)
DOCUMENTS = st.dictionaries(
    st.sampled_from(["apiVersion", "provider", "hosts", "defaults", "profiles", "guests"]),
    st.one_of(
        VALUES,
        st.dictionaries(
            st.sampled_from(["vmhost01", "web01", "small", "guests"]),
            st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=6),
            max_size=3,
        ),
    ),
    max_size=6,
)


EXAMPLES = int(os.environ.get("IVMCTL_FUZZ_EXAMPLES", "80"))  # raise it to hunt longer


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents=st.lists(DOCUMENTS, min_size=1, max_size=2))
def test_any_document_loads_or_is_reported(documents: list[dict]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for index, document in enumerate(documents):
            text = yaml.safe_dump(document, allow_unicode=True)
            (Path(tmp) / f"f{index}.yaml").write_text(text, encoding="utf-8")
        try:
            load_spec(Path(tmp), SpecOptions(environ={}, variables={"x": "1"}))
        except InvalidConfig as invalid:
            assert invalid.errors
            for error in invalid.errors:
                assert error.summary


@settings(max_examples=EXAMPLES, deadline=None)
@given(text=st.text(max_size=200))
def test_any_text_loads_or_is_reported(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "a.yaml").write_text(text, encoding="utf-8")
        try:
            load_spec(Path(tmp), SpecOptions(environ={}))
        except InvalidConfig as invalid:
            assert invalid.errors


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=DOCUMENTS)
def test_fmt_formats_any_document_without_changing_its_meaning(document: dict) -> None:
    from ivmctl.spec.fmt import format_text
    from ivmctl.spec.yamlio import YamlProblem, parse_yaml

    text = yaml.safe_dump(document, allow_unicode=True, default_flow_style=None)
    try:
        formatted = format_text(text)
    except YamlProblem:
        return
    assert parse_yaml(formatted) == parse_yaml(text) or _has_nan(parse_yaml(text))
    assert format_text(formatted) == formatted


def _has_nan(value: object) -> bool:
    if isinstance(value, float):
        return value != value
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False
