"""Event streams on a real NATS JetStream (TLS, client certificate, password): on the wire.

Each consumer has its own stream (``DESTINATION.CONSUMER``); the tests read
the raw bytes JetStream stored there, so what a consumer could ever receive
is checked where it is kept, not as the consumer's code reports it.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.sink import MemorySink
from interlock.events.consumer import Event, EventConsumer
from interlock.events.producer import EventProducer, EventRefused
from interlock.events.registry import SchemaRegistry
from interlock.events.streams import (
    CONTENT_TYPE_EVENT,
    HEADER_SCHEMA_ID,
    HEADER_SCHEMA_VERSION,
    HEADER_SUBJECT,
    event_stream,
)
from interlock.messaging.model import HEADER_INTEGRATION, DeadLetter, Outgoing
from interlock.messaging.nats import NatsBroker
from interlock.messaging.nats_config import stream_name
from interlock.replay.idempotency import MemoryIdempotency
from interlock.store import Deployment
from interlock.testing.brokers import TlsBroker
from tests.events.streams_support import (
    INTEGRATION,
    eventually,
    make_deployment,
    make_manifest,
    make_registry,
    order,
    run,
)


class Setup:
    """The example manifest with a destination of its own, and the registry."""

    def __init__(self, tmp_path: Path, nats: TlsBroker) -> None:
        self.nats = nats
        self.manifest = make_manifest(tmp_path, destination=f"t{secrets.token_hex(4)}.orders")
        self.audit = MemorySink()
        self.deployment: Deployment = make_deployment(tmp_path)
        self.registry: SchemaRegistry = make_registry(self.deployment, self.manifest, self.audit)
        self.stream = event_stream(self.manifest, INTEGRATION)

    async def connect(self) -> NatsBroker:
        """A connection to the session's server, with every consumer's stream applied."""
        nats = self.nats
        broker = await NatsBroker.connect(nats.url, tls=nats.tls(), password=nats.password)
        for topology in self.stream.topologies():
            await broker.apply(topology)
        return broker

    def producer(self, broker: NatsBroker) -> EventProducer:
        """The integration's producer on ``broker``."""
        return EventProducer(
            self.manifest, INTEGRATION, registry=self.registry, broker=broker, audit=self.audit
        )

    async def stored(self, broker: NatsBroker, consumer: str) -> list[tuple[bytes, dict[str, str]]]:
        """The raw messages in ``consumer``'s stream: bytes as stored, and headers."""
        name = stream_name(self.stream.topology(consumer))
        state = (await broker._js.stream_info(name)).state
        found: list[tuple[bytes, dict[str, str]]] = []
        for seq in range(state.first_seq, state.last_seq + 1) if state.messages else ():
            raw = await broker._js.get_msg(name, seq=seq)
            found.append((raw.data or b"", dict(raw.headers or {})))
        return found


@pytest.fixture
def setup(tmp_path: Path, nats_tls: TlsBroker) -> Iterator[Setup]:
    """A fresh set-up on the session's NATS server."""
    made = Setup(tmp_path, nats_tls)
    yield made
    made.deployment.close()


def test_a_consumer_granted_two_fields_receives_only_those_two_on_the_wire(setup: Setup) -> None:
    async def scenario() -> tuple[list[Any], list[Any]]:
        broker = await setup.connect()
        try:
            producer = setup.producer(broker)
            await producer.publish("order.created", order("EU"))
            await producer.publish("order.cancelled", {"id": "c-1", "note": "late"})
            return await setup.stored(broker, "crm-events"), await setup.stored(broker, "analytics")
        finally:
            await broker.close()

    crm, analytics = run(scenario())
    ((body, headers),) = crm
    assert json.loads(body) == {"id": "o-1", "customer": {"email": "ada@example.com"}}
    for secret in (b"Ada", b"12.5", b"EU", b"leave at the door"):
        assert secret not in body
    assert headers[HEADER_SUBJECT] == "order.created"
    assert [json.loads(b) for b, _ in analytics] == [
        {"id": "o-1", "total": 12.5, "region": "EU"},
        {"id": "c-1", "note": "late"},
    ]
    assert [h[HEADER_SUBJECT] for _, h in analytics] == ["order.created", "order.cancelled"]
    assert b"ada@example.com" not in b"".join(b for b, _ in analytics)


def test_a_consumer_whose_filter_excludes_an_event_never_receives_it(setup: Setup) -> None:
    async def scenario() -> tuple[int, int]:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.created", order("US"))
            crm = await setup.stored(broker, "crm-events")
            analytics = await setup.stored(broker, "analytics")
            return len(crm), len(analytics)
        finally:
            await broker.close()

    assert run(scenario()) == (0, 1)


def test_a_schema_invalid_event_never_reaches_the_broker(setup: Setup) -> None:
    async def scenario() -> tuple[int, int]:
        broker = await setup.connect()
        try:
            with pytest.raises(EventRefused):
                await setup.producer(broker).publish("order.created", order(total="lots"))
            return len(await setup.stored(broker, "crm-events")), len(
                await setup.stored(broker, "analytics")
            )
        finally:
            await broker.close()

    assert run(scenario()) == (0, 0)


def test_a_consumer_reading_with_an_older_version_gets_the_resolved_event(setup: Setup) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    async def scenario() -> str:
        broker = await setup.connect()
        try:
            await setup.producer(broker).publish("order.cancelled", {"id": "c-1", "note": "late"})
            ((_, headers),) = await setup.stored(broker, "analytics")
            consumer = EventConsumer(
                setup.manifest,
                INTEGRATION,
                "analytics",
                registry=setup.registry,
                broker=broker,
                dedup=MemoryIdempotency(),
                audit=setup.audit,
                reader_versions={"order.cancelled": 1},
            )
            running = await consumer.start(handle)
            await eventually(lambda: len(seen) == 1)
            await running.stop()
            return headers[HEADER_SCHEMA_VERSION]
        finally:
            await broker.close()

    assert run(scenario()) == "2"
    (event,) = seen
    assert (event.writer_version, event.read_version) == (2, 1)
    assert event.payload == {"id": "c-1"}  # v1 is closed: the note it does not know is dropped


def test_an_event_of_a_subject_not_granted_is_dead_lettered_on_the_consumers_stream(
    setup: Setup,
) -> None:
    seen: list[Event] = []

    async def handle(event: Event) -> None:
        seen.append(event)

    async def scenario() -> list[DeadLetter]:
        broker = await setup.connect()
        try:
            cancelled = setup.registry.get("order.cancelled")
            topology = setup.stream.topology("crm-events")
            # Not through the producer: something else wrote to crm-events' stream.
            await broker.publish(
                topology,
                Outgoing(
                    body=b'{"id":"c-1"}',
                    content_type=CONTENT_TYPE_EVENT,
                    message_id="rogue-1",
                    expires_at=datetime.now(UTC) + timedelta(minutes=5),
                    headers={
                        HEADER_INTEGRATION: INTEGRATION,
                        HEADER_SUBJECT: "order.cancelled",
                        HEADER_SCHEMA_ID: str(cancelled.id),
                        HEADER_SCHEMA_VERSION: str(cancelled.version),
                    },
                ),
            )
            consumer = EventConsumer(
                setup.manifest,
                INTEGRATION,
                "crm-events",
                registry=setup.registry,
                broker=broker,
                dedup=MemoryIdempotency(),
                audit=setup.audit,
            )
            running = await consumer.start(handle)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not (letters := await broker.dead_letters(topology)):
                assert loop.time() < deadline, "no dead letter within 10 s"
                await asyncio.sleep(0.05)
            await running.stop()
            return letters
        finally:
            await broker.close()

    (letter,) = run(scenario())
    assert (letter.reason, letter.consumer, letter.message_id) == (
        "not_granted",
        "crm-events",
        "rogue-1",
    )
    assert seen == []
