"""The RabbitMQ adapter against a real TLS-only node (mutual TLS) of this machine's server.

Each test uses its own destination, so its exchanges and queues are its own
on the session's node.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aio_pika
import pytest

from interlock.clock import utc_now
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_INTEGRATION,
    HEADER_REASON,
    BrokerError,
    Decision,
    Delivery,
    Outgoing,
    PublishError,
    Settle,
    Topology,
)
from interlock.messaging.rabbitmq import RabbitMqBroker
from interlock.outbound import tls_context
from interlock.testing.brokers import TlsBroker
from interlock.testing.tls import make_tls

T = TypeVar("T")
ACK = Decision(Settle.ACK)


def topology(consumers: tuple[str, ...] = ("crm", "billing"), **changes: Any) -> Topology:
    """A topology of its own (unique destination)."""
    name = f"t{secrets.token_hex(4)}"
    values: dict[str, Any] = {
        "integration": f"{name}-events",
        "broker": "bus",
        "destination": name,
        "consumers": consumers,
        "ttl": timedelta(minutes=5),
        "max_length": 1000,
        "max_message": 64 * 1024,
        "dead_letter_retention": timedelta(days=1),
        "dead_letter_max_length": 100,
    }
    values.update(changes)
    return Topology(**values)


def outgoing(topo: Topology, *, ttl: timedelta = timedelta(minutes=5)) -> Outgoing:
    """An opaque sealed-looking message."""
    return Outgoing(
        body=os.urandom(48) + b"\x00\xff",
        content_type=CONTENT_TYPE_COMPACT,
        message_id=secrets.token_hex(16),
        expires_at=utc_now() + ttl,
        headers={HEADER_INTEGRATION: topo.integration},
    )


async def connect(broker: TlsBroker) -> RabbitMqBroker:
    """An adapter that requeues a failed message quickly."""
    return await RabbitMqBroker.connect(
        broker.url, tls=broker.tls(), password=broker.password, failure_delay=0.05
    )


def run(broker: TlsBroker, body: Callable[[RabbitMqBroker], Awaitable[T]]) -> T:
    """Run ``body`` with a connected adapter, closed afterwards."""

    async def main() -> T:
        adapter = await connect(broker)
        try:
            return await asyncio.wait_for(body(adapter), timeout=60)
        finally:
            await adapter.close()

    return asyncio.run(main())


async def depth(broker: TlsBroker, queue: str) -> int:
    """How many messages wait (unacknowledged ones not counted) in ``queue``."""
    url = broker.url.replace("@", f":{broker.password}@", 1)
    async with await aio_pika.connect(url, ssl_context=broker.tls()) as connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


class Inbox:
    """A handler that records deliveries and answers with ``decide``."""

    def __init__(self, decide: Callable[[Delivery], Awaitable[Decision]] | None = None) -> None:
        self.deliveries: list[Delivery] = []
        self.arrived = asyncio.Condition()
        self._decide = decide

    async def __call__(self, delivery: Delivery) -> Decision:
        async with self.arrived:
            self.deliveries.append(delivery)
            self.arrived.notify_all()
        return await self._decide(delivery) if self._decide else ACK

    async def wait_for(self, count: int, within: float = 15) -> list[Delivery]:
        async with asyncio.timeout(within), self.arrived:
            await self.arrived.wait_for(lambda: len(self.deliveries) >= count)
        return self.deliveries

    def ids(self) -> set[str | None]:
        return {d.message_id for d in self.deliveries}


async def wait_until(check: Callable[[], Awaitable[bool]], within: float = 15) -> None:
    """Poll ``check`` until it holds."""
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


# --- connecting -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "amqp://interlock@127.0.0.1:5672/",
        "http://127.0.0.1:5671/",
        "amqps://interlock:secret@127.0.0.1:5671/",
        "amqps://interlock@127.0.0.1:5671/?no_verify_ssl=1",
    ],
)
def test_connect_refuses_urls_that_are_not_plain_amqps(url: str) -> None:
    """Plain AMQP, other schemes, a password in the URL or TLS options in it are refused."""
    with pytest.raises(BrokerError):
        asyncio.run(RabbitMqBroker.connect(url, tls=tls_context(), password="x"))


def test_connect_refuses_a_context_that_does_not_verify() -> None:
    """A context that verifies nothing (a server-side one) is refused before connecting."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # verifies no peer certificate
    with pytest.raises(BrokerError, match="verify"):
        asyncio.run(RabbitMqBroker.connect("amqps://u@127.0.0.1/", tls=context, password="x"))


def test_connect_needs_a_client_certificate(rabbitmq_tls: TlsBroker) -> None:
    """The node requires mutual TLS: trusting it is not enough."""
    context = tls_context(rabbitmq_tls.ca_file)
    # TLS 1.3: the server's alert may reach the client as the alert or as a reset.
    with pytest.raises(BrokerError, match=r"(?i)certificate required|reset") as refused:
        asyncio.run(
            RabbitMqBroker.connect(rabbitmq_tls.url, tls=context, password=rabbitmq_tls.password)
        )
    assert rabbitmq_tls.password is not None
    assert rabbitmq_tls.password not in str(refused.value)


def test_connect_verifies_the_broker(rabbitmq_tls: TlsBroker, tmp_path: Path) -> None:
    """A context trusting another CA does not accept the node's certificate."""
    other = make_tls(tmp_path, "Another CA")
    context = tls_context(
        other.ca_file, client_certificate=(rabbitmq_tls.client_cert, rabbitmq_tls.client_key)
    )
    with pytest.raises(BrokerError, match=r"(?i)certificate verify failed"):
        asyncio.run(
            RabbitMqBroker.connect(rabbitmq_tls.url, tls=context, password=rabbitmq_tls.password)
        )


def test_connect_refuses_a_wrong_password(rabbitmq_tls: TlsBroker) -> None:
    """The right certificate with a wrong password is refused, and the message hides it."""
    wrong = secrets.token_urlsafe(16)
    with pytest.raises(BrokerError, match=r"(?i)auth|access_refused") as refused:
        asyncio.run(
            RabbitMqBroker.connect(rabbitmq_tls.url, tls=rabbitmq_tls.tls(), password=wrong)
        )
    assert wrong not in str(refused.value)


def test_connect_with_the_certificate_alone(rabbitmq_tls: TlsBroker) -> None:
    """No password: SASL EXTERNAL, the node maps the client certificate to its user."""
    topo = topology(("crm",))

    async def main() -> int:
        adapter = await RabbitMqBroker.connect(
            rabbitmq_tls.url, tls=rabbitmq_tls.tls(), password=None
        )
        try:
            await adapter.apply(topo)
            await adapter.publish(topo, outgoing(topo))
        finally:
            await adapter.close()
        return await depth(rabbitmq_tls, topo.queue("crm"))

    assert asyncio.run(main()) == 1


# --- publish and consume -------------------------------------------------------------


def test_round_trip_keeps_body_headers_id_and_content_type(rabbitmq_tls: TlsBroker) -> None:
    """Opaque bytes arrive unchanged, with the message id, content type and headers."""
    topo = topology(("crm",))
    sent = outgoing(topo)

    async def body(adapter: RabbitMqBroker) -> Delivery:
        await adapter.apply(topo)
        await adapter.publish(topo, sent)
        inbox = Inbox()
        consumption = await adapter.consume(topo, "crm", inbox)
        received = (await inbox.wait_for(1))[0]
        await consumption.stop()
        return received

    received = run(rabbitmq_tls, body)
    assert received.body == sent.body
    assert received.message_id == sent.message_id
    assert received.content_type == CONTENT_TYPE_COMPACT
    assert received.headers[HEADER_INTEGRATION] == topo.integration
    assert not received.redelivered
    assert received.delivery_count == 1


def test_publish_without_a_queue_to_take_it_fails(rabbitmq_tls: TlsBroker) -> None:
    """Mandatory routing: a message no queue takes raises PublishError; so does no exchange."""
    topo = topology(())
    routed = topology(("crm",))

    async def body(adapter: RabbitMqBroker) -> None:
        await adapter.apply(topo)  # the exchange, no consumer queue bound to it
        with pytest.raises(PublishError, match="not accepted"):
            await adapter.publish(topo, outgoing(topo))
        with pytest.raises(PublishError):
            await adapter.publish(topology(("crm",)), outgoing(topo))  # no exchange at all
        await adapter.apply(routed)  # the adapter still publishes afterwards
        await adapter.publish(routed, outgoing(routed))

    run(rabbitmq_tls, body)


def test_publish_refuses_oversized_and_expired_messages(rabbitmq_tls: TlsBroker) -> None:
    """Nothing over max_message and nothing already expired is sent."""
    topo = topology(("crm",), max_message=16)

    async def body(adapter: RabbitMqBroker) -> int:
        await adapter.apply(topo)
        with pytest.raises(PublishError, match="max_message"):
            await adapter.publish(topo, outgoing(topo))
        late = outgoing(topo, ttl=timedelta(seconds=-1))
        with pytest.raises(PublishError, match="expired"):
            await adapter.publish(topology(("crm",)), late)
        return await depth(rabbitmq_tls, topo.queue("crm"))

    assert run(rabbitmq_tls, body) == 0


def test_dead_moves_the_unchanged_body_to_the_dead_letter_queue(rabbitmq_tls: TlsBroker) -> None:
    """Settle.DEAD: the body and id unchanged in the DLQ, with why, who and when; queue empty."""
    topo = topology(("crm",))
    sent = outgoing(topo)
    before = utc_now()

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="bad_signature")

    async def body(adapter: RabbitMqBroker) -> tuple[list[Any], int]:
        await adapter.apply(topo)
        await adapter.publish(topo, sent)
        inbox = Inbox(refuse)
        consumption = await adapter.consume(topo, "crm", inbox)
        await inbox.wait_for(1)

        async def landed() -> bool:
            return bool(await adapter.dead_letters(topo))

        await wait_until(landed)
        await consumption.stop()
        return await adapter.dead_letters(topo), await depth(rabbitmq_tls, topo.queue("crm"))

    letters, left = run(rabbitmq_tls, body)
    assert left == 0
    [letter] = letters
    assert letter.body == sent.body
    assert letter.message_id == sent.message_id != letter.ref
    assert letter.content_type == CONTENT_TYPE_COMPACT
    assert letter.reason == "bad_signature"
    assert letter.consumer == "crm"
    assert letter.dead_at is not None
    assert before - timedelta(seconds=1) <= letter.dead_at <= utc_now()


def test_dead_keeps_the_message_when_the_dead_letter_queue_refuses_it(
    rabbitmq_tls: TlsBroker,
) -> None:
    """No confirmed copy in the DLQ, no ack: the message stays in the queue and comes back."""
    topo = topology(("crm",))

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="malformed")

    async def body(adapter: RabbitMqBroker) -> tuple[list[Delivery], int]:
        await adapter.apply(topo)
        url = rabbitmq_tls.url.replace("@", f":{rabbitmq_tls.password}@", 1)
        async with await aio_pika.connect(url, ssl_context=rabbitmq_tls.tls()) as connection:
            channel = await connection.channel()
            await channel.queue_delete(topo.dead_letter_queue)  # nothing takes the copy now
        await adapter.publish(topo, outgoing(topo))
        inbox = Inbox(refuse)
        consumption = await adapter.consume(topo, "crm", inbox)
        received = await inbox.wait_for(2)
        await consumption.stop()
        return received, await depth(rabbitmq_tls, topo.queue("crm"))

    received, left = run(rabbitmq_tls, body)
    assert received[1].redelivered
    assert left == 1


def test_dead_letter_headers_on_the_broker(rabbitmq_tls: TlsBroker) -> None:
    """The copy carries the reason, consumer, time and the original headers as AMQP headers."""
    topo = topology(("crm",))

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="expired")

    async def body(adapter: RabbitMqBroker) -> dict[str, Any]:
        await adapter.apply(topo)
        await adapter.publish(topo, outgoing(topo))
        inbox = Inbox(refuse)
        consumption = await adapter.consume(topo, "crm", inbox)
        await inbox.wait_for(1)
        await consumption.stop()
        url = rabbitmq_tls.url.replace("@", f":{rabbitmq_tls.password}@", 1)
        async with await aio_pika.connect(url, ssl_context=rabbitmq_tls.tls()) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(topo.dead_letter_queue, passive=True)
            message = await queue.get(no_ack=False, fail=True)
            return dict(message.headers or {})

    headers = run(rabbitmq_tls, body)
    assert headers[HEADER_REASON] == "expired"
    assert headers[HEADER_CONSUMER] == "crm"
    assert datetime.fromisoformat(str(headers[HEADER_DEAD_AT])).tzinfo is not None
    assert headers[HEADER_INTEGRATION] == topo.integration


def test_retry_delivers_again_after_the_delay(rabbitmq_tls: TlsBroker) -> None:
    """Settle.RETRY: not now; the same message comes back (redelivered) after retry_after."""
    topo = topology(("crm",))
    times: list[float] = []

    async def later_then_ack(_: Delivery) -> Decision:
        times.append(time.monotonic())
        if len(times) == 1:
            return Decision(Settle.RETRY, retry_after=timedelta(milliseconds=300))
        return ACK

    async def body(adapter: RabbitMqBroker) -> tuple[list[Delivery], int]:
        await adapter.apply(topo)
        await adapter.publish(topo, outgoing(topo))
        inbox = Inbox(later_then_ack)
        consumption = await adapter.consume(topo, "crm", inbox)
        received = await inbox.wait_for(2)
        await consumption.stop()
        return received, await depth(rabbitmq_tls, topo.queue("crm"))

    (first, second), left = run(rabbitmq_tls, body)
    assert first.message_id == second.message_id
    assert second.redelivered
    assert second.delivery_count == 2
    assert times[1] - times[0] >= 0.3
    assert left == 0


def test_a_handler_that_raises_leaves_the_message_for_redelivery(rabbitmq_tls: TlsBroker) -> None:
    """No ack on failure: the message is delivered again, flagged redelivered."""
    topo = topology(("crm",))

    async def fail_once(delivery: Delivery) -> Decision:
        if not delivery.redelivered:
            raise RuntimeError("the handler broke")
        return ACK

    async def body(adapter: RabbitMqBroker) -> tuple[list[Delivery], int]:
        await adapter.apply(topo)
        await adapter.publish(topo, outgoing(topo))
        inbox = Inbox(fail_once)
        consumption = await adapter.consume(topo, "crm", inbox)
        received = await inbox.wait_for(2)
        await consumption.stop()
        return received, await depth(rabbitmq_tls, topo.queue("crm"))

    (first, second), left = run(rabbitmq_tls, body)
    assert first.message_id == second.message_id
    assert not first.redelivered
    assert second.redelivered
    assert left == 0


def test_a_message_that_expires_in_the_queue_is_dead_lettered(rabbitmq_tls: TlsBroker) -> None:
    """Per-message expiration: the broker dead-letters it; the reason comes from x-death."""
    topo = topology(("crm",))
    sent = outgoing(topo, ttl=timedelta(milliseconds=800))

    async def body(adapter: RabbitMqBroker) -> list[Any]:
        await adapter.apply(topo)
        await adapter.publish(topo, sent)

        async def landed() -> bool:
            return bool(await adapter.dead_letters(topo))

        await wait_until(landed)
        assert await depth(rabbitmq_tls, topo.queue("crm")) == 0
        letters = await adapter.dead_letters(topo)
        # Its ref (derived: the broker dead-lettered it) finds it again.
        assert await adapter.take_dead_letter(topo, letters[0].ref) == letters[0]
        return letters

    [letter] = run(rabbitmq_tls, body)
    assert letter.body == sent.body
    assert letter.message_id == sent.message_id != letter.ref
    assert letter.reason == "expired"
    assert letter.consumer == "crm"
    assert letter.dead_at is not None
    assert abs(letter.dead_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_overflow_is_dead_lettered_oldest_first(rabbitmq_tls: TlsBroker) -> None:
    """Over x-max-length the oldest message moves to the dead-letter queue ("overflow")."""
    topo = topology(("crm",), max_length=2)
    sent = [outgoing(topo) for _ in range(3)]

    async def body(adapter: RabbitMqBroker) -> list[Any]:
        await adapter.apply(topo)
        for message in sent:
            await adapter.publish(topo, message)
        return await adapter.dead_letters(topo)

    [letter] = run(rabbitmq_tls, body)
    assert letter.message_id == sent[0].message_id
    assert letter.reason == "overflow"


def test_dead_letters_list_take_and_purge(rabbitmq_tls: TlsBroker) -> None:
    """Listing leaves them (in order); take removes one; purge empties the queue."""
    topo = topology(("crm",))
    sent = [outgoing(topo) for _ in range(3)]

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="schema")

    async def body(adapter: RabbitMqBroker) -> None:
        await adapter.apply(topo)
        for message in sent:
            await adapter.publish(topo, message)
        inbox = Inbox(refuse)
        consumption = await adapter.consume(topo, "crm", inbox, prefetch=1)
        await inbox.wait_for(3)
        await consumption.stop()
        ids = [m.message_id for m in sent]
        listed = await adapter.dead_letters(topo)
        assert [d.message_id for d in listed] == ids
        assert await adapter.dead_letters(topo) == listed  # the same letters, the same refs
        assert [d.message_id for d in await adapter.dead_letters(topo, limit=2)] == ids[:2]
        taken = await adapter.take_dead_letter(topo, listed[1].ref)
        assert taken is not None
        assert taken.body == sent[1].body
        assert await adapter.take_dead_letter(topo, listed[1].ref) is None
        assert await adapter.take_dead_letter(topo, ids[0]) is None  # a message id is no ref
        assert [d.message_id for d in await adapter.dead_letters(topo)] == [ids[0], ids[2]]
        assert await adapter.purge_dead_letters(topo) == 2
        assert await adapter.dead_letters(topo) == []

    run(rabbitmq_tls, body)


def test_replay_goes_to_the_refusing_consumer_alone(rabbitmq_tls: TlsBroker) -> None:
    """A replayed dead letter reaches the consumer that refused it, unchanged, and leaves the
    dead-letter queue; the consumer that processed it never sees it again."""
    topo = topology(("crm", "billing"))
    sent = outgoing(topo)

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="schema")

    async def body(adapter: RabbitMqBroker) -> None:
        await adapter.apply(topo)
        await adapter.publish(topo, sent)
        crm, billing = Inbox(refuse), Inbox()
        stopping = [
            await adapter.consume(topo, "crm", crm, prefetch=1),
            await adapter.consume(topo, "billing", billing, prefetch=1),
        ]
        await crm.wait_for(1)
        await billing.wait_for(1)
        await wait_until(lambda: _has_dead_letters(adapter, topo))
        for consumption in stopping:
            await consumption.stop()
        assert await adapter.replay_dead_letter(topo, "no-such-id") is None
        (letter,) = await adapter.dead_letters(topo)
        assert await adapter.replay_dead_letter(topo, letter.ref) == sent.message_id
        assert await adapter.dead_letters(topo) == []
        assert await depth(rabbitmq_tls, topo.queue("crm")) == 1
        assert await depth(rabbitmq_tls, topo.queue("billing")) == 0
        again = Inbox()
        consumption = await adapter.consume(topo, "crm", again, prefetch=1)
        (delivery,) = await again.wait_for(1)
        await consumption.stop()
        assert delivery.body == sent.body
        assert delivery.message_id == sent.message_id
        assert "interlock-refusal" not in delivery.headers
        assert "interlock-dead-ref" not in delivery.headers

    run(rabbitmq_tls, body)


async def _has_dead_letters(adapter: RabbitMqBroker, topo: Topology) -> bool:
    return bool(await adapter.dead_letters(topo))


# --- topology ------------------------------------------------------------------------


def test_plan_apply_and_plan_again(rabbitmq_tls: TlsBroker) -> None:
    """An empty broker: everything to create; apply creates it; then everything is ok."""
    topo = topology()

    async def body(adapter: RabbitMqBroker) -> None:
        planned = await adapter.plan(topo)
        assert {c.action for c in planned} == {"create"}
        assert {(c.kind, c.name) for c in planned} >= {
            ("exchange", topo.destination),
            ("exchange", topo.dead_letter_queue),
            ("queue", topo.queue("crm")),
            ("queue", topo.queue("billing")),
            ("queue", topo.dead_letter_queue),
        }
        assert sum(c.kind == "binding" for c in planned) == 3
        with pytest.raises(PublishError):  # plan changed nothing
            await adapter.publish(topo, outgoing(topo))
        applied = await adapter.apply(topo)
        assert [(c.action, c.kind, c.name) for c in applied] == [
            ("create", c.kind, c.name) for c in planned
        ]
        assert {c.action for c in await adapter.plan(topo)} == {"ok"}
        assert {c.action for c in await adapter.apply(topo)} == {"ok"}
        await adapter.publish(topo, outgoing(topo))
        assert await depth(rabbitmq_tls, topo.queue("crm")) == 1

    run(rabbitmq_tls, body)


def test_a_queue_declared_with_other_arguments_is_drift_left_alone(
    rabbitmq_tls: TlsBroker,
) -> None:
    """A hand-made queue with another TTL: reported as drift by plan and apply, not replaced."""
    topo = topology(("crm",))
    theirs: dict[str, Any] = {"x-message-ttl": 1234}

    async def body(adapter: RabbitMqBroker) -> None:
        url = rabbitmq_tls.url.replace("@", f":{rabbitmq_tls.password}@", 1)
        async with await aio_pika.connect(url, ssl_context=rabbitmq_tls.tls()) as connection:
            channel = await connection.channel()
            await channel.declare_queue(topo.queue("crm"), durable=True, arguments=theirs)
        for changes in (await adapter.plan(topo), await adapter.apply(topo)):
            by_name = {(c.kind, c.name): c.action for c in changes}
            assert by_name[("queue", topo.queue("crm"))] == "drift"
            assert by_name[("queue", topo.dead_letter_queue)] in {"create", "ok"}
            bindings = [c for c in changes if c.kind == "binding" and topo.queue("crm") in c.name]
            assert [c.action for c in bindings] == ["drift"]
        async with await aio_pika.connect(url, ssl_context=rabbitmq_tls.tls()) as connection:
            channel = await connection.channel()
            # Still the hand-made queue: redeclaring it with its own arguments is accepted.
            await channel.declare_queue(topo.queue("crm"), durable=True, arguments=theirs)

    run(rabbitmq_tls, body)


# --- several consumers ---------------------------------------------------------------


def test_each_consumer_name_gets_every_message(rabbitmq_tls: TlsBroker) -> None:
    """Fan-out: two consumer names, each with its own queue, both receive all messages."""
    topo = topology(("crm", "billing"))
    sent = [outgoing(topo) for _ in range(5)]

    async def body(adapter: RabbitMqBroker) -> tuple[Inbox, Inbox]:
        await adapter.apply(topo)
        for message in sent:
            await adapter.publish(topo, message)
        crm, billing = Inbox(), Inbox()
        running = [
            await adapter.consume(topo, "crm", crm),
            await adapter.consume(topo, "billing", billing),
        ]
        await crm.wait_for(5)
        await billing.wait_for(5)
        for consumption in running:
            await consumption.stop()
        return crm, billing

    crm, billing = run(rabbitmq_tls, body)
    assert crm.ids() == billing.ids() == {m.message_id for m in sent}


def test_replicas_of_one_consumer_share_its_queue(rabbitmq_tls: TlsBroker) -> None:
    """Two replicas of the same consumer name: every message reaches exactly one of them."""
    topo = topology(("crm",))
    sent = [outgoing(topo) for _ in range(20)]

    async def slow(_: Delivery) -> Decision:
        await asyncio.sleep(0.02)
        return ACK

    async def body(adapter: RabbitMqBroker) -> tuple[Inbox, Inbox]:
        await adapter.apply(topo)
        other = await connect(rabbitmq_tls)
        one, two = Inbox(slow), Inbox(slow)
        running = [
            await adapter.consume(topo, "crm", one, prefetch=1),
            await other.consume(topo, "crm", two, prefetch=1),
        ]
        for message in sent:
            await adapter.publish(topo, message)

        async def all_in() -> bool:
            return len(one.deliveries) + len(two.deliveries) >= len(sent)

        await wait_until(all_in)
        await asyncio.sleep(0.3)  # nothing more arrives
        for consumption in running:
            await consumption.stop()
        await other.close()
        return one, two

    one, two = run(rabbitmq_tls, body)
    assert len(one.deliveries) + len(two.deliveries) == len(sent)
    assert one.ids() | two.ids() == {m.message_id for m in sent}
    assert not one.ids() & two.ids()
    assert one.deliveries
    assert two.deliveries


def test_a_replica_killed_mid_batch_loses_nothing(rabbitmq_tls: TlsBroker) -> None:
    """Unacknowledged messages of a replica whose connection dies go to another replica."""
    topo = topology(("crm",))
    sent = [outgoing(topo) for _ in range(5)]
    never = asyncio.Event()

    async def stuck(_: Delivery) -> Decision:
        await never.wait()
        return ACK

    async def body(adapter: RabbitMqBroker) -> Inbox:
        await adapter.apply(topo)
        doomed = await connect(rabbitmq_tls)
        held = Inbox(stuck)
        await doomed.consume(topo, "crm", held, prefetch=10)
        for message in sent:
            await adapter.publish(topo, message)
        await held.wait_for(5)
        await doomed.close()  # dies holding five unacknowledged messages
        survivor = Inbox()
        consumption = await adapter.consume(topo, "crm", survivor)
        await survivor.wait_for(5)
        await consumption.stop()
        assert await depth(rabbitmq_tls, topo.queue("crm")) == 0
        return survivor

    survivor = run(rabbitmq_tls, body)
    assert survivor.ids() == {m.message_id for m in sent}
    assert all(d.redelivered for d in survivor.deliveries)


def test_consume_needs_a_known_consumer_and_its_queue(rabbitmq_tls: TlsBroker) -> None:
    """A consumer the topology does not name, or a queue never applied, is an error."""
    topo = topology(("crm",))

    async def body(adapter: RabbitMqBroker) -> None:
        with pytest.raises(BrokerError, match="not a consumer"):
            await adapter.consume(topo, "stranger", Inbox())
        with pytest.raises(BrokerError, match="apply"):
            await adapter.consume(topo, "crm", Inbox())

    run(rabbitmq_tls, body)


def test_each_dead_letter_has_a_ref_of_its_own(rabbitmq_tls: TlsBroker) -> None:
    """Both consumers refuse one message: two letters under one message id, two refs; the
    billing letter's ref replays to billing alone, and the CRM's letter stays."""
    topo = topology(("crm", "billing"))
    sent = outgoing(topo)

    async def refuse(_: Delivery) -> Decision:
        return Decision(Settle.DEAD, reason="schema")

    async def body(adapter: RabbitMqBroker) -> None:
        await adapter.apply(topo)
        await adapter.publish(topo, sent)
        crm, billing = Inbox(refuse), Inbox(refuse)
        stopping = [
            await adapter.consume(topo, "crm", crm, prefetch=1),
            await adapter.consume(topo, "billing", billing, prefetch=1),
        ]
        await crm.wait_for(1)
        await billing.wait_for(1)

        async def both() -> bool:
            return len(await adapter.dead_letters(topo)) == 2

        await wait_until(both)
        for consumption in stopping:
            await consumption.stop()
        letters = {d.consumer: d for d in await adapter.dead_letters(topo)}
        assert {d.message_id for d in letters.values()} == {sent.message_id}
        assert letters["crm"].ref != letters["billing"].ref
        replayed = await adapter.replay_dead_letter(topo, letters["billing"].ref)
        assert replayed == sent.message_id
        assert [d.ref for d in await adapter.dead_letters(topo)] == [letters["crm"].ref]
        assert await depth(rabbitmq_tls, topo.queue("billing")) == 1
        assert await depth(rabbitmq_tls, topo.queue("crm")) == 0

    run(rabbitmq_tls, body)
