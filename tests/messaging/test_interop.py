"""Partners without Interlock: plain joserfc (and authlib.jose) read and write the format.

Each side holds only what a partner would: its own private key as a JWK and
the other side's published public JWK. The calls below are the documented
recipe (docs/messaging.md): nothing here imports Interlock to read or write.
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, JWKRegistry, OKPKey, RSAKey
from joserfc.registry import HeaderParameter

from interlock.messaging.envelope import (
    FIELDS_HEADER,
    RecipientKey,
    SignerKey,
    message_id,
    open_envelope,
    seal,
)
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    CONTENT_TYPE_JSON,
    MessageFacts,
)

NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
PAYLOAD = {"order": 7, "customer": {"email": "grace@example.com", "name": "Grace"}, "n": 1.25}

# --- what a partner writes, following the documented format --------------------------

#: The replicated claims (RFC 7519 §5.3) every protected header carries.
PARTNER_HEADERS = {
    "jti": HeaderParameter("message id", "str", True),
    "iss": HeaderParameter("producer", "str", True),
    "aud": HeaderParameter("integration", "str", True),
    "iat": HeaderParameter("issued at", "int", True),
    "exp": HeaderParameter("expires at", "int", True),
}
PARTNER_JWS = jws.JWSRegistry(
    header_registry={
        **PARTNER_HEADERS,
        FIELDS_HEADER: HeaderParameter("encrypted fields", "list[str]"),
    },
    algorithms=["ES256", "Ed25519"],
)
PARTNER_JWE = jwe.JWERegistry(
    header_registry=PARTNER_HEADERS, algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"]
)


def partner_open(body: bytes, private_jwk: dict[str, Any], producer_jwk: dict[str, Any]) -> Any:
    """Decrypt and verify a whole-payload message with plain joserfc."""
    private = JWKRegistry.import_key(private_jwk)
    producer = JWKRegistry.import_key(producer_jwk)
    encrypted: Any
    if body.startswith(b"{"):
        document = json.loads(body)
        # RFC 7516 §7.2.2: take our recipient and decrypt it as the flattened form.
        (mine,) = [r for r in document.pop("recipients") if r["header"]["kid"] == private.kid]
        flattened: Any = {**document, **mine}
        encrypted = jwe.decrypt_json(flattened, private, registry=PARTNER_JWE)
    else:
        encrypted = jwe.decrypt_compact(body, private, registry=PARTNER_JWE)
    assert encrypted.protected["cty"] == "JOSE"
    assert encrypted.plaintext is not None
    signed = jws.deserialize_compact(encrypted.plaintext, producer, registry=PARTNER_JWS)
    facts = {name: signed.protected[name] for name in PARTNER_HEADERS}
    assert facts == {name: encrypted.protected[name] for name in PARTNER_HEADERS}
    return json.loads(signed.payload), facts


def partner_seal(
    payload: Any, facts: dict[str, Any], signing_jwk: dict[str, Any], to: list[dict[str, Any]]
) -> tuple[bytes, str]:
    """Sign, then encrypt to every consumer's published JWK, with plain joserfc."""
    signer = JWKRegistry.import_key(signing_jwk)
    signed = jws.serialize_compact(
        {**facts, "alg": signing_jwk["alg"], "kid": signer.kid},
        json.dumps(payload).encode(),
        signer,
        registry=PARTNER_JWS,
    )
    protected = {**facts, "cty": "JOSE", "enc": "A256GCM"}
    keys = [JWKRegistry.import_key(jwk) for jwk in to]
    if len(to) == 1:
        header = {**protected, "alg": to[0]["alg"], "kid": keys[0].kid}
        body = jwe.encrypt_compact(header, signed, keys[0], registry=PARTNER_JWE)
        return body.encode(), CONTENT_TYPE_COMPACT
    message = jwe.GeneralJSONEncryption(protected, signed.encode())
    for jwk, key in zip(to, keys, strict=True):
        message.add_recipient({"alg": jwk["alg"], "kid": key.kid}, key)
    document = jwe.encrypt_json(message, None, registry=PARTNER_JWE)
    return json.dumps(document).encode(), CONTENT_TYPE_JSON


# --- keys as JWKs (what MessagingKeys publishes and each party keeps) ----------------


def jwk_pair(key: ECKey | OKPKey | RSAKey, alg: str, use: str) -> tuple[dict[str, Any], Any]:
    """The key's private JWK (kept by its owner) and public JWK (published)."""
    key.ensure_kid()
    public = key.as_dict(private=False) | {"alg": alg, "use": use}
    return key.as_dict(private=True) | {"alg": alg, "use": use}, public


def signing_pair(alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A producer's signing key as private and public JWKs."""
    key = (
        ECKey.generate_key("P-256", private=True)
        if alg == "ES256"
        else OKPKey.generate_key("Ed25519", private=True)
    )
    return jwk_pair(key, alg, "sig")


def encryption_pair(alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A consumer's encryption key as private and public JWKs."""
    key = (
        ECKey.generate_key("P-256", private=True)
        if alg == "ECDH-ES+A256KW"
        else RSAKey.generate_key(2048, private=True)
    )
    return jwk_pair(key, alg, "enc")


def interlock_signer(private_jwk: dict[str, Any]) -> SignerKey:
    """Interlock's view of a signing JWK."""
    key = JWKRegistry.import_key(private_jwk)
    assert isinstance(key, ECKey | OKPKey)
    return SignerKey(private_jwk["kid"], private_jwk["alg"], key)


def interlock_recipient(public_jwk: dict[str, Any], consumer: str) -> RecipientKey:
    """Interlock's view of a published encryption JWK."""
    key = JWKRegistry.import_key(public_jwk)
    assert isinstance(key, ECKey | RSAKey)
    return RecipientKey(public_jwk["kid"], public_jwk["alg"], consumer, key)


def interlock_open(
    body: bytes, content_type: str, producer: dict[str, Any], mine: dict[str, Any]
) -> Any:
    """open_envelope with the published producer JWK and the consumer's private JWK."""
    return open_envelope(
        body,
        content_type,
        integration="orders",
        producer="shop",
        encrypt="payload",
        verification_keys={producer["kid"]: JWKRegistry.import_key(producer)},
        decryption_keys={mine["kid"]: JWKRegistry.import_key(mine)},
        now=NOW,
        leeway=timedelta(seconds=30),
        max_bytes=256 * 1024,
    ).payload


def facts() -> MessageFacts:
    """A message of integration orders from producer shop."""
    return MessageFacts(message_id(), "orders", "shop", NOW, NOW + timedelta(hours=1))


def claims(message: MessageFacts) -> dict[str, Any]:
    """The facts as replicated claims."""
    return {
        "jti": message.message_id,
        "iss": message.producer,
        "aud": message.integration,
        "iat": int(message.issued_at.timestamp()),
        "exp": int(message.expires_at.timestamp()),
    }


# --- Interlock -> partner ------------------------------------------------------------


@pytest.mark.parametrize(
    ("signing", "encryption"), [("ES256", "ECDH-ES+A256KW"), ("Ed25519", "RSA-OAEP-256")]
)
def test_plain_joserfc_opens_a_message_sealed_by_interlock(signing: str, encryption: str) -> None:
    """One consumer, compact: the partner decrypts and verifies with the published keys."""
    signing_private, signing_public = signing_pair(signing)
    consumer_private, consumer_public = encryption_pair(encryption)
    message = facts()
    out = seal(
        PAYLOAD,
        message,
        signer=interlock_signer(signing_private),
        recipients=[interlock_recipient(consumer_public, "crm")],
    )
    payload, seen = partner_open(out.body, consumer_private, signing_public)
    assert payload == PAYLOAD
    assert seen == claims(message)


def test_plain_joserfc_opens_a_general_json_message_as_each_consumer() -> None:
    """Two consumers: each partner finds its recipient and decrypts."""
    signing_private, signing_public = signing_pair("ES256")
    pairs = [encryption_pair("ECDH-ES+A256KW"), encryption_pair("RSA-OAEP-256")]
    out = seal(
        PAYLOAD,
        facts(),
        signer=interlock_signer(signing_private),
        recipients=[interlock_recipient(public, f"c{i}") for i, (_, public) in enumerate(pairs)],
    )
    assert out.content_type == CONTENT_TYPE_JSON
    for private, _ in pairs:
        assert partner_open(out.body, private, signing_public)[0] == PAYLOAD


def test_plain_joserfc_reads_a_field_level_message() -> None:
    """Verify the JWS, then decrypt each listed field's JWE."""
    signing_private, signing_public = signing_pair("ES256")
    consumer_private, consumer_public = encryption_pair("ECDH-ES+A256KW")
    out = seal(
        PAYLOAD,
        facts(),
        signer=interlock_signer(signing_private),
        recipients=[interlock_recipient(consumer_public, "crm")],
        encrypt_fields=["customer.email"],
    )
    signed = jws.deserialize_compact(
        out.body, JWKRegistry.import_key(signing_public), registry=PARTNER_JWS
    )
    assert signed.protected[FIELDS_HEADER] == ["customer.email"]
    payload = json.loads(signed.payload)
    assert payload["customer"]["name"] == "Grace"
    field = jwe.decrypt_compact(
        payload["customer"]["email"],
        JWKRegistry.import_key(consumer_private),
        registry=PARTNER_JWE,
    )
    assert field.protected["cty"] == "json"
    assert field.plaintext is not None
    assert json.loads(field.plaintext) == "grace@example.com"


# --- partner -> Interlock ------------------------------------------------------------


@pytest.mark.parametrize("consumers", [1, 2])
def test_open_envelope_opens_a_message_built_with_plain_joserfc(consumers: int) -> None:
    """A partner producer following the format: Interlock's consumers open it."""
    signing_private, signing_public = signing_pair("Ed25519")
    pairs = [encryption_pair("ECDH-ES+A256KW"), encryption_pair("RSA-OAEP-256")][:consumers]
    body, content_type = partner_seal(
        PAYLOAD, claims(facts()), signing_private, [public for _, public in pairs]
    )
    for private, _ in pairs:
        assert interlock_open(body, content_type, signing_public, private) == PAYLOAD


# --- a second library: authlib.jose --------------------------------------------------


@pytest.fixture(scope="module")
def authlib_jose() -> Any:
    """authlib.jose (a dependency; it warns that it is deprecated in favour of joserfc)."""
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AuthlibDeprecationWarning)
        import authlib.jose  # type: ignore[import-untyped]

    return authlib.jose


def test_authlib_opens_a_message_sealed_by_interlock(authlib_jose: Any) -> None:
    """Another implementation decrypts the JWE and verifies the nested JWS."""
    signing_private, signing_public = signing_pair("ES256")
    consumer_private, consumer_public = encryption_pair("ECDH-ES+A256KW")
    message = facts()
    out = seal(
        PAYLOAD,
        message,
        signer=interlock_signer(signing_private),
        recipients=[interlock_recipient(consumer_public, "crm")],
    )
    encryption = authlib_jose.JsonWebEncryption(algorithms=["ECDH-ES+A256KW", "A256GCM"])
    decrypted = encryption.deserialize_compact(
        out.body, authlib_jose.JsonWebKey.import_key(consumer_private)
    )
    assert decrypted["header"]["cty"] == "JOSE"
    signature = authlib_jose.JsonWebSignature(algorithms=["ES256"])
    verified = signature.deserialize_compact(
        decrypted["payload"], authlib_jose.JsonWebKey.import_key(signing_public)
    )
    assert json.loads(verified["payload"]) == PAYLOAD
    assert {k: verified["header"][k] for k in PARTNER_HEADERS} == claims(message)


def test_open_envelope_opens_a_message_built_with_authlib(authlib_jose: Any) -> None:
    """authlib signs (ES256) and encrypts (RSA-OAEP-256): Interlock opens it."""
    signing_private, signing_public = signing_pair("ES256")
    consumer_private, consumer_public = encryption_pair("RSA-OAEP-256")
    message_claims = claims(facts())
    signed = authlib_jose.JsonWebSignature(algorithms=["ES256"]).serialize_compact(
        {**message_claims, "alg": "ES256", "kid": signing_public["kid"]},
        json.dumps(PAYLOAD).encode(),
        authlib_jose.JsonWebKey.import_key(signing_private),
    )
    header = {
        **message_claims,
        "alg": "RSA-OAEP-256",
        "enc": "A256GCM",
        "cty": "JOSE",
        "kid": consumer_public["kid"],
    }
    body = authlib_jose.JsonWebEncryption(algorithms=["RSA-OAEP-256", "A256GCM"]).serialize_compact(
        header, signed, authlib_jose.JsonWebKey.import_key(consumer_public)
    )
    assert interlock_open(body, CONTENT_TYPE_COMPACT, signing_public, consumer_private) == PAYLOAD
