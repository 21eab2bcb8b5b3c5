"""Sealed envelopes: round trips in every form, and every reason a message is refused."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import ECKey, OctKey, RSAKey
from joserfc.registry import HeaderParameter
from joserfc.util import json_b64encode, urlsafe_b64decode, urlsafe_b64encode

from interlock.crypto.jose import generate_signing_key
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
    HEADER_INTEGRATION,
    EnvelopeRefused,
    EventFacts,
    MessageFacts,
    Opened,
    Outgoing,
)

NOW = datetime(2026, 12, 5, 8, 0, 0, tzinfo=UTC)
LEEWAY = timedelta(seconds=30)
PAYLOAD = {
    "order": 42,
    "total": 19.95,
    "customer": {"name": "Ada", "email": "ada@example.com", "city": "Zürich"},
    "items": [{"sku": "a", "card": "4111"}, {"sku": "b", "card": "5500"}],
}


@dataclass
class Consumer:
    """A consumer's key pair."""

    name: str
    private: ECKey | RSAKey
    recipient: RecipientKey

    @property
    def decryption_keys(self) -> dict[str, Any]:
        """Its private key by kid, as open_envelope wants it."""
        return {self.recipient.kid: self.private}


def make_signer(alg: str = "ES256") -> SignerKey:
    """A producer signing key."""
    key = generate_signing_key(alg)
    return SignerKey(kid=str(key.kid), alg=alg, key=key)


def make_consumer(name: str, alg: str = "ECDH-ES+A256KW") -> Consumer:
    """A consumer with a fresh encryption key for ``alg``."""
    private: ECKey | RSAKey = (
        ECKey.generate_key("P-256", private=True)
        if alg == "ECDH-ES+A256KW"
        else RSAKey.generate_key(2048, private=True)
    )
    private.ensure_kid()
    public = type(private).import_key(private.as_dict(private=False))
    return Consumer(name, private, RecipientKey(str(private.kid), alg, name, public))


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    """The producer's ES256 key."""
    return make_signer("ES256")


@pytest.fixture(scope="module")
def alice() -> Consumer:
    """A consumer with an ECDH-ES+A256KW key."""
    return make_consumer("alice")


@pytest.fixture(scope="module")
def bob() -> Consumer:
    """A consumer with an RSA-OAEP-256 key."""
    return make_consumer("bob", "RSA-OAEP-256")


def facts(
    *,
    integration: str = "orders",
    producer: str = "shop",
    issued: datetime = NOW,
    ttl: timedelta = timedelta(hours=1),
    jti: str | None = None,
) -> MessageFacts:
    """The facts of a new message."""
    return MessageFacts(jti or message_id(), integration, producer, issued, issued + ttl)


def verification(signer: SignerKey) -> dict[str, Any]:
    """The producer's public key by kid, as published."""
    return {signer.kid: type(signer.key).import_key(signer.key.as_dict(private=False))}


def open_as(
    consumer: Consumer,
    signer: SignerKey,
    out: Outgoing | tuple[bytes, str | None],
    *,
    now: datetime = NOW,
    integration: str = "orders",
    producer: str = "shop",
    max_bytes: int = 256 * 1024,
    fields: tuple[str, ...] = (),
    event: bool = False,
) -> Opened:
    """open_envelope as ``consumer`` of the integration ``orders`` produced by ``shop``
    (``fields``: with ``encrypt: fields``, the paths it declares; ``event``: an event's copy)."""
    body, content_type = (out.body, out.content_type) if isinstance(out, Outgoing) else out
    return open_envelope(
        body,
        content_type,
        integration=integration,
        producer=producer,
        encrypt="fields" if fields else "payload",
        encrypted_fields=fields,
        verification_keys=verification(signer),
        decryption_keys=consumer.decryption_keys,
        now=now,
        leeway=LEEWAY,
        max_bytes=max_bytes,
        event=event,
    )


def refusal(consumer: Consumer, signer: SignerKey, out: Any, **kwargs: Any) -> EnvelopeRefused:
    """The refusal opening ``out`` raises (the test fails if it opens)."""
    with pytest.raises(EnvelopeRefused) as caught:
        open_as(consumer, signer, out, **kwargs)
    return caught.value


def claims(message: MessageFacts) -> dict[str, Any]:
    """The facts as the documented replicated claims."""
    return {
        "jti": message.message_id,
        "iss": message.producer,
        "aud": message.integration,
        "iat": int(message.issued_at.timestamp()),
        "exp": int(message.expires_at.timestamp()),
    }


# Registries permissive enough to build what Interlock must refuse.
_FACT_HEADERS = {name: HeaderParameter(name, "str") for name in ("jti", "iss", "aud")} | {
    name: HeaderParameter(name, "int") for name in ("iat", "exp")
}
_LAX_JWE = jwe.JWERegistry(
    header_registry=_FACT_HEADERS,
    algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM", "A128GCM", "DEF"],
    strict_check_header=False,
)


def raw_jws(header: dict[str, Any], payload: bytes, key: Any, alg: str) -> str:
    """A compact JWS with exactly ``header`` (plus alg), signed by joserfc."""
    registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
    registry.header_registry.update(_FACT_HEADERS)
    return jws.serialize_compact({**header, "alg": alg}, payload, key, registry=registry)


def wrap(signed: str, header: dict[str, Any], to: RecipientKey) -> bytes:
    """``signed`` encrypted to ``to`` (JWE compact) with exactly ``header`` (plus alg, kid)."""
    protected = {"enc": "A256GCM", **header, "alg": to.alg, "kid": to.kid}
    return jwe.encrypt_compact(protected, signed, to.key, registry=_LAX_JWE).encode()


def nested(
    message: MessageFacts,
    signer: SignerKey,
    to: RecipientKey,
    *,
    jws_extra: dict[str, Any] | None = None,
    jwe_extra: dict[str, Any] | None = None,
    alg: str | None = None,
    key: Any = None,
) -> tuple[bytes, str]:
    """A whole-payload message built by hand, with extra (or changed) header parameters."""
    signed = raw_jws(
        {**claims(message), "kid": signer.kid, **(jws_extra or {})},
        json.dumps(PAYLOAD).encode(),
        key if key is not None else signer.key,
        alg or signer.alg,
    )
    jwe_header = {**claims(message), "cty": "JOSE", **(jwe_extra or {})}
    return wrap(signed, jwe_header, to), CONTENT_TYPE_COMPACT


def segments(body: bytes) -> list[str]:
    """The dot-separated segments of a compact serialisation."""
    return body.decode().split(".")


def with_segment(body: bytes, index: int, value: str) -> bytes:
    """``body`` with one compact segment replaced."""
    parts = segments(body)
    parts[index] = value
    return ".".join(parts).encode()


# --- round trips ---------------------------------------------------------------------


@pytest.mark.parametrize("signing", ["ES256", "Ed25519"])
@pytest.mark.parametrize("key_alg", ["ECDH-ES+A256KW", "RSA-OAEP-256"])
def test_one_consumer_gets_a_compact_jwe_holding_the_signed_payload(
    signing: str, key_alg: str
) -> None:
    """One consumer: JWE compact (five segments) around a JWS, facts in both headers."""
    producer, consumer = make_signer(signing), make_consumer("alice", key_alg)
    message = facts()
    out = seal(PAYLOAD, message, signer=producer, recipients=[consumer.recipient])
    assert out.content_type == CONTENT_TYPE_COMPACT
    assert out.message_id == message.message_id
    assert out.expires_at == message.expires_at
    assert out.headers == {HEADER_INTEGRATION: "orders"}
    assert len(segments(out.body)) == 5
    header = json.loads(urlsafe_b64decode(segments(out.body)[0].encode()))
    assert header["alg"] == key_alg
    assert header["enc"] == "A256GCM"
    assert header["cty"] == "JOSE"
    assert {k: header[k] for k in claims(message)} == claims(message)
    assert b"ada@example.com" not in out.body
    opened = open_as(consumer, producer, out)
    assert opened.payload == PAYLOAD
    assert opened.facts == message
    assert opened.signer_kid == producer.kid


def test_several_consumers_get_general_json_and_each_opens_it_with_its_own_key(
    signer: SignerKey, alice: Consumer, bob: Consumer
) -> None:
    """Two consumers (ECDH and RSA): one general JSON JWE, a recipient each."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient, bob.recipient])
    assert out.content_type == CONTENT_TYPE_JSON
    document = json.loads(out.body)
    assert [r["header"]["kid"] for r in document["recipients"]] == [
        alice.recipient.kid,
        bob.recipient.kid,
    ]
    assert open_as(alice, signer, out).payload == PAYLOAD
    assert open_as(bob, signer, out).payload == PAYLOAD
    stranger = make_consumer("mallory")
    assert refusal(stranger, signer, out).reason == "undecryptable"


def test_field_level_encrypts_only_the_named_fields(signer: SignerKey, alice: Consumer) -> None:
    """encrypt_fields: those values become JWEs, the rest stays readable and is signed."""
    out = seal(
        PAYLOAD,
        facts(),
        signer=signer,
        recipients=[alice.recipient],
        encrypt_fields=["customer.email", "items[].card", "absent.field"],
    )
    assert out.content_type == CONTENT_TYPE_COMPACT
    header_segment, payload_segment, _ = segments(out.body)
    header = json.loads(urlsafe_b64decode(header_segment.encode()))
    assert header[FIELDS_HEADER] == ["customer.email", "items[].card", "absent.field"]
    visible = json.loads(urlsafe_b64decode(payload_segment.encode()))
    assert visible["customer"]["name"] == "Ada"
    assert visible["total"] == 19.95
    assert [item["sku"] for item in visible["items"]] == ["a", "b"]
    for sealed in (visible["customer"]["email"], *(i["card"] for i in visible["items"])):
        assert isinstance(sealed, str)
        assert sealed.count(".") == 4
    # In clear, the payload would show them once its segment is decoded ("@" cannot
    # occur by chance in base64url; the cards are compared whole).
    assert "ada@example.com" not in json.dumps(visible)
    assert all(item["card"] not in {"4111", "5500"} for item in visible["items"])
    paths = ("customer.email", "items[].card", "absent.field")
    assert open_as(alice, signer, out, fields=paths).payload == PAYLOAD


def test_field_level_with_several_consumers_uses_general_json_per_field(
    signer: SignerKey, alice: Consumer, bob: Consumer
) -> None:
    """Each encrypted field is one general JSON JWE with a recipient per consumer."""
    out = seal(
        PAYLOAD,
        facts(),
        signer=signer,
        recipients=[alice.recipient, bob.recipient],
        encrypt_fields=["customer"],
    )
    visible = json.loads(urlsafe_b64decode(segments(out.body)[1].encode()))
    assert len(visible["customer"]["recipients"]) == 2
    assert open_as(alice, signer, out, fields=("customer",)).payload == PAYLOAD
    assert open_as(bob, signer, out, fields=("customer",)).payload == PAYLOAD


def test_changing_a_clear_field_breaks_the_signature(signer: SignerKey, alice: Consumer) -> None:
    """The readable part of a field-level message is signed: editing it is refused."""
    out = seal(
        PAYLOAD,
        facts(),
        signer=signer,
        recipients=[alice.recipient],
        encrypt_fields=["customer.email"],
    )
    visible = json.loads(urlsafe_b64decode(segments(out.body)[1].encode()))
    visible["total"] = 0.01
    forged = with_segment(out.body, 1, urlsafe_b64encode(json.dumps(visible).encode()).decode())
    refused = refusal(alice, signer, (forged, CONTENT_TYPE_COMPACT), fields=("customer.email",))
    assert refused.reason == "bad_signature"


def test_content_type_may_be_missing(signer: SignerKey, alice: Consumer, bob: Consumer) -> None:
    """A broker that lost the content type: the serialisation still tells the form."""
    for recipients in ([alice.recipient], [alice.recipient, bob.recipient]):
        out = seal(PAYLOAD, facts(), signer=signer, recipients=recipients)
        assert open_as(alice, signer, (out.body, None)).payload == PAYLOAD


def test_seal_refuses_what_it_must_not_produce(signer: SignerKey, alice: Consumer) -> None:
    """No recipient, a disallowed algorithm, naive times: ValueError before anything is sent."""
    with pytest.raises(ValueError, match="recipients"):
        seal(PAYLOAD, facts(), signer=signer, recipients=[])
    weak = SignerKey(signer.kid, "RS256", signer.key)
    with pytest.raises(ValueError, match="RS256"):
        seal(PAYLOAD, facts(), signer=weak, recipients=[alice.recipient])
    naive = MessageFacts("m", "orders", "shop", datetime(2026, 1, 1), datetime(2026, 1, 2))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone"):
        seal(PAYLOAD, naive, signer=signer, recipients=[alice.recipient])
    with pytest.raises(ValueError, match="field path"):
        seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient], encrypt_fields=["a..b"])
    with pytest.raises(ValueError, match="not JSON"):
        seal({"when": NOW}, facts(), signer=signer, recipients=[alice.recipient])


def test_message_ids_are_random() -> None:
    """Two calls, two ids of 32 hex digits."""
    first, second = message_id(), message_id()
    assert first != second
    assert len(first) == 32
    assert int(first, 16) >= 0


# --- refusals ------------------------------------------------------------------------


def test_a_tampered_ciphertext_byte_is_undecryptable(signer: SignerKey, alice: Consumer) -> None:
    """GCM authenticates the ciphertext: one changed character and nothing opens."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    ciphertext = segments(out.body)[3]
    flipped = ciphertext[:10] + ("A" if ciphertext[10] != "A" else "B") + ciphertext[11:]
    tampered = with_segment(out.body, 3, flipped)
    assert refusal(alice, signer, (tampered, CONTENT_TYPE_COMPACT)).reason == "undecryptable"


def test_a_tampered_protected_header_is_undecryptable(signer: SignerKey, alice: Consumer) -> None:
    """The protected header is the AAD: extending exp breaks decryption."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    header = json.loads(urlsafe_b64decode(segments(out.body)[0].encode()))
    header["exp"] += 86400
    tampered = with_segment(out.body, 0, json_b64encode(header).decode())
    assert refusal(alice, signer, (tampered, CONTENT_TYPE_COMPACT)).reason == "undecryptable"


def test_a_tampered_general_json_protected_header_is_undecryptable(
    signer: SignerKey, alice: Consumer, bob: Consumer
) -> None:
    """The same for the general JSON serialisation."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient, bob.recipient])
    document = json.loads(out.body)
    header = json.loads(urlsafe_b64decode(document["protected"].encode()))
    header["aud"] = "payments"
    document["protected"] = json_b64encode(header).decode()
    tampered = json.dumps(document).encode()
    assert refusal(bob, signer, (tampered, CONTENT_TYPE_JSON)).reason == "undecryptable"


def test_a_key_impersonating_the_producers_kid_fails_the_signature(
    signer: SignerKey, alice: Consumer
) -> None:
    """Signed by another key under the producer's kid: bad_signature."""
    impostor = make_signer("ES256")
    forged = SignerKey(signer.kid, "ES256", impostor.key)
    out = seal(PAYLOAD, facts(), signer=forged, recipients=[alice.recipient])
    assert refusal(alice, signer, out).reason == "bad_signature"


def test_an_unknown_signing_kid_is_the_wrong_signer(signer: SignerKey, alice: Consumer) -> None:
    """A key the producer never published: wrong_signer."""
    out = seal(PAYLOAD, facts(), signer=make_signer("Ed25519"), recipients=[alice.recipient])
    assert refusal(alice, signer, out).reason == "wrong_signer"


def test_another_producer_named_in_the_facts_is_the_wrong_signer(
    signer: SignerKey, alice: Consumer
) -> None:
    """Signed with the right key but issued as another producer: wrong_signer."""
    out = seal(PAYLOAD, facts(producer="crm"), signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, out).reason == "wrong_signer"


def test_a_message_of_another_integration_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """aud names another integration: wrong_integration."""
    out = seal(PAYLOAD, facts(integration="payments"), signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, out).reason == "wrong_integration"


def test_an_expired_message_is_refused_after_the_leeway(signer: SignerKey, alice: Consumer) -> None:
    """Within the leeway after exp it opens; past it, expired."""
    message = facts(ttl=timedelta(minutes=5))
    out = seal(PAYLOAD, message, signer=signer, recipients=[alice.recipient])
    assert open_as(alice, signer, out, now=message.expires_at + timedelta(seconds=29))
    late = message.expires_at + LEEWAY
    assert refusal(alice, signer, out, now=late).reason == "expired"


def test_a_message_from_the_future_is_not_yet_valid(signer: SignerKey, alice: Consumer) -> None:
    """Issued beyond the leeway ahead of now: not_yet_valid."""
    message = facts(issued=NOW + timedelta(minutes=2))
    out = seal(PAYLOAD, message, signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, out).reason == "not_yet_valid"
    assert open_as(alice, signer, out, now=NOW + timedelta(minutes=1, seconds=31))


def test_a_message_over_the_size_cap_is_refused_before_parsing(
    signer: SignerKey, alice: Consumer
) -> None:
    """Larger than max_bytes: too_large, even if it would open."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, out, max_bytes=len(out.body) - 1).reason == "too_large"
    assert open_as(alice, signer, out, max_bytes=len(out.body))


def test_a_large_message_within_the_cap_opens(signer: SignerKey, alice: Consumer) -> None:
    """joserfc's default 64 KiB ciphertext cap does not cut the integration's own cap."""
    big = {"blob": "x" * 100_000}
    out = seal(big, facts(), signer=signer, recipients=[alice.recipient])
    assert open_as(alice, signer, out).payload == big


def test_an_unsigned_alg_none_jws_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """alg none (RFC 8725 §2.1): malformed, never verified."""
    message = facts()
    header = {**claims(message), "kid": signer.kid, "alg": "none"}
    unsigned = f"{json_b64encode(header).decode()}.{urlsafe_b64encode(b'{}').decode()}."
    body = wrap(unsigned, {**claims(message), "cty": "JOSE"}, alice.recipient)
    refused = refusal(alice, signer, (body, CONTENT_TYPE_COMPACT))
    assert refused.reason == "malformed"
    assert "'none'" in refused.detail


def test_an_hmac_signature_keyed_with_the_public_key_is_refused(
    signer: SignerKey, alice: Consumer
) -> None:
    """HS256 with the published key as secret (the algorithm confusion): malformed."""
    secret = OctKey.import_key(json.dumps(signer.key.as_dict(private=False)).encode())
    body = nested(facts(), signer, alice.recipient, alg="HS256", key=secret)
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "'HS256'" in refused.detail


def test_a_compressed_jwe_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """zip: DEF (compression oracles): malformed."""
    body = nested(facts(), signer, alice.recipient, jwe_extra={"zip": "DEF"})
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "'zip' refused" in refused.detail


@pytest.mark.parametrize("where", ["jws", "jwe"])
def test_a_critical_header_is_refused(signer: SignerKey, alice: Consumer, where: str) -> None:
    """crit (RFC 7515 §4.1.11), in the JWS or the JWE: malformed."""
    extra = {"crit": ["exp"]}
    body = nested(
        facts(),
        signer,
        alice.recipient,
        jws_extra=extra if where == "jws" else None,
        jwe_extra=extra if where == "jwe" else None,
    )
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "'crit' refused" in refused.detail


@pytest.mark.parametrize("name", ["jku", "jwk", "x5u"])
def test_key_locations_in_the_message_are_refused(
    signer: SignerKey, alice: Consumer, name: str
) -> None:
    """jku / jwk / x5u in the JWS (RFC 8725 §3.10): refused, never fetched or used."""
    value: Any = signer.key.as_dict(private=False) if name == "jwk" else "https://evil.test/k"
    body = nested(facts(), signer, alice.recipient, jws_extra={name: value})
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert f"'{name}' refused" in refused.detail


def test_an_unknown_header_parameter_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """Header parameters are allow-listed."""
    body = nested(facts(), signer, alice.recipient, jwe_extra={"x-debug": "1"})
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "x-debug" in refused.detail


def test_a_weaker_content_encryption_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """enc other than A256GCM: malformed."""
    body = nested(facts(), signer, alice.recipient, jwe_extra={"enc": "A128GCM"})
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "A128GCM" in refused.detail


def test_a_jwe_that_does_not_declare_a_nested_jws_is_refused(
    signer: SignerKey, alice: Consumer
) -> None:
    """cty must be JOSE (RFC 7516 §4.1.12)."""
    body = nested(facts(), signer, alice.recipient, jwe_extra={"cty": "json"})
    refused = refusal(alice, signer, body)
    assert refused.reason == "malformed"
    assert "cty" in refused.detail


def test_a_signed_message_rewrapped_under_other_facts_is_refused(
    signer: SignerKey, alice: Consumer
) -> None:
    """A consumer re-encrypts another message's JWS under a fresh id: the facts differ."""
    original = facts()
    out = seal(PAYLOAD, original, signer=signer, recipients=[alice.recipient])
    signed = jwe.decrypt_compact(out.body, alice.private, registry=_LAX_JWE).plaintext
    assert signed is not None
    fresh = facts(jti=message_id())
    rewrapped = wrap(signed.decode(), {**claims(fresh), "cty": "JOSE"}, alice.recipient)
    refused = refusal(alice, signer, (rewrapped, CONTENT_TYPE_COMPACT))
    assert refused.reason == "bad_signature"
    assert "facts differ" in refused.detail


def test_garbage_is_malformed(signer: SignerKey, alice: Consumer) -> None:
    """Not JOSE at all, in every content type."""
    for body, content_type in (
        (b"hello", CONTENT_TYPE_COMPACT),
        (b"{}", CONTENT_TYPE_JSON),
        (b"a.b.c.d.e", CONTENT_TYPE_COMPACT),
        ("é".encode(), None),
        (b"[1]", "application/json"),
        (b'{"protected":"e30","recipients":[],"iv":"","ciphertext":"","tag":""}', None),
    ):
        assert refusal(alice, signer, (body, content_type)).reason == "malformed", body


@pytest.mark.parametrize("repeated", ["kid", "alg", "cty"])
def test_a_header_name_both_protected_and_per_recipient_is_malformed(
    signer: SignerKey, alice: Consumer, repeated: str
) -> None:
    """RFC 7516 §7.2.1: the protected and per-recipient headers must be disjoint. A compact
    message re-serialised as general JSON with a protected name repeated per recipient would
    otherwise decrypt (a byte-different copy of a genuine message): refused as malformed."""
    out = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    protected, encrypted_key, iv, ciphertext, tag = segments(out.body)
    header = json.loads(urlsafe_b64decode(protected.encode()))
    general = {
        "protected": protected,
        "recipients": [{"header": {repeated: header[repeated]}, "encrypted_key": encrypted_key}],
        "iv": iv,
        "ciphertext": ciphertext,
        "tag": tag,
    }
    refused = refusal(alice, signer, (json.dumps(general).encode(), CONTENT_TYPE_JSON))
    assert refused.reason == "malformed"
    assert repeated in refused.detail


# --- an event's copy: subject and schema bound like the facts --------------------------

EVENT_FACTS = EventFacts(subject="order.created", schema_id=7, schema_version=2)
EVENT_CLAIMS = {
    "interlock_subject": "order.created",
    "interlock_schema_id": 7,
    "interlock_schema_version": 2,
}


def event_facts(event: EventFacts = EVENT_FACTS) -> MessageFacts:
    """The facts of a new event's copy."""
    return dataclasses.replace(facts(), event=event)


def protected(segment: str) -> dict[str, Any]:
    """A compact serialisation's protected header, decoded."""
    decoded: dict[str, Any] = json.loads(urlsafe_b64decode(segment.encode()))
    return decoded


def test_an_events_subject_and_schema_are_in_both_protected_headers(
    signer: SignerKey, alice: Consumer
) -> None:
    sent = event_facts()
    out = seal(PAYLOAD, sent, signer=signer, recipients=[alice.recipient])
    assert protected(segments(out.body)[0]).items() >= EVENT_CLAIMS.items()
    signed = jwe.decrypt_compact(out.body, alice.private, registry=_LAX_JWE).plaintext
    assert signed is not None
    assert protected(signed.decode().split(".")[0]).items() >= EVENT_CLAIMS.items()
    opened = open_as(alice, signer, out, event=True)
    assert opened.facts == sent
    assert opened.payload == PAYLOAD


def test_a_message_is_not_an_event_and_an_event_is_not_a_message(
    signer: SignerKey, alice: Consumer
) -> None:
    message = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, message, event=True).reason == "malformed"
    copy = seal(PAYLOAD, event_facts(), signer=signer, recipients=[alice.recipient])
    assert refusal(alice, signer, copy).reason == "malformed"


def test_an_events_schema_version_changed_in_the_jwe_header_is_undecryptable(
    signer: SignerKey, alice: Consumer
) -> None:
    """The JWE's protected header is its additional authenticated data (RFC 7516 §5.1)."""
    out = seal(PAYLOAD, event_facts(), signer=signer, recipients=[alice.recipient])
    header = protected(segments(out.body)[0]) | {"interlock_schema_version": 1}
    tampered = with_segment(out.body, 0, json_b64encode(header).decode())
    assert refusal(alice, signer, (tampered, CONTENT_TYPE_COMPACT), event=True).reason == (
        "undecryptable"
    )


def test_an_events_signed_copy_rewrapped_under_another_version_is_refused(
    signer: SignerKey, alice: Consumer
) -> None:
    """A consumer re-encrypts a copy's JWS claiming another version: the facts differ."""
    sent = event_facts()
    out = seal(PAYLOAD, sent, signer=signer, recipients=[alice.recipient])
    signed = jwe.decrypt_compact(out.body, alice.private, registry=_LAX_JWE).plaintext
    assert signed is not None
    header = {**claims(sent), **EVENT_CLAIMS, "interlock_schema_version": 1, "cty": "JOSE"}
    rewrapped = wrap(signed.decode(), header, alice.recipient)
    refused = refusal(alice, signer, (rewrapped, CONTENT_TYPE_COMPACT), event=True)
    assert refused.reason == "bad_signature"
    assert "facts differ" in refused.detail


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"interlock_subject": "order.created"}, "malformed"),  # not all three
        ({**EVENT_CLAIMS, "interlock_schema_version": 0}, "malformed"),
        ({**EVENT_CLAIMS, "interlock_subject": ""}, "malformed"),
        # joserfc's header registry checks the type while decrypting.
        ({**EVENT_CLAIMS, "interlock_schema_id": "7"}, "undecryptable"),
    ],
)
def test_an_incomplete_or_ill_typed_event_binding_is_refused(
    signer: SignerKey, alice: Consumer, extra: dict[str, Any], reason: str
) -> None:
    body = nested(facts(), signer, alice.recipient, jws_extra=extra, jwe_extra=extra)
    assert refusal(alice, signer, body, event=True).reason == reason
