"""The emulator's XML escaping matches xml.sax.saxutils, which it replaces to import less."""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivmctl.runtime.formats import xml_escape, xml_quoteattr

TRICKY = [
    "",
    "guest1",
    "a&b",
    "&amp;",
    "<vm>",
    "x > y < z",
    'say "hi"',
    "it's",
    "both ' and \"",
    "\"'\"'",
    "line\nbreak",
    "cr\rlf\r\n",
    "tab\there",
    "&#10;",
    "\n\"\t'&<>",
    "ünïcødé ✓",
    "disk:avio_stor::file:/ivm/g1 disk",
]


@pytest.mark.parametrize("text", TRICKY)
def test_escape_is_the_same_as_xml_sax(text: str) -> None:
    assert xml_escape(text) == escape(text)


@pytest.mark.parametrize("text", TRICKY)
def test_quoteattr_is_the_same_as_xml_sax(text: str) -> None:
    assert xml_quoteattr(text) == quoteattr(text)


@given(st.text(alphabet=st.sampled_from("ab&<>\"'\n\r\t;#1 ")))
def test_any_mix_of_special_characters_is_quoted_as_xml_sax_quotes_it(text: str) -> None:
    assert xml_escape(text) == escape(text)
    assert xml_quoteattr(text) == quoteattr(text)


@given(st.text())
def test_any_text_is_quoted_as_xml_sax_quotes_it(text: str) -> None:
    assert xml_quoteattr(text) == quoteattr(text)
