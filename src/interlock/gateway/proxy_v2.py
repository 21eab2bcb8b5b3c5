"""The PROXY protocol version 2 header (HAProxy's proxy-protocol.txt §2.2), parsed.

A TCP balancer in passthrough mode sends this binary header before the TLS
handshake to say which address the connection really came from. It is a
small fixed format: a 12-byte signature, the version and command, the
address family and transport, a 2-byte length, then the addresses and TLVs.
We read the addresses and skip the TLVs.

PyPI's ``proxy-protocol`` (0.11.3, last released 2024-04) parses it too; a
dependency for ~60 lines of a fixed format was not worth its upkeep here.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import Final

__all__ = [
    "HEADER_PREFIX",
    "MAX_HEADER",
    "SIGNATURE",
    "ProxyHeader",
    "ProxyHeaderError",
    "header_length",
    "parse_header",
]

SIGNATURE: Final = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_PREFIX: Final = 16  # signature, version/command, family/transport, length
# The format allows 64 KiB; addresses and the TLVs balancers send take a few hundred bytes.
MAX_HEADER: Final = 4096
_LOCAL: Final = 0x20
_PROXY: Final = 0x21
_TCP4: Final = 0x11
_TCP6: Final = 0x21
_UNSPEC: Final = 0x00
_UNIX_STREAM: Final = 0x31
_ADDRESS_BYTES: Final = {_TCP4: 12, _TCP6: 36, _UNIX_STREAM: 216}


class ProxyHeaderError(ValueError):
    """Not a PROXY protocol v2 header this listener accepts."""


@dataclass(frozen=True)
class ProxyHeader:
    """What the header says: the client's address, or ``None`` to keep the TCP peer."""

    source: IPv4Address | IPv6Address | None


def header_length(prefix: bytes) -> int:
    """The whole header's length in bytes, from its first :data:`HEADER_PREFIX` bytes."""
    if len(prefix) != HEADER_PREFIX or prefix[:12] != SIGNATURE:
        raise ProxyHeaderError("no PROXY protocol v2 signature")
    if prefix[12] not in {_LOCAL, _PROXY}:  # §2.2: version 2, command LOCAL or PROXY
        raise ProxyHeaderError("not version 2, or an unknown command")
    length = HEADER_PREFIX + int.from_bytes(prefix[14:16], "big")
    if length > MAX_HEADER:
        raise ProxyHeaderError("the header is too long")
    return length


def parse_header(header: bytes) -> ProxyHeader:
    """The source address of a complete header (:func:`header_length` bytes).

    §2.2: ``LOCAL`` (the proxy's own connection, e.g. a health check) and the
    ``UNSPEC`` family keep the real connection's endpoints; so does a UNIX
    socket, which has no address to count. UDP is refused on a TCP listener.
    """
    if len(header) < HEADER_PREFIX or len(header) != header_length(header[:HEADER_PREFIX]):
        raise ProxyHeaderError("the header is incomplete")
    if header[12] == _LOCAL:
        return ProxyHeader(None)
    family = header[13]
    if family == _UNSPEC:
        return ProxyHeader(None)
    needed = _ADDRESS_BYTES.get(family)
    if needed is None:
        raise ProxyHeaderError("an unsupported address family or transport")
    addresses = header[HEADER_PREFIX:]
    if len(addresses) < needed:
        raise ProxyHeaderError("the address block is too short")
    if family == _TCP4:
        return ProxyHeader(IPv4Address(addresses[:4]))
    if family == _TCP6:
        return ProxyHeader(IPv6Address(addresses[:16]))
    return ProxyHeader(None)  # a UNIX socket
