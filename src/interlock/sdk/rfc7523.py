"""``private_key_jwt`` client authentication (RFC 7523 §2.2, §3) on Authlib's ``PrivateKeyJWT``.

Authlib builds and signs the assertion (through joserfc): ``iss`` = ``sub`` =
the client id, ``aud``, ``iat``, ``exp`` and a random ``jti``. We change two
things. The audience is the authorization server's issuer identifier, alone
and as a string (draft-ietf-oauth-rfc7523bis: Authlib's default, the token
endpoint URL, lets an assertion made for one server be replayed at another;
Interlock refuses it). And the lifetime: Authlib's default ``exp`` is an hour
ahead, we use :data:`ASSERTION_LIFETIME` (RFC 7523 §3 item 4 leaves the limit to
the server; Interlock refuses more than five minutes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from authlib.oauth2.rfc7523 import (  # type: ignore[import-untyped]
    PrivateKeyJWT,
    private_key_jwt_sign,
)
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

__all__ = [
    "ASSERTION_LIFETIME",
    "TOKEN_PATH",
    "ClientKey",
    "ClientKeyInput",
    "ShortLivedPrivateKeyJWT",
    "load_client_key",
]

ASSERTION_LIFETIME: Final = 60  # seconds from iat to exp
TOKEN_PATH: Final = "/oauth2/token"  # noqa: S105  (a URL path: the token endpoint under the issuer)
_MIN_RSA_BITS: Final = 2048  # NIST SP 800-131A; the gateway refuses shorter keys

ClientKey = ECKey | OKPKey | RSAKey
#: A joserfc key, a private JWK (dict), or a PEM-encoded private key.
ClientKeyInput = ClientKey | Mapping[str, Any] | bytes | str


def load_client_key(value: ClientKeyInput) -> tuple[ClientKey, str]:
    """The private key and the JWS algorithm it signs with (ES256, Ed25519 or RS256).

    The allow-list matches the gateway's: EC keys on P-256, Ed25519 keys, and
    RSA keys of at least 2048 bits. Anything else raises :class:`ValueError`.
    """
    key = value if isinstance(value, ECKey | OKPKey | RSAKey) else _import(value)
    if not key.is_private:
        raise ValueError("private_key must be a private key")
    if isinstance(key, ECKey) and key.curve_name == "P-256":
        return key, "ES256"
    if isinstance(key, OKPKey) and key.curve_name == "Ed25519":
        return key, "Ed25519"
    if isinstance(key, RSAKey) and key.private_key is not None:
        if key.private_key.key_size < _MIN_RSA_BITS:
            raise ValueError(f"RSA keys shorter than {_MIN_RSA_BITS} bits are refused")
        return key, "RS256"
    raise ValueError("private_key must be an EC P-256, Ed25519 or RSA key")


def _import(value: Mapping[str, Any] | bytes | str) -> ClientKey:
    if isinstance(value, Mapping):
        kinds = [value.get("kty")]
        data: dict[str, Any] | bytes = dict(value)
    else:
        kinds = ["EC", "OKP", "RSA"]
        data = value.encode() if isinstance(value, str) else value
    for kind in kinds:
        try:
            if kind == "EC":
                return ECKey.import_key(data)
            if kind == "OKP":
                return OKPKey.import_key(data)
            if kind == "RSA":
                return RSAKey.import_key(data)
        except (JoseError, ValueError, TypeError):
            continue
    # The message names no part of the input: it is key material.
    raise ValueError("private_key is not a usable EC, OKP or RSA private key")


class ShortLivedPrivateKeyJWT(PrivateKeyJWT):  # type: ignore[misc]  # Authlib is untyped
    """Authlib's ``PrivateKeyJWT``: a 60-second assertion for the issuer, with the key's ``kid``."""

    def __init__(self, issuer: str, alg: str, kid: str | None) -> None:
        """Sign for ``issuer`` (the sole audience) with ``alg``; name ``kid`` if given."""
        super().__init__(issuer, alg=alg)
        self._issuer = issuer
        self._kid = kid

    def sign(self, auth: Any, token_endpoint: str) -> str:
        """A fresh assertion (new ``jti``, ``exp`` = ``iat`` + 60 s) for one token request.

        ``token_endpoint`` is where it is sent; the audience is the issuer all the same.
        """
        # Authlib mutates the header and claims it is given, so both are fresh
        # per call; a shared claims dict would freeze the first jti (a replay).
        header = {"kid": self._kid} if self._kid else None
        assertion: str = private_key_jwt_sign(
            auth.client_secret,
            client_id=auth.client_id,
            # Authlib's name for the aud value (RFC 7523bis: the issuer identifier).
            token_endpoint=self._issuer,
            alg=self.alg,
            header=header,
            expires_in=ASSERTION_LIFETIME,
        )
        return assertion
