"""Token, revocation (RFC 7009) and introspection (RFC 7662) endpoints.

The token endpoint grants ``client_credentials`` only, with errors exactly
per RFC 6749 §5.2; all three authenticate the calling client the same way.

HTTP-agnostic: the gateway hands over the Authorization header values and the
parsed form, and renders the :class:`TokenResponse`. Client authentication
by ``client_secret_basic`` or ``client_secret_post``; using both at once is
refused (RFC 6749 §2.3: a client MUST NOT use more than one method).
``private_key_jwt`` and ``tls_client_auth`` are refused as unsupported for now.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote

from interlock.config.manifest import Manifest
from interlock.errors import AuthenticationError, NotFoundError
from interlock.identity.grants import client_scopes
from interlock.oauth.client_secrets import ClientSecrets
from interlock.oauth.guard import AttemptGuard, NoGuard
from interlock.oauth.revocation import TokenRevocations
from interlock.oauth.tokens import TokenIssuer

__all__ = ["TokenEndpoint", "TokenResponse", "metadata"]

_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@dataclass(frozen=True)
class TokenResponse:
    """Status, JSON body and headers of a token endpoint answer."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    log_reason: str | None = None


def _error(
    status: int, error: str, description: str, *, basic: bool = False, reason: str | None = None
) -> TokenResponse:
    headers = dict(_NO_STORE)
    if basic:
        # RFC 6749 §5.2: 401 with a challenge matching the scheme the client used.
        headers["WWW-Authenticate"] = 'Basic realm="interlock", charset="UTF-8"'
    body = {"error": error, "error_description": description}
    return TokenResponse(status, body, headers, reason or description)


class TokenEndpoint:
    """Issues access tokens for authenticated clients."""

    def __init__(
        self,
        secrets: ClientSecrets,
        issuer: TokenIssuer,
        revocations: TokenRevocations,
        guard: AttemptGuard | None = None,
    ) -> None:
        """Authenticate with ``secrets``, sign with ``issuer``, revoke through ``revocations``.

        ``guard`` is consulted before every client authentication and told of
        every failure (the rate-limit hook against secret guessing).
        """
        self._secrets = secrets
        self._issuer = issuer
        self._revocations = revocations
        self._guard: AttemptGuard = guard or NoGuard()

    @property
    def issuer(self) -> str:
        """The issuer URL tokens carry."""
        return self._issuer.issuer

    @property
    def manifest(self) -> Manifest:
        """The manifest clients and grants come from."""
        return self._secrets.manifest

    @manifest.setter
    def manifest(self, manifest: Manifest) -> None:
        self._secrets.manifest = manifest

    def handle(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse:
        """Answer one token request (``POST /oauth2/token``)."""
        authenticated = self.authenticate_client(authorization, form, remote)
        if isinstance(authenticated, TokenResponse):
            return authenticated
        client_id, params = authenticated
        return self._grant(client_id, params)

    def revoke(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse:
        """RFC 7009: revoke one of the calling client's tokens; 200 whatever the token."""
        found = self._client_and_token(authorization, form, remote)
        if isinstance(found, TokenResponse):
            return found
        client_id, token = found
        # §2.2: an invalid or unknown token is not an error; a client may revoke
        # only its own tokens, others are left alone without saying so.
        self._revocations.revoke(token, client_id)
        return TokenResponse(200, {}, dict(_NO_STORE))

    def introspect(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> TokenResponse:
        """RFC 7662: the state of a token, for an authenticated caller."""
        found = self._client_and_token(authorization, form, remote)
        if isinstance(found, TokenResponse):
            return found
        _, token = found
        return TokenResponse(200, self._revocations.introspect(token), dict(_NO_STORE))

    def _client_and_token(
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None,
    ) -> tuple[str, str] | TokenResponse:
        """The authenticated client and the ``token`` parameter, or an error."""
        authenticated = self.authenticate_client(authorization, form, remote)
        if isinstance(authenticated, TokenResponse):
            return authenticated
        client_id, params = authenticated
        token = params.get("token")
        if not token:
            return _error(400, "invalid_request", "token is required")
        return client_id, token

    def authenticate_client(  # noqa: PLR0911  (one return per RFC 6749 error case reads best)
        self,
        authorization: Sequence[str],
        form: Mapping[str, Sequence[str]],
        remote: str | None = None,
    ) -> tuple[str, dict[str, str]] | TokenResponse:
        """The authenticated client id and the single-valued parameters, or an error."""
        repeated = sorted(name for name, values in form.items() if len(values) > 1)
        if repeated:
            return _error(400, "invalid_request", f"parameter {repeated[0]} is repeated")
        params = {name: values[0] for name, values in form.items()}
        basic = [a for a in authorization if a.lower().startswith("basic ")]
        if len(authorization) > 1 or (authorization and not basic):
            return _error(400, "invalid_request", "use one Authorization header with Basic")
        if "client_assertion" in params or "client_assertion_type" in params:
            return _error(401, "invalid_client", "private_key_jwt is not supported yet")
        if basic and ("client_secret" in params):
            return _error(400, "invalid_request", "use one client authentication method only")
        credentials = _basic(basic[0]) if basic else _post(params)
        if credentials is None:
            self._guard.failed(params.get("client_id"), remote)  # malformed counts as a guess
            return _error(401, "invalid_client", "client authentication failed", basic=bool(basic))
        client_id, secret = credentials
        if basic and "client_id" in params and params["client_id"] != client_id:
            return _error(400, "invalid_request", "client_id differs from the Basic credentials")
        wait = self._guard.retry_after(client_id, remote)
        if wait is not None:
            too_many = _error(429, "slow_down", "too many failed attempts; retry later")
            too_many.headers["Retry-After"] = str(max(1, int(wait)))
            return too_many
        try:
            self._secrets.authenticate(client_id, secret)
        except (AuthenticationError, NotFoundError) as exc:
            self._guard.failed(client_id, remote)
            reason = getattr(exc, "reason", str(exc))
            return _error(
                401,
                "invalid_client",
                "client authentication failed",
                basic=bool(basic),
                reason=reason,
            )
        return client_id, params

    def _grant(self, client_id: str, params: Mapping[str, str]) -> TokenResponse:
        grant = params.get("grant_type")
        if grant is None:
            return _error(400, "invalid_request", "grant_type is required")
        if grant != "client_credentials":
            return _error(400, "unsupported_grant_type", "only client_credentials is supported")
        granted = client_scopes(self._secrets.manifest, client_id)
        requested = frozenset(params["scope"].split()) if params.get("scope") else granted
        if not requested or not requested <= granted:
            return _error(400, "invalid_scope", "the requested scope is not granted to this client")
        audience = self._issuer.issuer
        resource = params.get("resource")
        if resource is not None and resource.rstrip("/") != audience:
            # RFC 8707 §2: a resource this server does not protect.
            return _error(400, "invalid_target", "tokens are issued for this gateway only")
        token = self._issuer.issue(client_id, requested, audience)
        body = {
            "access_token": token.access_token,
            "token_type": "Bearer",
            "expires_in": token.expires_in,
            "scope": token.scope,
        }
        return TokenResponse(200, body, dict(_NO_STORE))


def metadata(issuer: str, manifest: Manifest) -> dict[str, Any]:
    """Authorization server metadata (RFC 8414 §2) for this gateway."""
    scopes = sorted({scope for role in manifest.roles.values() for scope in role.scopes})
    return {
        "issuer": issuer,
        "token_endpoint": f"{issuer}/oauth2/token",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "revocation_endpoint": f"{issuer}/oauth2/revoke",
        "introspection_endpoint": f"{issuer}/oauth2/introspect",
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "grant_types_supported": ["client_credentials"],
        # No authorization endpoint: client credentials only.
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": scopes,
    }


def _basic(header: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, IndexError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep or not client_id or not secret:
        return None
    # RFC 6749 §2.3.1: both parts are form-urlencoded before joining.
    return unquote(client_id), unquote(secret)


def _post(params: Mapping[str, str]) -> tuple[str, str] | None:
    client_id, secret = params.get("client_id"), params.get("client_secret")
    if not client_id or not secret:
        return None
    return client_id, secret
