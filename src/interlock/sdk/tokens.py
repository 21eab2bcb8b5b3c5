"""The token cache: one access token per (scope, resource), renewed before it expires.

A token is renewed once ``refresh_at`` has passed: ``refresh_margin`` seconds
before its expiry, by default ``min(30 s, 10 % of its lifetime)``. At most one
renewal per token is in flight: blocking callers queue on a
``threading.Lock``, coroutines on an ``asyncio.Lock`` (one per event loop), and
whoever comes second finds the new token. Blocking and asyncio callers share
the cache but not the locks, so a program using both at once may renew a
token twice; each side on its own never does.

The token endpoint is reached with a client from
:func:`interlock.outbound.outbound_client` over :mod:`interlock.sdk.tls`'s
context (verified, no redirects, bounded timeouts), one short-lived client
per renewal (renewals are rare, and a client must not outlive the event loop
it was used on).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import httpx

from interlock.outbound import Timeouts, outbound_async_client, outbound_client
from interlock.sdk.errors import TokenRequestError
from interlock.sdk.rfc6749 import (
    MAX_RESPONSE_BYTES,
    Answer,
    IssuedToken,
    TokenFlow,
    TokenKey,
    TokenRequests,
)

__all__ = ["AccessToken", "TokenCache"]

_log = logging.getLogger(__name__)
_MAX_MARGIN = 30.0


@dataclass(frozen=True)
class AccessToken:
    """A cached access token; its value is left out of ``repr``."""

    value: str = field(repr=False)
    token_type: Literal["Bearer", "DPoP"]
    expires_at: float
    refresh_at: float


class TokenCache:
    """Access tokens per :class:`TokenKey` for one client, fetched on demand."""

    def __init__(
        self,
        requests: TokenRequests,
        context: ssl.SSLContext,
        *,
        timeout: float,
        clock: Callable[[], float],
        refresh_margin: float | None,
    ) -> None:
        """Fetch through ``requests`` over ``context``; time comes from ``clock``."""
        self._requests = requests
        self._context = context
        self._timeouts = Timeouts.every(timeout)
        self._clock = clock
        self._margin = refresh_margin
        self._state = threading.Lock()  # guards the three dicts below, held briefly
        self._tokens: dict[TokenKey, AccessToken] = {}
        self._locks: dict[TokenKey, threading.Lock] = {}
        self._async_locks: dict[TokenKey, dict[asyncio.AbstractEventLoop, asyncio.Lock]] = {}

    def get(self, key: TokenKey) -> AccessToken:
        """A token for ``key`` that is not due for renewal; blocks while one is fetched."""
        token = self._fresh(key)
        if token is not None:
            return token
        with self._lock(key):
            token = self._fresh(key)
            return token if token is not None else self._fetch(key)

    def renew(self, key: TokenKey, refused: AccessToken) -> AccessToken:
        """A token other than ``refused`` (which a server rejected), fetching one if needed."""
        with self._lock(key):
            token = self._fresh(key)
            return token if token is not None and token != refused else self._fetch(key)

    async def aget(self, key: TokenKey) -> AccessToken:
        """:meth:`get` for coroutines: waits without blocking the event loop."""
        token = self._fresh(key)
        if token is not None:
            return token
        async with self._async_lock(key):
            token = self._fresh(key)
            return token if token is not None else await self._afetch(key)

    async def arenew(self, key: TokenKey, refused: AccessToken) -> AccessToken:
        """:meth:`renew` for coroutines."""
        async with self._async_lock(key):
            token = self._fresh(key)
            return token if token is not None and token != refused else await self._afetch(key)

    def _fresh(self, key: TokenKey) -> AccessToken | None:
        with self._state:
            token = self._tokens.get(key)
        return token if token is not None and self._clock() < token.refresh_at else None

    def _lock(self, key: TokenKey) -> threading.Lock:
        with self._state:
            return self._locks.setdefault(key, threading.Lock())

    def _async_lock(self, key: TokenKey) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop: keep one per loop, drop closed loops.
        loop = asyncio.get_running_loop()
        with self._state:
            locks = self._async_locks.setdefault(key, {})
            for closed in [other for other in locks if other.is_closed()]:
                del locks[closed]
            return locks.setdefault(loop, asyncio.Lock())

    def _fetch(self, key: TokenKey) -> AccessToken:
        started = self._clock()
        flow = self._requests.flow(key)
        with outbound_client(trust=self._context, timeouts=self._timeouts) as client:
            request = next(flow)
            while True:
                answer = _send(client, request)
                try:
                    request = flow.send(answer)
                except StopIteration as done:
                    return self._store(key, done.value, started)

    async def _afetch(self, key: TokenKey) -> AccessToken:
        started = self._clock()
        flow: TokenFlow = self._requests.flow(key)
        async with outbound_async_client(trust=self._context, timeouts=self._timeouts) as client:
            request = next(flow)
            while True:
                answer = await _asend(client, request)
                try:
                    request = flow.send(answer)
                except StopIteration as done:
                    return self._store(key, done.value, started)

    def _store(self, key: TokenKey, issued: IssuedToken, started: float) -> AccessToken:
        # expires_in counts from the response; counting from the request is the safe side.
        lifetime = issued.expires_in
        margin = min(_MAX_MARGIN, lifetime / 10) if self._margin is None else self._margin
        expires_at = started + lifetime
        token = AccessToken(
            issued.access_token, issued.token_type, expires_at, max(started, expires_at - margin)
        )
        with self._state:
            self._tokens[key] = token
        _log.debug(
            "access token obtained: scope=%s resource=%s type=%s expires_in=%s",
            key.scope,
            key.resource,
            issued.token_type,
            lifetime,
        )
        return token


def _send(client: httpx.Client, request: httpx.Request) -> Answer:
    try:
        response = client.send(request, stream=True)
        try:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                _check_size(body, response.status_code)
            return Answer(response.status_code, response.headers, bytes(body))
        finally:
            response.close()
    except httpx.HTTPError as exc:
        raise _network_error(exc) from None


async def _asend(client: httpx.AsyncClient, request: httpx.Request) -> Answer:
    try:
        response = await client.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                _check_size(body, response.status_code)
            return Answer(response.status_code, response.headers, bytes(body))
        finally:
            await response.aclose()
    except httpx.HTTPError as exc:
        raise _network_error(exc) from None


def _check_size(body: bytearray, status: int) -> None:
    if len(body) > MAX_RESPONSE_BYTES:
        raise TokenRequestError("invalid_response", status, "the token response is too large")


def _network_error(exc: httpx.HTTPError) -> TokenRequestError:
    # Not chained: the httpx exception holds the request, and so the credentials.
    return TokenRequestError("network_error", None, f"{type(exc).__name__}: {exc}")
