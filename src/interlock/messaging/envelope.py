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
be re-wrapped under other facts. A copy of an event (:mod:`interlock.events`)
carries three more facts, ``interlock_subject``, ``interlock_schema_id`` and
``interlock_schema_version`` (:class:`~interlock.messaging.model.EventFacts`),
bound the same way.

:func:`open_envelope` (in :mod:`interlock.messaging.opening`, re-exported
here) is deny by default: algorithms and header parameters are allow-listed,
the size is capped before parsing, and every failure is an
:class:`~interlock.messaging.model.EnvelopeRefused` whose ``reason`` is one
of :data:`~interlock.messaging.model.RefusalReason`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from joserfc import jwe
from joserfc.jwk import KeyParameters, OctKey
from joserfc.util import json_b64encode, urlsafe_b64encode

from interlock.config.vocabulary import FIELD_PATTERN
from interlock.crypto.jose import PublicKey, SigningKey, sign_signature
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_KEYED,
    HEADER_INTEGRATION,
    MessageFacts,
    Outgoing,
)
from interlock.messaging.opening import open_envelope
from interlock.messaging.window_keys import KeyWindows, Window
from interlock.messaging.wire_format import (
    CONTENT_ENCRYPTION,
    EVENT_NAMES,
    FIELD_CTY,
    FIELDS_HEADER,
    KEY_ALGORITHMS,
    KEY_CTY,
    MAX_RECIPIENTS,
    NESTED_CTY,
    SIGNING_ALGORITHMS,
    WINDOW_ALGORITHM,
    jwe_registry,
    map_fields,
    payload_bytes,
)

__all__ = [
    "CONTENT_ENCRYPTION",
    "FIELDS_HEADER",
    "KEY_ALGORITHMS",
    "SIGNING_ALGORITHMS",
    "KeyWindows",
    "RecipientKey",
    "SignerKey",
    "message_id",
    "open_envelope",
    "payload_bytes",
    "seal",
]


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


_SEAL_JWE: Final = jwe_registry()
_WINDOW_JWE: Final = jwe_registry(window=True)


def seal(
    payload: Any,
    facts: MessageFacts,
    *,
    signer: SignerKey,
    recipients: Sequence[RecipientKey],
    encrypt_fields: Sequence[str] = (),
    windows: KeyWindows | None = None,
    encoded: bytes | None = None,
) -> Outgoing:
    """Sign ``payload`` and encrypt it (or only ``encrypt_fields``) to ``recipients``.

    See the module docstring for the format. With ``windows``, under the
    current window key for these recipients (:mod:`interlock.messaging.window_keys`),
    else to the recipients' keys directly. ``encoded``: ``payload_bytes(payload)``
    when the caller has already made them (the producer, which checks the
    payload is JSON first), so a payload is serialised once. ``ValueError``
    for an algorithm outside the allow-lists, no recipient, naive datetimes
    or a payload that is not JSON.
    """
    if signer.alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"signing algorithm {signer.alg!r} is not allowed")
    if not recipients or len(recipients) > MAX_RECIPIENTS:
        raise ValueError(f"between 1 and {MAX_RECIPIENTS} recipients")
    for recipient in recipients:
        if recipient.alg not in KEY_ALGORITHMS:
            raise ValueError(f"key algorithm {recipient.alg!r} is not allowed")
    for path in encrypt_fields:
        if not re.fullmatch(FIELD_PATTERN, path):
            raise ValueError(f"not a field path: {path!r}")
    claims = _fact_claims(facts)
    try:
        data = payload_bytes(payload) if encoded is None else encoded
    except TypeError as exc:  # an object json cannot encode
        raise ValueError(f"the payload is not JSON: {exc}") from None
    window = None if windows is None else _window(windows, facts, recipients)

    def encrypt(plaintext: bytes, header: dict[str, Any]) -> str | dict[str, Any]:
        if window is None:
            return _encrypt(plaintext, header, recipients)
        return _encrypt_under(window.key, plaintext, header)

    if encrypt_fields:
        sealed = map_fields(
            json.loads(data),
            encrypt_fields,
            lambda value: encrypt(payload_bytes(value), {**claims, "cty": FIELD_CTY}),
        )
        header = {**claims, FIELDS_HEADER: list(encrypt_fields)}
        body: str | dict[str, Any] = _sign(payload_bytes(sealed), header, signer)
    else:
        signed = _sign(data, claims, signer)
        body = encrypt(signed.encode("ascii"), {**claims, "cty": NESTED_CTY})
    if window is not None:
        keyed = {"key": window.encrypted, "message": body}
        serialised, content_type = payload_bytes(keyed), CONTENT_TYPE_KEYED
    elif isinstance(body, str):
        serialised, content_type = body.encode("ascii"), CONTENT_TYPE_COMPACT
    else:
        serialised, content_type = payload_bytes(body), CONTENT_TYPE_JSON
    return Outgoing(
        body=serialised,
        content_type=content_type,
        message_id=facts.message_id,
        expires_at=facts.expires_at,
        headers={HEADER_INTEGRATION: facts.integration},
    )


def _fact_claims(facts: MessageFacts) -> dict[str, Any]:
    if facts.issued_at.tzinfo is None or facts.expires_at.tzinfo is None:
        raise ValueError("message times must be timezone-aware")
    claims: dict[str, Any] = {
        "jti": facts.message_id,
        "iss": facts.producer,
        "aud": facts.integration,
        "iat": int(facts.issued_at.timestamp()),
        "exp": int(facts.expires_at.timestamp()),
    }
    event = facts.event
    if event is not None:
        subject, schema_id, version = EVENT_NAMES
        claims |= {
            subject: event.subject,
            schema_id: event.schema_id,
            version: event.schema_version,
        }
    return claims


def _window(windows: KeyWindows, facts: MessageFacts, recipients: Sequence[RecipientKey]) -> Window:
    """The window key for ``facts``' integration and ``recipients`` now, begun if due."""

    def begin() -> Window:
        # A random kid: the RFC 7638 thumbprint of a secret key is a hash of the secret.
        key_id = uuid.uuid4().hex
        parameters: KeyParameters = {"alg": WINDOW_ALGORITHM, "use": "enc", "kid": key_id}
        key = OctKey.generate_key(256, parameters, private=True)
        issued = int(facts.issued_at.timestamp())
        header = {
            "jti": key_id,
            "iss": facts.producer,
            "aud": facts.integration,
            "iat": issued,
            "exp": issued + int(windows.age.total_seconds()),
            "cty": KEY_CTY,
        }
        jwk = payload_bytes(key.as_dict(private=True))
        return Window(key, _encrypt(jwk, header, recipients), facts.issued_at)

    label = (facts.integration, facts.producer, tuple((r.kid, r.alg) for r in recipients))
    return windows.window(label, facts.issued_at, begin)


def _sign(data: bytes, header: Mapping[str, Any], signer: SignerKey) -> str:
    """A compact JWS (RFC 7515 §7.1), without joserfc's per-call registry work.

    The header's names and values were checked by :func:`seal` (the facts'
    types, the algorithm); ``jws.serialize_compact`` would check them again
    per message.
    """
    protected = {**header, "alg": signer.alg, "kid": signer.kid}
    signing_input = json_b64encode(protected) + b"." + urlsafe_b64encode(data)
    signature = sign_signature(signer.alg, signer.key, signing_input)
    return (signing_input + b"." + urlsafe_b64encode(signature)).decode("ascii")


def _encrypt_under(key: OctKey, plaintext: bytes, header: Mapping[str, Any]) -> str:
    """A compact JWE whose content key is wrapped with the window ``key`` (``A256KW``)."""
    protected = {**header, "enc": CONTENT_ENCRYPTION, "alg": WINDOW_ALGORITHM, "kid": key.kid}
    return jwe.encrypt_compact(protected, plaintext, key, registry=_WINDOW_JWE)


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
