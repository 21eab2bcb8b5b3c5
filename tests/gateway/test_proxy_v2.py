"""PROXY protocol v2 headers (HAProxy proxy-protocol.txt §2.2): addresses read, the rest refused."""

from __future__ import annotations

import contextlib
import struct
from ipaddress import IPv4Address, IPv6Address

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.gateway.proxy_v2 import (
    HEADER_PREFIX,
    MAX_HEADER,
    SIGNATURE,
    ProxyHeaderError,
    header_length,
    parse_header,
)

# PROXY, TCP over IPv4, 12 address bytes: 198.51.100.7:51000 -> 192.0.2.1:8443 (written by hand).
TCP4 = bytes.fromhex("0d0a0d0a000d0a515549540a2111000cc6336407c0000201c73820fb")


def header(command: int, family: int, body: bytes) -> bytes:
    """A v2 header as a proxy writes it."""
    return SIGNATURE + struct.pack("!BBH", command, family, len(body)) + body


def test_a_hand_written_tcp4_header() -> None:
    assert header_length(TCP4[:HEADER_PREFIX]) == len(TCP4) == 28
    assert parse_header(TCP4).source == IPv4Address("198.51.100.7")


def test_tcp6_with_tlvs_after_the_addresses() -> None:
    source, destination = IPv6Address("2001:db8::7"), IPv6Address("2001:db8::1")
    tlv = b"\x05\x00\x04abcd"  # PP2_TYPE_UNIQUE_ID: skipped
    body = source.packed + destination.packed + struct.pack("!HH", 51000, 8443) + tlv
    assert parse_header(header(0x21, 0x21, body)).source == source


@pytest.mark.parametrize(
    ("command", "family", "body"),
    [
        (0x20, 0x11, b"\x00" * 12),  # LOCAL: the proxy's own connection (health checks)
        (0x20, 0x00, b""),
        (0x21, 0x00, b""),  # PROXY with UNSPEC: keep the real endpoints
        (0x21, 0x31, b"\x00" * 216),  # a UNIX socket has no address to count
    ],
)
def test_headers_that_keep_the_tcp_peer(command: int, family: int, body: bytes) -> None:
    assert parse_header(header(command, family, body)).source is None


@pytest.mark.parametrize(
    "data",
    [
        header(0x21, 0x12, b"\x00" * 12),  # UDP on a TCP listener
        header(0x21, 0x11, b"\x00" * 11),  # address block too short
        header(0x21, 0x21, b"\x00" * 35),
        header(0x22, 0x11, b"\x00" * 12),  # unknown command
        header(0x11, 0x11, b"\x00" * 12),  # version 1 in the binary form
        header(0x21, 0x41, b"\x00" * 12),  # unknown family
        b"PROXY TCP4 198.51.100.7 192.0.2.1 51000 8443\r\n",  # version 1 (text) is not spoken
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 5,  # a TLS ClientHello
        TCP4[:-1],
        TCP4 + b"\x00",
    ],
)
def test_malformed_or_unsupported_headers_are_refused(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_header(data)


def test_a_header_longer_than_the_cap_is_refused_from_its_prefix() -> None:
    prefix = SIGNATURE + struct.pack("!BBH", 0x21, 0x11, MAX_HEADER)
    with pytest.raises(ProxyHeaderError, match="too long"):
        header_length(prefix)


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_are_refused_cleanly(data: bytes) -> None:
    for candidate in (data, SIGNATURE + data):
        with contextlib.suppress(ProxyHeaderError):
            parse_header(candidate)


@given(st.ip_addresses(), st.binary(max_size=64))
def test_written_sources_read_back(source: IPv4Address | IPv6Address, tlvs: bytes) -> None:
    six = isinstance(source, IPv6Address)
    destination = IPv6Address("::1") if six else IPv4Address("127.0.0.1")
    body = source.packed + destination.packed + b"\x00\x01\x00\x02" + tlvs
    assert parse_header(header(0x21, 0x21 if six else 0x11, body)).source == source
