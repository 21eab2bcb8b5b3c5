"""RFC 9068 access tokens: issued for client credentials, verified at the gateway."""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from interlock.config.manifest import Manifest
from interlock.crypto.jose import PublicKey, import_public_jwk, sign_compact, verify_compact
from interlock.errors import InvalidTokenError
from interlock.identity.grants import Grants, Principal
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.signing_keys import SigningKeys

__all__ = ["DEFAULT_LIFETIME", "AccessTokenVerifier", "IssuedToken", "TokenIssuer"]

DEFAULT_LIFETIME: Final = timedelta(minutes=10)
MAX_LIFETIME: Final = timedelta(hours=1)
LEEWAY: Final = timedelta(seconds=60)
_TYP: Final = "at+jwt"
_REFUSED: Final = "the token is invalid"


@dataclass(frozen=True)
class IssuedToken:
    """A token response's content (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:
        return f"IssuedToken(expires_in={self.expires_in}, scope={self.scope!r})"


class TokenIssuer:
    """Signs access tokens with the current signing key."""

    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        lifetime: timedelta = DEFAULT_LIFETIME,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``issuer`` is the gateway's base URL; tokens live ``lifetime`` (at most 1 h)."""
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError("an access token lives more than 0 s and at most 1 hour")
        self._keys = keys
        self.issuer = issuer
        self._lifetime = lifetime
        self._now = now

    def issue(self, client: str, scopes: frozenset[str], audience: str) -> IssuedToken:
        """An RFC 9068 §2.2 token for ``client`` with ``scopes`` for ``audience``."""
        signer = self._keys.signer()
        issued_at = int(self._now().timestamp())
        scope = " ".join(sorted(scopes))
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": client,
            "aud": audience,
            "client_id": client,
            "scope": scope,
            "iat": issued_at,
            "exp": issued_at + int(self._lifetime.total_seconds()),
            "jti": secrets.token_urlsafe(16),
        }
        payload = json.dumps(claims, separators=(",", ":")).encode()
        token = sign_compact(payload, signer.key, signer.alg, {"typ": _TYP})
        return IssuedToken(token, int(self._lifetime.total_seconds()), scope)


class AccessTokenVerifier:
    """Checks our own access tokens: signature by kid, then every RFC 9068 §4 claim."""

    def __init__(
        self,
        keys: SigningKeys,
        issuer: str,
        manifest: Manifest,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        refresh_seconds: float = 5.0,
        revoked: RevokedTokens | None = None,
    ) -> None:
        """Verify tokens for ``issuer`` whose audience includes ``issuer``."""
        self.revoked = revoked
        self._source = keys
        self.issuer = issuer
        self._grants = Grants(manifest)
        self._now = now
        self._refresh_seconds = refresh_seconds
        self._keys: dict[str, PublicKey] = {}
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    @property
    def manifest(self) -> Manifest:
        """The manifest clients and grants come from."""
        return self._grants.manifest

    @manifest.setter
    def manifest(self, manifest: Manifest) -> None:
        self._grants = Grants(manifest)

    def verify(self, token: str) -> Principal:
        """The client behind a valid, unrevoked token; :class:`InvalidTokenError` otherwise."""
        claims = self.claims(token)
        client = str(claims["client_id"])
        scope = claims.get("scope")
        granted = frozenset(scope.split()) if isinstance(scope, str) else frozenset()
        return Principal(client, granted & self._grants.scopes(client), f"jwt {claims['jti']}")

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a token that passes every check (signature, RFC 9068, revocation)."""
        header, payload = self._verify_signature(token)
        if header.get("typ") != _TYP:
            # RFC 9068 §4: reject tokens whose typ is not at+jwt.
            raise InvalidTokenError(_REFUSED, f"typ is {header.get('typ')!r}, not at+jwt")
        claims = _claims(payload)
        now = self._now().timestamp()
        leeway = LEEWAY.total_seconds()
        if claims.get("iss") != self.issuer:
            raise InvalidTokenError(_REFUSED, "wrong issuer")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.issuer not in audiences:
            raise InvalidTokenError(_REFUSED, "wrong audience")
        for name in ("exp", "iat"):
            if not isinstance(claims.get(name), int):
                raise InvalidTokenError(_REFUSED, f"missing or non-integer {name}")
        if claims["exp"] <= now - leeway:
            raise InvalidTokenError(_REFUSED, "expired")
        if claims["iat"] > now + leeway:
            raise InvalidTokenError(_REFUSED, "issued in the future")
        nbf = claims.get("nbf")
        if isinstance(nbf, int) and nbf > now + leeway:
            raise InvalidTokenError(_REFUSED, "not yet valid")
        client = claims.get("client_id")
        if not isinstance(client, str) or claims.get("sub") != client:
            raise InvalidTokenError(_REFUSED, "client_id missing or different from sub")
        spec = self.manifest.clients.get(client)
        if spec is None or "oauth2" not in spec.auth:
            raise InvalidTokenError(_REFUSED, "unknown client or client without oauth2")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise InvalidTokenError(_REFUSED, "missing jti")
        if self.revoked is not None and self.revoked.contains(jti):
            raise InvalidTokenError(_REFUSED, f"token {jti} is revoked")
        return claims

    def _verify_signature(self, token: str) -> tuple[dict[str, Any], bytes]:
        try:
            return verify_compact(token, self._current_keys(refresh=False))
        except InvalidTokenError as exc:
            if exc.reason != "unknown kid":
                raise
        # A kid we have not seen: the key set may have rotated; look again (rate-limited).
        return verify_compact(token, self._current_keys(refresh=True))

    def _current_keys(self, *, refresh: bool) -> dict[str, PublicKey]:
        with self._lock:
            age = time.monotonic() - self._fetched
            if age >= (self._refresh_seconds if refresh else 60.0) or not self._keys:
                self._keys = {
                    str(jwk["kid"]): import_public_jwk(jwk) for jwk in self._source.jwks()["keys"]
                }
                self._fetched = time.monotonic()
            return self._keys


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = json.loads(payload)
    except ValueError:
        raise InvalidTokenError(_REFUSED, "payload is not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidTokenError(_REFUSED, "payload is not a JSON object")
    return claims
