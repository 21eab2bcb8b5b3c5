"""The consumer's gate on the in-process broker: what reaches a handler, what is dead-lettered.

Real envelopes (interlock.messaging.envelope), the real idempotency store in
memory, the in-process broker (interlock.messaging.memory); every refusal is
checked for its reason in the dead-letter queue, its audit entry, and a
handler that was never called.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from joserfc import jwe
from sqlalchemy import select

from interlock.audit.entry import AuditEntry, Decision, decision_entry, encode_entry
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.crypto.jose import generate_signing_key
from interlock.messaging.consumer import Message, MessageRejected
from interlock.messaging.envelope import SignerKey, seal
from interlock.messaging.memory import MemoryBroker
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_REASON,
    MessageFacts,
    Outgoing,
    Settle,
)
from interlock.messaging.wire_format import jwe_registry
from interlock.replay.idempotency import Begun
from tests.messaging.pipeline_support import (
    BILLING,
    CRM,
    EMAIL,
    INTEGRATION,
    MINIMISED,
    PAYLOAD,
    PRODUCER,
    Rig,
    delivery_of,
    eventually,
    rig_for,
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The rig on the test manifest (two consumers, payload encrypted whole)."""
    with rig_for(tmp_path) as rig:
        yield rig


def _round_trip(rig: Rig) -> str:
    """Publish PAYLOAD and consume it as the CRM consumer; its message id."""

    async def run() -> str:
        running = await rig.consumer().start(rig.handler)
        message_id = await rig.producer().publish(PAYLOAD)
        await eventually(lambda: len(rig.handled) == 1)
        await running.stop()
        return message_id

    return asyncio.run(run())


def test_a_message_reaches_the_handler_minimised_and_audited(rig: Rig) -> None:
    """Round trip: the handler gets the verified facts and only the manifest's fields."""
    message_id = _round_trip(rig)
    (message,) = rig.handled
    assert message.payload == MINIMISED
    assert message.facts.message_id == message_id
    assert message.facts.producer == PRODUCER
    assert rig.server.dead(rig.topology) == []
    # By action: the consumer may record its entry before the producer records its own.
    publish, consume = sorted(rig.audit.entries, key=lambda e: e.action != "messaging.publish")
    assert (publish.action, publish.actor, publish.outcome.result) == (
        "messaging.publish",
        f"client:{PRODUCER}",
        "success",
    )
    assert (consume.action, consume.actor, consume.outcome.result) == (
        "messaging.consume",
        f"client:{CRM}",
        "success",
    )
    for entry in (publish, consume):
        assert (entry.integration, entry.source, entry.target) == (INTEGRATION, "erp", "crm")
        assert entry.data_categories == ("user.contact.email",)
        assert entry.volume.records == 1
        assert entry.volume.bytes == len(rig.server.published[0].body)
        assert entry.details["message_id"] == message_id
    # Never the payload: not in the entries as encoded for the log, not on the wire.
    for encoded in rig.audit.encoded:
        assert EMAIL.encode() not in encoded
        assert b"Lovelace" not in encoded
    assert EMAIL.encode() not in rig.server.published[0].body


def _tamper(message: Outgoing) -> bytes:
    """Flip one bit in the ciphertext of a JWE (compact or general JSON)."""
    body = bytearray(message.body)
    text = message.body.decode()
    start = text.index('"ciphertext":"') + 14 if text.startswith("{") else text.rindex(".") - 5
    body[start] = ord("A") if body[start] != ord("A") else ord("B")
    return bytes(body)


def _refused_cases(rig: Rig) -> list[tuple[str, bytes, Outgoing]]:
    """(expected reason, body, message) for each kind of message the gate refuses."""
    stranger = generate_signing_key("ES256")
    wrong = SignerKey(kid=str(stranger.kid), alg="ES256", key=stranger)
    expired = rig.sealed(message_id="m-exp", issued_at=rig.clock() - timedelta(hours=3))
    invalid = rig.sealed({"note": "no id"}, message_id="m-schema")
    tampered = rig.sealed(message_id="m-tamper")
    forged = rig.sealed(message_id="m-forged", signer=wrong)
    foreign = rig.sealed(message_id="m-aud", integration="other-flow")
    return [
        ("undecryptable", _tamper(tampered), tampered),
        ("wrong_signer", forged.body, forged),
        ("expired", expired.body, expired),
        ("schema", invalid.body, invalid),
        ("wrong_integration", foreign.body, foreign),
    ]


def test_refused_messages_are_dead_lettered_with_their_reason_and_never_handled(rig: Rig) -> None:
    """Tampered, wrong signer, expired, schema-invalid, duplicate, id reused: DLQ, no handler."""
    cases = _refused_cases(rig)
    original = rig.sealed(message_id="m-dup")
    reused = rig.sealed({"id": "o-2"}, message_id="m-dup")

    async def run() -> None:
        broker = MemoryBroker(rig.server)
        topology = rig.topology
        running = await rig.consumer().start(rig.handler)
        for _reason, body, message in cases:
            await broker.publish(topology, dataclasses.replace(message, body=body))
        await broker.publish(topology, original)
        await eventually(lambda: len(rig.handled) == 1)
        await broker.publish(topology, original)  # the same bytes again: a duplicate
        await broker.publish(topology, reused)  # the same id on another message
        await eventually(lambda: len(rig.server.dead(topology)) == len(cases) + 2)
        await running.stop()

    asyncio.run(run())
    topology = rig.topology
    dead = {d.headers[HEADER_REASON]: d for d in rig.server.dead(topology)}
    expected = {reason for reason, _, _ in cases} | {"duplicate", "id_reused"}
    assert set(dead) == expected
    assert all(
        d.headers[HEADER_CONSUMER] == CRM and HEADER_DEAD_AT in d.headers for d in dead.values()
    )
    # Dead letters stay sealed: the bytes that arrived, unchanged.
    for reason, body, _ in cases:
        assert dead[reason].body == body
    assert dead["duplicate"].body == original.body
    assert dead["id_reused"].body == reused.body
    assert rig.calls == Counter({"m-dup": 1})
    assert sorted(reason or "" for _, reason in rig.refusals()) == sorted(expected)
    assert all(
        e.outcome.result == "failure" and e.actor == f"client:{CRM}"
        for e in rig.audit.entries
        if e.action == "messaging.refuse"
    )


def test_a_handler_rejection_dead_letters_the_message(rig: Rig) -> None:
    """MessageRejected: DEAD with reason handler, audited; the id may be processed later."""

    async def reject(message: Message) -> None:
        raise MessageRejected("customer unknown")

    async def run() -> tuple[Settle, Settle]:
        consumer = rig.consumer()
        message = rig.sealed()
        first = await consumer.decide(delivery_of(message), reject)
        again = await consumer.decide(delivery_of(message), rig.handler)
        return first.settle, again.settle

    first, again = asyncio.run(run())
    assert first is Settle.DEAD
    assert rig.refusals() == [("messaging.refuse", "handler")]
    # The claim was released: replayed from the dead-letter queue, it is processed.
    assert again is Settle.ACK
    assert rig.calls == Counter({"m-1": 1})


def test_a_failing_handler_leaves_the_message_for_redelivery_and_it_is_processed_once(
    rig: Rig,
) -> None:
    """Any other exception: not acknowledged, delivered again, handled successfully once."""
    attempts: Counter[str] = Counter()

    async def flaky(message: Message) -> None:
        attempts[message.facts.message_id] += 1
        if attempts[message.facts.message_id] == 1:
            raise RuntimeError("database restarting")
        await rig.handler(message)

    async def run() -> None:
        running = await rig.consumer().start(flaky)
        await rig.producer().publish(PAYLOAD, message_id="m-flaky")
        await eventually(lambda: len(rig.handled) == 1)
        await asyncio.sleep(0.05)  # nothing more arrives
        await running.stop()

    asyncio.run(run())
    assert attempts == Counter({"m-flaky": 2})
    assert rig.calls == Counter({"m-flaky": 1})
    topology = rig.topology
    assert rig.server.dead(topology) == []
    assert rig.server.waiting(topology, CRM) == 0
    consumes = [e for e in rig.audit.entries if e.action == "messaging.consume"]
    assert [e.outcome.result for e in consumes] == ["failure", "success"]


def test_a_message_another_replica_holds_is_retried_and_taken_over_when_its_lease_ends(
    rig: Rig,
) -> None:
    """InFlight: RETRY (no handler, no audit); after the lease, the redelivery is processed."""
    message = rig.sealed()
    replica = rig.consumer(lease=timedelta(seconds=30))
    other = rig.consumer(lease=timedelta(seconds=30))

    async def stuck(_message: Message) -> None:
        await asyncio.sleep(3600)  # the other replica hangs (or died) holding the message

    async def run() -> list[Settle]:
        holder = asyncio.create_task(other.decide(delivery_of(message), stuck))
        await asyncio.sleep(0.05)
        first = await replica.decide(delivery_of(message, count=2), rig.handler)
        rig.clock.advance(29)
        second = await replica.decide(delivery_of(message, count=3), rig.handler)
        rig.clock.advance(2)
        third = await replica.decide(delivery_of(message, count=4), rig.handler)
        holder.cancel()
        await asyncio.gather(holder, return_exceptions=True)
        return [first.settle, second.settle, third.settle]

    assert asyncio.run(run()) == [Settle.RETRY, Settle.RETRY, Settle.ACK]
    assert rig.calls == Counter({"m-1": 1})
    assert [e.action for e in rig.audit.entries] == ["messaging.consume"]


def _fingerprint(rig: Rig, message: Outgoing) -> str:
    """What a replica claims ``message`` with: the SHA-256 of what the producer signed."""
    return hashlib.sha256(rig.opened(message).signing_input).hexdigest()


def test_retry_puts_the_message_back_on_the_broker(rig: Rig) -> None:
    """Through the broker: a held message comes back after retry_after and is processed."""
    message = rig.sealed()

    scope = f"messaging:{INTEGRATION}:{CRM}"

    async def run() -> None:
        claim = rig.dedup.begin(
            scope,
            "m-1",
            _fingerprint(rig, message),
            timedelta(hours=1),
            timedelta(seconds=30),
        )
        assert isinstance(claim, Begun)
        running = await rig.consumer(lease=timedelta(milliseconds=50)).start(rig.handler)
        await MemoryBroker(rig.server).publish(rig.topology, message)
        await asyncio.sleep(0.2)
        assert rig.calls == Counter()
        rig.dedup.abandon(scope, "m-1", claim.token)  # the other replica gave it up
        await eventually(lambda: rig.calls["m-1"] == 1)
        await running.stop()

    asyncio.run(run())


def test_every_consumer_gets_its_own_copy_and_only_its_fields(rig: Rig) -> None:
    """Two consumers, each its queue and key (general JSON serialisation)."""
    billing: list[Message] = []

    async def bill(message: Message) -> None:
        billing.append(message)

    async def run() -> None:
        crm = await rig.consumer(CRM).start(rig.handler)
        other = await rig.consumer(BILLING).start(bill)
        await rig.producer().publish(PAYLOAD)
        await eventually(lambda: len(rig.handled) == 1 and len(billing) == 1)
        await crm.stop()
        await other.stop()

    asyncio.run(run())
    assert rig.handled[0].payload == billing[0].payload == MINIMISED


def test_field_level_encryption_end_to_end(tmp_path: Path) -> None:
    """encrypt: fields: the e-mail travels as a JWE inside a signed payload; the handler reads it."""
    with rig_for(tmp_path, encrypt="fields", consumers=(CRM,)) as rig:

        async def run() -> None:
            running = await rig.consumer().start(rig.handler)
            await rig.producer().publish(PAYLOAD)
            await eventually(lambda: len(rig.handled) == 1)
            await running.stop()

        asyncio.run(run())
    body = rig.server.published[0].body
    assert json.loads(body)["message"].count(".") == 2  # a JWS under the window key
    assert EMAIL.encode() not in body
    assert rig.handled[0].payload == MINIMISED


def test_a_consumer_not_of_the_integration_is_refused(rig: Rig) -> None:
    """Only the integration's consumers may consume (each holds its own keys)."""
    with pytest.raises(Exception, match="not a consumer"):
        rig.consumer(PRODUCER)


def test_a_replica_whose_connection_drops_mid_batch_loses_nothing_and_repeats_nothing(
    rig: Rig,
) -> None:
    """Replica A hangs in some handlers and its connection drops; B takes over after the lease.

    (The same scenario as the end-to-end test, on the in-process broker and a
    hand-moved clock: the lease runs out when the test says so.)
    """
    ids = [f"m-{n}" for n in range(6)]
    hanging: list[str] = []

    async def replica_a(message: Message) -> None:
        if message.facts.message_id in ids[:2]:
            await rig.handler(message)
            return
        hanging.append(message.facts.message_id)
        await asyncio.Event().wait()

    async def run() -> None:
        first, second = MemoryBroker(rig.server), MemoryBroker(rig.server)
        await rig.consumer(broker=first).start(replica_a)
        producer = rig.producer()
        for message_id in ids:
            await producer.publish(PAYLOAD, message_id=message_id)
        await eventually(lambda: len(hanging) == 4 and len(rig.handled) == 2)
        await first.close()
        running = await rig.consumer(broker=second).start(rig.handler)
        await asyncio.sleep(0.3)
        assert len(rig.handled) == 2  # A's claims still hold: B retries
        rig.clock.advance(31)  # A's lease runs out
        await eventually(lambda: len(rig.handled) == 6, within=10)
        await running.stop()

    asyncio.run(run())
    assert rig.calls == Counter(dict.fromkeys(ids, 1))
    assert rig.server.dead(rig.topology) == []
    assert rig.server.waiting(rig.topology, CRM) == 0


def _sealed_to_crm(rig: Rig, message_id: str, fields: tuple[str, ...] = ()) -> Outgoing:
    """PAYLOAD sealed by the producer to the CRM alone (a compact JWE, or a JWS with ``fields``)."""
    now = rig.clock()
    facts = MessageFacts(message_id, INTEGRATION, PRODUCER, now, now + timedelta(hours=1))
    return seal(
        PAYLOAD,
        facts,
        signer=rig.keys.signer(INTEGRATION, PRODUCER),
        recipients=rig.keys.recipients(INTEGRATION, [CRM]),
        encrypt_fields=fields,
    )


def test_a_signed_payload_stripped_of_its_encryption_is_malformed(rig: Rig) -> None:
    """encrypt: payload: the producer's inner JWS, published alone and so in clear by a party
    that could decrypt it, is refused as malformed and never handled; the genuine sealed copy
    arriving after it is processed (it is not taken for a reused id)."""
    genuine = _sealed_to_crm(rig, "m-strip")
    (key,) = rig.keys.decryption_keys(INTEGRATION, CRM).values()
    inner = jwe.decrypt_compact(genuine.body, key, registry=jwe_registry()).plaintext
    assert inner is not None
    assert inner.count(b".") == 2  # the signed JWS, its payload in clear
    stripped = dataclasses.replace(genuine, body=inner, content_type=CONTENT_TYPE_COMPACT)
    consumer = rig.consumer(CRM)
    refused = asyncio.run(consumer.decide(delivery_of(stripped), rig.handler))
    assert (refused.settle, refused.reason) == (Settle.DEAD, "malformed")
    assert rig.handled == []
    accepted = asyncio.run(consumer.decide(delivery_of(genuine), rig.handler))
    assert accepted.settle == Settle.ACK
    assert rig.calls == Counter({"m-strip": 1})


@pytest.mark.parametrize("sent", ["whole payload encrypted", "another field list"])
def test_field_level_encryption_accepts_only_the_declared_fields_encrypted(
    tmp_path: Path, sent: str
) -> None:
    """encrypt: fields: a JWE (not the format) or a JWS whose encrypted-field list is not the
    manifest's (here the e-mail left in clear) is refused as malformed, never handled."""
    with rig_for(tmp_path, encrypt="fields", consumers=(CRM,)) as rig:
        fields = () if sent == "whole payload encrypted" else ("note",)
        message = _sealed_to_crm(rig, "m-fields", fields)
        decision = asyncio.run(rig.consumer(CRM).decide(delivery_of(message), rig.handler))
        assert (decision.settle, decision.reason) == (Settle.DEAD, "malformed")
        assert rig.handled == []
        declared = rig.manifest.integrations[INTEGRATION].messaging
        assert declared is not None
        genuine = _sealed_to_crm(rig, "m-ok", declared.encrypted_fields)
        decision = asyncio.run(rig.consumer(CRM).decide(delivery_of(genuine), rig.handler))
        assert decision.settle == Settle.ACK


def _reserialised(message: Outgoing, keep: str) -> bytes:
    """``message``'s general JSON JWE with its members reordered and only ``keep``'s recipient:
    other bytes, the same authenticated content (what anyone reading the broker can make)."""
    document = json.loads(message.body)
    document["recipients"] = [
        entry for entry in document["recipients"] if entry["header"]["kid"] == keep
    ]
    return json.dumps(dict(reversed(document.items())), indent=1).encode()


def test_a_reserialised_copy_of_a_processed_message_is_a_duplicate(rig: Rig) -> None:
    """De-duplication fingerprints what the producer signed, not the JWE's wrapper bytes: a
    re-serialised copy of a processed message is a duplicate (not id_reused), never handled."""
    original = rig.sealed(message_id="m-copy")
    (kid,) = rig.keys.decryption_keys(INTEGRATION, CRM)
    copy = delivery_of(original, body=_reserialised(original, kid))
    consumer = rig.consumer(CRM)
    assert asyncio.run(consumer.decide(delivery_of(original), rig.handler)).settle == Settle.ACK
    decision = asyncio.run(consumer.decide(copy, rig.handler))
    assert (decision.settle, decision.reason) == (Settle.DEAD, "duplicate")
    assert rig.calls == Counter({"m-copy": 1})


def test_a_durable_trail_gets_each_sides_entry_without_the_model_with_the_models_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the deployment's audit log, publish and consume are committed without a model.

    Each side's entry is committed before the publish returns and before the
    message is acknowledged, encoded from its fields (no validating model per
    message): the bytes the model would have written, and the log verifies.
    """
    keyring = Keyring.create(tmp_path / "audit-keyring.json")
    settings = Settings(data_dir=tmp_path, audit_database_url=f"sqlite:///{tmp_path / 'a.db'}")
    log = AuditLog.open(settings, keyring, witnesses=[])
    sink = log.sink
    decisions: list[Decision] = []
    models: list[AuditEntry] = []
    fast, slow = sink.record_decision_async, sink.record_async

    async def recorded_fast(decision: Decision) -> int | None:
        decisions.append(decision)
        return await fast(decision)

    async def recorded_slow(entry: AuditEntry) -> int:
        models.append(entry)
        return await slow(entry)

    monkeypatch.setattr(sink, "record_decision_async", recorded_fast)
    monkeypatch.setattr(sink, "record_async", recorded_slow)
    rig_dir = tmp_path / "rig"
    rig_dir.mkdir()
    try:
        with rig_for(rig_dir) as rig:
            message_id = _round_trip(dataclasses.replace(rig, audit=sink))  # type: ignore[arg-type]
        log.writer.close()
        with log.store.engine.connect() as connection:
            bodies = [bytes(b) for (b,) in connection.execute(select(BODIES.c.body))]
        assert verify_log(log.store.engine).size == 2
    finally:
        log.close()
    assert models == []
    assert sorted((d.action, d.details["message_id"]) for d in decisions) == [
        ("messaging.consume", message_id),
        ("messaging.publish", message_id),
    ]
    expected = {encode_entry(decision_entry(d), log.keys.pseudonymiser) for d in decisions}
    assert set(bodies) == expected
    assert all(EMAIL.encode() not in body for body in bodies)
