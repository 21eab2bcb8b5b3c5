"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3; RFC 7521 §4.2).

The client signs a short-lived JWT with a private key whose public half is
registered for it (``interlock clients create CLIENT --public-key FILE``):
``iss`` = ``sub`` = the client id, ``aud`` = the issuer identifier as its
sole value, ``exp`` at most five minutes ahead, and a ``jti`` that is accepted
once — a replayed assertion is refused on every replica (the ``jti`` goes
through :class:`interlock.replay.seen.SeenOnce`).

draft-ietf-oauth-rfc7523bis (updating RFC 7521, 7523): an assertion whose
audience is the token endpoint URL, or that names several audiences, can be
replayed by one server it was made for at another (the audience-injection
attack); so the issuer identifier is the only accepted audience, alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Protocol

from joserfc.util import urlsafe_b64decode

from interlock.config.manifest import Manifest
from interlock.crypto.jose import (
    MAX_TOKEN_BYTES,
    PublicKey,
    json_object,
    unverified_header,
    verify_compact_with_key,
)
from interlock.errors import AuthenticationError, InvalidTokenError
from interlock.replay.seen import SeenOnce

__all__ = ["ASSERTION_TYPE", "ClientAssertions", "ClientKeySource"]

ASSERTION_TYPE: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_LIFETIME: Final = 300.0  # seconds between now and exp
LEEWAY: Final = 30.0
# RFC 7523 sets no typ; "JWT" and the draft's explicit type are accepted, other
# explicitly typed JWTs (access tokens, DPoP proofs) are not assertions.
_TYPES: Final = frozenset({None, "JWT", "client-authentication+jwt"})
_REFUSED: Final = "client authentication failed"


class ClientKeySource(Protocol):
    """Where the registered public keys of clients come from."""

    manifest: Manifest

    def public_keys(self, client: str) -> Mapping[str, tuple[str, PublicKey]]:
        """kid -> (alg, key) of the client's active keys."""
        ...


class ClientAssertions:
    """Authenticates clients by signed JWT assertions."""

    def __init__(
        self,
        keys: ClientKeySource,
        seen: SeenOnce,
        issuer: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Accept assertions whose sole audience is ``issuer`` (RFC 7523bis)."""
        self.keys = keys
        self._seen = seen
        self.issuer = issuer
        self._clock = clock

    @staticmethod
    def claimed_client(assertion: str) -> str | None:
        """The client the assertion claims to come from (``sub``), before any check."""
        if len(assertion) > MAX_TOKEN_BYTES:
            return None  # the size cap comes before any parsing
        try:
            claims = json_object(urlsafe_b64decode(assertion.split(".")[1].encode("ascii")))
        except (IndexError, ValueError, UnicodeError, InvalidTokenError):
            return None
        sub = claims.get("sub")
        return sub if isinstance(sub, str) and sub else None

    def authenticate(self, client_id: str, assertion: str) -> str:
        """``client_id`` if ``assertion`` is a valid, unused assertion signed by one of its keys."""
        try:
            header = unverified_header(assertion)
        except InvalidTokenError as exc:
            raise AuthenticationError(_REFUSED, exc.reason) from None
        if header.get("typ") not in _TYPES:
            raise AuthenticationError(_REFUSED, f"assertion typ {header.get('typ')!r}")
        registered = self.keys.public_keys(client_id)
        kid = header.get("kid")
        # Without a kid, each of the client's (at most a handful of) keys is tried.
        if kid is None:
            candidates = list(registered.values())
        else:
            found = registered.get(kid) if isinstance(kid, str) else None
            candidates = [found] if found is not None else []
        payload: bytes | None = None
        for alg, key in candidates:
            try:
                payload = verify_compact_with_key(assertion, key, frozenset({alg}))[1]
                break
            except InvalidTokenError:
                continue
        if payload is None:
            raise AuthenticationError(_REFUSED, "no registered key verifies the assertion")
        self._check_claims(client_id, _claims(payload))
        return client_id

    def _check_claims(self, client_id: str, claims: Mapping[str, Any]) -> None:
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise AuthenticationError(_REFUSED, "iss and sub must both be the client id")
        # RFC 7523bis §4: the issuer identifier as the sole audience value; a one-item
        # array says the same (RFC 7519 §4.1.3). Not the token endpoint, not several.
        audience = claims.get("aud")
        if audience not in (self.issuer, [self.issuer]):
            raise AuthenticationError(
                _REFUSED, "assertion audience is not this issuer alone (RFC 7523bis)"
            )
        now = self._clock()
        exp = claims.get("exp")
        if not isinstance(exp, int) or exp <= now - LEEWAY:
            raise AuthenticationError(_REFUSED, "assertion missing exp or expired")
        if exp > now + MAX_LIFETIME + LEEWAY:
            raise AuthenticationError(_REFUSED, "assertion lives longer than 5 minutes")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is not None and (not isinstance(value, int) or value > now + LEEWAY):
                raise AuthenticationError(_REFUSED, f"assertion {name} in the future")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= 256:
            raise AuthenticationError(_REFUSED, "assertion without a jti")
        until = datetime.fromtimestamp(exp + LEEWAY, UTC)
        if not self._seen.first_use("client-assertion", f"{client_id}:{jti}", until):
            raise AuthenticationError(_REFUSED, "assertion jti used before (replay)")


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        return json_object(payload, "assertion payload")
    except InvalidTokenError as exc:
        raise AuthenticationError(_REFUSED, exc.reason) from None
