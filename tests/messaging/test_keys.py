"""Messaging keys: issued per party, sealed, rolled over with messages in flight, published."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from joserfc import jwe, jws
from joserfc.jwk import KeySet

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.crypto.jose import import_public_jwk
from interlock.crypto.keyring import Keyring
from interlock.errors import DecryptionError, NotFoundError
from interlock.messaging.envelope import message_id, open_envelope, seal
from interlock.messaging.keys import PARTY_MEMBER, MessagingKeys
from interlock.messaging.model import EnvelopeRefused, MessageFacts, Opened, Outgoing
from interlock.store import Deployment
from interlock.testing.clock import ManualClock
from tests.events.streams_support import make_manifest as events_manifest

MANIFEST = """
version: 1
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
brokers:
  bus: {kind: rabbitmq, url: "amqps://interlock@rabbit.internal:5671/", location: DE}
roles:
  dlq-handler: {scopes: [messaging.dead_letters]}
clients:
  erp-publisher: {auth: [mtls]}
  crm-consumer: {auth: [mtls]}
  billing: {auth: [mtls]}
operators:
  alice: {roles: [dlq-handler]}
integrations:
  order-events:
    type: messaging
    source: erp
    target: crm
    client: erp-publisher
    purpose: Tell the CRM about confirmed orders
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    messaging:
      broker: bus
      destination: orders
      consumers: [CONSUMERS]
      signing_algorithm: SIGNING
      key_algorithm: ECDH-ES+A256KW
      key_rotation: P30D
      ttl: PT1H
      dead_letter: {role: dlq-handler, retention: DLQ}
"""
INTEGRATION = "order-events"
PRODUCER = "erp-publisher"
PUBLISH_AHEAD = timedelta(minutes=10)
LEEWAY = timedelta(minutes=2)


def manifest(
    tmp_path: Path,
    consumers: str = "crm-consumer, billing",
    signing: str = "ES256",
    dead_letters: str = "PT1H",
) -> Manifest:
    """The manifest with the consumers, signing algorithm and dead-letter retention given.

    The dead letters are kept as long as messages live (1 h) unless a test says
    otherwise: replaced keys are kept for the two together.
    """
    path = tmp_path / f"interlock-{signing}-{len(consumers)}-{dead_letters}.yaml"
    path.write_text(
        MANIFEST.replace("CONSUMERS", consumers)
        .replace("SIGNING", signing)
        .replace("DLQ", dead_letters)
    )
    return load_manifest(path)


@pytest.fixture
def keys(deployment: Deployment, clock: ManualClock) -> MessagingKeys:
    """Messaging keys on the deployment's store, on a clock the test moves."""
    return MessagingKeys(
        deployment.engine,
        deployment.keyring,
        now=clock,
        publish_ahead=PUBLISH_AHEAD,
        leeway=LEEWAY,
    )


def sealed(keys: MessagingKeys, clock: ManualClock, consumers: list[str]) -> Outgoing:
    """A message sealed now by the producer's current key to the consumers' current keys."""
    facts = MessageFacts(
        message_id(), INTEGRATION, PRODUCER, clock.now, clock.now + timedelta(hours=1)
    )
    return seal(
        {"id": "o-1", "customer": {"email": "ada@example.com"}},
        facts,
        signer=keys.signer(INTEGRATION, PRODUCER),
        recipients=keys.recipients(INTEGRATION, consumers),
    )


def opened(keys: MessagingKeys, out: Outgoing, consumer: str, at: Any) -> Opened:
    """The message opened by ``consumer`` with the keys the store holds now, judged at ``at``."""
    return open_envelope(
        out.body,
        out.content_type,
        integration=INTEGRATION,
        producer=PRODUCER,
        encrypt="payload",
        verification_keys=keys.verification_keys(INTEGRATION, PRODUCER),
        decryption_keys=keys.decryption_keys(INTEGRATION, consumer),
        now=at,
        leeway=timedelta(seconds=30),
        max_bytes=256 * 1024,
    )


def count(deployment: Deployment) -> int:
    """Rows in messaging_keys."""
    with deployment.engine.connect() as connection:
        return int(connection.execute(sa.text("SELECT count(*) FROM messaging_keys")).scalar_one())


def test_ensure_issues_a_signing_key_and_one_encryption_key_per_consumer(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """First ensure: three keys, in use at once; a second ensure creates nothing."""
    created = keys.ensure(manifest(tmp_path))
    assert len(created) == 3
    rows = keys.rows(INTEGRATION)
    assert {(r.party, r.use, r.alg) for r in rows} == {
        (PRODUCER, "sig", "ES256"),
        ("crm-consumer", "enc", "ECDH-ES+A256KW"),
        ("billing", "enc", "ECDH-ES+A256KW"),
    }
    assert {r.state(clock.now) for r in rows} == {"in use"}
    assert keys.ensure(manifest(tmp_path)) == []
    out = sealed(keys, clock, ["crm-consumer", "billing"])
    for consumer in ("crm-consumer", "billing"):
        assert opened(keys, out, consumer, clock.now).payload["id"] == "o-1"


def test_no_key_before_ensure(keys: MessagingKeys) -> None:
    """Nothing is issued implicitly: using keys that do not exist is NotFoundError."""
    with pytest.raises(NotFoundError):
        keys.signer(INTEGRATION, PRODUCER)
    with pytest.raises(NotFoundError):
        keys.recipients(INTEGRATION, ["crm-consumer"])
    assert keys.decryption_keys(INTEGRATION, "crm-consumer") == {}


def test_rotation_with_messages_in_flight(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock, deployment: Deployment
) -> None:
    """Old key seals; rotate; new key seals after publish_ahead; old message opens until
    it expires; then the retired keys are purged and it no longer opens."""
    spec = manifest(tmp_path)
    keys.ensure(spec)
    sent_at = clock.now
    old_message = sealed(keys, clock, ["crm-consumer"])
    old_signer = keys.signer(INTEGRATION, PRODUCER).kid

    messaging = spec.integrations[INTEGRATION].messaging
    assert messaging is not None
    new_kids = keys.rotate(INTEGRATION, messaging, PRODUCER)
    assert len(new_kids) == 3
    # Published at once, used only after publish_ahead.
    assert set(new_kids) <= {k["kid"] for k in keys.jwks(INTEGRATION)["keys"]}
    assert keys.signer(INTEGRATION, PRODUCER).kid == old_signer
    clock.now += PUBLISH_AHEAD
    new_signer = keys.signer(INTEGRATION, PRODUCER)
    assert new_signer.kid in new_kids
    (recipient,) = keys.recipients(INTEGRATION, ["crm-consumer"])
    assert recipient.kid in new_kids
    new_sent_at = clock.now
    new_message = sealed(keys, clock, ["crm-consumer"])
    assert opened(keys, new_message, "crm-consumer", new_sent_at).signer_kid == new_signer.kid

    # The old message opens until it expires, and as a dead letter until that is kept
    # no longer (ttl 1 h plus retention 1 h after the successor took over, plus
    # leeway), even after a scheduled ensure.
    clock.now += timedelta(hours=2, minutes=1)
    keys.ensure(spec)
    assert opened(keys, old_message, "crm-consumer", sent_at).signer_kid == old_signer
    assert count(deployment) == 6

    clock.now += LEEWAY
    keys.ensure(spec)  # purges the retired keys
    assert count(deployment) == 3
    with pytest.raises(EnvelopeRefused) as refused:
        opened(keys, old_message, "crm-consumer", sent_at)
    assert refused.value.reason == "undecryptable"
    assert opened(keys, new_message, "crm-consumer", new_sent_at).payload["id"] == "o-1"


def test_a_retired_signing_key_no_longer_verifies(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """After the producer's key is purged (ttl 1 h plus dead-letter retention 1 h plus
    leeway after its successor activated), its messages fail as wrong_signer."""
    spec = manifest(tmp_path)
    keys.ensure(spec)
    sent_at = clock.now
    old_message = sealed(keys, clock, ["crm-consumer"])
    messaging = spec.integrations[INTEGRATION].messaging
    assert messaging is not None
    keys.rotate(INTEGRATION, messaging, PRODUCER, party=PRODUCER)
    clock.now += PUBLISH_AHEAD + timedelta(hours=2) + LEEWAY
    keys.ensure(spec)
    with pytest.raises(EnvelopeRefused) as refused:
        opened(keys, old_message, "crm-consumer", sent_at)
    assert refused.value.reason == "wrong_signer"


def test_rotate_one_party_touches_only_that_party(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """rotate(party=billing): billing's key is replaced; the others are untouched."""
    spec = manifest(tmp_path)
    keys.ensure(spec)
    before = {r.kid: r for r in keys.rows(INTEGRATION)}
    messaging = spec.integrations[INTEGRATION].messaging
    assert messaging is not None
    (kid,) = keys.rotate(INTEGRATION, messaging, PRODUCER, party="billing")
    after = {r.kid: r for r in keys.rows(INTEGRATION)}
    assert after[kid].party == "billing"
    assert after[kid].use == "enc"
    changed = {k for k in before if after[k] != before[k]}
    assert {before[k].party for k in changed} == {"billing"}
    with pytest.raises(NotFoundError):
        keys.rotate(INTEGRATION, messaging, PRODUCER, party="stranger")


def test_scheduled_rotation_and_algorithm_change(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """ensure rotates keys older than key_rotation, and a key whose algorithm changed."""
    keys.ensure(manifest(tmp_path))
    clock.now += timedelta(days=29)
    assert keys.ensure(manifest(tmp_path)) == []
    clock.now += timedelta(days=1)
    assert len(keys.ensure(manifest(tmp_path))) == 3
    assert keys.ensure(manifest(tmp_path)) == []
    (created,) = keys.ensure(manifest(tmp_path, signing="Ed25519"))
    clock.now += PUBLISH_AHEAD
    signer = keys.signer(INTEGRATION, PRODUCER)
    assert signer.kid == created
    assert signer.alg == "Ed25519"


def test_a_consumer_removed_from_the_manifest_has_its_key_retired(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """Its key stays for the messages in flight and their dead letters (ttl + retention +
    leeway), then it is deleted."""
    keys.ensure(manifest(tmp_path))
    keys.ensure(manifest(tmp_path, consumers="crm-consumer"))
    billing = [r for r in keys.rows() if r.party == "billing"]
    assert [r.state(clock.now) for r in billing] == ["retiring"]
    clock.now += timedelta(hours=2) + LEEWAY
    keys.ensure(manifest(tmp_path, consumers="crm-consumer"))
    assert not [r for r in keys.rows() if r.party == "billing"]


def test_jwks_publishes_public_keys_only(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """Every key of the integration, each naming its party and use; no private member."""
    keys.ensure(manifest(tmp_path))
    document = keys.jwks(INTEGRATION)
    assert len(document["keys"]) == 3
    private_members = {"d", "p", "q", "dp", "dq", "qi", "k", "oth"}
    for jwk in document["keys"]:
        assert not private_members & jwk.keys()
        assert jwk["use"] in {"sig", "enc"}
        assert jwk[PARTY_MEMBER] in {PRODUCER, "crm-consumer", "billing"}
        import_public_jwk(jwk)  # refuses private or symmetric members
    json.dumps(document)
    assert keys.jwks("other-integration") == {"keys": []}


def test_private_keys_are_sealed_and_bound_to_their_row(
    keys: MessagingKeys, tmp_path: Path, deployment: Deployment
) -> None:
    """The stored private JWK is a keyring blob: not JSON, useless with another keyring,
    and bound to integration, party and kid (moved to another row, it does not open)."""
    keys.ensure(manifest(tmp_path))
    with deployment.engine.connect() as connection:
        rows = list(
            connection.execute(sa.text("SELECT kid, party, private_jwk FROM messaging_keys"))
        )
    assert rows
    for kid, party, blob in rows:
        assert b'"d"' not in bytes(blob)
        assert not bytes(blob).startswith(b"{")
        aad = f"interlock:messaging:key:{INTEGRATION}:{party}:{kid}".encode()
        assert json.loads(deployment.keyring.open(bytes(blob), aad))["kid"] == kid
        with pytest.raises(DecryptionError):
            deployment.keyring.open(bytes(blob), aad.replace(party.encode(), b"someone-else"))
        stranger = Keyring.create(tmp_path / f"other-{kid[:8]}.key")
        with pytest.raises(DecryptionError):
            stranger.open(bytes(blob), aad)


def test_keys_of_an_integration_gone_from_the_manifest_retire_after_the_longest_ttl(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """Without its spec the ttl is unknown: kept 14 days (the longest ttl) plus leeway."""
    keys.ensure(manifest(tmp_path))
    renamed = tmp_path / "renamed.yaml"
    renamed.write_text(
        MANIFEST.replace("CONSUMERS", "crm-consumer")
        .replace("SIGNING", "ES256")
        .replace("DLQ", "PT1H")
        .replace("order-events:", "order-events-v2:")
    )
    keys.ensure(load_manifest(renamed))
    old = keys.rows(INTEGRATION)
    assert {r.state(clock.now) for r in old} == {"retiring"}
    assert {r.retires_at for r in old} == {clock.now + timedelta(days=14) + LEEWAY}
    assert len(keys.rows("order-events-v2")) == 2


def test_a_partner_verifies_with_the_published_jwks_alone(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """The JWKS document is all a partner needs to verify the producer (plain joserfc)."""
    keys.ensure(manifest(tmp_path))
    out = sealed(keys, clock, ["crm-consumer"])
    (private,) = keys.decryption_keys(INTEGRATION, "crm-consumer").values()
    registry = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "A256GCM"], strict_check_header=False)
    signed = jwe.decrypt_compact(out.body, private, registry=registry).plaintext
    assert signed is not None
    published = KeySet.import_key_set(keys.jwks(INTEGRATION))  # type: ignore[arg-type]
    verified = jws.deserialize_compact(
        signed, published, registry=jws.JWSRegistry(strict_check_header=False)
    )
    assert json.loads(verified.payload)["id"] == "o-1"


def test_replaced_keys_open_dead_letters_until_their_retention(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """A dead letter kept 7 days still opens after a rotation, for an operator to show it,
    until its retention (plus leeway) has passed; then its keys are gone. It may have been
    dead-lettered as late as its expiry (ttl 1 h): ttl and retention add up."""
    spec = manifest(tmp_path, dead_letters="P7D")
    keys.ensure(spec)
    sent_at = clock.now
    letter = sealed(keys, clock, ["crm-consumer"])
    messaging = spec.integrations[INTEGRATION].messaging
    assert messaging is not None
    keys.rotate(INTEGRATION, messaging, PRODUCER)
    clock.now += PUBLISH_AHEAD + timedelta(hours=1) + timedelta(days=7)
    keys.ensure(spec)
    assert opened(keys, letter, "crm-consumer", sent_at).payload["id"] == "o-1"
    clock.now += LEEWAY
    keys.ensure(spec)
    with pytest.raises(EnvelopeRefused):
        opened(keys, letter, "crm-consumer", sent_at)


def test_a_sealed_event_integration_gets_keys_and_a_plain_one_none(
    keys: MessagingKeys, tmp_path: Path, clock: ManualClock
) -> None:
    """encrypt: payload on an events section: the producer's signing key and one
    encryption key per consumer, rotated by its key_rotation; without it, no key."""
    for place in ("plain", "sealed"):
        (tmp_path / place).mkdir()
    assert keys.ensure(events_manifest(tmp_path / "plain", sealed=False)) == []
    sealed_manifest = events_manifest(tmp_path / "sealed", sealed=True)
    assert len(keys.ensure(sealed_manifest)) == 3
    owned = {(k.party, k.use, k.alg) for k in keys.rows("order-stream")}
    assert owned == {
        ("erp-events", "sig", "ES256"),
        ("crm-events", "enc", "ECDH-ES+A256KW"),
        ("analytics", "enc", "ECDH-ES+A256KW"),
    }
    assert keys.ensure(sealed_manifest) == []
    clock.advance(timedelta(days=31))  # key_rotation's default: 30 days
    assert len(keys.ensure(sealed_manifest)) == 3
    # The integration no longer sealed: its keys retire, none is issued again.
    clock.advance(timedelta(minutes=1))
    keys.ensure(events_manifest(tmp_path / "plain", sealed=False))
    assert all(k.retires_at is not None for k in keys.rows("order-stream"))
