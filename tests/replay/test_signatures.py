"""Signed requests (RFC 9421): the RFC's own examples, then every way a signature is refused."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from http_message_signatures import ContentDigest, HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ECDSA_P256_SHA256, ED25519, HMAC_SHA256
from joserfc.jwk import ECKey, JWKRegistry, OKPKey
from multidict import CIMultiDict
from sqlalchemy import select

from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.errors import InvalidRequestError, NotFoundError
from interlock.identity.client_keys import ClientKeys, ResolvedKey
from interlock.identity.tables import ClientKeyRow
from interlock.replay.seen import MemorySeen
from interlock.replay.signatures import (
    RequestSignatures,
    SignatureRefused,
    SignedMessage,
    verify_with_key,
)
from interlock.store import Deployment, initialise
from interlock.store.base import table_of
from interlock.testing.clock import ManualClock

EXAMPLES = Path(__file__).parent / "data" / "rfc9421_appendix_b.json"
MANIFEST = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
URL = "https://gw.example:8443/edi/orders?batch=7"
BODY = b'{"order": 1001, "lines": [{"sku": "A-1", "qty": 2}]}'
WINDOW = timedelta(minutes=1)
_LIBRARY_ALG = {
    "ed25519": ED25519,
    "ecdsa-p256-sha256": ECDSA_P256_SHA256,
    "hmac-sha256": HMAC_SHA256,
}


# --- RFC 9421 Appendix B: the published signatures verify, and a changed one does not ---


def _examples() -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = json.loads(EXAMPLES.read_text())["examples"]
    return examples


def _rfc_key(document: dict[str, Any], keyid: str) -> ResolvedKey:
    spec = document["keys"][keyid]
    if "public_pem" in spec:
        kty = "OKP" if spec["alg"] == "ed25519" else "EC"
        key = JWKRegistry.import_key(spec["public_pem"].encode(), kty).public_key
    else:
        key = base64.b64decode(spec["shared_secret_base64"])
    return ResolvedKey(keyid, "partner", spec["alg"], key)


@dataclass
class _Response:
    """A response as the library reads one (B.2.4 signs a response)."""

    status_code: int
    headers: CIMultiDict[str]
    request: SignedMessage


def _rfc_message(document: dict[str, Any], example: dict[str, Any]) -> Any:
    spec = document["request"]
    request = SignedMessage(spec["method"], spec["url"], CIMultiDict(spec["headers"]))
    message: Any = request
    if example["message"] == "response":
        message = _Response(
            document["response"]["status"], CIMultiDict(document["response"]["headers"]), request
        )
    message.headers["Signature-Input"] = example["signature_input"]
    message.headers["Signature"] = example["signature"]
    return message


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["section"])
def test_rfc9421_appendix_b_signatures_verify(example: dict[str, Any]) -> None:
    document = json.loads(EXAMPLES.read_text())
    key = _rfc_key(document, example["keyid"])
    covered, params = verify_with_key(
        _rfc_message(document, example), key, max_age=None, required=()
    )
    assert params["keyid"] == example["keyid"]
    assert params["created"] == 1618884473
    assert '"@signature-params"' in covered


@pytest.mark.parametrize("example", _examples(), ids=lambda e: e["section"])
def test_rfc9421_appendix_b_signature_over_another_message_fails(example: dict[str, Any]) -> None:
    document = json.loads(EXAMPLES.read_text())
    message = _rfc_message(document, example)
    message.headers["Content-Type"] = "application/xml"  # covered by every example
    with pytest.raises(SignatureRefused) as refused:
        verify_with_key(message, _rfc_key(document, example["keyid"]), max_age=None, required=())
    assert refused.value.reason == "invalid"


def test_rfc9421_examples_are_refused_as_stale_by_policy() -> None:
    """The examples were created in 2021: with any real window they are far too old."""
    document = json.loads(EXAMPLES.read_text())
    example = next(e for e in _examples() if e["section"] == "B.2.6")
    with pytest.raises(SignatureRefused):
        verify_with_key(
            _rfc_message(document, example),
            _rfc_key(document, example["keyid"]),
            max_age=timedelta(minutes=5),
            required=(),
        )


# --- The gateway's policy, with keys generated here ---


@dataclass
class Partner:
    """A registered key and what signs with it."""

    keyid: str
    alg: str
    private: Any  # what the library's signer takes

    def sign(
        self,
        method: str = "POST",
        url: str = URL,
        body: bytes = BODY,
        *,
        created: datetime | None = None,
        expires: datetime | None = None,
        nonce: str | None = "fresh",
        components: tuple[str, ...] | None = None,
        alg: str | None = None,
    ) -> SignedMessage:
        """A signed request (the SDK's wire format unless told otherwise)."""
        headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
        message = SignedMessage(method, url, headers)
        signer = HTTPMessageSigner(
            signature_algorithm=_LIBRARY_ALG[alg or self.alg],
            key_resolver=MappingKeyResolver(
                public_keys={}, private_keys={self.keyid: self.private}
            ),
        )
        if components is None:
            components = ("@method", "@target-uri") + (("content-type",) if body else ())
        signer.sign(
            message,
            key_id=self.keyid,
            label="sig1",
            created=created or datetime.now(UTC),
            expires=expires,
            nonce=secrets.token_urlsafe(16) if nonce == "fresh" else nonce,
            covered_component_ids=components,
            body=body or None,
        )
        return message


@dataclass
class Kit:
    """Keys in a real store, and the verifier the gateway uses."""

    deployment: Deployment
    keys: ClientKeys
    signatures: RequestSignatures

    def partner(self, alg: str, client: str = "analytics-feed") -> Partner:
        """Register a key of ``alg`` for ``client``."""
        if alg == "hmac-sha256":
            issued = self.keys.create_shared_secret(client)
            return Partner(issued.keyid, alg, base64.b64decode(issued.secret))
        private = (
            OKPKey.generate_key("Ed25519", private=True)
            if alg == "ed25519"
            else ECKey.generate_key("P-256", private=True)
        )
        keyid = self.keys.register(client, private.as_dict(private=False), use="signature")
        return Partner(keyid, alg, private.private_key)

    def verify(
        self,
        message: SignedMessage,
        body: bytes = BODY,
        *,
        client: str = "analytics-feed",
        nonce_required: bool = True,
    ) -> Any:
        """Verify as a route with a one-minute window would."""
        return self.signatures.verify(
            message, body, client=client, window=WINDOW, nonce_required=nonce_required
        )


@pytest.fixture
def kit(tmp_path: Path) -> Iterator[Kit]:
    """The example manifest's clients on SQLite; nonces in memory."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    keys = ClientKeys(deployment.engine, deployment.keyring, load_manifest(MANIFEST))
    yield Kit(deployment, keys, RequestSignatures(keys, MemorySeen()))
    deployment.close()


ALGS = ["ed25519", "ecdsa-p256-sha256", "hmac-sha256"]


@pytest.mark.parametrize("alg", ALGS)
def test_a_signed_request_verifies_with_each_algorithm(kit: Kit, alg: str) -> None:
    partner = kit.partner(alg)
    verified = kit.verify(partner.sign())
    assert (verified.keyid, verified.client, verified.alg) == (
        partner.keyid,
        "analytics-feed",
        alg,
    )
    assert verified.covered == ("@method", "@target-uri", "content-type", "content-digest")


@pytest.mark.parametrize("alg", ALGS)
def test_a_changed_method_or_target_fails(kit: Kit, alg: str) -> None:
    partner = kit.partner(alg)
    for changed in (
        SignedMessage("PUT", URL, partner.sign().headers),
        SignedMessage("POST", URL.replace("batch=7", "batch=8"), partner.sign().headers),
        SignedMessage("POST", URL.replace("gw.example", "other.example"), partner.sign().headers),
    ):
        with pytest.raises(SignatureRefused) as refused:
            kit.verify(changed)
        assert refused.value.reason == "invalid"


@pytest.mark.parametrize("alg", ALGS)
def test_a_flipped_signature_byte_fails(kit: Kit, alg: str) -> None:
    message = kit.partner(alg).sign()
    value = message.headers["Signature"]
    raw = bytearray(base64.b64decode(value.split(":")[1]))
    raw[5] ^= 0x01
    message.headers["Signature"] = f"sig1=:{base64.b64encode(bytes(raw)).decode()}:"
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message)
    assert (refused.value.reason, refused.value.detail) == (
        "invalid",
        "the signature does not verify",
    )


def test_a_changed_body_is_a_digest_mismatch(kit: Kit) -> None:
    message = kit.partner("ed25519").sign()
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message, BODY.replace(b'"qty": 2', b'"qty": 200'))
    assert refused.value.reason == "digest-mismatch"


def test_a_replaced_digest_header_breaks_the_signature(kit: Kit) -> None:
    """Changing body *and* Content-Digest together: the digest is signed, so that fails too."""
    message = kit.partner("ed25519").sign()
    tampered = BODY.replace(b'"qty": 2', b'"qty": 200')
    message.headers["Content-Digest"] = ContentDigest.create(tampered)
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message, tampered)
    assert refused.value.reason == "invalid"


def test_the_rfc9530_sha512_digest_of_the_rfc_body_is_accepted(kit: Kit) -> None:
    """RFC 9421 B.2's request carries RFC 9530's sha-512 digest of its body; sign over it."""
    document = json.loads(EXAMPLES.read_text())
    digest = dict(document["request"]["headers"])["Content-Digest"]
    body = document["request"]["body"].encode()
    partner = kit.partner("ed25519")
    message = SignedMessage("POST", URL, CIMultiDict({"Content-Digest": digest}))
    HTTPMessageSigner(
        signature_algorithm=ED25519,
        key_resolver=MappingKeyResolver(
            public_keys={}, private_keys={partner.keyid: partner.private}
        ),
    ).sign(
        message,
        key_id=partner.keyid,
        nonce="n-rfc9530",
        covered_component_ids=("@method", "@target-uri", "content-digest"),
        use_existing_digest=True,
    )
    assert kit.verify(message, body).covered[-1] == "content-digest"
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message, body + b" ")
    assert refused.value.reason == "digest-mismatch"


def test_a_body_without_a_signed_digest_is_refused(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    message = partner.sign(body=b"")  # signed as bodiless
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message, BODY)  # ... but a body arrives
    assert refused.value.reason in {"invalid", "no-digest"}


def test_the_method_and_target_must_be_covered(kit: Kit) -> None:
    message = kit.partner("ed25519").sign(components=("@method", "content-type"))
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message)
    assert refused.value.reason == "invalid"
    assert '"@target-uri"' in refused.value.detail


def test_a_stale_signature_is_refused(kit: Kit) -> None:
    message = kit.partner("ed25519").sign(created=datetime.now(UTC) - timedelta(seconds=70))
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message)
    assert refused.value.reason == "stale"
    assert "60 s window" in refused.value.detail


def test_a_signature_from_the_future_is_refused(kit: Kit) -> None:
    message = kit.partner("ed25519").sign(created=datetime.now(UTC) + timedelta(seconds=30))
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message)
    assert refused.value.reason == "future"


def test_a_small_clock_skew_is_tolerated(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    kit.verify(partner.sign(created=datetime.now(UTC) + timedelta(seconds=2)))
    kit.verify(partner.sign(created=datetime.now(UTC) - WINDOW + timedelta(seconds=2)))


@pytest.mark.parametrize(
    "start",
    [datetime(2031, 5, 1, 12, tzinfo=UTC), datetime(2021, 5, 1, 12, tzinfo=UTC)],
    ids=["years-ahead", "years-behind"],
)
def test_the_window_and_expiry_follow_the_injected_clock(kit: Kit, start: datetime) -> None:
    """Only the injected clock decides: years away from the system's, its time is "now".

    On the system clock (ours or the library's own age check) every one of these
    signatures would be from the future or stale.
    """
    clock = ManualClock(start)
    signatures = RequestSignatures(kit.keys, MemorySeen(now=clock), now=clock)
    partner = kit.partner("ed25519")

    def verify(message: SignedMessage) -> Any:
        return signatures.verify(
            message, BODY, client="analytics-feed", window=WINDOW, nonce_required=True
        )

    assert verify(partner.sign(created=clock.now)).created == start
    signed = partner.sign(created=clock.now)
    expiring = partner.sign(created=clock.now, expires=clock.now + timedelta(seconds=10))
    ahead = partner.sign(created=clock.now + timedelta(seconds=22))
    clock.advance(20)
    verify(ahead)  # its created has come within the skew
    with pytest.raises(SignatureRefused) as refused:
        verify(expiring)
    assert refused.value.reason == "invalid"  # expired (as the library words it: invalid)
    clock.advance(50)  # 70 s after created: past the 60 s window and the 5 s skew
    with pytest.raises(SignatureRefused) as refused:
        verify(signed)
    assert refused.value.reason == "stale"
    with pytest.raises(SignatureRefused) as refused:
        verify(partner.sign(created=clock.now + timedelta(seconds=30)))
    assert refused.value.reason == "future"


def test_the_librarys_own_time_checks_run_on_the_injected_clock() -> None:
    """verify_with_key: ``created``, ``expires`` and the age, all on ``now``."""
    private = OKPKey.generate_key("Ed25519", private=True)
    key = ResolvedKey("k1", "analytics-feed", "ed25519", private.public_key)
    clock = ManualClock(datetime(2031, 5, 1, 12, tzinfo=UTC))
    message = Partner("k1", "ed25519", private.private_key).sign(
        created=clock.now, expires=clock.now + timedelta(minutes=5)
    )
    required = ("@method", "@target-uri")
    verify_with_key(message, key, max_age=WINDOW, required=required, now=clock)
    with pytest.raises(SignatureRefused):  # from the future, on the system clock
        verify_with_key(message, key, max_age=WINDOW, required=required)
    clock.advance(70)
    with pytest.raises(SignatureRefused):  # past the age
        verify_with_key(message, key, max_age=WINDOW, required=required, now=clock)
    verify_with_key(message, key, max_age=None, required=required, now=clock)
    clock.advance(300)
    with pytest.raises(SignatureRefused):  # expired, even without an age limit
        verify_with_key(message, key, max_age=None, required=required, now=clock)


def test_a_nonce_is_single_use(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    first = partner.sign(nonce="n-1")
    kit.verify(first)
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(first)
    assert refused.value.reason == "replayed"
    again = partner.sign(nonce="n-1")  # a new signature cannot reuse the nonce either
    with pytest.raises(SignatureRefused):
        kit.verify(again)
    kit.verify(partner.sign(nonce="n-2"))


def test_nonces_are_per_key(kit: Kit) -> None:
    kit.verify(kit.partner("ed25519").sign(nonce="shared"))
    kit.verify(kit.partner("ed25519").sign(nonce="shared"))


def test_a_failed_signature_does_not_burn_the_nonce(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    forged = partner.sign(nonce="precious")
    with pytest.raises(SignatureRefused):
        kit.verify(forged, b'{"forged": true}')
    kit.verify(partner.sign(nonce="precious"))


def test_a_missing_nonce_is_refused_when_required_and_accepted_when_optional(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(partner.sign(nonce=None))
    assert refused.value.reason == "no-nonce"
    kit.verify(partner.sign(nonce=None), nonce_required=False)


def test_an_unknown_or_revoked_key_is_refused(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    unknown = Partner("no-such-key", "ed25519", partner.private)
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(unknown.sign())
    assert refused.value.reason == "unknown-key"
    kit.keys.revoke(partner.keyid, "signature")
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(partner.sign())
    assert refused.value.reason == "unknown-key"


def test_a_revocation_reaches_another_replica_within_a_second(kit: Kit) -> None:
    partner = kit.partner("ed25519")
    other = ClientKeys(kit.deployment.engine, kit.deployment.keyring, kit.keys.manifest)
    replica = RequestSignatures(other, MemorySeen())
    replica.verify(
        partner.sign(), BODY, client="analytics-feed", window=WINDOW, nonce_required=True
    )
    kit.keys.revoke(partner.keyid, "signature")
    time.sleep(1.05)
    with pytest.raises(SignatureRefused):
        replica.verify(
            partner.sign(), BODY, client="analytics-feed", window=WINDOW, nonce_required=True
        )


def test_another_clients_key_is_refused(kit: Kit) -> None:
    partner = kit.partner("ed25519", client="order-sync")
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(partner.sign(), client="analytics-feed")
    assert refused.value.reason == "other-client"


def test_the_alg_parameter_must_match_the_key(kit: Kit) -> None:
    partner = kit.partner("hmac-sha256")
    message = partner.sign()
    message.headers["Signature-Input"] = message.headers["Signature-Input"].replace(
        'alg="hmac-sha256"', 'alg="ed25519"'
    )
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(message)
    assert refused.value.reason == "invalid"


@pytest.mark.parametrize(
    ("signature_input", "reason"),
    [
        (None, "missing"),
        ("not a dictionary (", "malformed"),
        ('a=("@method");created=1;keyid="k", b=("@method");created=1;keyid="k"', "malformed"),
        ('sig1=("@method" "@target-uri");keyid="k"', "malformed"),
        ('sig1=("@method" "@target-uri");created=1', "malformed"),
        ('sig1=("@method" "@target-uri");created="now";keyid="k"', "malformed"),
        ('sig1=("@method" "@target-uri");created=99999999999999;keyid="k"', "malformed"),
    ],
)
def test_malformed_signature_fields_are_refused(
    kit: Kit, signature_input: str | None, reason: str
) -> None:
    headers: CIMultiDict[str] = CIMultiDict({"Signature": "sig1=:AAAA:"})
    if signature_input is not None:
        headers["Signature-Input"] = signature_input
    with pytest.raises(SignatureRefused) as refused:
        kit.verify(SignedMessage("POST", URL, headers))
    assert refused.value.reason in {reason, "future"}


def test_hmac_secrets_are_sealed_in_the_store(kit: Kit) -> None:
    issued = kit.keys.create_shared_secret("analytics-feed")
    secret = base64.b64decode(issued.secret)
    assert len(secret) == 32
    assert issued.secret not in repr(issued)
    table = table_of(ClientKeyRow)
    with kit.deployment.engine.connect() as connection:
        row = connection.execute(select(table).where(table.c.kid == issued.keyid)).one()
    assert row.public_jwk is None
    assert secret not in row.sealed_secret
    assert issued.secret.encode() not in row.sealed_secret


def test_registration_refuses_what_it_must(kit: Kit) -> None:
    with pytest.raises(NotFoundError):
        kit.keys.create_shared_secret("nobody")
    private = OKPKey.generate_key("Ed25519", private=True)
    with pytest.raises(InvalidRequestError):
        kit.keys.register("analytics-feed", private.as_dict(private=True), use="signature")
    keyid = kit.keys.register("analytics-feed", private.as_dict(private=False), use="signature")
    kit.keys.revoke(keyid, "signature")
    with pytest.raises(InvalidRequestError, match="cannot come back"):
        kit.keys.register("analytics-feed", private.as_dict(private=False), use="signature")
    with pytest.raises(InvalidRequestError, match="Ed25519 or EC P-256"):
        kit.keys.register(
            "analytics-feed",
            JWKRegistry.generate_key("RSA", 2048).as_dict(private=False),
            use="signature",
        )
    for _ in range(5):
        kit.keys.create_shared_secret("order-sync")
    with pytest.raises(InvalidRequestError, match="5 active"):
        kit.keys.create_shared_secret("order-sync")


def test_keys_are_listed_without_material(kit: Kit) -> None:
    first = kit.partner("ed25519")
    second = kit.partner("hmac-sha256")
    kit.keys.revoke(first.keyid, "signature")
    listed = {info.kid: info for info in kit.keys.list_keys("analytics-feed", "signature")}
    assert listed[first.keyid].active is False
    assert listed[second.keyid].active is True
    assert listed[second.keyid].alg == "hmac-sha256"
    assert not hasattr(listed[second.keyid], "secret")
