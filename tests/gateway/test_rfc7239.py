"""RFC 7239 Forwarded: elements and nodes parsed strictly, never guessed at."""

from __future__ import annotations

import contextlib
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.gateway.rfc7239 import (
    MAX_FIELD_LENGTH,
    MalformedForwardedError,
    for_node,
    forwarded_elements,
    node_address,
)


def test_the_rfc_examples_parse() -> None:
    """RFC 7239 §4 and §7.4 examples, including a quoted IPv6 node with a port."""
    assert forwarded_elements('for="_gazonk"') == [{"for": "_gazonk"}]
    assert forwarded_elements('For="[2001:db8:cafe::17]:4711"') == [
        {"for": "[2001:db8:cafe::17]:4711"}
    ]
    assert forwarded_elements("for=192.0.2.60;proto=http;by=203.0.113.43") == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}
    ]
    assert forwarded_elements("for=192.0.2.43, for=198.51.100.17") == [
        {"for": "192.0.2.43"},
        {"for": "198.51.100.17"},
    ]


def test_quoted_pairs_and_separators_inside_quotes_do_not_split() -> None:
    assert forwarded_elements(r'for="a\"b,c;d", for=1.2.3.4') == [
        {"for": 'a"b,c;d'},
        {"for": "1.2.3.4"},
    ]


def test_empty_list_elements_are_ignored() -> None:
    """RFC 9110 §5.6.1."""
    assert forwarded_elements(" , for=192.0.2.1 ,, ") == [{"for": "192.0.2.1"}]


@pytest.mark.parametrize(
    "field",
    [
        'for="192.0.2.1',  # unterminated quote: a lenient parser would swallow the next hop
        'for="x, for=192.0.2.9',
        "for",
        "for=",
        "for=[2001:db8::1]",  # "[" is no token character: IPv6 must be quoted
        "for=192.0.2.1 proto=http",
        "for=1.2.3.4;for=5.6.7.8",  # a parameter twice in one element (§4)
        "=1.2.3.4",
        'for="a\x00b"',
        "for=1.2.3.4;" + "x" * MAX_FIELD_LENGTH,
    ],
)
def test_malformed_fields_are_refused_whole(field: str) -> None:
    with pytest.raises(MalformedForwardedError):
        forwarded_elements(field)


@pytest.mark.parametrize(
    ("node", "address"),
    [
        ("192.0.2.60", IPv4Address("192.0.2.60")),
        ("192.0.2.60:8080", IPv4Address("192.0.2.60")),
        ("192.0.2.60:_port", IPv4Address("192.0.2.60")),
        ("[2001:db8:cafe::17]", IPv6Address("2001:db8:cafe::17")),
        ("[2001:db8:cafe::17]:4711", IPv6Address("2001:db8:cafe::17")),
        ("unknown", None),
        ("unknown:4711", None),
        ("_hidden", None),
        ("_SEVKISEK.x-1", None),
    ],
)
def test_nodes(node: str, address: IPv4Address | IPv6Address | None) -> None:
    assert node_address(node) == address


@pytest.mark.parametrize(
    "node",
    [
        "",
        "2001:db8::1",  # IPv6 without brackets
        "[192.0.2.1]",  # brackets around IPv4
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[fe80::1%eth0]",  # a zone means nothing to anyone else
        "192.0.2.1:",
        "192.0.2.1:123456",
        "192.0.2.256",
        "01.2.3.4",
        "_",
        "_bad/char",
        "example.com",
    ],
)
def test_malformed_nodes_are_refused(node: str) -> None:
    with pytest.raises(MalformedForwardedError):
        node_address(node)


def test_for_node_brackets_ipv6_and_names_the_unknown() -> None:
    assert for_node("192.0.2.1") == "192.0.2.1"
    assert for_node("2001:db8::1") == "[2001:db8::1]"
    assert for_node(None) == "unknown"
    assert for_node("/run/gateway.sock") == "unknown"


@given(st.text(max_size=200))
def test_any_text_parses_or_is_refused_cleanly(field: str) -> None:
    """The parser never fails in any other way, whatever a client writes."""
    try:
        elements = forwarded_elements(field)
    except MalformedForwardedError:
        return
    for element in elements:
        for value in element.values():
            with contextlib.suppress(MalformedForwardedError):
                node_address(value)


@given(
    st.lists(
        st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]")),
        min_size=1,
        max_size=8,
    )
)
def test_written_nodes_read_back(nodes: list[str]) -> None:
    """What a proxy writes (quoted, as §6 requires for IPv6) is read back in order."""
    field = ", ".join(f'for="{node}";proto=https' for node in nodes)
    parsed = [node_address(element["for"]) for element in forwarded_elements(field)]
    assert [str(address) for address in parsed] == [node.strip("[]") for node in nodes]
