"""Sealed events (``encrypt: payload``) on a real NATS JetStream (TLS, client certificate).

Each consumer's copy is the messaging envelope sealed to that consumer's key
alone, with the subject and schema version in its protected header. The
tests read the bytes JetStream stored on each consumer's stream, replay and
tamper with them there, and check what the consumer does with them.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from joserfc.util import json_b64encode, urlsafe_b64decode

from interlock.audit.sink import MemorySink
from interlock.clock import Clock, utc_now
from interlock.events.consumer import Event, EventConsumer
from interlock.events.producer import EventProducer
from interlock.events.registry import SchemaRegistry
from interlock.events.streams import HEADER_SCHEMA_VERSION, HEADER_SUBJECT, event_stream
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.model import CONTENT_TYPE_COMPACT, DeadLetter, Outgoing
from interlock.messaging.nats import NatsBroker
from interlock.messaging.nats_config import stream_name
from interlock.replay.idempotency import MemoryIdempotency
from interlock.store import Deployment
from interlock.testing.brokers import TlsBroker
from tests.events.streams_support import (
    INTEGRATION,
    OPERATOR,
    make_deployment,
    make_manifest,
    make_registry,
    order,
    run,
)

#: What only the event carries: none of it may be readable on the wire.
SENSITIVE = (b"ada@example.com", b"o-1", b"Ada", b"12.5", b"leave at the door")


@dataclass(frozen=True)
class Stored:
    """A message as JetStream stored it on a consumer's stream."""

    body: bytes
    headers: dict[str, str]


class Setup:
    """The example manifest, sealed, with a destination of its own; registry and keys."""

    def __init__(self, tmp_path: Path, nats: TlsBroker) -> None:
        self.nats = nats
        self.manifest = make_manifest(
            tmp_path, destination=f"t{secrets.token_hex(4)}.orders", sealed=True
        )
        self.audit = MemorySink()
        self.deployment: Deployment = make_deployment(tmp_path)
        self.registry: SchemaRegistry = make_registry(self.deployment, self.manifest, self.audit)
        self.keys = MessagingKeys(self.deployment.engine, self.deployment.keyring)
        self.keys.ensure(self.manifest)
        self.stream = event_stream(self.manifest, INTEGRATION)

    async def connect(self) -> NatsBroker:
        """A connection to the session's server, with every consumer's stream applied."""
        nats = self.nats
        broker = await NatsBroker.connect(nats.url, tls=nats.tls(), password=nats.password)
        for topology in self.stream.topologies():
            await broker.apply(topology)
        return broker

    def producer(self, broker: NatsBroker) -> EventProducer:
        """The integration's producer on ``broker``, with the keys."""
        return EventProducer(
            self.manifest,
            INTEGRATION,
            registry=self.registry,
            broker=broker,
            audit=self.audit,
            keys=self.keys,
        )

    def consumer(self, broker: NatsBroker, name: str, now: Clock = utc_now) -> EventConsumer:
        """Consumer ``name`` on ``broker``, with the keys."""
        return EventConsumer(
            self.manifest,
            INTEGRATION,
            name,
            registry=self.registry,
            broker=broker,
            dedup=MemoryIdempotency(),
            audit=self.audit,
            keys=self.keys,
            now=now,
        )

    async def stored(self, broker: NatsBroker, consumer: str) -> list[Stored]:
        """The raw messages in ``consumer``'s stream: bytes as stored, and headers."""
        name = stream_name(self.stream.topology(consumer))
        state = (await broker._js.stream_info(name)).state
        found: list[Stored] = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            raw = await broker._js.get_msg(name, seq=seq)
            found.append(Stored(raw.data or b"", dict(raw.headers or {})))
        return found

    async def put(
        self, broker: NatsBroker, consumer: str, copy: Stored, *, body: bytes | None = None
    ) -> None:
        """``copy`` (or another body) written straight onto ``consumer``'s stream, as a
        party able to publish there could, under a fresh broker message id."""
        headers = {
            name: value
            for name, value in copy.headers.items()
            if name.startswith("interlock-") and name != "interlock-message-id"
        }
        await broker.publish(
            self.stream.topology(consumer),
            Outgoing(
                body=copy.body if body is None else body,
                content_type=copy.headers.get("Content-Type", CONTENT_TYPE_COMPACT),
                message_id=f"rogue-{secrets.token_hex(4)}",
                expires_at=datetime.now(UTC) + timedelta(minutes=5),
                headers=headers,
            ),
        )


@pytest.fixture
def setup(tmp_path: Path, nats_tls: TlsBroker) -> Iterator[Setup]:
    """A fresh sealed set-up on the session's NATS server."""
    made = Setup(tmp_path, nats_tls)
    yield made
    made.deployment.close()


async def letters_of(broker: NatsBroker, setup: Setup, consumer: str, count: int) -> list[Any]:
    """The first ``count`` dead letters of ``consumer``'s stream, waiting for them."""
    topology = setup.stream.topology(consumer)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while len(letters := await broker.dead_letters(topology)) < count:
        assert loop.time() < deadline, f"fewer than {count} dead letters within 10 s"
        await asyncio.sleep(0.05)
    return letters


async def until(check: Callable[[], bool]) -> None:
    """Wait until ``check()`` holds; fail after ten seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not check():
        assert loop.time() < deadline, "condition not met within 10 s"
        await asyncio.sleep(0.02)


def protected_header(body: bytes) -> dict[str, Any]:
    """The protected header of a compact JWE."""
    header: dict[str, Any] = json.loads(urlsafe_b64decode(body.split(b".")[0]))
    return header


def keyed_parts(body: bytes) -> tuple[bytes, bytes]:
    """The encrypted window key and the JWE of a copy sealed under a window key."""
    document = json.loads(body)
    assert set(document) == {"key", "message"}
    return document["key"].encode(), document["message"].encode()


def with_message(body: bytes, message: bytes) -> bytes:
    """``body`` (a copy under a window key) with its JWE replaced by ``message``."""
    return json.dumps({**json.loads(body), "message": message.decode()}).encode()


def test_a_sealed_event_is_published_and_consumed_end_to_end(setup: Setup) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    async def scenario() -> str:
        broker = await setup.connect()
        try:
            event_id = await setup.producer(broker).publish("order.created", order("EU"))
            running = await setup.consumer(broker, "crm-events").start(handle)
            await until(lambda: len(seen) == 1)
            await running.stop()
            return event_id
        finally:
            await broker.close()

    event_id = run(scenario())
    (event,) = seen
    assert event.payload == {"id": "o-1", "customer": {"email": "ada@example.com"}}
    assert (event.event_id, event.subject, event.writer_version) == (
        event_id,
        "order.created",
        1,
    )
    published = [e for e in setup.audit.entries if e.action == "events.publish"]
    consumed = [e for e in setup.audit.entries if e.action == "events.consume"]
    assert [e.details["sealed"] for e in published + consumed] == [True, True]


def test_on_the_wire_each_copy_is_a_jwe_for_its_consumer_alone(setup: Setup) -> None:
    async def scenario() -> tuple[list[Stored], list[Stored]]:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.created", order("EU"))
            return await setup.stored(broker, "crm-events"), await setup.stored(broker, "analytics")
        finally:
            await broker.close()

    crm, analytics = run(scenario())
    (crm_copy,), (analytics_copy,) = crm, analytics
    registered = setup.registry.get("order.created")
    for copy, consumer in ((crm_copy, "crm-events"), (analytics_copy, "analytics")):
        key, message = keyed_parts(copy.body)
        assert key.count(b".") == message.count(b".") == 4  # JWE compact: one recipient
        for secret in SENSITIVE:
            assert secret not in copy.body
        header = protected_header(message)
        assert header["cty"] == "JOSE"
        assert (
            header["interlock_subject"],
            header["interlock_schema_id"],
            header["interlock_schema_version"],
        ) == ("order.created", registered.id, registered.version)
        (recipient,) = setup.keys.recipients(INTEGRATION, [consumer])
        assert protected_header(key)["kid"] == recipient.kid  # the window key, to it alone
        assert header["alg"] == "A256KW"
        assert copy.headers[HEADER_SUBJECT] == "order.created"
    assert crm_copy.body != analytics_copy.body


def test_a_consumer_cannot_open_another_consumers_copy(setup: Setup) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    async def scenario() -> list[DeadLetter]:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.created", order("US"))
            (analytics_copy,) = await setup.stored(broker, "analytics")
            assert await setup.stored(broker, "crm-events") == []  # its filter: EU only
            # analytics' copy lands on crm-events' stream: crm-events' keys do not open it.
            await setup.put(broker, "crm-events", analytics_copy)
            running = await setup.consumer(broker, "crm-events").start(handle)
            letters = await letters_of(broker, setup, "crm-events", 1)
            await running.stop()
            return letters
        finally:
            await broker.close()

    (letter,) = run(scenario())
    assert (letter.reason, letter.consumer) == ("undecryptable", "crm-events")
    assert seen == []


def test_a_tampered_subject_or_schema_version_is_refused(setup: Setup) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    setup.registry.set_mode("order.created", "NONE", actor=OPERATOR)
    v2 = setup.registry.get("order.created").schema
    v2 = {**v2, "properties": {**v2["properties"], "coupon": {"type": "string"}}}
    setup.registry.register("order.created", v2, actor=OPERATOR)

    async def scenario() -> list[str]:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.created", order("EU"))
            (copy,) = await setup.stored(broker, "crm-events")
            assert copy.headers[HEADER_SCHEMA_VERSION] == "2"
            # 1. the broker's header says version 1, the protected header 2.
            swapped = Stored(copy.body, {**copy.headers, HEADER_SCHEMA_VERSION: "1"})
            await setup.put(broker, "crm-events", swapped)
            # 2. the protected header says version 1 too.
            _key, message = keyed_parts(copy.body)
            header = protected_header(message) | {"interlock_schema_version": 1}
            segments = message.split(b".")
            segments[0] = json_b64encode(header)
            tampered = with_message(copy.body, b".".join(segments))
            await setup.put(broker, "crm-events", swapped, body=tampered)
            # 3. the protected subject is order.created, the broker's header another one.
            other = Stored(copy.body, {**copy.headers, HEADER_SUBJECT: "order.cancelled"})
            await setup.put(broker, "crm-events", other)
            running = await setup.consumer(broker, "crm-events").start(handle)
            letters = await letters_of(broker, setup, "crm-events", 3)
            await running.stop()
            return sorted(letter.reason for letter in letters)
        finally:
            await broker.close()

    assert run(scenario()) == ["bad_signature", "bad_signature", "undecryptable"]
    (genuine,) = seen
    assert genuine.writer_version == 2


def test_an_expired_or_replayed_copy_is_dead_lettered(setup: Setup) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    def two_days_ago() -> datetime:
        return datetime.now(UTC) - timedelta(days=2)  # the ttl is one day

    async def scenario() -> list[str]:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.created", order("EU"))
            (copy,) = await setup.stored(broker, "crm-events")
            await setup.put(broker, "crm-events", copy)  # the same copy, sent again
            stale = EventProducer(
                setup.manifest,
                INTEGRATION,
                registry=setup.registry,
                broker=broker,
                audit=setup.audit,
                keys=setup.keys,
                now=two_days_ago,
            )
            await stale.publish("order.created", order("EU", id="o-2"))
            running = await setup.consumer(broker, "crm-events").start(handle)
            letters = await letters_of(broker, setup, "crm-events", 2)
            await running.stop()
            return sorted(letter.reason for letter in letters)
        finally:
            await broker.close()

    assert run(scenario()) == ["duplicate", "expired"]
    assert [event.payload["id"] for event in seen] == ["o-1"]
    refusals = [e for e in setup.audit.entries if e.action == "events.refuse"]
    assert sorted(str(e.reason) for e in refusals) == ["duplicate", "expired"]
