"""broker/grammar.py: each parser accepts what fits its grammar, refuses
anything else with a GrammarError (never another exception: that would be a
500), and what it serialises parses back to itself."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from broker.grammar import (
    GrammarError,
    header_text,
    parse_color,
    parse_custom_domain,
    parse_display_name,
    parse_host,
    parse_image_url,
    parse_local_path,
    parse_origin,
)

PARSERS = {
    "origin": lambda v: parse_origin(v, allow_ipv6=True),
    "domain": lambda v: parse_custom_domain(v, own_hosts=("broker.example",)),
    "image": lambda v: parse_image_url(v, https_only=False),
    "path": parse_local_path,
    "colour": parse_color,
    "name": parse_display_name,
    "host": lambda v: parse_host(v, allow_ip=True, allow_local=True, allow_ipv6=True),
}

# Text shaped like what the parsers take, with the characters that break headers and URLs mixed in.
PIECES = st.sampled_from(["https://", "http://", "a.example", "xn--bcher-kva", "bücher", ".", ":", "443", "99x",
                          "/", "?", "#", "@", "[", "]", "::1", "127.0.0.1", "0x7f", ";", " ", "\t", "\r\n", "\x00",
                          "\u2028", "\ud800", "\u3002", "%2F", "\\", '"', "<", "localhost", "*"])
SHAPED = st.lists(st.one_of(PIECES, st.text(max_size=4)), max_size=12).map("".join)


@pytest.mark.parametrize("kind", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(text=st.one_of(SHAPED, st.text(max_size=40)))
def test_a_parser_refuses_with_a_grammar_error_and_its_output_parses_back(kind, text):
    parse = PARSERS[kind]
    try:
        parsed = parse(text)
    except GrammarError:
        return
    serialised = str(parsed)
    assert not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in serialised), serialised
    assert str(parse(serialised)) == serialised


@given(st.text(max_size=60))
def test_header_text_is_always_one_line(text):
    line = header_text(text)
    assert "\r" not in line and "\n" not in line and "\u2028" not in line and line == line.strip()


@pytest.mark.parametrize("text, origin", [
    ("https://www.example.com", "https://www.example.com"),
    ("HTTPS://WWW.Example.COM:443/", "https://www.example.com"),
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ("https://bücher.example", "https://xn--bcher-kva.example"),
    ("https://shop.example.:8443", "https://shop.example:8443"),
])
def test_origins_serialise_as_browsers_send_them(text, origin):
    assert str(parse_origin(text)) == origin


@pytest.mark.parametrize("text", [
    "https://shop.example; report-uri \\\\attacker:8299", "https://a.example:99x", "https://a.example/x",
    "https://a.example?x", "https://u@a.example", "https://*.example", "https://a.example 'unsafe-eval'",
    "data:", "https://0x7f.1", "https://[::1]", "https://a.example:65536", "https:///",
])
def test_what_is_not_an_origin(text):
    with pytest.raises(GrammarError):
        parse_origin(text)
