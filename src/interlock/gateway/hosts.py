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
§15.5.20) before anything else looks at it. ``GET /healthz`` answers whatever
the Host: load balancers and orchestrators probe the address they dialled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

from interlock.errors import Refusal

__all__ = ["GatewayNames"]

_MAX_ANSWERED: Final = 256  # Host values remembered (then forgotten at once, and relearnt)


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


def _host_of(value: str) -> str | None:
    """The host name of a Host header value (``name[:port]`` or ``[v6]:port``), or None."""
    try:
        return _normalise(urlsplit(f"//{value.strip()}").hostname or "")
    except ValueError:  # a port that is not a number, an unbalanced bracket
        return None


def _normalise(name: str) -> str:
    # Host names compare case-insensitively (RFC 9110 §4.2.3); "example." is "example".
    return name.strip().strip("[]").lower().rstrip(".")
