"""Who is calling: an API key (``Authorization: Bearer`` or ``X-API-Key``) or an access token.

A Bearer credential shaped like a JWS (``eyJ...`` with two dots) is checked as
one of our RFC 9068 access tokens; anything else as an API key.
"""

from __future__ import annotations

import asyncio
from typing import Final

from interlock.errors import AuthenticationError, InvalidTokenError
from interlock.gateway.context import RequestContext
from interlock.gateway.problems import Problem, Refusal
from interlock.identity.apikeys import ApiKeys
from interlock.oauth.tokens import AccessTokenVerifier

__all__ = ["ApiKeyAuthentication"]

_CHALLENGE: Final = 'Bearer realm="interlock"'
_MAX_CREDENTIAL: Final = 512


class ApiKeyAuthentication:
    """Sets ``ctx.principal`` or refuses with 401 (400 for ambiguous credentials)."""

    def __init__(self, keys: ApiKeys, tokens: AccessTokenVerifier | None = None) -> None:
        """Verify API keys against ``keys`` and access tokens with ``tokens``."""
        self._keys = keys
        self._tokens = tokens

    async def __call__(self, ctx: RequestContext) -> None:
        """Authenticate the request."""
        token = _credential(ctx)
        if self._tokens is not None and token.startswith("eyJ") and token.count(".") == 2:
            try:
                # Cache hit: no I/O, answered on the loop. Miss: verified off the loop.
                principal = self._tokens.verify_cached(token)
                if principal is None:
                    principal = await asyncio.to_thread(self._tokens.verify, token)
                ctx.principal = principal
            except InvalidTokenError as exc:
                raise _unauthorised(
                    "invalid_token", "the access token is invalid", log_reason=exc.reason
                ) from None
            return
        try:
            # Cache hit: verified on the loop. Miss: the store is asked off the loop.
            principal = self._keys.verify_cached(token)
            if principal is None:
                principal = await asyncio.to_thread(self._keys.verify, token)
            ctx.principal = principal
        except AuthenticationError as exc:
            raise _unauthorised("invalid_token", exc.message, log_reason=exc.reason) from None


def _credential(ctx: RequestContext) -> str:
    headers = ctx.request.headers
    authorization = headers.getall("Authorization", [])
    api_key = headers.getall("X-API-Key", [])
    if len(authorization) + len(api_key) > 1:
        raise Refusal(
            Problem(
                400,
                "ambiguous-credentials",
                "More than one credential",
                "send exactly one credential: one Authorization header or one X-API-Key header",
            )
        )
    if not authorization and not api_key:
        raise _unauthorised(None, "this route requires an API key", log_reason="no credential")
    if api_key:
        token = api_key[0].strip()
    else:
        scheme, _, token = authorization[0].strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer":
            raise _unauthorised(
                "invalid_request",
                "use the Bearer scheme: Authorization: Bearer <key>",
                log_reason="unsupported Authorization scheme",
            )
    if not token or len(token) > _MAX_CREDENTIAL or any(c.isspace() for c in token):
        raise _unauthorised(
            "invalid_request", "the credential is malformed", log_reason="malformed credential"
        )
    return token


def _unauthorised(error: str | None, detail: str, log_reason: str) -> Refusal:
    # RFC 6750 §3: no error attribute when the request carried no credential at all.
    challenge = _CHALLENGE + (f', error="{error}"' if error else "")
    return Refusal(
        Problem(
            401, "unauthorized", "Authentication required", detail, {"WWW-Authenticate": challenge}
        ),
        log_reason=log_reason,
    )
