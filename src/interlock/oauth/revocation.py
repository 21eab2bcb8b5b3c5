"""Revocation (RFC 7009) and introspection (RFC 7662) on top of the verifier."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from interlock.errors import InvalidTokenError
from interlock.oauth.revoked import RevokedTokens
from interlock.oauth.tokens import AccessTokenVerifier

__all__ = ["TokenRevocations"]


class TokenRevocations:
    """Revoke and introspect our own access tokens."""

    def __init__(self, verifier: AccessTokenVerifier, revoked: RevokedTokens) -> None:
        """Use ``verifier`` to read tokens and ``revoked`` to record revocations."""
        self._verifier = verifier
        self._revoked = revoked

    def revoke(self, token: str, client_id: str) -> bool:
        """Revoke ``token`` if it is valid and was issued to ``client_id``."""
        try:
            claims = self._verifier.claims(token)
        except InvalidTokenError:
            return False
        if claims.get("client_id") != client_id:
            return False
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC)
        self._revoked.add(str(claims["jti"]), client_id, expires)
        return True

    def introspect(self, token: str, caller: str, *, any_client: bool) -> dict[str, Any]:
        """RFC 7662 §2.2: the token's state, as far as ``caller`` may learn it.

        ``{"active": false}`` for anything not currently valid, and (§4) for a
        valid token of another client unless ``any_client`` (the manifest's
        ``introspection: all``): the same answer, so the caller cannot tell
        a foreign token from a dead one.
        """
        try:
            claims = self._verifier.claims(token)
        except InvalidTokenError:
            return {"active": False}
        if not any_client and claims.get("client_id") != caller:
            return {"active": False}
        keep = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "jti", "cnf")
        return {
            "active": True,
            # RFC 9449 §6.2: a bound token introspects as DPoP, with its cnf.
            "token_type": "DPoP" if "cnf" in claims else "Bearer",
            **{k: claims[k] for k in keep if k in claims},
        }
