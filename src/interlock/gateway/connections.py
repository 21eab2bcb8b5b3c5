"""Bounds on the listener's connections: how long they may wait, and how many there are.

A slowloris client opens connections and then sends nothing, or trickles a
request's headers a byte at a time, to hold the server's connection slots
(CWE-400). Each connection therefore gets

* a **first-byte** deadline: the TLS handshake and then the first byte of a
  request must arrive within ``first_byte_seconds`` of accepting it;
* a **headers** deadline: a request's line and headers must be complete within
  ``headers_seconds`` of their first byte, however slowly bytes keep coming;
* an **idle** deadline between requests on a kept-alive connection
  (``keepalive_seconds``);

and one process holds at most ``max_connections`` connections, at most
``max_per_address`` from one client address. A connection over a cap is
answered 503 (a problem document, ``Connection: close``) and closed at once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Final, Literal

from interlock.config.settings import Settings
from interlock.gateway.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE

__all__ = ["ConnectionCounter", "ConnectionLimits", "Over", "over_capacity_response"]

Over = Literal["listener", "address"]
#: The ``Server`` header of every answer: no product version for a scanner to match.
SERVER_NAME: Final = "interlock"


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines and caps of the listener's connections (settings ``INTERLOCK_LISTENER_*``)."""

    first_byte_seconds: float = 10.0
    headers_seconds: float = 10.0
    keepalive_seconds: float = 75.0
    max_connections: int = 1000
    max_per_address: int = 100

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        """The limits ``settings`` configure."""
        return cls(
            first_byte_seconds=settings.listener_first_byte_seconds,
            headers_seconds=settings.listener_headers_seconds,
            keepalive_seconds=settings.listener_keepalive_seconds,
            max_connections=settings.listener_max_connections,
            max_per_address=settings.listener_max_connections_per_address,
        )


class ConnectionCounter:
    """The open connections of one listener, in total and per client address.

    Used from the event loop only (no lock needed).
    """

    def __init__(self, limits: ConnectionLimits) -> None:
        """Count against ``limits``' caps."""
        self._limits = limits
        self._total = 0
        self._by_address: dict[str, int] = {}

    @property
    def total(self) -> int:
        """Connections open now."""
        return self._total

    def admit(self, address: str) -> Over | None:
        """Count a new connection from ``address``; or say which cap it is over (not counted)."""
        if self._total >= self._limits.max_connections:
            return "listener"
        held = self._by_address.get(address, 0)
        if held >= self._limits.max_per_address:
            return "address"
        self._total += 1
        self._by_address[address] = held + 1
        return None

    def release(self, address: str) -> None:
        """A connection :meth:`admit` counted has closed."""
        self._total -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)


def over_capacity_response(over: Over, correlation_id: str | None = None) -> bytes:
    """The raw HTTP/1.1 answer to a connection over a cap: 503, a problem, then close.

    Written before any request is read (RFC 9112 §9.6: the server closes after
    ``Connection: close``), so it is built here rather than by the request
    machinery, which never sees this connection.
    """
    correlation_id = correlation_id or os.urandom(16).hex()
    detail = (
        "too many connections from this address; close idle ones or retry shortly"
        if over == "address"
        else "the gateway holds as many connections as it accepts; retry shortly"
    )
    body = json.dumps(
        {
            "type": PROBLEM_TYPE_BASE + "too-many-connections",
            "title": "Service unavailable",
            "status": 503,
            "detail": detail,
            "correlation_id": correlation_id,
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        f"Server: {SERVER_NAME}\r\n"
        f"X-Request-Id: {correlation_id}\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body
