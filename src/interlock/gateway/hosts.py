"""The gateway's names: which ``Host`` it answers for, and the URL its callers were given.

A request says which server it is for in its ``Host`` header (RFC 9110 §7.2),
and that header is the caller's to choose. DPoP proofs (``htu``, RFC 9449
§4.3) and RFC 9421 signatures (``@target-uri``) name the URL they were made
for; compared with a URL built from ``Host``, a proof made for
``https://evil.example/...`` and sent with ``Host: evil.example`` matched —
a credential captured at another server was good here too.

So the URL a proof or signature must name is built from the gateway's public
URL (``INTERLOCK_PUBLIC_URL``, the issuer of its tokens), never from the
request; and a request whose ``Host`` is not one of the gateway's names (the
public URL's host, the listener's host and ``localhost``: the names its own
certificate carries) is refused with 421 Misdirected Request (RFC 9110
§15.5.20) before anything else looks at it. The value is taken strictly as
RFC 9110 §7.2 defines it, ``uri-host [":" port]`` (RFC 3986 §3.2.2): our name
or IP literal and a numeric port, nothing more — ``localhost:1,for=6.6.6.6``,
``localhost/@evil.example`` or ``localhost?q`` are 421, not our name with
junk that the upstream would read in ``Forwarded: host=``. The upstream is
told the canonical form (:func:`canonical_host`). ``GET /healthz`` answers whatever
the Host: load balancers and orchestrators probe the address they dialled.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from interlock.errors import Refusal

__all__ = ["GatewayNames", "canonical_host"]

_MAX_ANSWERED: Final = 256  # Host values remembered (then forgotten at once, and relearnt)
# RFC 3986 §3.2.2 narrowed to what can name us: an IP literal in brackets, or a DNS
# name / IPv4 address (letters, digits, '.', '-', '_'); then RFC 3986 §3.2.3 port.
_HOST: Final = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::([0-9]{1,5}))?")
_MAX_PORT: Final = 65535


class GatewayNames:
    """The host names the gateway answers for, and its public URL."""

    def __init__(self, public_url: str, hosts: Iterable[str]) -> None:
        """Answer for ``hosts`` and the host of ``public_url`` (names or IP literals)."""
        self.public_url = public_url.rstrip("/")
        own = urlsplit(self.public_url).hostname
        self.hosts = frozenset(
            name for name in (_normalise(h) for h in (*hosts, own or "")) if name
        )
        # Host values seen to name one of ours ("localhost:8443"): a caller repeats its own.
        self._answered: set[str] = set()

    def check(self, request: web.BaseRequest) -> None:
        """Refuse (421) a request whose Host is missing or names another server."""
        given = request.headers.getall("Host", [])
        if len(given) == 1 and given[0] in self._answered:
            return
        host = _host_of(given[0]) if len(given) == 1 else None
        if host is None or host not in self.hosts:
            raise Refusal(
                "misdirected-request",
                "this gateway does not answer for that host name; use its public URL",
                log_reason=f"Host {given[0][:100]!r} is not one of the gateway's names"
                if given
                else "no single Host header",
            )
        if len(self._answered) >= _MAX_ANSWERED:
            self._answered.clear()
        self._answered.add(given[0])

    def target(self, request: web.BaseRequest) -> str:
        """The URL the caller was given for this request: the public URL, then path and query."""
        return self.public_url + request.raw_path


def canonical_host(value: str) -> str | None:
    """``name[:port]`` of a Host value, the name lower-case without its trailing dot.

    None unless ``value`` is exactly ``name[:port]`` or ``[v6][:port]``.
    """
    parsed = _parse_host(value)
    if parsed is None:
        return None
    name, port = parsed
    shown = f"[{name}]" if ":" in name else name
    return shown if port is None else f"{shown}:{port}"


def _host_of(value: str) -> str | None:
    """The host name of a Host header value, or None when it is not exactly that."""
    parsed = _parse_host(value)
    return None if parsed is None else parsed[0]


def _parse_host(value: str) -> tuple[str, int | None] | None:
    found = _HOST.fullmatch(value)
    if found is None:
        return None
    port = None if found[2] is None else int(found[2])
    name = _normalise(found[1])
    if not name or (port is not None and port > _MAX_PORT):
        return None
    return name, port


def _normalise(name: str) -> str:
    # Host names compare case-insensitively (RFC 9110 §4.2.3); "example." is "example".
    return name.strip().strip("[]").lower().rstrip(".")
