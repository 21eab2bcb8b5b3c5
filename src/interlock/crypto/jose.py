"""JWS signing and verification (RFC 7515, 7518, 8037) on joserfc, behind our policy.

The groundwork for the OAuth issue: everything that signs or verifies a token
goes through here, so the rules of RFC 8725 ("JWT Best Current Practices")
are enforced in one place:

* an explicit algorithm allow-list (ES256, Ed25519, RS256); ``none`` and every
  HMAC algorithm are refused outright, so a public key can never be used as an
  HMAC secret (RFC 8725 §2.1, §3.1);
* the key is chosen by the *caller* from keys it already trusts, by ``kid``;
  key material or key locations carried in the token (``jwk``, ``jku``,
  ``x5c``, ``x5u``) are never used or fetched (RFC 8725 §3.10 on ``jku``);
* a ``crit`` header naming anything is refused (RFC 7515 §4.1.11: we
  understand no extensions);
* a size cap applies before any parsing, and JSON nested past the parser's
  recursion limit is a refusal like any other malformed input;
* the key is bound to the algorithm before any signature check (RFC 7518
  §3.1, §3.4; RFC 9864): ES256 only with a P-256 key, ES384 with P-384,
  Ed25519 with an Ed25519 key, RS256/PS256 with RSA of at least 2048 bits;
  a key whose ``use`` is not ``sig``, whose ``key_ops`` lack ``verify`` or
  whose ``alg`` names another algorithm verifies nothing (RFC 7517 §4.2-4.4);
  these checks depend on the key and the algorithm only, so they are made once
  per pair and remembered with the key, not repeated for every token.

Failures raise :class:`InvalidTokenError` with one opaque message; the reason
is available to the caller for its log only.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import json
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Generic, NamedTuple, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from joserfc import jws
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwa import ESAlgorithm
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from joserfc.util import urlsafe_b64decode, urlsafe_b64encode

from interlock.errors import InvalidTokenError

__all__ = [
    "ALLOWED_ALGORITHMS",
    "MAX_TOKEN_BYTES",
    "SIGNING_ALGORITHMS",
    "KeyChoice",
    "PublicKey",
    "SigningKey",
    "UnverifiedJWS",
    "generate_signing_key",
    "import_public_jwk",
    "json_object",
    "load_private_jwk",
    "private_jwk",
    "public_jwk",
    "sign_compact",
    "sign_signature",
    "split_unverified",
    "unverified_header",
    "verify_chosen",
    "verify_compact",
    "verify_compact_with_key",
    "verify_signature",
    "verify_split",
    "verify_with_embedded_jwk",
]

# "Ed25519" rather than the polymorphic "EdDSA", which RFC 9864 deprecates.
# What Interlock signs with (its tokens) and accepts from its clients (DPoP proofs,
# private_key_jwt assertions).
SIGNING_ALGORITHMS: Final = frozenset({"ES256", "Ed25519", "RS256"})
# What a verification may ever accept: the above, and what external issuers use
# besides (FAPI 2.0 names PS256 and ES256; Keycloak and Auth0 offer ES384 and PS256).
ALLOWED_ALGORITHMS: Final = SIGNING_ALGORITHMS | {"ES384", "PS256"}
MAX_TOKEN_BYTES: Final = 8192
MIN_RSA_BITS: Final = 2048  # NIST SP 800-131A, RFC 7518 §3.3
_UNTRUSTED_HEADERS: Final = frozenset({"jwk", "jku", "x5c", "x5u"})
_REFUSED: Final = "the token is invalid"

SigningKey = ECKey | OKPKey | RSAKey
PublicKey = ECKey | OKPKey | RSAKey
_Chosen = TypeVar("_Chosen")
# (header, encoded payload) -> (key, its algorithms, the caller's own value): see verify_chosen.
KeyChoice = Callable[[Mapping[str, Any], str], tuple[PublicKey, frozenset[str], _Chosen]]


def generate_signing_key(alg: str) -> SigningKey:
    """A fresh private key for ``alg``, with its RFC 7638 thumbprint as ``kid``."""
    _check_alg(alg, SIGNING_ALGORITHMS)
    key: SigningKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    elif alg == "Ed25519":
        key = OKPKey.generate_key("Ed25519", private=True)
    else:
        key = RSAKey.generate_key(3072, private=True)
    key.ensure_kid()
    return key


def public_jwk(key: SigningKey, alg: str) -> dict[str, Any]:
    """The public half as a JWK for a JWKS document (``kid``, ``alg``, ``use``)."""
    key.ensure_kid()
    document = key.as_dict(private=False)
    document.update({"alg": alg, "use": "sig"})
    return document


def private_jwk(key: SigningKey) -> bytes:
    """The private JWK as JSON bytes, for sealing (never store or log it in clear)."""
    key.ensure_kid()
    return json.dumps(key.as_dict(private=True)).encode()


def load_private_jwk(data: bytes) -> SigningKey:
    """A signing key from :func:`private_jwk` output."""
    key = JWKRegistry.import_key(json.loads(data))
    if not isinstance(key, ECKey | OKPKey | RSAKey) or not key.is_private:
        raise InvalidTokenError(_REFUSED, "not a private signing key")
    key.ensure_kid()
    return key


def import_public_jwk(document: Mapping[str, Any]) -> PublicKey:
    """A public key from a JWK; private members are refused (a JWKS holds none)."""
    if any(member in document for member in ("d", "p", "q", "dp", "dq", "qi", "k")):
        raise InvalidTokenError(_REFUSED, "a public JWK carries private or symmetric members")
    try:
        with warnings.catch_warnings():
            # What joserfc only warns about (an RSA key under 2048 bits) is refused here.
            warnings.simplefilter("error", SecurityWarning)
            key = JWKRegistry.import_key(dict(document))
    except SecurityWarning as warning:
        raise InvalidTokenError(_REFUSED, f"weak key: {warning}") from None
    except (JoseError, ValueError, TypeError, KeyError) as exc:  # KeyError: an unknown crv
        raise InvalidTokenError(_REFUSED, f"unusable JWK: {type(exc).__name__}") from None
    if not isinstance(key, ECKey | OKPKey | RSAKey):
        raise InvalidTokenError(_REFUSED, "only EC, OKP and RSA public keys are accepted")
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        raise InvalidTokenError(_REFUSED, f"RSA keys shorter than {MIN_RSA_BITS} bits are refused")
    return key


def verify_signature(alg: str, key: PublicKey, signing_input: bytes, signature: bytes) -> bool:
    """The algorithm-level check: does ``signature`` over ``signing_input`` verify?

    False, never an exception, for a key ``alg`` does not name: another type or
    curve (RFC 7518 §3.4 binds ES256 to P-256, RFC 9864 Ed25519 to its curve),
    RSA under 2048 bits, or a JWK whose ``use``, ``key_ops`` or ``alg`` says
    it is not a key for verifying ``alg`` signatures (RFC 7517 §4.2-4.4).
    """
    check = _signature_check(alg, key)
    return check is not None and check(signing_input, signature)


_SignatureCheck = Callable[[bytes, bytes], bool]


def _signature_check(alg: str, key: PublicKey) -> _SignatureCheck | None:
    """The check of ``alg`` signatures by ``key``, or ``None`` if ``key`` may not verify them.

    The key checks depend on the key and ``alg`` only, so they are made once
    per pair the caller keeps (a key set's keys, imported once and never
    modified) and the check is remembered with the key; a key seen once (a
    DPoP proof's ``jwk``) only pushes an older entry out.
    """
    return _CHECKS.get(alg, key, _new_signature_check)


def _new_signature_check(alg: str, key: PublicKey) -> _SignatureCheck | None:
    _check_alg(alg)
    algorithm = jws.JWSRegistry.algorithms[alg]
    try:
        # joserfc's own binding: key type, curve, "use": "sig" and the key's "alg";
        # and the key's "key_ops" must allow "verify".
        algorithm.check_key(key)
        native = key.get_op_key("verify")
    except JoseError:
        return None
    if isinstance(key, RSAKey) and key.public_key.key_size < MIN_RSA_BITS:
        return None
    if (
        isinstance(algorithm, ESAlgorithm)
        and isinstance(key, ECKey)
        and isinstance(native, ec.EllipticCurvePublicKey)
    ):
        return _ecdsa_check(native, key.curve_key_size, algorithm.hash_alg())

    def check(signing_input: bytes, signature: bytes) -> bool:
        try:
            return bool(algorithm.verify(signing_input, signature, key))
        except (JoseError, ValueError, TypeError):  # odd lengths
            return False

    return check


def _ecdsa_check(
    native: ec.EllipticCurvePublicKey, key_size: int, hash_alg: hashes.HashAlgorithm
) -> _SignatureCheck:
    # joserfc's ESAlgorithm.verify with its per-call work done once: the JWS
    # signature is R || S of the curve's size (RFC 7518 §3.4), which
    # `cryptography` takes as DER; the ECDSA(hash) object is built once.
    # The same check on hashlib's digest of the signing input (Prehashed, the
    # library's own way to pass a digest): 0.35 µs less per token than letting
    # `cryptography` build its Hash object for every call.
    length = (key_size + 7) // 8
    verify = native.verify
    digest = getattr(hashlib, hash_alg.name)  # sha256, sha384: ES256, ES384
    ecdsa = ec.ECDSA(Prehashed(hash_alg))

    def check(signing_input: bytes, signature: bytes) -> bool:
        if len(signature) != 2 * length:
            return False
        r = int.from_bytes(signature[:length])
        s = int.from_bytes(signature[length:])
        try:
            verify(encode_dss_signature(r, s), digest(signing_input).digest(), ecdsa)
        except (InvalidSignature, ValueError):
            return False
        return True

    return check


_Made = TypeVar("_Made")


class _PerKey(Generic[_Made]):
    """What is made once per algorithm and key object, remembered with the key.

    The entry holds the key, so its ``id`` is not reused while remembered;
    bounded, the oldest entry out first.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: dict[tuple[str, int], tuple[object, _Made]] = {}
        self._lock = threading.Lock()

    def get(self, alg: str, key: Any, make: Callable[[str, Any], _Made]) -> _Made:
        """The value for ``alg`` and ``key``, ``make(alg, key)`` the first time."""
        entry = self._entries.get((alg, id(key)))
        if entry is not None and entry[0] is key:
            return entry[1]
        made = make(alg, key)
        with self._lock:
            while len(self._entries) >= self._size:
                del self._entries[next(iter(self._entries))]
            self._entries[(alg, id(key))] = (key, made)
        return made


_CHECKS: Final[_PerKey[_SignatureCheck | None]] = _PerKey(256)


def sign_signature(alg: str, key: SigningKey, signing_input: bytes) -> bytes:
    """The JWS signature (RFC 7515 §5.1 step 5) of ``signing_input`` with ``key`` for ``alg``.

    For a caller that builds its own protected header (the messaging envelope);
    :func:`sign_compact` otherwise. ``alg`` must be one of the signing algorithms.
    """
    _check_alg(alg, SIGNING_ALGORITHMS)
    return _signer(alg, key)(signing_input)


def sign_compact(
    payload: bytes, key: SigningKey, alg: str, header: Mapping[str, Any] | None = None
) -> str:
    """A compact JWS of ``payload`` (RFC 7515 §7.1); ``kid`` is the key's thumbprint.

    The signature is joserfc's algorithm for ``alg`` (for ECDSA the same
    computation with its per-call work done once, :func:`_signer`); the
    protected header of a given key and ``typ`` is encoded once and reused.
    """
    _check_alg(alg, SIGNING_ALGORITHMS)
    key.ensure_kid()
    protected = {**(header or {}), "alg": alg, "kid": key.kid}
    encoded_header = _encoded_header(_COMPACT_JSON.encode(protected))
    signing_input = f"{encoded_header}.{urlsafe_b64encode(payload).decode('ascii')}"
    signature = _signer(alg, key)(signing_input.encode("ascii"))
    return f"{signing_input}.{urlsafe_b64encode(signature).decode('ascii')}"


_Sign = Callable[[bytes], bytes]


def _signer(alg: str, key: SigningKey) -> _Sign:
    """The signing function of ``alg`` with ``key``, made once per pair and remembered.

    Keyed like :func:`_signature_check` (the entry holds the key, so its id is
    not reused while remembered); the signing keys are few and long-lived.
    """
    return _SIGNERS.get(alg, key, _new_signer)


def _new_signer(alg: str, key: SigningKey) -> _Sign:
    algorithm = jws.JWSRegistry.algorithms[alg]
    if isinstance(algorithm, ESAlgorithm) and isinstance(key, ECKey):
        try:
            # joserfc's own binding (key type, curve, "use", "alg") and "key_ops" allowing
            # "sign", checked once; a key that fails them signs through joserfc as before.
            algorithm.check_key(key)
            native = key.get_op_key("sign")
        except JoseError:
            native = None
        if isinstance(native, ec.EllipticCurvePrivateKey):
            return _ecdsa_signer(native, key.curve_key_size, algorithm.hash_alg())

    def sign(signing_input: bytes) -> bytes:
        return bytes(algorithm.sign(signing_input, key))

    return sign


def _ecdsa_signer(
    native: ec.EllipticCurvePrivateKey, key_size: int, hash_alg: hashes.HashAlgorithm
) -> _Sign:
    # joserfc's ESAlgorithm.sign with its per-call work done once: the key's
    # `cryptography` object (get_op_key checks "key_ops" on every call), the
    # ECDSA(hash) object, and R || S of the curve's size (RFC 7518 §3.4) from
    # int.to_bytes instead of hex formatting; the digest from hashlib (Prehashed,
    # as _ecdsa_check). The signature is still `cryptography`'s ECDSA.
    length = (key_size + 7) // 8
    sign = native.sign
    digest = getattr(hashlib, hash_alg.name)  # sha256, sha384: ES256, ES384
    ecdsa = ec.ECDSA(Prehashed(hash_alg))

    def signer(signing_input: bytes) -> bytes:
        r, s = decode_dss_signature(sign(digest(signing_input).digest(), ecdsa))
        return r.to_bytes(length) + s.to_bytes(length)

    return signer


_SIGNERS: Final[_PerKey[_Sign]] = _PerKey(64)


# json.dumps with separators builds a new encoder per call; the same output from one.
_COMPACT_JSON: Final = json.JSONEncoder(separators=(",", ":"))


@functools.lru_cache(maxsize=64)
def _encoded_header(serialised: str) -> str:
    return urlsafe_b64encode(serialised.encode()).decode("ascii")


class UnverifiedJWS(NamedTuple):
    """A compact JWS split in three, its protected header parsed: *nothing* is checked yet."""

    header: Mapping[str, Any]
    parts: tuple[str, str, str]


def split_unverified(token: str) -> UnverifiedJWS:
    """The size cap, the three parts and the protected header of a compact JWS (RFC 7515 §7.1).

    For a caller that picks the key by the header (``kid``) and then verifies
    with :func:`verify_split`, so the token is split and its header read once.
    """
    encoded_header, encoded_payload, encoded_signature = _parts(token)
    return UnverifiedJWS(
        _header(encoded_header), (encoded_header, encoded_payload, encoded_signature)
    )


def verify_chosen(
    token: str, choose: KeyChoice[_Chosen]
) -> tuple[Mapping[str, Any], bytes, _Chosen]:
    """Verify a compact JWS with the key ``choose`` picks from its unverified header.

    ``choose(header, encoded_payload)`` returns the key, the algorithms it may
    verify and a value of its own (returned with the read-only header and the
    payload), or raises; the checks are :func:`verify_split`'s. The token
    verifier's path: one split, no intermediate :class:`UnverifiedJWS`.
    """
    parts = _parts(token)
    header = _header(parts[0])
    key, algorithms, chosen = choose(header, parts[1])
    return header, _verified_payload(header, parts, key, algorithms), chosen


def _parts(token: str) -> list[str]:
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidTokenError(_REFUSED, f"token larger than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError(_REFUSED, "not a compact JWS")
    return parts


def verify_compact(
    token: str,
    keys: Mapping[str, PublicKey],
    algorithms: frozenset[str] = ALLOWED_ALGORITHMS,
) -> tuple[dict[str, Any], bytes]:
    """Verify a compact JWS against ``keys`` (by ``kid``); returns header and payload.

    Claims are *not* checked here; that is a separate step (RFC 9068, RFC 7519).
    The signature is checked by joserfc's algorithm for ``alg``; the compact
    form is split here (RFC 7515 §7.1) so that a verification costs little
    more than the signature check itself.
    """
    split = split_unverified(token)
    kid = split.header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        # jwk/jku/x5c/x5u are deliberately never consulted: keys come only from `keys`.
        _check_header(split.header, algorithms)
        raise InvalidTokenError(_REFUSED, "unknown kid")
    header, payload = verify_split(split, keys[kid], algorithms)
    return dict(header), payload


def verify_compact_with_key(
    token: str, key: PublicKey, algorithms: frozenset[str]
) -> tuple[dict[str, Any], bytes]:
    """As :func:`verify_compact`, with one key the caller chose (any ``kid`` is ignored)."""
    header, payload = verify_split(split_unverified(token), key, algorithms)
    return dict(header), payload


def verify_split(
    split: UnverifiedJWS, key: PublicKey, algorithms: frozenset[str]
) -> tuple[Mapping[str, Any], bytes]:
    """Verify a :func:`split_unverified` token with ``key``: the (read-only) header and payload.

    The header's ``alg`` must be in ``algorithms`` and allowed here, and it may
    name no ``crit`` extension; then the signature is checked.
    """
    header = split.header
    return header, _verified_payload(header, split.parts, key, algorithms)


def _verified_payload(
    header: Mapping[str, Any], parts: Sequence[str], key: PublicKey, algorithms: frozenset[str]
) -> bytes:
    # The payload of a compact JWS whose header passes _check_header, signed by key.
    alg = _check_header(header, algorithms)
    encoded_header, encoded_payload, encoded_signature = parts
    try:
        payload = _b64url_decode(encoded_payload)
        signature = _b64url_decode(encoded_signature)
    except (binascii.Error, UnicodeEncodeError):
        raise InvalidTokenError(_REFUSED, "malformed base64url") from None
    check = _signature_check(alg, key)
    if check is None or not check(f"{encoded_header}.{encoded_payload}".encode("ascii"), signature):
        raise InvalidTokenError(_REFUSED, "signature check failed")
    return payload


def _check_header(header: Mapping[str, Any], algorithms: frozenset[str]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in ALLOWED_ALGORITHMS:
        raise InvalidTokenError(_REFUSED, f"algorithm {alg!r} is not allowed")
    if "crit" in header:
        raise InvalidTokenError(_REFUSED, "critical header extensions are not understood")
    return alg


# joserfc's urlsafe_b64decode, the same answer for every input (a property test in
# tests/crypto/test_jose_shortcuts.py), without its bytes searches: "+", "/" and "="
# are not base64url and become a character the strict decoder refuses; the padding
# is added after that translation.
_B64URL_TO_B64: Final = bytes.maketrans(b"-_+/=", b"+/!!!")
_PADDING: Final = (b"", b"=", b"==")
# RFC 4648 §3.5 canonical encoding: the bits after the last full byte are zero
# (by the padding the text needs; a text of 4n + 1 characters is never base64).
_CANONICAL_LAST: Final = (b"", b"AEIMQUYcgkosw048", b"AQgw")


def _b64url_decode(text: str) -> bytes:
    """Base64url without padding (RFC 7515 §2), strict: as joserfc's ``urlsafe_b64decode``."""
    data = text.encode("ascii")
    pad = -len(data) % 4
    if pad and (pad == 3 or data[-1] not in _CANONICAL_LAST[pad]):
        raise binascii.Error("not canonical base64url")
    return binascii.a2b_base64(data.translate(_B64URL_TO_B64) + _PADDING[pad], strict_mode=True)


def verify_with_embedded_jwk(
    token: str, typ: str, algorithms: frozenset[str] = ALLOWED_ALGORITHMS
) -> tuple[dict[str, Any], bytes, str]:
    """Verify a self-signed JWS whose ``jwk`` header carries its public key (RFC 9449 §4.2).

    Only for proofs of possession: the key proves nothing about *who* signed,
    only that the signer holds it; the caller compares the returned RFC 7638
    thumbprint with the key the token is bound to. ``typ`` must match exactly.
    """
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidTokenError(_REFUSED, f"token larger than {MAX_TOKEN_BYTES} bytes")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError(_REFUSED, "not a compact JWS")
    try:
        decoded_header = urlsafe_b64decode(parts[0].encode("ascii"))
        payload = urlsafe_b64decode(parts[1].encode("ascii"))
        signature = urlsafe_b64decode(parts[2].encode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidTokenError(_REFUSED, "malformed compact JWS") from None
    header = json_object(decoded_header, "protected header")
    if header.get("typ") != typ:
        raise InvalidTokenError(_REFUSED, f"typ is not {typ}")
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in ALLOWED_ALGORITHMS:
        raise InvalidTokenError(_REFUSED, f"algorithm {alg!r} is not allowed")
    if "crit" in header:
        raise InvalidTokenError(_REFUSED, "critical header extensions are not understood")
    document = header.get("jwk")
    if not isinstance(document, dict):
        raise InvalidTokenError(_REFUSED, "no jwk header")
    key = import_public_jwk(document)  # refuses private and symmetric members
    # A key of one proof: checked on its own, never remembered (see _signature_check).
    check = _new_signature_check(alg, key)
    if check is None or not check(f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        raise InvalidTokenError(_REFUSED, "signature check failed")
    return header, payload, key.thumbprint()


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, *before* any check (to pick a verifier)."""
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidTokenError(_REFUSED, f"token larger than {MAX_TOKEN_BYTES} bytes")
    return dict(_header(token.split(".", 1)[0]))


@functools.lru_cache(maxsize=256)
def _header(encoded: str) -> Mapping[str, Any]:
    # Tokens signed by one key share one header segment: parse it once.
    try:
        decoded = urlsafe_b64decode(encoded.encode("ascii"))
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidTokenError(_REFUSED, "malformed protected header") from None
    header = json_object(decoded, "protected header")
    if _UNTRUSTED_HEADERS & header.keys():
        # Present but ignored: noted for the log, never used.
        header = {k: v for k, v in header.items() if k not in _UNTRUSTED_HEADERS}
    return MappingProxyType(header)


_DECODER: Final = json.JSONDecoder()


def json_object(data: bytes, what: str = "payload") -> dict[str, Any]:
    """``data`` parsed as a JSON object; anything else is :class:`InvalidTokenError`.

    Nesting past the parser's recursion limit is refused like any malformed
    input (it raised ``RecursionError``, an unhandled 500), as are bytes that
    are not UTF-8.
    """
    try:
        parsed = _loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise InvalidTokenError(_REFUSED, f"{what} is not JSON") from None
    if not isinstance(parsed, dict):
        raise InvalidTokenError(_REFUSED, f"{what} is not a JSON object")
    return parsed


def _loads(data: bytes) -> Any:
    """``json.loads(data)``; quicker for UTF-8 text that is one JSON value end to end.

    That is a token's payload: ``raw_decode`` from the first character, taking
    the whole text, gives what ``json.loads`` gives without its encoding
    detection and whitespace scans. Anything else (leading or trailing
    whitespace, a byte order mark, UTF-16, an error) goes to ``json.loads``.
    """
    try:
        text = data.decode()
        parsed, end = _DECODER.raw_decode(text)
    except (ValueError, RecursionError):
        return json.loads(data)
    return parsed if end == len(text) else json.loads(data)


def _check_alg(alg: str, allowed: frozenset[str] = ALLOWED_ALGORITHMS) -> None:
    if alg not in allowed:
        raise InvalidTokenError(_REFUSED, f"algorithm {alg!r} is not allowed")
