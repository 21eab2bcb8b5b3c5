"""Seal and open messages: a JWS (RFC 7515) nested in a JWE (RFC 7516), through joserfc.

The format, so that a partner can read and write it with any JOSE library:

* **Whole payload** (``encrypt: payload``): the payload, as compact JSON
  (keys sorted, UTF-8), is signed by the producer (JWS compact, ``ES256`` or
  ``Ed25519``), and that JWS is the plaintext of a JWE (``A256GCM``; the key
  wrapped with ``ECDH-ES+A256KW`` or ``RSA-OAEP-256``) with ``cty: "JOSE"``
  (RFC 7516 §4.1.12, RFC 7519 §5.2: the content is itself a JOSE object). One
  consumer: the JWE compact serialisation (:data:`CONTENT_TYPE_COMPACT`).
  Several: the general JSON serialisation (RFC 7516 §7.2.1,
  :data:`CONTENT_TYPE_JSON`), one entry in ``recipients`` per consumer key,
  each with ``alg`` and ``kid`` in its per-recipient header.
* **Selected fields** (``encrypt: fields``): each value at an encrypted field
  path is replaced by a JWE of its JSON (``cty: "json"``), compact for one
  consumer, a general JSON object for several; the resulting payload is
  signed (JWS compact, :data:`CONTENT_TYPE_COMPACT`) and its protected header
  lists the paths in :data:`FIELDS_HEADER`. Paths are dotted member names;
  ``name[]`` descends into each element of the array ``name`` (``items[]``
  encrypts every element, ``items`` the array as one value).

Every protected header (the JWS's and each JWE's) carries the message's facts
as replicated claims (RFC 7519 §5.3): ``jti`` (message id), ``iss``
(producer), ``aud`` (integration), ``iat`` and ``exp`` (NumericDate). In a
JWE the protected header is the additional authenticated data (RFC 7516
§5.1 step 14), so the facts are bound to the ciphertext; :func:`open_envelope`
requires the JWE's facts to equal the signed ones, so a signed message cannot
be re-wrapped under other facts.

Opening is deny by default: algorithms are allow-listed (no ``none``, no
HMAC), header parameters are allow-listed (``crit``, ``zip``, ``jku``,
``jwk``, ``x5u``, ``x5c`` and ``b64`` are refused: keys come only from the
caller, RFC 8725 §3.10), the size is capped before parsing, and every
failure is an :class:`~interlock.messaging.model.EnvelopeRefused` whose
``reason`` is one of :data:`~interlock.messaging.model.RefusalReason`.
"""

from __future__ import annotations

import binascii
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn, cast

from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.registry import HeaderParameter, HeaderRegistryDict
from joserfc.util import urlsafe_b64decode

from interlock.crypto.jose import PublicKey, SigningKey, json_object, verify_signature
from interlock.errors import InvalidTokenError
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    CONTENT_TYPE_JSON,
    HEADER_INTEGRATION,
    EnvelopeRefused,
    MessageFacts,
    Opened,
    Outgoing,
    RefusalReason,
)

__all__ = [
    "CONTENT_ENCRYPTION",
    "FIELDS_HEADER",
    "KEY_ALGORITHMS",
    "SIGNING_ALGORITHMS",
    "RecipientKey",
    "SignerKey",
    "message_id",
    "open_envelope",
    "seal",
]

SIGNING_ALGORITHMS: Final = frozenset({"ES256", "Ed25519"})
KEY_ALGORITHMS: Final = frozenset({"ECDH-ES+A256KW", "RSA-OAEP-256"})
CONTENT_ENCRYPTION: Final = "A256GCM"
#: The JWS protected header parameter listing the encrypted field paths (a private
#: name, RFC 7515 §4.3, prefixed to avoid collisions).
FIELDS_HEADER: Final = "interlock_encrypted_fields"
_NESTED: Final = "JOSE"  # RFC 7516 §4.1.12: the plaintext is a JWS
_FIELD_CTY: Final = "json"
_FACTS: Final = ("jti", "iss", "aud", "iat", "exp")
# Header parameters refused wherever they appear, each for a reason.
_REFUSED_HEADERS: Final = {
    "crit": "critical extensions are not understood (RFC 7515 §4.1.11)",
    "zip": "compression before encryption leaks the plaintext's content (CRIME)",
    "jku": "keys come from the integration, never from the message (RFC 8725 §3.10)",
    "jwk": "keys come from the integration, never from the message",
    "x5u": "keys come from the integration, never from the message",
    "x5c": "keys come from the integration, never from the message",
    "b64": "unencoded payloads (RFC 7797) are not accepted",
}
_JWS_HEADERS: Final = frozenset({"alg", "kid", "typ", "cty", FIELDS_HEADER, *_FACTS})
_JWE_HEADERS: Final = frozenset({"alg", "enc", "kid", "typ", "cty", "epk", "apu", "apv", *_FACTS})
_MAX_RECIPIENTS: Final = 32  # MessagingSpec.consumers' maximum
_MAX_HEADER: Final = 8192

_FACT_REGISTRY: Final[HeaderRegistryDict] = {
    "jti": HeaderParameter("Message id (RFC 7519 §5.3 replicated claim)", "str", True),
    "iss": HeaderParameter("Producer", "str", True),
    "aud": HeaderParameter("Integration", "str", True),
    "iat": HeaderParameter("Issued at (NumericDate)", "int", True),
    "exp": HeaderParameter("Expires at (NumericDate)", "int", True),
}


@dataclass(frozen=True)
class SignerKey:
    """The producer's private signing key (``ES256`` or ``Ed25519``)."""

    kid: str
    alg: str
    key: SigningKey = field(repr=False)


@dataclass(frozen=True)
class RecipientKey:
    """A consumer's public encryption key (``ECDH-ES+A256KW`` or ``RSA-OAEP-256``)."""

    kid: str
    alg: str
    consumer: str
    key: PublicKey = field(repr=False)


def message_id() -> str:
    """A new random message id (122 random bits, hex)."""
    return uuid.uuid4().hex


def payload_bytes(payload: Any) -> bytes:
    """The payload as signed: compact JSON, keys sorted, UTF-8, no NaN.

    Not :func:`interlock.proofs.canonical.canonical_json`: business payloads
    hold decimals and nest deeper than audit entries; the bytes are signed as
    sent, so the receiver needs no canonical form, only a stable one.
    """
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _jwe_registry(max_bytes: int = 0) -> jwe.JWERegistry:
    registry = jwe.JWERegistry(
        header_registry=_FACT_REGISTRY,
        algorithms=[*KEY_ALGORITHMS, CONTENT_ENCRYPTION],
        max_recipients=_MAX_RECIPIENTS,
    )
    if max_bytes:
        # joserfc's default ciphertext cap (64 KiB) is below max_message's default.
        registry.max_ciphertext_length = max(registry.max_ciphertext_length, 2 * max_bytes)
        registry.max_protected_header_length = _MAX_HEADER
    return registry


_SEAL_JWE: Final = _jwe_registry()
_SEAL_JWS: Final = jws.JWSRegistry(
    header_registry={
        **_FACT_REGISTRY,
        FIELDS_HEADER: HeaderParameter("Encrypted field paths", "list[str]"),
    },
    algorithms=list(SIGNING_ALGORITHMS),
)


def seal(
    payload: Any,
    facts: MessageFacts,
    *,
    signer: SignerKey,
    recipients: Sequence[RecipientKey],
    encrypt_fields: Sequence[str] = (),
) -> Outgoing:
    """Sign ``payload`` and encrypt it (or only ``encrypt_fields``) to ``recipients``.

    See the module docstring for the format. ``ValueError`` for an algorithm
    outside the allow-lists, no recipient, naive datetimes or a payload that
    is not JSON.
    """
    if signer.alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"signing algorithm {signer.alg!r} is not allowed")
    if not recipients or len(recipients) > _MAX_RECIPIENTS:
        raise ValueError(f"between 1 and {_MAX_RECIPIENTS} recipients")
    for recipient in recipients:
        if recipient.alg not in KEY_ALGORITHMS:
            raise ValueError(f"key algorithm {recipient.alg!r} is not allowed")
    claims = _fact_claims(facts)
    if encrypt_fields:
        sealed = _map_fields(
            json.loads(payload_bytes(payload)),
            encrypt_fields,
            lambda value: _encrypt(payload_bytes(value), {**claims, "cty": _FIELD_CTY}, recipients),
        )
        header = {**claims, FIELDS_HEADER: list(encrypt_fields)}
        body: str | dict[str, Any] = _sign(payload_bytes(sealed), header, signer)
    else:
        signed = _sign(payload_bytes(payload), claims, signer)
        body = _encrypt(signed.encode("ascii"), {**claims, "cty": _NESTED}, recipients)
    if isinstance(body, str):
        data, content_type = body.encode("ascii"), CONTENT_TYPE_COMPACT
    else:
        data, content_type = payload_bytes(body), CONTENT_TYPE_JSON
    return Outgoing(
        body=data,
        content_type=content_type,
        message_id=facts.message_id,
        expires_at=facts.expires_at,
        headers={HEADER_INTEGRATION: facts.integration},
    )


def _fact_claims(facts: MessageFacts) -> dict[str, Any]:
    if facts.issued_at.tzinfo is None or facts.expires_at.tzinfo is None:
        raise ValueError("message times must be timezone-aware")
    return {
        "jti": facts.message_id,
        "iss": facts.producer,
        "aud": facts.integration,
        "iat": int(facts.issued_at.timestamp()),
        "exp": int(facts.expires_at.timestamp()),
    }


def _sign(data: bytes, header: Mapping[str, Any], signer: SignerKey) -> str:
    protected = {**header, "alg": signer.alg, "kid": signer.kid}
    return jws.serialize_compact(protected, data, signer.key, registry=_SEAL_JWS)


def _encrypt(
    plaintext: bytes, header: Mapping[str, Any], recipients: Sequence[RecipientKey]
) -> str | dict[str, Any]:
    protected = {**header, "enc": CONTENT_ENCRYPTION}
    if len(recipients) == 1:
        (only,) = recipients
        protected.update(alg=only.alg, kid=only.kid)
        return jwe.encrypt_compact(protected, plaintext, only.key, registry=_SEAL_JWE)
    message = jwe.GeneralJSONEncryption(protected, plaintext)
    for recipient in recipients:
        message.add_recipient({"alg": recipient.alg, "kid": recipient.kid}, recipient.key)
    return dict(jwe.encrypt_json(message, None, registry=_SEAL_JWE))


def _map_fields(value: Any, paths: Sequence[str], change: Callable[[Any], Any]) -> Any:
    """``value`` with ``change`` applied in place to every value at each of ``paths``."""
    for path in paths:
        _map_path(value, path.split("."), change)
    return value


def _map_path(value: Any, segments: list[str], change: Callable[[Any], Any]) -> None:
    # Missing members and values of another shape are skipped: nothing is there to seal.
    if not isinstance(value, dict) or not segments:
        return
    segment, rest = segments[0], segments[1:]
    name = segment.removesuffix("[]")
    if name not in value:
        return
    if segment.endswith("[]"):
        items = value[name]
        if not isinstance(items, list):
            return
        for index, item in enumerate(items):
            if rest:
                _map_path(item, rest, change)
            else:
                items[index] = change(item)
    elif rest:
        _map_path(value[name], rest, change)
    else:
        value[name] = change(value[name])


# --- opening -------------------------------------------------------------------------


def _refuse(reason: RefusalReason, detail: str) -> NoReturn:
    raise EnvelopeRefused(reason, detail)


def open_envelope(
    body: bytes,
    content_type: str | None,
    *,
    integration: str,
    producer: str,
    verification_keys: Mapping[str, Any],
    decryption_keys: Mapping[str, Any],
    now: datetime,
    leeway: timedelta,
    max_bytes: int,
) -> Opened:
    """Verify and decrypt a sealed message; :class:`EnvelopeRefused` with the reason if not.

    ``verification_keys``: the producer's published public keys by ``kid``;
    ``decryption_keys``: this consumer's private keys by ``kid``. The signed
    facts must name ``producer`` and ``integration``, and ``now`` must lie
    between issue and expiry (``leeway`` either side).
    """
    if len(body) > max_bytes:
        _refuse("too_large", f"{len(body)} bytes, over {max_bytes}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        _refuse("malformed", "not ASCII")
    registry = _jwe_registry(max_bytes)
    jwe_header, signed = _unwrap(text, content_type, decryption_keys, registry)
    header, data = _verify(signed, verification_keys)
    facts = _facts(header)
    if jwe_header is not None and _facts(jwe_header) != facts:
        _refuse("bad_signature", "the encrypted facts differ from the signed ones")
    _check_facts(facts, integration=integration, producer=producer, now=now, leeway=leeway)
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        _refuse("malformed", "the payload is not JSON")
    paths = header.get(FIELDS_HEADER)
    if paths is not None:
        payload = _open_fields(payload, paths, facts, decryption_keys, registry)
    return Opened(facts=facts, payload=payload, signer_kid=header["kid"])


def _unwrap(
    text: str, content_type: str | None, keys: Mapping[str, Any], registry: jwe.JWERegistry
) -> tuple[dict[str, Any] | None, str]:
    """The JWE's protected header (None for a bare JWS) and the compact JWS inside."""
    compact = content_type in (CONTENT_TYPE_COMPACT, None)
    if content_type == CONTENT_TYPE_JSON or (content_type is None and text.startswith("{")):
        jwe_header, plaintext = _decrypt_json(text, keys, registry)
    elif compact and text.count(".") == 4:
        jwe_header, plaintext = _decrypt_compact(text, keys, registry)
    elif compact and text.count(".") == 2:
        return None, text  # signed, with encrypted fields
    else:
        _refuse("malformed", "neither a JWE nor a JWS of a known media type")
    if str(jwe_header.get("cty", "")).upper() != _NESTED:
        _refuse("malformed", "the JWE does not hold a JWS (cty is not JOSE)")
    return jwe_header, _ascii(plaintext)


def _check_facts(
    facts: MessageFacts, *, integration: str, producer: str, now: datetime, leeway: timedelta
) -> None:
    if facts.producer != producer:
        _refuse("wrong_signer", f"issued by {facts.producer!r}, not the producer")
    if facts.integration != integration:
        _refuse("wrong_integration", f"sealed for {facts.integration!r}")
    # RFC 7519 §4.1.4, §4.1.6, with the leeway as for tokens (interlock.oauth.tokens).
    if facts.expires_at <= now - leeway:
        _refuse("expired", f"expired at {facts.expires_at.isoformat()}")
    if facts.issued_at > now + leeway:
        _refuse("not_yet_valid", f"issued at {facts.issued_at.isoformat()}")


def _b64(segment: str) -> bytes:
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (binascii.Error, ValueError):
        _refuse("malformed", "malformed base64url")


def _header(segment: str, allowed: frozenset[str]) -> dict[str, Any]:
    if len(segment) > _MAX_HEADER:
        _refuse("malformed", "protected header too large")
    try:
        header = json_object(_b64(segment), "protected header")
    except InvalidTokenError as exc:
        _refuse("malformed", exc.reason)
    _check_names(header, allowed)
    return header


def _check_names(header: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name, why in _REFUSED_HEADERS.items():
        if name in header:
            _refuse("malformed", f"header {name!r} refused: {why}")
    unknown = sorted(set(header) - allowed)
    if unknown:
        _refuse("malformed", f"header parameters not accepted: {unknown}")


def _verify(signed: str, keys: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    parts = signed.split(".")
    if len(parts) != 3:
        _refuse("malformed", "not a compact JWS")
    header = _header(parts[0], _JWS_HEADERS)
    alg = header.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        _refuse("malformed", f"signature algorithm {alg!r} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        _refuse("wrong_signer", "signed by a key the producer has not published")
    data, signature = _b64(parts[1]), _b64(parts[2])
    if not verify_signature(alg, keys[kid], f"{parts[0]}.{parts[1]}".encode("ascii"), signature):
        _refuse("bad_signature", "the signature does not verify")
    return header, data


def _facts(header: Mapping[str, Any]) -> MessageFacts:
    jti, iss, aud = header.get("jti"), header.get("iss"), header.get("aud")
    iat, exp = header.get("iat"), header.get("exp")
    if not (isinstance(jti, str) and isinstance(iss, str) and isinstance(aud, str)):
        _refuse("malformed", "jti, iss and aud must be strings")
    if not (jti and iss and aud):
        _refuse("malformed", "jti, iss and aud must not be empty")
    if not (isinstance(iat, int) and isinstance(exp, int)) or bool in (type(iat), type(exp)):
        _refuse("malformed", "iat and exp must be integer NumericDates")
    try:
        issued = datetime.fromtimestamp(iat, UTC)
        expires = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, ValueError, OSError):
        _refuse("malformed", "iat or exp out of range")
    if expires < issued:
        _refuse("malformed", "expires before it was issued")
    return MessageFacts(
        message_id=jti, integration=aud, producer=iss, issued_at=issued, expires_at=expires
    )


def _decrypt_compact(
    text: str, keys: Mapping[str, Any], registry: jwe.JWERegistry
) -> tuple[dict[str, Any], bytes]:
    header = _header(text.split(".", 1)[0], _JWE_HEADERS)
    _check_encryption(header)
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        _refuse("undecryptable", "encrypted to no key of this consumer")
    try:
        plaintext = jwe.decrypt_compact(text, key, registry=registry).plaintext
    except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
        _refuse("undecryptable", "the JWE does not decrypt")
    return header, plaintext or b""


def _decrypt_json(
    text: str, keys: Mapping[str, Any], registry: jwe.JWERegistry
) -> tuple[dict[str, Any], bytes]:
    document = _general(text)
    header = _header(document["protected"], _JWE_HEADERS)
    for recipient in document["recipients"]:
        _check_names({**header, **recipient.get("header", {})}, _JWE_HEADERS)
        kid = recipient.get("header", {}).get("kid")
        if isinstance(kid, str) and kid in keys:
            merged = {**header, **recipient["header"]}
            _check_encryption(merged)
            # RFC 7516 §7.2.2: one recipient of the general form, decrypted as flattened.
            flattened = {name: document[name] for name in ("protected", "iv", "ciphertext", "tag")}
            flattened.update(recipient)
            try:
                decrypted = jwe.decrypt_json(
                    cast(jwe.FlattenedJSONSerialization, flattened), keys[kid], registry=registry
                )
            except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
                _refuse("undecryptable", "the JWE does not decrypt")
            return header, decrypted.plaintext or b""
    _refuse("undecryptable", "encrypted to no key of this consumer")


def _general(text: str) -> dict[str, Any]:
    try:
        document = json_object(text.encode("ascii"), "JWE JSON serialisation")
    except InvalidTokenError as exc:
        _refuse("malformed", exc.reason)
    extra = set(document) - {"protected", "recipients", "iv", "ciphertext", "tag"}
    if extra:
        # "unprotected" and "aad" are not part of the format: every fact is protected.
        _refuse("malformed", f"members not accepted: {sorted(extra)}")
    recipients = document.get("recipients")
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= _MAX_RECIPIENTS:
        _refuse("malformed", "recipients must be a list of 1 to 32 entries")
    for name in ("protected", "iv", "ciphertext", "tag"):
        if not isinstance(document.get(name), str):
            _refuse("malformed", f"{name} missing or not a string")
    for recipient in recipients:
        if (
            not isinstance(recipient, dict)
            or set(recipient) - {"header", "encrypted_key"}
            or not isinstance(recipient.get("header", {}), dict)
            or not isinstance(recipient.get("encrypted_key"), str)
        ):
            _refuse("malformed", "a recipient is not {header, encrypted_key}")
    return document


def _check_encryption(header: Mapping[str, Any]) -> None:
    if header.get("alg") not in KEY_ALGORITHMS:
        _refuse("malformed", f"key algorithm {header.get('alg')!r} is not allowed")
    if header.get("enc") != CONTENT_ENCRYPTION:
        _refuse("malformed", f"content encryption {header.get('enc')!r} is not allowed")


def _ascii(plaintext: bytes) -> str:
    try:
        return plaintext.decode("ascii")
    except UnicodeDecodeError:
        _refuse("malformed", "the JWE's content is not a compact JWS")


def _open_fields(
    payload: Any,
    paths: Any,
    facts: MessageFacts,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
) -> Any:
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        _refuse("malformed", f"{FIELDS_HEADER} must list field paths")

    def decrypt(value: Any) -> Any:
        if isinstance(value, str) and value.count(".") == 4:
            header, plaintext = _decrypt_compact(value, keys, registry)
        elif isinstance(value, dict):
            header, plaintext = _decrypt_json(json.dumps(value), keys, registry)
        else:
            _refuse("malformed", "an encrypted field is not a JWE")
        if header.get("cty") != _FIELD_CTY:
            _refuse("malformed", "an encrypted field's cty is not json")
        if _facts(header) != facts:
            _refuse("bad_signature", "an encrypted field belongs to another message")
        try:
            return json.loads(plaintext)
        except (ValueError, RecursionError):
            _refuse("malformed", "an encrypted field is not JSON")

    return _map_fields(payload, paths, decrypt)
