"""What a client's public key must be before anyone registers it (RFC 7517, 7518, 7638).

An allow-list: EC P-256 (ES256), OKP Ed25519 (Ed25519) or RSA of 2048 to 8192
bits (RS256); public members only; a key meant for signatures. The stored
document holds the RFC 7638 required members, ``alg``, ``use`` and the
thumbprint as ``kid``, so a key is known by what it is, not by a name its
holder chose.
"""

from __future__ import annotations

import binascii
import json
import warnings
from collections.abc import Mapping
from typing import Any, Final

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, OKPKey
from joserfc.util import urlsafe_b64decode

from interlock.crypto.jose import MIN_RSA_BITS, SIGNING_ALGORITHMS, import_public_jwk
from interlock.errors import InvalidRequestError, InvalidTokenError

__all__ = ["MAX_JWK_BYTES", "MAX_RSA_BITS", "jwk_from_pem", "public_key_document"]

MAX_JWK_BYTES: Final = 8192  # an 8192-bit RSA JWK is about 1.5 KiB
MAX_RSA_BITS: Final = 8192  # bounds the cost of each verification
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "k")  # RFC 7518 §6.2.2, §6.3.2, §6.4
# key type -> (allowed curve, the only algorithm for it); RFC 8725 §3.1: the key fixes the alg.
_ALGORITHM: Final = {
    "EC": ("P-256", "ES256"),
    "OKP": ("Ed25519", "Ed25519"),
    "RSA": (None, "RS256"),
}
# RFC 7638 §3.2: the required members, which are all we store.
_MEMBERS: Final = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}


def jwk_from_pem(pem: bytes) -> dict[str, Any]:
    """The JWK of a PEM public key (SubjectPublicKeyInfo), parsed by joserfc.

    A private key is refused: the server must never receive one.
    """
    if len(pem) > MAX_JWK_BYTES:
        raise InvalidRequestError(f"a PEM public key is at most {MAX_JWK_BYTES} bytes")
    for key_type in _ALGORITHM:
        try:
            with warnings.catch_warnings():  # a short RSA key: refused by register(), not here
                warnings.simplefilter("ignore", SecurityWarning)
                key = JWKRegistry.import_key(pem, key_type)
        except (JoseError, ValueError, TypeError):
            continue
        if key.is_private:
            raise InvalidRequestError(
                "this is a private key; register the public key only (the private key "
                "never leaves the client)"
            )
        return dict(key.as_dict(private=False))
    raise InvalidRequestError("not a PEM public key of type EC, OKP or RSA")


def public_key_document(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical JWK to store (required members, alg, use, kid), after every check."""
    if not isinstance(jwk, Mapping):
        raise InvalidRequestError("a JWK is a JSON object")
    try:
        size = len(json.dumps(dict(jwk)))
    except (TypeError, ValueError):
        raise InvalidRequestError("a JWK is a JSON object") from None
    if size > MAX_JWK_BYTES:
        raise InvalidRequestError(f"a JWK is at most {MAX_JWK_BYTES} bytes")
    private = sorted(member for member in _PRIVATE_MEMBERS if member in jwk)
    if private:
        raise InvalidRequestError(
            f"the JWK carries private or symmetric members ({', '.join(private)}); "
            "register the public key only"
        )
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _ALGORITHM:
        raise InvalidRequestError(f"key type {kty!r} is not accepted; use EC, OKP or RSA")
    operations = jwk.get("key_ops", ["verify"])
    if (
        jwk.get("use", "sig") != "sig"
        or not isinstance(operations, list)
        or "verify" not in operations
    ):
        raise InvalidRequestError("the key is not meant for signatures (use / key_ops)")
    if kty == "RSA":
        _check_modulus(jwk.get("n"))
    try:
        key = import_public_jwk(jwk)
    except InvalidTokenError as exc:
        raise InvalidRequestError(f"unusable public key: {exc.reason}") from None
    curve, expected_alg = _ALGORITHM[kty]
    if isinstance(key, ECKey | OKPKey) and key.curve_name != curve:
        raise InvalidRequestError(f"curve {key.curve_name} is not accepted; use {curve}")
    alg = jwk.get("alg", expected_alg)
    if not isinstance(alg, str) or alg not in SIGNING_ALGORITHMS or alg != expected_alg:
        raise InvalidRequestError(f"alg {alg!r} does not fit this key; use {expected_alg}")
    document = {member: jwk[member] for member in _MEMBERS[kty]}
    return {**document, "alg": alg, "use": "sig", "kid": key.thumbprint()}


def _check_modulus(n: object) -> None:
    """RSA size bounds, checked before parsing (joserfc would only warn on a short key)."""
    try:
        bits = int.from_bytes(urlsafe_b64decode(str(n).encode("ascii"))).bit_length()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestError("unusable public key: malformed RSA modulus") from None
    if bits < MIN_RSA_BITS:
        raise InvalidRequestError(f"RSA keys shorter than {MIN_RSA_BITS} bits are refused")
    if bits > MAX_RSA_BITS:
        raise InvalidRequestError(f"RSA keys longer than {MAX_RSA_BITS} bits are refused")
