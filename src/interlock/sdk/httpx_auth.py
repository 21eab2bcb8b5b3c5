"""``InterlockAuth``: OAuth client credentials for ``httpx.Client`` and ``httpx.AsyncClient``."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Iterable

import httpx

from interlock.sdk.credentials import DEFAULT, ClientCredentials, UseDefault
from interlock.sdk.resource import Retry, credential_headers, next_step
from interlock.sdk.tokens import AccessToken

__all__ = ["InterlockAuth"]


class InterlockAuth(httpx.Auth):
    """Adds an access token (and DPoP proof) to every request; renews and retries on 401.

    Works with ``httpx.Client`` (blocking; token fetches block the calling
    thread) and ``httpx.AsyncClient`` (token fetches are awaited). Requests
    with a streaming body are not retried (the body cannot be sent twice).
    """

    def __init__(
        self,
        credentials: ClientCredentials,
        *,
        scope: str | Iterable[str] | UseDefault | None = DEFAULT,
        resource: str | UseDefault | None = DEFAULT,
    ) -> None:
        """Use ``credentials``' tokens for ``scope`` and ``resource`` (default: its own)."""
        self._credentials = credentials
        self._key = credentials.key(scope, resource)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        """The blocking flow: token, send, at most one nonce and one token retry."""
        tokens = self._credentials.tokens
        token = tokens.get(self._key)
        done: set[Retry] = set()
        while True:
            response = yield self._authorise(request, token)
            step = self._next(request, response, done)
            if step is None:
                return
            if step == "token":
                token = tokens.renew(self._key, token)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The asyncio flow: as :meth:`sync_auth_flow`, awaiting token fetches."""
        tokens = self._credentials.tokens
        token = await tokens.aget(self._key)
        done: set[Retry] = set()
        while True:
            response = yield self._authorise(request, token)
            step = self._next(request, response, done)
            if step is None:
                return
            if step == "token":
                token = await tokens.arenew(self._key, token)

    def _authorise(self, request: httpx.Request, token: AccessToken) -> httpx.Request:
        request.headers.update(
            credential_headers(self._credentials, token, request.method, str(request.url))
        )
        return request

    def _next(
        self, request: httpx.Request, response: httpx.Response, done: set[Retry]
    ) -> Retry | None:
        return next_step(
            self._credentials,
            str(request.url),
            response.status_code,
            response.headers,
            # Bytes (or nothing) can be sent again; an iterator or file stream cannot.
            replayable=isinstance(request.stream, httpx.ByteStream),
            done=done,
        )

    def __repr__(self) -> str:
        return f"InterlockAuth({self._credentials!r}, key={self._key!r})"
