"""The caller's address: the TCP peer, or the address trusted proxies report for it.

Behind a load balancer the TCP peer is the balancer. Its address would then
stand for every caller: one failed-authentication budget and one ``per_ip``
limit for all of them, and the balancer on every audit entry. With
``INTERLOCK_TRUSTED_PROXIES`` set, a request whose peer is in one of those
networks is attributed to the address its proxies report in one header
(``INTERLOCK_TRUSTED_PROXY_HEADER``: ``X-Forwarded-For`` or RFC 7239
``Forwarded``), read from right to left: each trusted proxy appends the
address it received the request from, so the first address that is not a
trusted proxy is the caller. Everything to the left of it was written by the
caller and is never read (CWE-348: a client-supplied header is no evidence
of the client's address).

:func:`derive_client_address` is the one place that decides this. The gateway
calls it once per request (:func:`remember_client_address`); everything that
counts, limits or records the caller by address reads the result with
:func:`client_address`. With ``INTERLOCK_PROXY_PROTOCOL=v2`` the peer itself
is the address a trusted proxy's PROXY header gave for the connection
(:func:`report_peer`, :mod:`interlock.gateway.proxy_listener`), and the walk
starts from there. Transport-level facts (the TLS session, the client
certificate) stay with the connection and never come from a header.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final, Literal
from weakref import WeakKeyDictionary

from aiohttp import web
from multidict import MultiMapping

from interlock.config.settings import Settings
from interlock.errors import Refusal
from interlock.gateway.rfc7239 import (
    MAX_FIELD_LENGTH,
    MalformedForwardedError,
    forwarded_elements,
    node_address,
)

__all__ = [
    "ProxyHeader",
    "TrustedProxies",
    "client_address",
    "connection_peer",
    "derive_client_address",
    "remember_client_address",
    "report_peer",
    "reported_peer",
]

ProxyHeader = Literal["x-forwarded-for", "forwarded"]
Address = IPv4Address | IPv6Address
_CLIENT_ADDRESS: Final = web.RequestKey("interlock.client_address", str)
_HEADER_NAMES: Final = {"x-forwarded-for": "X-Forwarded-For", "forwarded": "Forwarded"}
# Connections (their aiohttp request handlers) whose trusted proxy reported the client's
# address in a PROXY protocol header; gone with the connection.
_REPORTED: Final[WeakKeyDictionary[object, str]] = WeakKeyDictionary()


@dataclass(frozen=True)
class TrustedProxies:
    """The networks whose connections may report the caller's address, and in which header.

    No networks (the default): trust nobody, the caller is always the TCP peer.
    """

    networks: tuple[IPv4Network | IPv6Network, ...] = ()
    header: ProxyHeader = "x-forwarded-for"

    @classmethod
    def of(cls, settings: Settings) -> TrustedProxies:
        """``INTERLOCK_TRUSTED_PROXIES`` and ``INTERLOCK_TRUSTED_PROXY_HEADER``."""
        return cls(settings.trusted_proxies, settings.trusted_proxy_header)

    def trusts(self, address: Address) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        return any(address in network for network in self.networks)

    def trusts_peer(self, peer: str | None) -> bool:
        """Whether the connection's peer (as a socket names it) is one of the trusted proxies."""
        address = _peer_address(peer) if self.networks else None
        return address is not None and self.trusts(address)


def derive_client_address(
    peer: str | None, headers: MultiMapping[str], proxies: TrustedProxies
) -> str | None:
    """The caller's address: ``peer``, unless ``peer`` is a trusted proxy that reports another.

    Walks the proxy header from right to left, past trusted proxies, to the first
    address that is not one. An ``unknown`` or obfuscated hop (RFC 7239 §6.2, §6.3)
    ends the walk at the last address known, as does a ``Forwarded`` element
    without ``for=``. Headers from an untrusted peer are ignored.

    Raises :class:`~interlock.errors.Refusal` (400) when a trusted proxy's header
    is malformed where it is read: falling back to the proxy's own address would
    charge every caller's budget for one caller's request.
    """
    hop = _peer_address(peer) if proxies.networks else None
    if hop is None or not proxies.trusts(hop):
        return peer
    address = hop
    try:
        for reported in _reported(headers, proxies.header):
            if reported is None:
                break
            address = reported
            if not proxies.trusts(address):
                break
    except MalformedForwardedError as exc:
        name = _HEADER_NAMES[proxies.header]
        raise Refusal(
            "malformed-forwarding-header",
            f"the {name} header is malformed",
            log_reason=f"{name} from a trusted proxy refused: {exc}",
        ) from None
    return peer if address is hop else str(address)


def remember_client_address(request: web.BaseRequest, proxies: TrustedProxies) -> None:
    """Derive ``request``'s client address once; :func:`client_address` returns it from now on."""
    address = derive_client_address(connection_peer(request), request.headers, proxies)
    if address is not None:
        request[_CLIENT_ADDRESS] = address


def client_address(request: web.BaseRequest) -> str | None:
    """The address ``request`` is attributed to: budgets, limits and the audit trail use it.

    The connection's peer until :func:`remember_client_address` derived it (or
    when the derivation refused the request).
    """
    derived: str | None = request.get(_CLIENT_ADDRESS)
    return derived if derived is not None else connection_peer(request)


def report_peer(connection: object, address: str) -> None:
    """Record the client address a trusted proxy's PROXY header gave for ``connection``."""
    _REPORTED[connection] = address


def reported_peer(connection: object) -> str | None:
    """The client address a trusted proxy's PROXY header gave for ``connection``, if any."""
    if not type(connection).__weakrefoffset__:
        return None  # a handler that cannot be weakly referenced (aiohttp's) was never reported
    return _REPORTED.get(connection)


def connection_peer(request: web.BaseRequest) -> str | None:
    """The peer of ``request``'s connection: the TCP peer, or what its PROXY header said."""
    reported = reported_peer(request.protocol)
    return reported if reported is not None else request.remote


def _peer_address(peer: str | None) -> Address | None:
    """A socket peer as an address; ``None`` for one that is not an IP address (a unix socket)."""
    try:
        return _plain(ip_address(peer or ""))
    except ValueError:
        return None


def _reported(headers: MultiMapping[str], header: ProxyHeader) -> Iterator[Address | None]:
    """The addresses the proxy header reports, nearest hop first."""
    field = ",".join(headers.getall(_HEADER_NAMES[header], ()))
    if len(field) > MAX_FIELD_LENGTH:
        raise MalformedForwardedError("the field is too long")
    if header == "forwarded":
        for element in reversed(forwarded_elements(field)):
            node = element.get("for")
            yield None if node is None else _reported_node(node)
        return
    for item in reversed(field.split(",")):
        text = item.strip(" \t")
        if not text:
            continue  # RFC 9110 §5.6.1: empty list elements are ignored
        if text.count(":") > 1 and not text.startswith("["):
            yield _plain(_bare_ipv6(text))  # X-Forwarded-For writes IPv6 bare
        else:
            yield _reported_node(text)


def _reported_node(node: str) -> Address | None:
    address = node_address(node)
    return None if address is None else _plain(address)


def _bare_ipv6(text: str) -> IPv6Address:
    try:
        address = IPv6Address(text)
    except ValueError:
        raise MalformedForwardedError("not an address") from None
    if address.scope_id is not None:
        raise MalformedForwardedError("an address with a zone")
    return address


def _plain(address: Address) -> Address:
    """An IPv4-mapped IPv6 address (a dual-stack socket's view) as the IPv4 address it is."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address
