"""The RabbitMQ dead-letter queue: put a refused message there, list, take and purge.

A message the consumer refuses is published unchanged (body, content type,
message id, headers) to the dead-letter exchange with :data:`HEADER_REASON`,
:data:`HEADER_CONSUMER`, :data:`HEADER_DEAD_AT` and :data:`HEADER_DEAD_REF`
added, confirmed, before the original is acknowledged. A message the broker
dead-letters (expired in the queue, dropped by ``x-max-length``) carries
RabbitMQ's ``x-death`` header instead; its reason, queue and time are read
from there.

A letter's ``ref`` is its own: the random :data:`HEADER_DEAD_REF` of a
refused message, and for one the broker dead-lettered a digest of its id,
queue, time and body. Never the message id alone: every consumer that
refuses a message dead-letters a copy under the same id, and a publisher
chooses it freely.

AMQP queues have no random access: listing takes messages without
acknowledging them and closes the channel, which puts them back where they
were; taking one acknowledges only the message whose ref matches.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity, DeliveryError

from interlock.clock import Clock, utc_now
from interlock.messaging.model import (
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_REASON,
    BrokerError,
    DeadLetter,
    Delivery,
    PublishError,
    Topology,
)
from interlock.messaging.rabbitmq_topology import dead_letter_exchange

__all__ = ["BROKER_REASONS", "HEADER_DEAD_REF", "DeadLetterQueue", "confirmed", "header_text"]

#: RabbitMQ's ``x-death`` reasons, as Interlock names them.
BROKER_REASONS: Final = {"expired": "expired", "maxlen": "overflow", "rejected": "rejected"}
#: The ref of a dead letter Interlock put in the queue (random, 32 hex digits).
HEADER_DEAD_REF: Final = "interlock-dead-ref"
_REF: Final = re.compile(r"[0-9a-f]{32}")
# Headers of a dead letter that are not the message's own (left out on replay).
_DEAD_HEADERS: Final = frozenset(
    {HEADER_REASON, HEADER_CONSUMER, HEADER_DEAD_AT, HEADER_DEAD_REF, "x-death"}
)


def header_text(value: Any) -> str:
    """An AMQP header value as text (bytes decoded, times in ISO 8601)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class DeadLetterQueue:
    """The dead-letter queue of an integration, on one connection."""

    def __init__(
        self,
        connection: AbstractConnection,
        publishing: Callable[[], Awaitable[AbstractChannel]],
        *,
        now: Clock = utc_now,
        timeout: float = 10.0,
    ) -> None:
        """``publishing``: gives a channel with publisher confirms and ``on_return_raises``."""
        self._connection = connection
        self._publishing = publishing
        self._now = now
        self._timeout = timeout

    async def put(self, topology: Topology, consumer: str, message: Delivery, why: str) -> None:
        """Publish ``message`` unchanged with why, who and when; PublishError if unconfirmed."""
        headers: dict[str, Any] = dict(message.headers)
        headers.update(
            {
                HEADER_REASON: why,
                HEADER_CONSUMER: consumer,
                HEADER_DEAD_AT: self._now().isoformat(),
                HEADER_DEAD_REF: uuid.uuid4().hex,
            }
        )
        copy = aio_pika.Message(
            message.body,
            headers=headers,
            content_type=message.content_type,
            message_id=message.message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        channel = await self._publishing()
        exchange = await channel.get_exchange(dead_letter_exchange(topology), ensure=False)
        await confirmed(
            exchange.publish(
                copy, topology.dead_letter_queue, mandatory=True, timeout=self._timeout
            ),
            f"dead letter {message.message_id}",
        )

    async def peek(self, topology: Topology, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first; all stay in the queue."""
        found: list[DeadLetter] = []
        async with self._connection.channel(publisher_confirms=False) as channel:
            queue = await _queue(channel, topology)
            while len(found) < limit:
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                found.append(_dead_letter(topology, message))
        # Closing the channel returned every unacknowledged message to its place.
        return found

    async def take(self, topology: Topology, ref: str) -> DeadLetter | None:
        """Remove and return the dead letter ``ref``."""
        async with self._connection.channel(publisher_confirms=False) as channel:
            queue = await _queue(channel, topology)
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                letter = _dead_letter(topology, message)
                if letter.ref == ref:
                    await message.ack()
                    return letter
        return None

    async def replay(self, topology: Topology, ref: str) -> str | None:
        """Publish dead letter ``ref`` unchanged to the queue of the consumer that refused it.

        Through the default exchange to that consumer's queue alone (the other
        consumers processed it already), confirmed; only then does it leave the
        dead-letter queue, so a failure in between replays it at least once and
        loses nothing. Returns its message id; None when there is no such letter.
        """
        async with self._connection.channel(publisher_confirms=False) as channel:
            queue = await _queue(channel, topology)
            waiting = queue.declaration_result.message_count or 0
            for _ in range(waiting):
                message = await queue.get(no_ack=False, fail=False)
                if message is None:
                    break
                letter = _dead_letter(topology, message)
                if letter.ref != ref:
                    continue
                if letter.consumer not in topology.consumers:
                    raise PublishError(
                        f"dead letter {ref} is not of a consumer of {topology.integration!r}"
                    )
                headers = {
                    name: value
                    for name, value in (message.headers or {}).items()
                    if name not in _DEAD_HEADERS
                }
                again = aio_pika.Message(
                    message.body,
                    headers=headers,
                    content_type=message.content_type,
                    message_id=message.message_id,
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                )
                publishing = await self._publishing()
                await confirmed(
                    publishing.default_exchange.publish(
                        again,
                        topology.queue(letter.consumer),
                        mandatory=True,
                        timeout=self._timeout,
                    ),
                    f"replay of {ref}",
                )
                await message.ack()
                return letter.message_id
        return None

    async def purge(self, topology: Topology) -> int:
        """Remove every dead letter; how many."""
        async with self._connection.channel(publisher_confirms=False) as channel:
            queue = await _queue(channel, topology)
            result = await queue.purge()
            return int(result.message_count or 0)


async def _queue(channel: AbstractChannel, topology: Topology) -> AbstractQueue:
    try:
        return await channel.declare_queue(topology.dead_letter_queue, passive=True)
    except ChannelNotFoundEntity:
        raise BrokerError(
            f"dead-letter queue {topology.dead_letter_queue} does not exist: "
            "run `interlock messaging apply`"
        ) from None


def _dead_letter(topology: Topology, message: AbstractIncomingMessage) -> DeadLetter:
    headers: Mapping[str, Any] = message.headers or {}
    message_id = message.message_id or ""
    if HEADER_REASON in headers:
        reason = header_text(headers[HEADER_REASON])
        consumer = header_text(headers[HEADER_CONSUMER]) if HEADER_CONSUMER in headers else None
        dead_at = _time(headers.get(HEADER_DEAD_AT))
    else:
        reason, consumer, dead_at = _from_x_death(topology, headers.get("x-death"))
    return DeadLetter(
        message_id=message_id,
        body=message.body,
        content_type=message.content_type,
        reason=reason,
        consumer=consumer,
        dead_at=dead_at,
        ref=_ref(headers, message_id, message.body),
    )


def _ref(headers: Mapping[str, Any], message_id: str, body: bytes) -> str:
    """The letter's own ref: the one put() gave it, else a digest of what the broker recorded.

    A message the broker dead-lettered keeps its publisher's headers, so a
    ref header on it is not ours: its ref is derived from the message id,
    the broker's ``x-death`` record (queue, time) and the body.
    """
    given = header_text(headers.get(HEADER_DEAD_REF, ""))
    if "x-death" not in headers and _REF.fullmatch(given):
        return given
    digest = hashlib.sha256()
    for part in (message_id.encode(), repr(headers.get("x-death")).encode(), body):
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:32]


def _from_x_death(topology: Topology, deaths: Any) -> tuple[str, str | None, datetime | None]:
    """Reason, consumer and time of the most recent death RabbitMQ recorded."""
    if not isinstance(deaths, list) or not deaths or not isinstance(deaths[0], Mapping):
        return "unknown", None, None
    latest: Mapping[str, Any] = deaths[0]
    broker_reason = header_text(latest.get("reason", "unknown"))
    reason = BROKER_REASONS.get(broker_reason, f"broker:{broker_reason}")
    queue = header_text(latest.get("queue", ""))
    prefix = f"{topology.destination}."
    consumer = queue.removeprefix(prefix) if queue.startswith(prefix) else None
    return reason, consumer, _time(latest.get("time"))


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str | bytes):
        try:
            parsed = datetime.fromisoformat(header_text(value))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


async def confirmed(publishing: Awaitable[Any], what: str) -> None:
    """Await a confirmed publish; a nack, a return, a timeout or an AMQP error is PublishError."""
    try:
        await publishing
    except DeliveryError as failed:
        returned = getattr(failed, "frame", None)
        reason = getattr(returned, "reply_text", None) or type(failed).__name__
        raise PublishError(f"{what} was not accepted by the broker: {reason}") from None
    except TimeoutError:
        raise PublishError(f"{what} was not confirmed in time") from None
    except AMQPError as failed:
        raise PublishError(f"{what} failed: {type(failed).__name__}") from None
