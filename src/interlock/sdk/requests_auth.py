"""``InterlockRequestsAuth``: OAuth client credentials for ``requests``."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from requests import PreparedRequest, Response
from requests.auth import AuthBase

from interlock.sdk.credentials import DEFAULT, ClientCredentials, UseDefault
from interlock.sdk.resource import Retry, credential_headers, next_step
from interlock.sdk.tokens import AccessToken

__all__ = ["InterlockRequestsAuth"]


class InterlockRequestsAuth(AuthBase):
    """Adds an access token (and DPoP proof) to every request; renews and retries on 401.

    A retried request is sent again on the same connection adapter, like
    ``requests.auth.HTTPDigestAuth`` does; the refused answer is kept in
    ``response.history``. Requests with a file or generator body are not retried.
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

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        """Authorise ``request`` and watch its answer for a 401."""
        token = self._credentials.tokens.get(self._key)
        self._authorise(request, token)
        origin = _origin(request.url or "")
        hook = functools.partial(self._on_response, origin=origin, token=token)
        request.register_hook("response", hook)  # type: ignore[no-untyped-call]  # untyped stub
        return request

    def _on_response(
        self, response: Response, *, origin: str, token: AccessToken, **send: Any
    ) -> Response:
        done: set[Retry] = set()
        while True:
            request = response.request
            url = request.url or ""
            # The hook also sees redirect answers: a token is retried on its own origin only.
            if _origin(url) != origin:
                return response
            replayable = request.body is None or isinstance(request.body, bytes | str)
            step = next_step(
                self._credentials,
                url,
                response.status_code,
                response.headers,
                replayable=replayable,
                done=done,
            )
            if step is None:
                return response
            if step == "token":
                token = self._credentials.tokens.renew(self._key, token)
            response = self._resend(response, token, send)

    def _resend(self, response: Response, token: AccessToken, send: dict[str, Any]) -> Response:
        _ = response.content  # read the refused answer so its connection can be reused
        response.close()
        again = response.request.copy()
        self._authorise(again, token)
        answer = response.connection.send(again, **send)
        answer.history.append(response)
        answer.request = again
        return answer

    def _authorise(self, request: PreparedRequest, token: AccessToken) -> None:
        request.headers.update(
            credential_headers(self._credentials, token, request.method or "GET", request.url or "")
        )

    def __repr__(self) -> str:
        return f"InterlockRequestsAuth({self._credentials!r}, key={self._key!r})"


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{parts.port}"
