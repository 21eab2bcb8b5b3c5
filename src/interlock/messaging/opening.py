"""Open a sealed message: size, format, decryption, signature, facts; deny by default.

The checks, in order: the size cap; the serialisation the integration's
``encrypt`` mode calls for (``payload``: a JWE, compact or general JSON,
holding a JWS; ``fields``: a bare JWS whose encrypted-field list is the
declared one), so that nobody able to decrypt a message can pass its inner
JWS on in clear; header parameters against an
allow-list, with ``crit``, ``zip``, ``jku``, ``jwk``, ``x5u``, ``x5c`` and
``b64`` refused outright (keys come only from the caller, RFC 8725 §3.10);
the algorithms (``ECDH-ES+A256KW`` or ``RSA-OAEP-256`` with ``A256GCM``;
``ES256`` or ``Ed25519``: no ``none``, no HMAC); decryption with a key of
this consumer, by ``kid``; the signature with a published key of the
producer, by ``kid``; the JWE's facts equal to the signed ones; producer,
integration, expiry and issue time; for an event's copy (``event=True``), its
subject, schema id and version, bound like the facts. Each failure is an
:class:`~interlock.messaging.model.EnvelopeRefused` with its reason; the
detail is for the log and never holds key material or payload.
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, NoReturn, cast

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.util import urlsafe_b64decode

from interlock.crypto.jose import json_object, verify_signature
from interlock.errors import InvalidTokenError
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_KEYED,
    EnvelopeRefused,
    EventFacts,
    MessageFacts,
    Opened,
    RefusalReason,
)
from interlock.messaging.window_keys import WindowKeyCache
from interlock.messaging.wire_format import (
    CONTENT_ENCRYPTION,
    EVENT_NAMES,
    FACT_NAMES,
    FIELD_CTY,
    FIELDS_HEADER,
    KEY_ALGORITHMS,
    KEY_CTY,
    MAX_HEADER,
    MAX_RECIPIENTS,
    NESTED_CTY,
    SIGNING_ALGORITHMS,
    WINDOW_ALGORITHM,
    jwe_registry,
    map_fields,
    payload_bytes,
)

__all__ = ["open_envelope"]

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
_JWS_HEADERS: Final = frozenset(
    {"alg", "kid", "typ", "cty", FIELDS_HEADER, *FACT_NAMES, *EVENT_NAMES}
)
_JWE_HEADERS: Final = frozenset(
    {"alg", "enc", "kid", "typ", "cty", "epk", "apu", "apv", *FACT_NAMES, *EVENT_NAMES}
)
_WINDOW: Final = frozenset({WINDOW_ALGORITHM})
#: What a window key's JWK may hold (RFC 7517 §4, §6.4).
_WINDOW_JWK: Final = frozenset({"kty", "k", "kid", "alg", "use", "key_ops"})


# Not named _refuse: tests/gateway/test_problems.py reads the first argument of every
# _refuse(...) call in the source as an HTTP refusal code.
def _reject(reason: RefusalReason, detail: str) -> NoReturn:
    raise EnvelopeRefused(reason, detail)


def open_envelope(
    body: bytes,
    content_type: str | None,
    *,
    integration: str,
    producer: str,
    encrypt: Literal["payload", "fields"],
    encrypted_fields: Sequence[str] = (),
    verification_keys: Mapping[str, Any],
    decryption_keys: Mapping[str, Any],
    now: datetime,
    leeway: timedelta,
    max_bytes: int,
    event: bool = False,
    windows: WindowKeyCache | None = None,
) -> Opened:
    """Verify and decrypt a sealed message; :class:`EnvelopeRefused` with the reason if not.

    ``encrypt`` and ``encrypted_fields``: the integration's mode and, with
    ``fields``, the paths it encrypts (``MessagingSpec.encrypted_fields``);
    any other form is ``malformed``. ``verification_keys``: the producer's
    published public keys by ``kid``; ``decryption_keys``: this consumer's
    private keys by ``kid``. The signed facts must name ``producer`` and
    ``integration``, and ``now`` must lie between issue and expiry (``leeway``
    either side). ``event``: the message must be an event's copy, its
    subject and schema in ``facts.event`` (otherwise it must not be one).
    ``windows``: where the window keys this consumer decrypted are kept
    (:mod:`interlock.messaging.window_keys`); without it each is decrypted again.
    """
    if len(body) > max_bytes:
        _reject("too_large", f"{len(body)} bytes, over {max_bytes}")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        _reject("malformed", "not ASCII")
    registry = jwe_registry(max_bytes)
    keys, algorithms, window_header = decryption_keys, KEY_ALGORITHMS, None
    if content_type == CONTENT_TYPE_KEYED or (content_type is None and text.startswith('{"key"')):
        text, window_header, window_key = _keyed(text, decryption_keys, registry, windows)
        content_type, algorithms = CONTENT_TYPE_COMPACT, _WINDOW
        keys = {str(window_key.kid): window_key}
        registry = jwe_registry(max_bytes, window=True)
    jwe_header, signed = _unwrap(text, content_type, keys, registry, algorithms)
    if (jwe_header is None) != (encrypt == "fields"):
        # The mode is the integration's, never the message's: a bare JWS on an
        # `encrypt: payload` integration is a message stripped of its encryption.
        _reject("malformed", f"not the serialisation of encrypt: {encrypt}")
    header, data, signing_input = _verify(signed, verification_keys)
    _check_paths(header.get(FIELDS_HEADER), encrypted_fields if encrypt == "fields" else None)
    facts = _facts(header)
    if jwe_header is not None and _facts(jwe_header) != facts:
        _reject("bad_signature", "the encrypted facts differ from the signed ones")
    if event and facts.event is None:
        _reject("malformed", "no event subject and schema in the protected header")
    if not event and facts.event is not None:
        _reject("malformed", "an event's copy, not a message of this integration")
    _check_facts(facts, integration=integration, producer=producer, now=now, leeway=leeway)
    if window_header is not None:
        _check_window(_facts(window_header), facts, leeway)
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):
        _reject("malformed", "the payload is not JSON")
    paths = header.get(FIELDS_HEADER)
    if paths is not None:
        payload = _open_fields(
            payload, paths, facts, keys=keys, registry=registry, algorithms=algorithms
        )
    return Opened(
        facts=facts, payload=payload, signer_kid=header["kid"], signing_input=signing_input
    )


def _unwrap(
    text: str,
    content_type: str | None,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
    algorithms: frozenset[str],
) -> tuple[dict[str, Any] | None, str]:
    """The JWE's protected header (None for a bare JWS) and the compact JWS inside."""
    compact = content_type in (CONTENT_TYPE_COMPACT, None)
    if content_type == CONTENT_TYPE_JSON or (content_type is None and text.startswith("{")):
        jwe_header, plaintext = _decrypt_json(text, keys, registry, algorithms)
    elif compact and text.count(".") == 4:
        jwe_header, plaintext = _decrypt_compact(text, keys, registry, algorithms)
    elif compact and text.count(".") == 2:
        return None, text  # signed, with encrypted fields
    else:
        _reject("malformed", "neither a JWE nor a JWS of a known media type")
    if str(jwe_header.get("cty", "")).upper() != NESTED_CTY:
        _reject("malformed", "the JWE does not hold a JWS (cty is not JOSE)")
    return jwe_header, _ascii(plaintext)


def _check_paths(paths: Any, declared: Sequence[str] | None) -> None:
    """The signed encrypted-field list is the declared one (None: there must be none)."""
    if declared is None:
        if paths is not None:
            _reject("malformed", f"{FIELDS_HEADER} in a message encrypted whole")
        return
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        _reject("malformed", f"{FIELDS_HEADER} must list field paths")
    if sorted(paths) != sorted(declared):
        _reject("malformed", "the encrypted fields are not the integration's")


def _check_facts(
    facts: MessageFacts, *, integration: str, producer: str, now: datetime, leeway: timedelta
) -> None:
    if facts.producer != producer:
        _reject("wrong_signer", f"issued by {facts.producer!r}, not the producer")
    if facts.integration != integration:
        _reject("wrong_integration", f"sealed for {facts.integration!r}")
    # RFC 7519 §4.1.4, §4.1.6, with the leeway as for tokens (interlock.oauth.tokens).
    if facts.expires_at <= now - leeway:
        _reject("expired", f"expired at {facts.expires_at.isoformat()}")
    if facts.issued_at > now + leeway:
        _reject("not_yet_valid", f"issued at {facts.issued_at.isoformat()}")


def _b64(segment: str) -> bytes:
    try:
        return urlsafe_b64decode(segment.encode("ascii"))
    except (binascii.Error, ValueError):
        _reject("malformed", "malformed base64url")


def _header(segment: str, allowed: frozenset[str]) -> dict[str, Any]:
    if len(segment) > MAX_HEADER:
        _reject("malformed", "protected header too large")
    try:
        header = json_object(_b64(segment), "protected header")
    except InvalidTokenError as exc:
        _reject("malformed", exc.reason)
    _check_names(header, allowed)
    return header


def _check_names(header: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for name, why in _REFUSED_HEADERS.items():
        if name in header:
            _reject("malformed", f"header {name!r} refused: {why}")
    unknown = sorted(set(header) - allowed)
    if unknown:
        _reject("malformed", f"header parameters not accepted: {unknown}")


def _verify(signed: str, keys: Mapping[str, Any]) -> tuple[dict[str, Any], bytes, bytes]:
    """The JWS's protected header, payload and signing input (RFC 7515 §5.2), once verified."""
    parts = signed.split(".")
    if len(parts) != 3:
        _reject("malformed", "not a compact JWS")
    header = _header(parts[0], _JWS_HEADERS)
    alg = header.get("alg")
    if alg not in SIGNING_ALGORITHMS:
        _reject("malformed", f"signature algorithm {alg!r} is not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or kid not in keys:
        _reject("wrong_signer", "signed by a key the producer has not published")
    data, signature = _b64(parts[1]), _b64(parts[2])
    signing_input = f"{parts[0]}.{parts[1]}".encode("ascii")
    if not verify_signature(alg, keys[kid], signing_input, signature):
        _reject("bad_signature", "the signature does not verify")
    return header, data, signing_input


def _facts(header: Mapping[str, Any]) -> MessageFacts:
    jti, iss, aud = header.get("jti"), header.get("iss"), header.get("aud")
    iat, exp = header.get("iat"), header.get("exp")
    if not (isinstance(jti, str) and isinstance(iss, str) and isinstance(aud, str)):
        _reject("malformed", "jti, iss and aud must be strings")
    if not (jti and iss and aud):
        _reject("malformed", "jti, iss and aud must not be empty")
    if not (isinstance(iat, int) and isinstance(exp, int)) or bool in (type(iat), type(exp)):
        _reject("malformed", "iat and exp must be integer NumericDates")
    try:
        issued = datetime.fromtimestamp(iat, UTC)
        expires = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, ValueError, OSError):
        _reject("malformed", "iat or exp out of range")
    if expires < issued:
        _reject("malformed", "expires before it was issued")
    return MessageFacts(
        message_id=jti,
        integration=aud,
        producer=iss,
        issued_at=issued,
        expires_at=expires,
        event=_event(header),
    )


def _event(header: Mapping[str, Any]) -> EventFacts | None:
    """An event's subject and schema from a protected header: all three or none."""
    present = [name for name in EVENT_NAMES if name in header]
    if not present:
        return None
    if len(present) != len(EVENT_NAMES):
        _reject("malformed", f"an event needs {', '.join(EVENT_NAMES)}")
    subject, schema_id, version = (header[name] for name in EVENT_NAMES)
    if not (isinstance(subject, str) and subject):
        _reject("malformed", "the event subject must be a string")
    for number in (schema_id, version):
        if type(number) is not int or number < 1:
            _reject("malformed", "the schema id and version must be positive integers")
    return EventFacts(subject=subject, schema_id=schema_id, schema_version=version)


def _decrypt_compact(
    text: str,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
    algorithms: frozenset[str] = KEY_ALGORITHMS,
) -> tuple[dict[str, Any], bytes]:
    header = _header(text.split(".", 1)[0], _JWE_HEADERS)
    _check_encryption(header, algorithms)
    kid = header.get("kid")
    key = keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        _reject("undecryptable", "encrypted to no key of this consumer")
    try:
        plaintext = jwe.decrypt_compact(text, key, registry=registry).plaintext
    except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
        _reject("undecryptable", "the JWE does not decrypt")
    return header, plaintext or b""


def _decrypt_json(
    text: str,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
    algorithms: frozenset[str] = KEY_ALGORITHMS,
) -> tuple[dict[str, Any], bytes]:
    document = _general(text)
    header = _header(document["protected"], _JWE_HEADERS)
    for recipient in document["recipients"]:
        shared = sorted(set(header) & set(recipient.get("header", {})))
        if shared:
            # RFC 7516 §7.2.1: the protected and per-recipient header names are disjoint.
            _reject("malformed", f"header parameters both protected and per-recipient: {shared}")
        _check_names({**header, **recipient.get("header", {})}, _JWE_HEADERS)
        kid = recipient.get("header", {}).get("kid")
        if isinstance(kid, str) and kid in keys:
            merged = {**header, **recipient["header"]}
            _check_encryption(merged, algorithms)
            # RFC 7516 §7.2.2: one recipient of the general form, decrypted as flattened.
            flattened = {name: document[name] for name in ("protected", "iv", "ciphertext", "tag")}
            flattened.update(recipient)
            try:
                decrypted = jwe.decrypt_json(
                    cast(jwe.FlattenedJSONSerialization, flattened), keys[kid], registry=registry
                )
            except (JoseError, ValueError, TypeError, KeyError, binascii.Error):
                _reject("undecryptable", "the JWE does not decrypt")
            return header, decrypted.plaintext or b""
    _reject("undecryptable", "encrypted to no key of this consumer")


def _general(text: str) -> dict[str, Any]:
    try:
        document = json_object(text.encode("ascii"), "JWE JSON serialisation")
    except InvalidTokenError as exc:
        _reject("malformed", exc.reason)
    extra = set(document) - {"protected", "recipients", "iv", "ciphertext", "tag"}
    if extra:
        # "unprotected" and "aad" are not part of the format: every fact is protected.
        _reject("malformed", f"members not accepted: {sorted(extra)}")
    recipients = document.get("recipients")
    if not isinstance(recipients, list) or not 1 <= len(recipients) <= MAX_RECIPIENTS:
        _reject("malformed", "recipients must be a list of 1 to 32 entries")
    for name in ("protected", "iv", "ciphertext", "tag"):
        if not isinstance(document.get(name), str):
            _reject("malformed", f"{name} missing or not a string")
    for recipient in recipients:
        if (
            not isinstance(recipient, dict)
            or set(recipient) - {"header", "encrypted_key"}
            or not isinstance(recipient.get("header", {}), dict)
            or not isinstance(recipient.get("encrypted_key"), str)
        ):
            _reject("malformed", "a recipient is not {header, encrypted_key}")
    return document


def _check_encryption(header: Mapping[str, Any], algorithms: frozenset[str]) -> None:
    if header.get("alg") not in algorithms:
        _reject("malformed", f"key algorithm {header.get('alg')!r} is not allowed")
    if header.get("enc") != CONTENT_ENCRYPTION:
        _reject("malformed", f"content encryption {header.get('enc')!r} is not allowed")


def _ascii(plaintext: bytes) -> str:
    try:
        return plaintext.decode("ascii")
    except UnicodeDecodeError:
        _reject("malformed", "the JWE's content is not a compact JWS")


def _open_fields(
    payload: Any,
    paths: list[str],
    facts: MessageFacts,
    *,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
    algorithms: frozenset[str],
) -> Any:
    def decrypt(value: Any) -> Any:
        if isinstance(value, str) and value.count(".") == 4:
            header, plaintext = _decrypt_compact(value, keys, registry, algorithms)
        elif isinstance(value, dict) and algorithms is KEY_ALGORITHMS:
            header, plaintext = _decrypt_json(json.dumps(value), keys, registry, algorithms)
        else:
            _reject("malformed", "an encrypted field is not a JWE")
        if header.get("cty") != FIELD_CTY:
            _reject("malformed", "an encrypted field's cty is not json")
        if _facts(header) != facts:
            _reject("bad_signature", "an encrypted field belongs to another message")
        try:
            return json.loads(plaintext)
        except (ValueError, RecursionError):
            _reject("malformed", "an encrypted field is not JSON")

    return map_fields(payload, paths, decrypt)


def _keyed(
    text: str,
    keys: Mapping[str, Any],
    registry: jwe.JWERegistry,
    cache: WindowKeyCache | None,
) -> tuple[str, dict[str, Any], OctKey]:
    """A keyed message's inner serialisation, its window key's header and the window key."""
    try:
        document = json_object(text.encode("ascii"), "keyed message")
    except InvalidTokenError as exc:
        _reject("malformed", exc.reason)
    if set(document) != {"key", "message"} or not isinstance(document["message"], str):
        _reject("malformed", "a keyed message is {key, message}, message a string")
    encrypted = document["key"]
    if isinstance(encrypted, str):
        serialised = encrypted
        kid = _header(encrypted.split(".", 1)[0], _JWE_HEADERS).get("kid")
    elif isinstance(encrypted, dict):
        serialised = payload_bytes(encrypted).decode("ascii")
        kid = _general_kid(encrypted, keys)
    else:
        _reject("malformed", "the window key is not a JWE")
    if not isinstance(kid, str) or kid not in keys:
        _reject("undecryptable", "the window key is encrypted to no key of this consumer")
    held = cache.get(serialised, kid) if cache is not None else None
    if held is None:
        held = _window_key(serialised, keys, registry)
        if cache is not None:
            cache.put(serialised, kid, *held)
    key, header = held
    return document["message"], header, key


def _general_kid(document: Mapping[str, Any], keys: Mapping[str, Any]) -> str | None:
    """The first recipient of a general JWE whose ``kid`` is one of ``keys``."""
    recipients = document.get("recipients")
    for recipient in recipients if isinstance(recipients, list) else []:
        header = recipient.get("header") if isinstance(recipient, dict) else None
        kid = header.get("kid") if isinstance(header, dict) else None
        if isinstance(kid, str) and kid in keys:
            return kid
    return None


def _window_key(
    serialised: str, keys: Mapping[str, Any], registry: jwe.JWERegistry
) -> tuple[OctKey, dict[str, Any]]:
    """Decrypt a window key (an encrypted JWK, RFC 7517 §7) and check what it holds."""
    if serialised.startswith("{"):
        header, plaintext = _decrypt_json(serialised, keys, registry)
    else:
        header, plaintext = _decrypt_compact(serialised, keys, registry)
    if header.get("cty") != KEY_CTY:
        _reject("malformed", f"the window key's cty is not {KEY_CTY}")
    try:
        jwk = json_object(plaintext, "window key")
    except InvalidTokenError as exc:
        _reject("malformed", exc.reason)
    if set(jwk) - _WINDOW_JWK or jwk.get("kty") != "oct" or jwk.get("alg") != WINDOW_ALGORITHM:
        _reject("malformed", f"the window key is not an oct JWK for {WINDOW_ALGORITHM}")
    if not isinstance(jwk.get("kid"), str) or not isinstance(jwk.get("k"), str):
        _reject("malformed", "the window key needs kid and k")
    if len(_b64(jwk["k"])) != 32:  # before the import, which warns of short keys
        _reject("malformed", "the window key is not 256 bits")
    try:
        key = OctKey.import_key(jwk)
    except (JoseError, ValueError, TypeError, binascii.Error):
        _reject("malformed", "the window key is not a JWK")
    return key, header


def _check_window(window: MessageFacts, facts: MessageFacts, leeway: timedelta) -> None:
    """The window key is the signed producer's, for this integration, and in its window."""
    if window.producer != facts.producer or window.integration != facts.integration:
        _reject("bad_signature", "the window key belongs to another producer or integration")
    if not window.issued_at - leeway <= facts.issued_at <= window.expires_at + leeway:
        _reject("bad_signature", "the message was issued outside its window key's window")
