"""The client credentials grant (RFC 6749 §4.4) as a sans-I/O exchange.

:meth:`TokenRequests.flow` is a generator: it yields the ``httpx.Request`` to
send and is sent back the :class:`Answer`, so one implementation serves the
blocking and the asyncio drivers in :mod:`interlock.sdk.tokens`. The request
body and the client authentication (``client_secret_basic``,
``client_secret_post``, ``private_key_jwt``) come from Authlib; a DPoP proof
(RFC 9449 §5) is added when the client holds a DPoP key, and a
``use_dpop_nonce`` refusal is retried once with the server's nonce (§8).
"""

from __future__ import annotations

import json
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Final, Literal, NamedTuple

import httpx
from authlib.oauth2.rfc6749.parameters import (  # type: ignore[import-untyped]
    prepare_token_request,
)

from interlock.sdk.errors import TokenRequestError
from interlock.sdk.rfc9449 import DPoPKey

__all__ = [
    "MAX_RESPONSE_BYTES",
    "Answer",
    "IssuedToken",
    "TokenFlow",
    "TokenKey",
    "TokenRequests",
    "TokenType",
]

MAX_RESPONSE_BYTES: Final = 64 * 1024
_MAX_TOKEN_CHARS: Final = 16 * 1024
_MAX_LIFETIME: Final = 24 * 3600.0
# RFC 6749 §5.1 only RECOMMENDS expires_in; without it we assume a short life.
_DEFAULT_LIFETIME: Final = 300.0
TokenType = Literal["Bearer", "DPoP"]
_TOKEN_TYPES: Final[dict[str, TokenType]] = {"bearer": "Bearer", "dpop": "DPoP"}


@dataclass(frozen=True)
class TokenKey:
    """What a token is for: the requested scope (normalised) and resource (RFC 8707)."""

    scope: str | None
    resource: str | None


class Answer(NamedTuple):
    """What came back from the token endpoint (body capped at :data:`MAX_RESPONSE_BYTES`)."""

    status: int
    headers: httpx.Headers
    body: bytes


@dataclass(frozen=True)
class IssuedToken:
    """A successful token response (RFC 6749 §5.1)."""

    access_token: str = field(repr=False)
    token_type: TokenType
    expires_in: float


TokenFlow = Generator[httpx.Request, Answer, IssuedToken]


class TokenRequests:
    """Builds token requests and reads token responses for one client."""

    def __init__(
        self,
        token_url: str,
        client_auth: Any,
        dpop: DPoPKey | None,
        redact: tuple[str, ...] = (),
    ) -> None:
        """Authenticate with Authlib's ``client_auth`` (a ``ClientAuth``); prove ``dpop``.

        ``redact`` lists values (the client secret) that must never appear in
        an error message, even if a server echoed them back.
        """
        self._url = token_url
        self._client_auth = client_auth
        self._dpop = dpop
        self._redact = redact

    def flow(self, key: TokenKey) -> TokenFlow:
        """Obtain one access token for ``key``; at most one retry, for a DPoP nonce."""
        answer = yield self._request(key)
        if self._dpop is not None:
            fresh = self._dpop.remember_nonce(self._url, answer.headers)
            if fresh and answer.status in {400, 401} and _error(answer) == "use_dpop_nonce":
                answer = yield self._request(key)
                self._dpop.remember_nonce(self._url, answer.headers)
        return self._issued(answer)

    def _request(self, key: TokenKey) -> httpx.Request:
        body: str = prepare_token_request(
            "client_credentials", scope=key.scope, resource=key.resource
        )
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
        }
        # A new client assertion per request: its jti is single-use (RFC 7523 §3).
        url, headers, body = self._client_auth.prepare("POST", self._url, headers, body)
        if self._dpop is not None:
            headers["DPoP"] = self._dpop.proof("POST", self._url)
        return httpx.Request("POST", url, headers=headers, content=body.encode())

    def _issued(self, answer: Answer) -> IssuedToken:
        document = _json(answer)
        if answer.status != 200 or document is None:
            error = document.get("error") if document is not None else None
            description = document.get("error_description") if document is not None else None
            raise TokenRequestError(
                error if isinstance(error, str) and error else _fallback(answer.status),
                answer.status,
                self._clean(description if isinstance(description, str) else ""),
            )
        token = document.get("access_token")
        if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_CHARS:
            raise TokenRequestError("invalid_response", 200, "no usable access_token")
        kind = _TOKEN_TYPES.get(str(document.get("token_type", "")).lower())
        wanted: TokenType = "Bearer" if self._dpop is None else "DPoP"
        if kind != wanted:
            # RFC 9449 §5: a client that asked for a bound token does not fall
            # back to a bearer token silently (deny by default).
            raise TokenRequestError(
                "invalid_response", 200, f"expected a {wanted} token, got {kind or 'another type'}"
            )
        lifetime = document.get("expires_in", _DEFAULT_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            raise TokenRequestError("invalid_response", 200, "expires_in is not a positive number")
        return IssuedToken(token, wanted, min(float(lifetime), _MAX_LIFETIME))

    def _clean(self, text: str) -> str:
        for value in self._redact:
            text = text.replace(value, "***")
        return text


def _json(answer: Answer) -> dict[str, Any] | None:
    try:
        document = json.loads(answer.body)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def _error(answer: Answer) -> str | None:
    document = _json(answer)
    error = document.get("error") if document is not None else None
    return error if isinstance(error, str) else None


def _fallback(status: int) -> str:
    return "server_error" if status >= 500 else "invalid_response"
