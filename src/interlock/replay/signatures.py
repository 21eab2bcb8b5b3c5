"""Verify signed requests (RFC 9421) and their body digests (RFC 9530), once each.

The signature base, the structured fields and the cryptography are the
``http-message-signatures`` library's (checked against RFC 9421's appendix B
examples by its tests and ours); this module adds the policy a gateway needs:

* exactly one signature, by a key registered to the calling client, with the
  algorithm of that key (an ``alg`` parameter must agree);
* it covers ``@method`` and ``@target-uri``, and a request with a body also
  ``content-digest``, whose value must match the body (``sha-256`` or
  ``sha-512``);
* ``created`` lies within the route's window (not older, not more than
  :data:`CLOCK_SKEW` in the future), and an ``expires`` has not passed, both
  on the injected clock (``now=``, :mod:`interlock.clock`): the library's own
  time checks run on that clock too, never on the system's;
* the ``nonce`` is accepted once per key within the window, across replicas
  (the replay store), and is recorded only after everything else verified,
  so a forgery cannot burn a client's nonces.

Every refusal is a :class:`SignatureRefused` with a reason code and a
detail fit for the caller (it names what was wrong, never key material).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, Protocol

import http_sf
import redis
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageVerifier,
    HTTPSignatureAlgorithm,
    HTTPSignatureKeyResolver,
    InvalidSignature,
)
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ED25519, HMAC_SHA256
from sqlalchemy.exc import SQLAlchemyError

from interlock.clock import Clock, utc_now
from interlock.errors import Refusal
from interlock.identity.client_keys import ResolvedKey
from interlock.replay.seen import SeenOnce

__all__ = [
    "CLOCK_SKEW",
    "REQUIRED_COMPONENTS",
    "ReplayStoreUnavailableError",
    "RequestSignatures",
    "SignatureKeys",
    "SignatureRefused",
    "SignedMessage",
    "VerifiedSignature",
    "verify_with_key",
]

CLOCK_SKEW: Final = timedelta(seconds=5)  # the library's tolerance for "in the future"
REQUIRED_COMPONENTS: Final = ("@method", "@target-uri")
MAX_NONCE: Final = 128
MAX_FIELD: Final = 8192  # Signature-Input and Signature together; one signature is ~200 bytes
_ALGORITHMS: Final[dict[str, type[HTTPSignatureAlgorithm]]] = {
    "ed25519": ED25519,
    "ecdsa-p256-sha256": ECDSA_P256_SHA256,
    "hmac-sha256": HMAC_SHA256,
}
_NONCE_PURPOSE: Final = "http-signature-nonce"

Reason = Literal[
    "missing",
    "malformed",
    "unknown-key",
    "other-client",
    "invalid",
    "stale",
    "future",
    "no-nonce",
    "replayed",
    "no-digest",
    "digest-mismatch",
]


class ReplayStoreUnavailableError(Refusal):
    """The nonce store cannot be reached: the request cannot be admitted (fail closed)."""

    def __init__(self, cause: str) -> None:
        """Refuse because the store failed with ``cause`` (an exception's type name)."""
        super().__init__(
            "replay-store-unavailable",
            "signed requests cannot be checked for replays at the moment; retry shortly",
            log_reason=f"replay store unavailable ({cause}; fail closed)",
        )


# The refusal code of each reason: a reused nonce and a body that is not the one
# signed say so; every other failure is one "invalid-signature".
_CODES: Final[dict[str, str]] = {
    "replayed": "replayed-request",
    "digest-mismatch": "content-digest-mismatch",
}


class SignatureRefused(Refusal):
    """A signed request was refused: ``reason`` for logs and metrics, ``detail`` for the caller."""

    def __init__(self, reason: Reason, detail: str) -> None:
        """Refuse for ``reason``."""
        super().__init__(
            _CODES.get(reason, "invalid-signature"), detail, log_reason=f"signature {reason}"
        )
        self.reason = reason


@dataclass(frozen=True)
class SignedMessage:
    """A request as the library reads it: method, absolute URL and every header field line."""

    method: str
    url: str
    headers: Any  # a multidict or any mapping whose items() yields every field line


@dataclass(frozen=True)
class VerifiedSignature:
    """What a valid signature vouched for."""

    keyid: str
    client: str
    alg: str
    created: datetime
    nonce: str | None
    covered: tuple[str, ...]


class _ClockedVerifier(HTTPMessageVerifier):
    """The library's verifier, its ``created``/``expires``/age checks on an injected clock.

    The library reads the system clock in ``validate_created_and_expires``; this
    is the same check, in the same order and with the same messages, on ``now``.
    """

    def __init__(
        self,
        *,
        signature_algorithm: type[HTTPSignatureAlgorithm],
        key_resolver: HTTPSignatureKeyResolver,
        now: Clock,
    ) -> None:
        super().__init__(signature_algorithm=signature_algorithm, key_resolver=key_resolver)
        self._now = now

    def validate_created_and_expires(
        self, sig_input: Any, max_age: timedelta | None = None
    ) -> None:
        """Refuse a ``created`` in the future, a passed ``expires``, an age over ``max_age``."""
        now = self._now()
        params = sig_input.params
        created = _timestamp(params["created"], "created") if "created" in params else None
        if created is not None and created > now + self.max_clock_skew:
            raise InvalidSignature('Signature "created" parameter is set to a time in the future')
        if created is None and (self.require_created or max_age is not None):
            raise InvalidSignature('Signature is missing a required "created" parameter')
        if "expires" in params and _timestamp(params["expires"], "expires") < (
            now - self.max_clock_skew
        ):
            raise InvalidSignature('Signature "expires" parameter is set to a time in the past')
        if (
            max_age is not None
            and created is not None
            and created + max_age < now - self.max_clock_skew
        ):
            raise InvalidSignature(f"Signature age exceeds maximum allowable age {max_age}")


def _timestamp(value: Any, name: str) -> datetime:
    if type(value) is not int:
        raise InvalidSignature(f'Parameter "{name}" must be a Structured Field Integer')
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise InvalidSignature(f'Malformed "{name}" parameter: {exc}') from exc


class _OneKey(HTTPSignatureKeyResolver):
    """Resolves exactly the key already chosen by its ``keyid``."""

    def __init__(self, key: ResolvedKey) -> None:
        self._key = key

    def resolve_public_key(self, key_id: str) -> Any:
        return self._key.key if key_id == self._key.keyid else None

    def resolve_private_key(self, key_id: str) -> Any:
        raise InvalidSignature("verification only")


def verify_with_key(
    message: SignedMessage,
    key: ResolvedKey,
    *,
    max_age: timedelta | None,
    required: Iterable[str] = REQUIRED_COMPONENTS,
    now: Clock = utc_now,
) -> tuple[dict[str, str], dict[str, Any]]:
    """Check the message's one signature with ``key``: (covered components, parameters).

    Raises :class:`SignatureRefused` (``invalid``) when it does not verify.
    ``max_age`` ``None`` skips the age check (for published examples); ``now``
    is the clock ``created``, ``expires`` and the age are checked against.
    """
    verifier = _ClockedVerifier(
        signature_algorithm=_ALGORITHMS[key.alg], key_resolver=_OneKey(key), now=now
    )
    try:
        (result,) = verifier.verify(message, max_age=max_age, require_components=tuple(required))
    except (InvalidSignature, HTTPMessageSignaturesException) as exc:
        raise SignatureRefused("invalid", _invalid_detail(str(exc))) from None
    return dict(result.covered_components), dict(result.parameters)


class SignatureKeys(Protocol):
    """Where a signature's ``keyid`` is looked up.

    The clients' registered keys (:class:`~interlock.identity.client_keys.ClientKeys`)
    at the gateway; a receiver's copy of Interlock's JWKS at a system Interlock signs
    requests to.
    """

    def resolve(self, keyid: str) -> ResolvedKey | None:
        """The active key of that id, or None."""
        ...


class RequestSignatures:
    """Verifies the signed requests of routes with a replay policy."""

    def __init__(self, keys: SignatureKeys, seen: SeenOnce, *, now: Clock = utc_now) -> None:
        """Keys from ``keys``; nonces single-use through ``seen`` (shared by replicas).

        ``now`` decides every signature's window and expiry (read once per request).
        """
        self.keys = keys
        self._seen = seen
        self._now = now

    def verify(
        self,
        message: SignedMessage,
        body: bytes,
        *,
        client: str,
        window: timedelta,
        nonce_required: bool,
    ) -> VerifiedSignature:
        """Verify the request's signature for ``client``, or raise :class:`SignatureRefused`."""
        params = _only_signature(message.headers)
        keyid = params.get("keyid")
        if not isinstance(keyid, str) or not keyid:
            raise SignatureRefused("malformed", "the signature has no keyid parameter")
        now = self._now()
        created = _created(params, window, now)
        nonce = params.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_NONCE):
            raise SignatureRefused(
                "malformed", f"the nonce is a string of 1 to {MAX_NONCE} characters"
            )
        if nonce is None and nonce_required:
            raise SignatureRefused("no-nonce", "this route needs a nonce in every signature")
        key = self.keys.resolve(keyid)
        if key is None:
            raise SignatureRefused("unknown-key", f"keyid {keyid!r} is not an active signature key")
        if key.client != client:
            raise SignatureRefused(
                "other-client", "the signature key belongs to another client than the credential"
            )
        covered, _ = verify_with_key(
            message,
            key,
            max_age=window,
            required=_required(message.headers, body),
            now=lambda: now,
        )
        _check_digest(covered, body)
        if nonce is not None and not self._first_use(keyid, nonce, created + window + CLOCK_SKEW):
            raise SignatureRefused(
                "replayed",
                "this signature's nonce was used before: sign every request afresh",
            )
        components = tuple(c.strip('"') for c in covered if c != '"@signature-params"')
        return VerifiedSignature(keyid, key.client, key.alg, created, nonce, components)

    def _first_use(self, keyid: str, nonce: str, until: datetime) -> bool:
        try:
            return self._seen.first_use(_NONCE_PURPOSE, f"{keyid}\0{nonce}", until)
        except (redis.RedisError, SQLAlchemyError) as exc:
            raise ReplayStoreUnavailableError(type(exc).__name__) from None


def _only_signature(headers: Any) -> dict[str, Any]:
    inputs = headers.getall("Signature-Input", []) if hasattr(headers, "getall") else []
    signatures = headers.getall("Signature", []) if hasattr(headers, "getall") else []
    if not inputs or not signatures:
        raise SignatureRefused("missing", "this route accepts signed requests only (RFC 9421)")
    if sum(map(len, inputs)) + sum(map(len, signatures)) > MAX_FIELD:
        raise SignatureRefused("malformed", "the signature fields are too large")
    try:
        parsed: Any = http_sf.parse(", ".join(inputs).encode("latin-1"), tltype="dictionary")
    except (http_sf.StructuredFieldError, ValueError, UnicodeError):
        raise SignatureRefused(
            "malformed", "Signature-Input is not a structured field dictionary"
        ) from None
    if not isinstance(parsed, Mapping) or len(parsed) != 1:
        raise SignatureRefused("malformed", "send exactly one signature")
    ((members, params),) = parsed.values()
    if not isinstance(members, list):
        raise SignatureRefused("malformed", "a Signature-Input member is an inner list")
    return dict(params)


def _created(params: Mapping[str, Any], window: timedelta, now: datetime) -> datetime:
    created = params.get("created")
    if type(created) is not int:
        raise SignatureRefused("malformed", "the signature needs an integer created parameter")
    try:
        when = datetime.fromtimestamp(created, UTC)
    except (OverflowError, OSError, ValueError):
        raise SignatureRefused("malformed", "the created parameter is out of range") from None
    if when > now + CLOCK_SKEW:
        raise SignatureRefused("future", "the signature was created in the future: check the clock")
    if when < now - window - CLOCK_SKEW:
        seconds = int(window.total_seconds())
        raise SignatureRefused(
            "stale", f"the signature is older than this route's {seconds} s window"
        )
    return when


def _required(headers: Any, body: bytes) -> tuple[str, ...]:
    if body or "Content-Digest" in headers:
        return (*REQUIRED_COMPONENTS, "content-digest")
    return REQUIRED_COMPONENTS


def _check_digest(covered: Mapping[str, str], body: bytes) -> None:
    digest = covered.get('"content-digest"')
    if digest is None:
        if body:
            raise SignatureRefused(
                "no-digest", "a request with a body must sign its Content-Digest"
            )
        return
    try:
        ContentDigest.verify(digest, body)
    except (InvalidSignature, HTTPMessageSignaturesException):
        raise SignatureRefused(
            "digest-mismatch", "the body does not match its signed Content-Digest (RFC 9530)"
        ) from None


def _invalid_detail(reason: str) -> str:
    if "not covered" in reason:
        return (
            "the signature must cover "
            + ", ".join(f'"{c}"' for c in REQUIRED_COMPONENTS)
            + ' and, with a body, "content-digest"'
        )
    if "algorithm" in reason.lower():
        return "the signature's alg does not match its key"
    return "the signature does not verify"
