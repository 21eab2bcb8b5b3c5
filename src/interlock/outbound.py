"""Outbound HTTPS: the one factory for every HTTP client Interlock opens itself.

Why a module of the foundation: the callers sit in several domain packages
(the trusted issuers' JWKS fetch in ``oauth``, the audit witness in ``audit``,
the webhook rotator in ``secrets``) and in the client SDK, which may depend on
the foundation only. This module imports nothing of Interlock but ``errors``
and the version, so any layer may use it and none is pulled up by it. It is
one module, not a package: one idea, one factory (house rules 6 and 7).

A client from :func:`outbound_client` (or :func:`outbound_async_client`):

* **verifies TLS, always.** The trust is a CA file (the only trust anchor
  then) or the system store, in a context from :func:`tls_context`, or a ready
  :class:`ssl.SSLContext` that verifies. There is no parameter to turn
  verification off (house rule 2); a context that does not require a
  certificate and check the host name, or admits anything older than TLS 1.2,
  is refused with :class:`~interlock.errors.ConfigError`.
* **times out**: connect, read, write and the wait for a pooled connection are
  each bounded (:class:`Timeouts`); none may be unlimited.
* **follows no redirect**: a 3xx comes back to the caller as it is, so a
  credential or body is never carried to a place the configuration did not
  name (and an ``https`` URL can never be downgraded by a ``Location``). A
  request that asks to follow one anyway gets ``httpx.TooManyRedirects``
  instead of a second request.
* **speaks HTTPS only**: a request to any other scheme is refused before a
  byte is sent (:class:`InsecureTransportError`). The one exception is its
  own factory, :func:`signed_documents_client`, for documents that carry
  their own signature (OCSP answers), which takes no credential at all.
* sends ``User-Agent: interlock/<version>`` and ``Accept-Encoding: identity``
  (what we fetch is small; an uncompressed answer cannot be a compression
  bomb — :func:`read_capped` bounds the decoded size all the same).
* may present a **client certificate** (mutual TLS) given as files.

Proxies and the environment, decided here once: the client is built with
httpx's ``trust_env=True``, which (httpx 0.28 and later, our floor) means
exactly two things. It **honours** ``HTTPS_PROXY``, ``HTTP_PROXY``,
``ALL_PROXY`` and ``NO_PROXY`` (an egress proxy is deployment configuration,
like the rest of the environment; the proxy sees a ``CONNECT`` to the host,
and TLS is verified end to end through the tunnel with our context). And it
would read ``SSL_CERT_FILE``/``SSL_CERT_DIR`` — but only when httpx builds the
TLS context itself (``verify=True``), which never happens here: we always hand
it our own context. So an explicit trust anchor (a CA file, or a context
built from one) can **never** be replaced from the environment. Trust
``None`` means OpenSSL's default store, and OpenSSL itself lets
``SSL_CERT_FILE``/``SSL_CERT_DIR`` relocate that store (``curl`` and every
Python program alike; the gateway's ``ca: system`` upstreams too): that is
how a platform names its bundle, so it is kept, and documented here.
``.netrc`` is not read (httpx stopped doing so in 0.24).

Not built here: the gateway's upstream pools (:mod:`interlock.gateway.upstream`).
They are the data plane — aiohttp sessions on the gateway's event loop, one
pool per manifest system with that system's TLS and client certificate,
streaming request and response bodies through without decoding them, sized
and timed by the route's upstream limits — while the clients here are the
control plane's occasional, blocking, small-document calls. They share the
trust rules instead: :func:`interlock.gateway.tls.client_context` builds on
:func:`tls_context`.
"""

from __future__ import annotations

import math
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from interlock import __version__
from interlock.errors import ConfigError, InterlockError

__all__ = [
    "MINIMUM_TLS",
    "USER_AGENT",
    "InsecureTransportError",
    "ResponseTooLargeError",
    "Timeouts",
    "Trust",
    "outbound_async_client",
    "outbound_client",
    "read_capped",
    "signed_documents_client",
    "tls_context",
]

MINIMUM_TLS: Final = ssl.TLSVersion.TLSv1_2
USER_AGENT: Final = f"interlock/{__version__}"

#: A CA file (its certificates become the only trust anchors), a ready context
#: that verifies, or ``None`` for the system's trust store.
Trust = str | os.PathLike[str] | ssl.SSLContext | None

_ACCEPTED_MINIMUMS: Final = frozenset(
    {ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.MAXIMUM_SUPPORTED}
)


class InsecureTransportError(InterlockError):
    """A request would have left without TLS (an ``http://`` URL)."""

    code = "insecure_transport"


class ResponseTooLargeError(InterlockError):
    """An answer was larger than its caller's cap; the rest was not read."""

    code = "response_too_large"


@dataclass(frozen=True)
class Timeouts:
    """Seconds allowed to connect, to wait for each read and write, and for a pooled connection."""

    connect: float
    read: float
    write: float
    pool: float

    def __post_init__(self) -> None:
        for name in ("connect", "read", "write", "pool"):
            seconds = getattr(self, name)
            if not isinstance(seconds, int | float) or not math.isfinite(seconds) or seconds <= 0:
                raise ConfigError(f"the {name} timeout must be a positive number of seconds")

    @classmethod
    def every(cls, seconds: float) -> Timeouts:
        """The same bound on all four."""
        return cls(connect=seconds, read=seconds, write=seconds, pool=seconds)

    def as_httpx(self) -> httpx.Timeout:
        """In httpx's terms."""
        return httpx.Timeout(connect=self.connect, read=self.read, write=self.write, pool=self.pool)


def tls_context(
    ca_file: str | os.PathLike[str] | None = None,
    *,
    minimum: ssl.TLSVersion = MINIMUM_TLS,
    client_certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
) -> ssl.SSLContext:
    """A client context that verifies certificate and host name, TLS ``minimum`` (1.2) or later.

    ``ca_file``: its certificates are the only trust anchors; ``None``: the
    system's store. ``client_certificate``: (certificate chain, key) files
    presented when the server asks (mutual TLS).
    """
    if minimum not in _ACCEPTED_MINIMUMS:
        raise ConfigError("outbound TLS is 1.2 or later")
    context = ssl.create_default_context(cafile=None if ca_file is None else os.fspath(ca_file))
    context.minimum_version = minimum
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    # create_default_context sets both already; stated so a reader need not know.
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    if client_certificate is not None:
        context.load_cert_chain(*client_certificate)
    return context


def _context(
    trust: Trust,
    client_certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None,
) -> ssl.SSLContext:
    if trust is None or isinstance(trust, str | os.PathLike):
        return tls_context(trust, client_certificate=client_certificate)
    if not isinstance(trust, ssl.SSLContext):
        raise TypeError(f"trust is a CA file, an ssl.SSLContext or None, not {type(trust)}")
    if client_certificate is not None:
        # Never change a context the caller owns (it may be shared).
        raise ConfigError("load the client certificate into the SSLContext you pass, or pass a CA")
    if trust.verify_mode != ssl.CERT_REQUIRED or not trust.check_hostname:
        raise ConfigError(
            "an outbound TLS context must verify certificates (CERT_REQUIRED) and host names"
        )
    if trust.minimum_version not in _ACCEPTED_MINIMUMS:
        raise ConfigError("an outbound TLS context must refuse versions older than TLS 1.2")
    return trust


def _https_only(request: httpx.Request) -> None:
    if request.url.scheme != "https":
        raise InsecureTransportError(
            f"outbound requests use https:// only, not {request.url.scheme}://"
        )


async def _https_only_async(request: httpx.Request) -> None:
    _https_only(request)


def _settings(  # noqa: PLR0917  (private; the two factories name every argument)
    trust: Trust,
    timeouts: Timeouts,
    client_certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None,
    headers: Mapping[str, str] | None,
    base_url: str,
    auth: httpx.Auth | None,
) -> dict[str, Any]:
    if not isinstance(timeouts, Timeouts):
        raise TypeError("timeouts must be a Timeouts")
    return {
        "verify": _context(trust, client_certificate),
        "timeout": timeouts.as_httpx(),
        "follow_redirects": False,
        # A request that asks to follow anyway (follow_redirects=True) fails with
        # TooManyRedirects before a second request is sent.
        "max_redirects": 0,
        # HTTPS_PROXY/NO_PROXY honoured; SSL_CERT_FILE/DIR cannot apply (verify is our context).
        "trust_env": True,
        "headers": {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **(headers or {})},
        "base_url": base_url,
        "auth": auth,
    }


def outbound_client(
    *,
    trust: Trust,
    timeouts: Timeouts,
    client_certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    base_url: str = "",
    auth: httpx.Auth | None = None,
) -> httpx.Client:
    """An ``httpx.Client`` with the guarantees of this module; close it (``with``) when done.

    ``trust`` and ``timeouts`` have no defaults: every caller states whom it
    trusts and how long it waits. ``headers`` are sent with every request,
    ``auth`` authenticates each, and relative URLs resolve against
    ``base_url`` (which must be ``https://`` too, or every request is refused).
    """
    settings = _settings(trust, timeouts, client_certificate, headers, base_url, auth)
    return httpx.Client(**settings, event_hooks={"request": [_https_only]})


def outbound_async_client(
    *,
    trust: Trust,
    timeouts: Timeouts,
    client_certificate: tuple[str | os.PathLike[str], str | os.PathLike[str]] | None = None,
    headers: Mapping[str, str] | None = None,
    base_url: str = "",
    auth: httpx.Auth | None = None,
) -> httpx.AsyncClient:
    """The same as :func:`outbound_client`, for coroutines."""
    settings = _settings(trust, timeouts, client_certificate, headers, base_url, auth)
    return httpx.AsyncClient(**settings, event_hooks={"request": [_https_only_async]})


def signed_documents_client(*, trust: Trust, timeouts: Timeouts) -> httpx.Client:
    """A client that fetches documents whose integrity is their own signature: ``http://`` too.

    For OCSP answers (RFC 6960 Appendix A: responders speak plain HTTP, and
    TLS to them would need the very revocation check being made), which the
    caller verifies before believing a byte. Everything else of this module
    holds — ``https://`` is verified against ``trust``, no redirect is
    followed, timeouts bound every wait — and there is no way to give it a
    credential (no ``auth``, headers or client certificate): nothing secret
    travels on it.
    """
    settings = _settings(trust, timeouts, None, None, "", None)
    return httpx.Client(**settings)


def read_capped(response: httpx.Response, limit: int) -> bytes:
    """The body of ``response``, refused past ``limit`` bytes (decoded).

    Open the response with ``client.stream(...)`` so that nothing is read
    before the cap applies. A ``Content-Length`` over the cap is refused
    before reading; otherwise reading stops at the first chunk past it.
    """
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            raise ResponseTooLargeError(f"the answer is larger than {limit} bytes")
    return bytes(body)
