"""Window keys: one key agreement per window, each message still sealed on its own.

Round trips in every form, what a partner with plain joserfc does on either
side, when a window ends, and every way a keyed message is refused.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwe, jws
from joserfc.jwk import OctKey
from joserfc.registry import HeaderParameter
from joserfc.util import urlsafe_b64decode

from interlock.messaging.envelope import KeyWindows, SignerKey, seal
from interlock.messaging.model import CONTENT_TYPE_KEYED, EnvelopeRefused, MessageFacts, Outgoing
from interlock.messaging.opening import open_envelope
from interlock.messaging.window_keys import WindowKeyCache
from tests.messaging.test_envelope import (
    LEEWAY,
    NOW,
    PAYLOAD,
    Consumer,
    claims,
    facts,
    make_consumer,
    make_signer,
    open_as,
    refusal,
    verification,
)

_FACTS = {name: HeaderParameter(name, "str") for name in ("jti", "iss", "aud")} | {
    name: HeaderParameter(name, "int") for name in ("iat", "exp")
}
# What a partner's JOSE library is configured with to read and write keyed messages.
_KEY_JWE = jwe.JWERegistry(header_registry=_FACTS, algorithms=["ECDH-ES+A256KW", "A256GCM"])
_MESSAGE_JWE = jwe.JWERegistry(header_registry=_FACTS, algorithms=["A256KW", "A256GCM"])
_JWS = jws.JWSRegistry(header_registry=_FACTS, algorithms=["ES256"])


@pytest.fixture(scope="module")
def signer() -> SignerKey:
    """The producer's ES256 key."""
    return make_signer()


@pytest.fixture(scope="module")
def alice() -> Consumer:
    """A consumer with an ECDH-ES+A256KW key."""
    return make_consumer("alice")


@pytest.fixture(scope="module")
def carol() -> Consumer:
    """Another consumer of the same integration."""
    return make_consumer("carol")


def sealed(
    signer: SignerKey,
    *consumers: Consumer,
    windows: KeyWindows,
    message: MessageFacts | None = None,
    fields: tuple[str, ...] = (),
) -> Outgoing:
    """PAYLOAD sealed under ``windows`` to ``consumers``."""
    return seal(
        PAYLOAD,
        message or facts(),
        signer=signer,
        recipients=[c.recipient for c in consumers],
        encrypt_fields=fields,
        windows=windows,
    )


def parts(out: Outgoing) -> tuple[Any, str]:
    """The encrypted window key and the inner serialisation of a keyed message."""
    document = json.loads(out.body)
    assert set(document) == {"key", "message"}
    return document["key"], document["message"]


def keyed(key: Any, message: str) -> tuple[bytes, str]:
    """A keyed message of ``key`` and ``message``, as (body, content type)."""
    return json.dumps({"key": key, "message": message}).encode(), CONTENT_TYPE_KEYED


def protected(compact: str) -> dict[str, Any]:
    """The protected header of a compact serialisation."""
    header: dict[str, Any] = json.loads(
        urlsafe_b64decode(compact.split(".", maxsplit=1)[0].encode())
    )
    return header


def test_round_trip_one_consumer(signer: SignerKey, alice: Consumer) -> None:
    """One consumer: a compact encrypted JWK and a compact JWE under it; the payload comes back."""
    out = sealed(signer, alice, windows=KeyWindows())
    key, message = parts(out)
    assert out.content_type == CONTENT_TYPE_KEYED
    assert protected(key)["cty"] == "jwk+json"
    assert protected(key)["alg"] == "ECDH-ES+A256KW"
    assert protected(key)["kid"] == alice.recipient.kid
    assert protected(message)["alg"] == "A256KW"
    assert protected(message)["cty"] == "JOSE"
    assert b"ada@example.com" not in out.body
    assert open_as(alice, signer, out).payload == PAYLOAD


def test_round_trip_several_consumers(signer: SignerKey, alice: Consumer, carol: Consumer) -> None:
    """Several consumers: the window key is a general JWE to each; each opens the message."""
    out = sealed(signer, alice, carol, windows=KeyWindows())
    key, _message = parts(out)
    assert isinstance(key, dict)
    kids = {r["header"]["kid"] for r in key["recipients"]}
    assert kids == {alice.recipient.kid, carol.recipient.kid}
    assert open_as(alice, signer, out).payload == PAYLOAD
    assert open_as(carol, signer, out).payload == PAYLOAD


def test_round_trip_encrypted_fields(signer: SignerKey, alice: Consumer) -> None:
    """encrypt: fields: the message is the signed JWS, each field a JWE under the window key."""
    paths = ("customer.email", "items[].card")
    out = sealed(signer, alice, windows=KeyWindows(), fields=paths)
    _key, message = parts(out)
    assert message.count(".") == 2
    inner = json.loads(urlsafe_b64decode(message.split(".")[1].encode()))
    assert protected(inner["customer"]["email"])["alg"] == "A256KW"
    assert b"ada@example.com" not in out.body
    assert open_as(alice, signer, out, fields=paths).payload == PAYLOAD


def test_one_key_per_window_a_content_key_per_message(signer: SignerKey, alice: Consumer) -> None:
    """Messages of a window share the encrypted key; each has its own wrapped content key and IV."""
    windows = KeyWindows()
    first, second = sealed(signer, alice, windows=windows), sealed(signer, alice, windows=windows)
    (key1, message1), (key2, message2) = parts(first), parts(second)
    assert key1 == key2
    assert protected(message1)["kid"] == protected(message2)["kid"]
    assert message1.split(".")[1] != message2.split(".")[1]  # the wrapped content keys
    assert message1.split(".")[2] != message2.split(".")[2]  # the IVs


def test_a_window_ends_with_its_age_its_uses_and_its_recipients(
    signer: SignerKey, alice: Consumer, carol: Consumer
) -> None:
    """A new window key after key_window, after the most uses, for other recipients, on a clock going back."""
    windows = KeyWindows(age=timedelta(minutes=5), uses=3)

    def key_at(minutes: float, *consumers: Consumer) -> Any:
        at = NOW + timedelta(minutes=minutes)
        return parts(sealed(signer, *consumers, windows=windows, message=facts(issued=at)))[0]

    first = key_at(0, alice)
    assert key_at(4.9, alice) == first
    assert key_at(5, alice) != first  # the age
    windows = KeyWindows(age=timedelta(minutes=5), uses=3)
    keys = [key_at(0, alice) for _ in range(4)]
    assert keys[0] == keys[1] == keys[2] != keys[3]  # the uses
    assert key_at(0, alice, carol) != keys[3]  # other recipients
    assert key_at(-1, alice) != keys[3]  # the clock went back


def test_ended_windows_are_not_kept(signer: SignerKey, alice: Consumer, carol: Consumer) -> None:
    """A new window drops those past their age (a rotated consumer key's, for instance)."""
    windows = KeyWindows(age=timedelta(minutes=5))
    sealed(signer, alice, windows=windows)
    sealed(signer, alice, carol, windows=windows)
    assert len(windows) == 2
    sealed(signer, carol, windows=windows, message=facts(issued=NOW + timedelta(minutes=6)))
    assert len(windows) == 1


def test_window_limits_are_checked() -> None:
    """A window of no time or no message is refused."""
    with pytest.raises(ValueError, match="positive"):
        KeyWindows(age=timedelta(0))
    with pytest.raises(ValueError, match="positive"):
        KeyWindows(uses=0)


def test_plain_joserfc_reads_a_keyed_message(signer: SignerKey, alice: Consumer) -> None:
    """A partner without Interlock: decrypt the key, import the JWK, decrypt, verify."""
    out = sealed(signer, alice, windows=KeyWindows())
    key, message = parts(out)
    jwk = json.loads(jwe.decrypt_compact(key, alice.private, registry=_KEY_JWE).plaintext or b"")
    window = OctKey.import_key(jwk)
    signed = jwe.decrypt_compact(message, window, registry=_MESSAGE_JWE).plaintext or b""
    public = verification(signer)[signer.kid]
    verified = jws.deserialize_compact(signed, public, registry=_JWS)
    assert json.loads(verified.payload) == PAYLOAD


def partner_message(
    signer: SignerKey,
    consumer: Consumer,
    *,
    message: MessageFacts | None = None,
    key_claims: dict[str, Any] | None = None,
    jwk: dict[str, Any] | None = None,
    key_cty: str = "jwk+json",
) -> tuple[bytes, str]:
    """A keyed message written with plain joserfc, as a partner's producer would."""
    message = message or facts()
    window = OctKey.generate_key(256, {"alg": "A256KW", "kid": "w1"}, private=True)
    header = {**claims(message), "cty": key_cty, "alg": "ECDH-ES+A256KW", "enc": "A256GCM"}
    header |= key_claims or {}
    header["kid"] = consumer.recipient.kid
    document = jwk or window.as_dict(private=True)
    key = jwe.encrypt_compact(
        header, json.dumps(document), consumer.recipient.key, registry=_KEY_JWE
    )
    signed = jws.serialize_compact(
        {**claims(message), "alg": "ES256", "kid": signer.kid},
        json.dumps(PAYLOAD),
        signer.key,
        registry=_JWS,
    )
    inner_header = {**claims(message), "alg": "A256KW", "enc": "A256GCM", "kid": "w1"}
    inner = jwe.encrypt_compact(
        {**inner_header, "cty": "JOSE"}, signed, window, registry=_MESSAGE_JWE
    )
    return keyed(key, inner)


def test_interlock_reads_a_partners_keyed_message(signer: SignerKey, alice: Consumer) -> None:
    """A keyed message written with plain joserfc opens."""
    assert open_as(alice, signer, partner_message(signer, alice)).payload == PAYLOAD


def test_a_key_for_another_consumer_does_not_open(
    signer: SignerKey, alice: Consumer, carol: Consumer
) -> None:
    """Carol cannot open a message whose window key was encrypted to Alice."""
    out = sealed(signer, alice, windows=KeyWindows())
    assert refusal(carol, signer, out).reason == "undecryptable"


def test_a_message_with_another_windows_key_does_not_open(
    signer: SignerKey, alice: Consumer
) -> None:
    """The key of one window and the message of another: the message's kid names no key."""
    key, _ = parts(sealed(signer, alice, windows=KeyWindows()))
    _, message = parts(sealed(signer, alice, windows=KeyWindows()))
    assert refusal(alice, signer, keyed(key, message)).reason == "undecryptable"


def test_the_window_key_names_the_producer_and_integration(
    signer: SignerKey, alice: Consumer
) -> None:
    """A window key issued for another integration or by another producer is refused."""
    other_integration = partner_message(signer, alice, key_claims={"aud": "payments"})
    assert refusal(alice, signer, other_integration).reason == "bad_signature"
    other_producer = partner_message(signer, alice, key_claims={"iss": "intruder"})
    assert refusal(alice, signer, other_producer).reason == "bad_signature"


def test_a_message_outside_its_keys_window_is_refused(signer: SignerKey, alice: Consumer) -> None:
    """A message issued after its window key's window (beyond the leeway) is refused."""
    start = int(NOW.timestamp()) - 3600
    stale = {"iat": start, "exp": start + 300}
    refused = refusal(alice, signer, partner_message(signer, alice, key_claims=stale))
    assert refused.reason == "bad_signature"
    assert "window" in refused.detail
    within = {"iat": start, "exp": int(NOW.timestamp())}
    assert open_as(alice, signer, partner_message(signer, alice, key_claims=within))


@pytest.mark.parametrize(
    ("jwk", "cty", "detail"),
    [
        ({"kty": "oct", "k": "AAAA", "kid": "w1", "alg": "A256KW"}, "jwk+json", "256 bits"),
        ({"kty": "oct", "k": "A" * 43, "kid": "w1", "alg": "A128KW"}, "jwk+json", "oct JWK"),
        ({"kty": "oct", "k": "A" * 43, "kid": "w1", "alg": "A256KW", "x": 1}, "jwk+json", "oct"),
        ({"kty": "oct", "k": "A" * 43, "alg": "A256KW"}, "jwk+json", "kid and k"),
        ({"kty": "oct", "k": "A" * 43, "kid": "w1", "alg": "A256KW"}, "json", "cty"),
    ],
)
def test_a_window_key_must_be_a_256_bit_key_wrapping_jwk(
    signer: SignerKey, alice: Consumer, jwk: dict[str, Any], cty: str, detail: str
) -> None:
    """What the encrypted key holds is checked before it is used."""
    out = partner_message(signer, alice, jwk=jwk, key_cty=cty)
    refused = refusal(alice, signer, out)
    assert refused.reason == "malformed"
    assert detail in refused.detail


def test_the_container_is_checked(signer: SignerKey, alice: Consumer) -> None:
    """Members other than key and message, a message that is not a string, a key of no form."""
    key, message = parts(sealed(signer, alice, windows=KeyWindows()))
    extra = json.dumps({"key": key, "message": message, "note": "x"}).encode()
    assert refusal(alice, signer, (extra, CONTENT_TYPE_KEYED)).reason == "malformed"
    nested = json.dumps({"key": key, "message": {"m": message}}).encode()
    assert refusal(alice, signer, (nested, CONTENT_TYPE_KEYED)).reason == "malformed"
    assert refusal(alice, signer, keyed(42, message)).reason == "malformed"
    assert refusal(alice, signer, (b"{not json", CONTENT_TYPE_KEYED)).reason == "malformed"


def test_window_wrapping_only_under_a_window_key(signer: SignerKey, alice: Consumer) -> None:
    """A bare A256KW JWE is refused; inside the container, only A256KW is."""
    _key, message = parts(sealed(signer, alice, windows=KeyWindows()))
    bare = refusal(alice, signer, (message.encode(), "application/jose"))
    assert bare.reason == "malformed"
    assert "A256KW" in bare.detail
    direct = seal(PAYLOAD, facts(), signer=signer, recipients=[alice.recipient])
    key, _ = parts(sealed(signer, alice, windows=KeyWindows()))
    inside = refusal(alice, signer, keyed(key, direct.body.decode()))
    assert inside.reason == "malformed"


def test_the_integrations_mode_holds_under_a_window_key(signer: SignerKey, alice: Consumer) -> None:
    """An encrypt: payload consumer refuses a keyed message whose inner JWS is in clear."""
    out = sealed(signer, alice, windows=KeyWindows(), fields=("customer.email",))
    assert refusal(alice, signer, out).reason == "malformed"


def open_cached(
    consumer: Consumer, signer: SignerKey, out: Outgoing, cache: WindowKeyCache, keys: Any = None
) -> Any:
    """open_envelope with ``cache`` (and ``keys`` instead of the consumer's own)."""
    return open_envelope(
        out.body,
        out.content_type,
        integration="orders",
        producer="shop",
        encrypt="payload",
        verification_keys=verification(signer),
        decryption_keys=consumer.decryption_keys if keys is None else keys,
        now=NOW,
        leeway=LEEWAY,
        max_bytes=256 * 1024,
        windows=cache,
    )


def test_the_consumers_cache_serves_only_its_current_keys(
    signer: SignerKey, alice: Consumer, carol: Consumer
) -> None:
    """A cached window key opens the window's messages while the key that opened it is held."""
    windows, cache = KeyWindows(), WindowKeyCache()
    first, second = sealed(signer, alice, windows=windows), sealed(signer, alice, windows=windows)
    assert open_cached(alice, signer, first, cache).payload == PAYLOAD
    assert len(cache) == 1
    assert open_cached(alice, signer, second, cache).payload == PAYLOAD
    assert len(cache) == 1
    # Alice's key retired (not among her keys any more): the cached window key is not used.
    with pytest.raises(EnvelopeRefused) as retired:
        open_cached(alice, signer, second, cache, keys=carol.decryption_keys)
    assert retired.value.reason == "undecryptable"
    # Carol, sharing the cache, cannot open what was encrypted to Alice.
    with pytest.raises(EnvelopeRefused) as other:
        open_cached(carol, signer, second, cache)
    assert other.value.reason == "undecryptable"


def test_the_cache_is_bounded() -> None:
    """The oldest entry goes first."""
    cache = WindowKeyCache(entries=2)
    key = OctKey.generate_key(256)
    for name in ("a", "b", "c"):
        cache.put(name, "kid", key, {})
    assert len(cache) == 2
    assert cache.get("a", "kid") is None
    assert cache.get("c", "kid") is not None
