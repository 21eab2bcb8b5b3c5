"""Producer, broker, consumer replicas and dead letters, end to end on both real brokers.

Each test runs against a RabbitMQ node and a NATS JetStream server of this
machine's binaries (TLS only, mutual TLS: the session fixtures
``rabbitmq_tls`` / ``nats_tls``), on a destination of its own. Consumer
replicas are separate connections sharing one idempotency store (SQL on a
SQLite file), as replicas in separate processes would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.actors import Operator
from interlock.audit.entry import AuditEntry
from interlock.audit.sink import MemorySink
from interlock.clock import utc_now
from interlock.config.manifest import Manifest
from interlock.crypto.jose import generate_signing_key
from interlock.messaging.brokers import open_broker
from interlock.messaging.consumer import Consumer, Message, MessageRejected
from interlock.messaging.dead_letters import DeadLetterDesk
from interlock.messaging.envelope import SignerKey, seal
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.model import (
    BrokerAdapter,
    DeadLetter,
    MessageFacts,
    Outgoing,
    Topology,
    topology_of,
)
from interlock.messaging.nats import NatsBroker
from interlock.messaging.nats_config import NatsSettings
from interlock.messaging.producer import Producer
from interlock.replay.idempotency import ResponseSeal, SqlIdempotency
from interlock.store import Deployment
from interlock.testing.brokers import TlsBroker
from tests.messaging.pipeline_support import (
    CRM,
    INTEGRATION,
    MINIMISED,
    PAYLOAD,
    PRODUCER,
    make_manifest,
    open_deployment,
    open_keys,
)

# Each broker a parameter with its markers (they are what `make fast` deselects, and
# the process audit hook of tests/conftest.py checks): the fixture is looked up by
# name at run time, which the fixture-name inference of conftest.py cannot see.
BROKERS = [
    pytest.param("rabbitmq", marks=[pytest.mark.rabbitmq, pytest.mark.processes], id="rabbitmq"),
    pytest.param("nats", marks=[pytest.mark.nats, pytest.mark.processes], id="nats"),
]


@pytest.fixture(params=BROKERS)
def node(request: pytest.FixtureRequest) -> TlsBroker:
    """The session's node of the broker this test runs on."""
    broker: TlsBroker = request.getfixturevalue(f"{request.param}_tls")
    return broker


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on a SQLite file: the keyring and the store replicas share."""
    created = open_deployment(tmp_path)
    yield created
    created.close()


@dataclasses.dataclass
class Scene:
    """One test's integration on the node: manifest, keys, store, audit, what was handled."""

    node: TlsBroker
    manifest: Manifest
    keys: MessagingKeys
    deployment: Deployment
    audit: MemorySink = dataclasses.field(default_factory=MemorySink)
    handled: Counter[str] = dataclasses.field(default_factory=Counter)
    payloads: list[Any] = dataclasses.field(default_factory=list)

    @property
    def topology(self) -> Topology:
        return topology_of(self.manifest, INTEGRATION)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[BrokerAdapter]:
        """A connection of its own (one per replica), closed on exit."""
        broker: BrokerAdapter
        if self.node.kind == "nats":
            # A dead replica's messages go to another after ack_wait: 3 s, not 30, here.
            broker = await NatsBroker.connect(
                self.node.url,
                tls=self.node.tls(),
                password=self.node.password,
                settings=NatsSettings(ack_wait=timedelta(seconds=3)),
            )
        else:
            broker = await open_broker(
                self.manifest.brokers["bus"], tls=self.node.tls(), password=self.node.password
            )
        try:
            yield broker
        finally:
            await broker.close()

    def producer(self, broker: BrokerAdapter) -> Producer:
        return Producer(self.manifest, INTEGRATION, keys=self.keys, broker=broker, audit=self.audit)

    def consumer(self, broker: BrokerAdapter, **options: Any) -> Consumer:
        dedup = SqlIdempotency(
            self.deployment.engine,
            ResponseSeal.load(self.deployment.engine, self.deployment.keyring),
        )
        options.setdefault("lease", timedelta(seconds=2))
        options.setdefault("audit", self.audit)
        return Consumer(
            self.manifest, INTEGRATION, CRM, keys=self.keys, broker=broker, dedup=dedup, **options
        )

    async def handler(self, message: Message) -> None:
        self.payloads.append(message.payload)
        self.handled[message.facts.message_id] += 1


@pytest.fixture
def scene(node: TlsBroker, deployment: Deployment, tmp_path: Path) -> Scene:
    """A fresh integration (its own destination) on the node, its queues declared."""
    manifest = make_manifest(
        tmp_path,
        consumers=(CRM,),
        broker=(node.kind, node.url),
        destination=f"e2e{secrets.token_hex(4)}",
    )
    scene = Scene(node, manifest, open_keys(deployment, manifest), deployment)

    async def declare() -> None:
        async with scene.connection() as broker:
            await broker.apply(scene.topology)

    asyncio.run(declare())
    return scene


async def until(probe: Callable[[], Awaitable[bool]], *, within: float = 30.0) -> None:
    """Wait until ``probe()`` holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await probe():
        if loop.time() > deadline:
            raise AssertionError("the condition did not become true in time")
        await asyncio.sleep(0.1)


async def dead(scene: Scene, broker: BrokerAdapter) -> list[DeadLetter]:
    """The integration's dead letters."""
    return await broker.dead_letters(scene.topology, limit=100)


def test_round_trip(scene: Scene) -> None:
    """Published, confirmed, consumed, minimised, acknowledged; nothing dead-lettered."""

    async def run() -> list[DeadLetter]:
        async with scene.connection() as broker:
            running = await scene.consumer(broker).start(scene.handler)
            message_id = await scene.producer(broker).publish(PAYLOAD)
            await until(lambda: _true(scene.handled[message_id] == 1))
            await running.stop()
            return await dead(scene, broker)

    assert asyncio.run(run()) == []
    assert scene.payloads == [MINIMISED]
    # In either order: the consumer may record its entry before the producer does.
    assert sorted(e.action for e in scene.audit.entries) == [
        "messaging.consume",
        "messaging.publish",
    ]


async def _true(value: bool) -> bool:
    return value


def _sealed(scene: Scene, payload: Any, message_id: str, **changes: Any) -> Outgoing:
    """A message sealed by hand (the producer would refuse some of these)."""
    signer = changes.pop("signer", scene.keys.signer(INTEGRATION, PRODUCER))
    issued = changes.pop("issued_at", None)
    issued = issued or utc_now()
    facts = MessageFacts(
        message_id=message_id,
        integration=INTEGRATION,
        producer=PRODUCER,
        issued_at=issued,
        expires_at=issued + timedelta(minutes=10),
    )
    return seal(payload, facts, signer=signer, recipients=scene.keys.recipients(INTEGRATION, [CRM]))


def _tampered(message: Outgoing) -> Outgoing:
    """One bit of the ciphertext (the JWE compact's fourth part) flipped."""
    parts = message.body.split(b".")
    ciphertext = bytearray(parts[3])
    ciphertext[0] = ord("A") if ciphertext[0] != ord("A") else ord("B")
    parts[3] = bytes(ciphertext)
    return dataclasses.replace(message, body=b".".join(parts))


def test_refused_messages_end_in_the_dead_letter_queue_and_are_never_handled(
    scene: Scene,
) -> None:
    """Tampered, wrong signer, expired, schema-invalid, duplicate (at a second replica).

    The duplicate is the same sealed bytes published again after replica A
    processed the first copy; replica B, on its own connection, receives it. On
    NATS the server's de-duplication window (Nats-Msg-Id) drops the copy before
    any consumer sees it; either way it is handled once.
    """
    stranger = generate_signing_key("ES256")
    refused = {
        "undecryptable": _tampered(_sealed(scene, PAYLOAD, "m-tampered")),
        "wrong_signer": _sealed(
            scene, PAYLOAD, "m-forged", signer=SignerKey(str(stranger.kid), "ES256", stranger)
        ),
        # Expired by its signed facts; the broker property is left in the future, so it
        # is the consumer that must refuse it.
        "expired": dataclasses.replace(
            _sealed(scene, PAYLOAD, "m-expired", issued_at=utc_now() - timedelta(hours=1)),
            expires_at=utc_now() + timedelta(minutes=5),
        ),
        "schema": _sealed(scene, {"note": "no id"}, "m-schema"),
    }
    original = _sealed(scene, PAYLOAD, "m-once")

    async def run() -> list[DeadLetter]:
        async with scene.connection() as first, scene.connection() as second:
            topology = scene.topology
            replica_a = await scene.consumer(first).start(scene.handler)
            for message in refused.values():
                await first.publish(topology, message)
            await first.publish(topology, original)
            await until(lambda: _true(scene.handled["m-once"] == 1))
            await until(lambda: _count(dead(scene, first), len(refused)))
            await replica_a.stop()
            replica_b = await scene.consumer(second).start(scene.handler)
            await second.publish(topology, original)  # the same bytes again
            if scene.node.kind == "rabbitmq":
                await until(lambda: _count(dead(scene, second), len(refused) + 1))
            else:
                await asyncio.sleep(1)
            await replica_b.stop()
            return await dead(scene, second)

    letters = asyncio.run(run())
    expected = set(refused) | ({"duplicate"} if scene.node.kind == "rabbitmq" else set())
    assert {letter.reason for letter in letters} == expected
    assert len(letters) == len(expected)
    assert scene.handled == Counter({"m-once": 1})
    for letter in letters:
        if letter.reason in refused:
            assert letter.body == refused[letter.reason].body  # still sealed, unchanged
    reasons = [e.reason for e in scene.audit.entries if e.action == "messaging.refuse"]
    assert sorted(r or "" for r in reasons) == sorted(expected)


async def _count(letters: Awaitable[list[DeadLetter]], wanted: int) -> bool:
    return len(await letters) >= wanted


def test_key_rotation_with_messages_in_flight(scene: Scene) -> None:
    """Sealed under the old keys, waiting in the queue while keys rotate: still opened."""

    async def run() -> None:
        async with scene.connection() as broker:
            producer = scene.producer(broker)
            before = await producer.publish(PAYLOAD)
            old = scene.keys.signer(INTEGRATION, PRODUCER).kid
            spec = scene.manifest.integrations[INTEGRATION].messaging
            assert spec is not None
            rotated = scene.keys.rotate(INTEGRATION, spec, PRODUCER)
            assert len(rotated) == 2  # the producer's signing key, the consumer's key
            assert scene.keys.signer(INTEGRATION, PRODUCER).kid != old
            after = await producer.publish(PAYLOAD)
            running = await scene.consumer(broker).start(scene.handler)
            await until(lambda: _true(len(scene.handled) == 2))
            await running.stop()
            assert scene.handled == Counter({before: 1, after: 1})
            assert await dead(scene, broker) == []

    asyncio.run(run())


class _Freezing(MemorySink):
    """Replica A's audit sink: after its ``last``-th handled message, the replica freezes.

    The freeze falls after the handler returned and the message was recorded as
    processed, but before it is acknowledged: the window a crash can hit.
    """

    def __init__(self, last: int) -> None:
        super().__init__()
        self.last = last
        self.frozen = asyncio.Event()
        self.frozen_id: object = None

    async def record_async(self, entry: AuditEntry) -> int:
        index = await super().record_async(entry)
        if entry.action == "messaging.consume" and len(self.entries) == self.last:
            self.frozen_id = entry.details["message_id"]
            self.frozen.set()
            await asyncio.Event().wait()
        return index


def test_a_replica_killed_mid_batch_loses_nothing_and_processes_nothing_twice(
    scene: Scene,
) -> None:
    """Replica A handles some messages, freezes in others, and its connection drops; B finishes.

    The message A handled but had not acknowledged comes back and is recognised
    as processed (dead-lettered as a duplicate); those A was still handling are
    taken over once A's lease runs out. Every message is handled successfully
    exactly once across the replicas.
    """
    count = 12
    frozen_sink = _Freezing(last=4)
    done_by_a: list[str] = []
    hanging: list[str] = []

    async def replica_a_handler(message: Message) -> None:
        if len(done_by_a) < 4:
            done_by_a.append(message.facts.message_id)
            await scene.handler(message)
            return
        hanging.append(message.facts.message_id)
        await asyncio.Event().wait()  # still handling when killed

    async def run() -> list[DeadLetter]:
        async with scene.connection() as first, scene.connection() as second:
            producer = scene.producer(second)
            ids = [await producer.publish(PAYLOAD) for _ in range(count)]
            await scene.consumer(first, audit=frozen_sink).start(replica_a_handler, prefetch=8)
            await frozen_sink.frozen.wait()
            await until(lambda: _true(len(hanging) >= 1))
            await first.close()  # killed: unacknowledged deliveries go back to the queue
            replica_b = await scene.consumer(second).start(scene.handler)
            await until(lambda: _true(set(scene.handled) == set(ids)), within=60)
            await until(lambda: _count(dead(scene, second), 1))
            await asyncio.sleep(1)  # let stragglers arrive, were there any
            await replica_b.stop()
            return await dead(scene, second)

    letters = asyncio.run(run())
    assert len(scene.handled) == count
    assert set(scene.handled.values()) == {1}
    assert [letter.reason for letter in letters] == ["duplicate"]
    assert letters[0].message_id == frozen_sink.frozen_id


def test_dead_letters_on_the_broker_are_listed_shown_replayed_and_purged(scene: Scene) -> None:
    """The desk against the broker's own dead-letter queue (its refs, its headers)."""
    attempts: Counter[str] = Counter()

    async def fussy(message: Message) -> None:
        attempts[message.facts.message_id] += 1
        if attempts[message.facts.message_id] == 1:
            raise MessageRejected("not yet")
        await scene.handler(message)

    async def run() -> None:
        async with scene.connection() as broker:
            desk = DeadLetterDesk(
                scene.manifest,
                INTEGRATION,
                broker=broker,
                keys=scene.keys,
                audit=scene.audit,
                operator=Operator("admin:alice"),
            )
            running = await scene.consumer(broker).start(fussy)
            first = await scene.producer(broker).publish(PAYLOAD)
            second = await scene.producer(broker).publish(PAYLOAD)
            await until(lambda: _count(dead(scene, broker), 2))
            views = await desk.list()
            assert sorted(v.message_id for v in views) == sorted([first, second])
            assert {(v.reason, v.consumer) for v in views} == {("handler", CRM)}
            shown = await desk.show(views[0].ref)
            assert shown.payload == PAYLOAD
            assert await desk.replay(views[0].ref) == views[0].message_id
            await until(lambda: _true(scene.handled[views[0].message_id] == 1))
            assert [v.message_id for v in await desk.list()] == [views[1].message_id]
            assert await desk.purge() == 1
            assert await desk.list() == []
            await running.stop()

    asyncio.run(run())
    actions = [e.action for e in scene.audit.entries if e.action.startswith("messaging.dead")]
    assert actions == [
        "messaging.dead_letter.list",
        "messaging.dead_letter.show",
        "messaging.dead_letter.replay",
        "messaging.dead_letter.list",
        "messaging.dead_letter.purge",
        "messaging.dead_letter.list",
    ]
