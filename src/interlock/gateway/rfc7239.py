"""RFC 7239 ``Forwarded``, parsed strictly: its elements and their ``for=`` nodes.

Lenient parsers (aiohttp's ``request.forwarded`` among them) skip what they
cannot read and go on at the next comma. A client can then write an
unterminated quoted string that a lenient parser ends somewhere inside the
element its proxy appended, and so choose what the proxy "said". Here any
syntax error anywhere in the field refuses the whole field
(:class:`MalformedForwardedError`); the caller decides what that means.
"""

from __future__ import annotations

import functools
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Final

__all__ = [
    "MAX_FIELD_LENGTH",
    "MalformedForwardedError",
    "for_node",
    "forwarded_elements",
    "node_address",
]

# Real chains are a few hops long; a longer field is refused before it is parsed.
MAX_FIELD_LENGTH: Final = 4096
# RFC 9110 §5.6.2: token characters.
_TCHAR: Final = frozenset(
    "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_OWS: Final = " \t"
# RFC 7239 §6.3: obfnode / obfport characters after the leading "_".
_OBF: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._-")


class MalformedForwardedError(ValueError):
    """The ``Forwarded`` field (or one of its nodes) does not follow RFC 7239."""


def forwarded_elements(field: str) -> list[dict[str, str]]:
    """The field's forwarded-elements, in order, each as parameter name (lower case) → value.

    ``field`` is the combined field value (several header lines joined with
    ``,``, RFC 9110 §5.3). Empty list elements are ignored (RFC 9110 §5.6.1);
    a parameter twice in one element is refused (RFC 7239 §4).
    """
    if len(field) > MAX_FIELD_LENGTH:
        raise MalformedForwardedError("the Forwarded field is too long")
    elements: list[dict[str, str]] = []
    current: dict[str, str] = {}
    at, end = 0, len(field)
    while True:
        at = _skip_ows(field, at)
        if at < end and field[at] in _TCHAR:
            name, at = _token(field, at)
            if at >= end or field[at] != "=":
                raise MalformedForwardedError("a parameter without '='")
            value, at = _value(field, at + 1)
            name = name.lower()
            if name in current:  # RFC 7239 §4: each parameter at most once per element
                raise MalformedForwardedError(f"parameter {name!r} twice in one element")
            current[name] = value
            at = _skip_ows(field, at)
        if at >= end:
            break
        separator = field[at]
        at += 1
        if separator == ",":
            if current:
                elements.append(current)
            current = {}
        elif separator != ";":
            raise MalformedForwardedError("unexpected character in the Forwarded field")
    if current:
        elements.append(current)
    return elements


def node_address(node: str) -> IPv4Address | IPv6Address | None:
    """The address a ``for=`` node names; ``None`` for ``unknown`` and obfuscated nodes.

    RFC 7239 §6: ``node = nodename [ ":" node-port ]`` where ``nodename`` is an
    IPv4 address, a bracketed IPv6 address, ``unknown`` or ``_obfuscated``.
    """
    if node.startswith("["):
        close = node.find("]")
        if close < 0:
            raise MalformedForwardedError("an IPv6 node without ']'")
        name, rest = node[1:close], node[close + 1 :]
        if rest:
            _port(rest)
        address = _address(name)
        if not isinstance(address, IPv6Address):
            raise MalformedForwardedError("brackets around an address that is not IPv6")
        return address
    name, colon, port = node.partition(":")
    if colon:
        _port(colon + port)
    if name == "unknown" or _obfuscated(name):
        return None
    address = _address(name)
    if not isinstance(address, IPv4Address):
        raise MalformedForwardedError("an IPv6 node must be in brackets (and quoted)")
    return address


@functools.lru_cache(maxsize=4096)  # a pure function of a string; callers repeat
def for_node(address: str | None) -> str:
    """The node an address is written as in ``for=`` (RFC 7239 §6): IPv6 in brackets.

    ``None`` or anything that is not an IP address is ``unknown`` (§6.2).
    """
    try:
        parsed = ip_address(address or "")
    except ValueError:
        return "unknown"
    return f"[{parsed}]" if isinstance(parsed, IPv6Address) else str(parsed)


def _address(text: str) -> IPv4Address | IPv6Address:
    try:
        address = ip_address(text)
    except ValueError:
        raise MalformedForwardedError("not an address") from None
    if isinstance(address, IPv6Address) and address.scope_id is not None:
        raise MalformedForwardedError("an address with a zone")
    return address


def _port(text: str) -> None:
    """``":" node-port``: 1*5DIGIT or an obfuscated port."""
    port = text[1:]
    if (port.isascii() and port.isdigit() and len(port) <= 5) or _obfuscated(port):
        return
    raise MalformedForwardedError("not a node port")


def _obfuscated(text: str) -> bool:
    return len(text) > 1 and text[0] == "_" and all(c in _OBF for c in text[1:])


def _skip_ows(field: str, at: int) -> int:
    while at < len(field) and field[at] in _OWS:
        at += 1
    return at


def _token(field: str, at: int) -> tuple[str, int]:
    start = at
    while at < len(field) and field[at] in _TCHAR:
        at += 1
    if at == start:
        raise MalformedForwardedError("a token was expected")
    return field[start:at], at


def _value(field: str, at: int) -> tuple[str, int]:
    """``token / quoted-string`` (RFC 7239 §4, RFC 9110 §5.6.4)."""
    if at >= len(field) or field[at] != '"':
        return _token(field, at)
    chars: list[str] = []
    at += 1
    while at < len(field):
        char = field[at]
        if char == '"':
            return "".join(chars), at + 1
        if char == "\\":
            at += 1
            if at >= len(field):
                break
            char = field[at]
        if char != "\t" and (char < " " or char == "\x7f"):
            raise MalformedForwardedError("a control character in a quoted string")
        chars.append(char)
        at += 1
    raise MalformedForwardedError("an unterminated quoted string")
