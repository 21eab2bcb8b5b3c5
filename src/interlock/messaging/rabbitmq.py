"""The RabbitMQ broker adapter (aio-pika): TLS only, publisher confirms, manual acks.

* :meth:`RabbitMqBroker.connect` accepts only ``amqps://`` URLs and the
  caller's :class:`ssl.SSLContext` (certificate verification on; it may carry
  a client certificate). TLS parameters in the URL's query are refused. With
  a password it logs in with SASL PLAIN (inside TLS), without one with SASL
  EXTERNAL (the client certificate names the user).
* :meth:`~RabbitMqBroker.publish` publishes persistent messages to the
  destination's topic exchange with ``mandatory`` set on a confirming
  channel: a message no queue takes (returned), nacked or not confirmed in
  time raises :class:`PublishError`. ``expiration`` is the time left until
  the message expires, so the broker drops (dead-letters) it then.
* :meth:`~RabbitMqBroker.consume` reads the consumer's queue with manual
  acks and a prefetch; the handler's :class:`Decision` settles each message
  (:mod:`interlock.messaging.rabbitmq_dead_letters` for DEAD).

The exchanges and queues are those of :mod:`interlock.messaging.rabbitmq_topology`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from contextlib import suppress
from typing import Final, Self

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractIncomingMessage
from aio_pika.exceptions import AMQPError, ChannelNotFoundEntity
from yarl import URL

from interlock.clock import Clock, utc_now
from interlock.messaging import rabbitmq_topology
from interlock.messaging.model import (
    BrokerError,
    Change,
    Consumption,
    DeadLetter,
    Decision,
    Delivery,
    Handler,
    Outgoing,
    PublishError,
    Settle,
    Topology,
)
from interlock.messaging.rabbitmq_dead_letters import DeadLetterQueue, confirmed, header_text

__all__ = ["RabbitMqBroker"]

_log = logging.getLogger(__name__)

#: How long the broker may take to confirm a message.
CONFIRM_TIMEOUT: Final = 10.0
#: How long to wait before a message whose handler raised goes back to the queue.
FAILURE_DELAY: Final = 1.0


class RabbitMqBroker:
    """Implements :class:`~interlock.messaging.model.BrokerAdapter` on one AMQP connection."""

    kind = "rabbitmq"

    def __init__(
        self,
        connection: AbstractConnection,
        publishing: AbstractChannel,
        *,
        now: Clock = utc_now,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        failure_delay: float = FAILURE_DELAY,
    ) -> None:
        """Use :meth:`connect`."""
        self._connection = connection
        self._publishing = publishing
        self._reopening = asyncio.Lock()
        self._now = now
        self._confirm_timeout = confirm_timeout
        self._failure_delay = failure_delay
        self._dead = DeadLetterQueue(
            connection, self.publishing_channel, now=now, timeout=confirm_timeout
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        tls: ssl.SSLContext,
        password: str | None,
        now: Clock = utc_now,
        confirm_timeout: float = CONFIRM_TIMEOUT,
        failure_delay: float = FAILURE_DELAY,
    ) -> Self:
        """Connect to ``url`` (``amqps://user@host:port/vhost``) over TLS with ``tls``.

        ``password`` is the user's password (never in the URL); ``None``
        authenticates with the client certificate alone (SASL EXTERNAL, the
        broker's ``rabbitmq_auth_mechanism_ssl`` plugin). Raises
        :class:`BrokerError` for a URL that is not ``amqps://``, a context that
        does not verify certificates, or a broker that cannot be reached or
        refuses us (the message never holds the password).
        """
        target = _checked_url(url, tls)
        if password is not None:
            target = target.with_password(password)
        else:
            # SASL EXTERNAL: the broker takes the user from the client certificate
            # (rabbitmq_auth_mechanism_ssl); aiormq reads the mechanism from the query.
            target = target.update_query(auth="external")
        where = f"{target.host}:{target.port}"
        try:
            connection = await aio_pika.connect(target, ssl_context=tls, timeout=30)
        except (AMQPError, OSError, TimeoutError) as failed:
            why = _reason(failed, password)
            raise BrokerError(f"cannot connect to RabbitMQ at {where}: {why}") from None
        try:
            publishing = await connection.channel(publisher_confirms=True, on_return_raises=True)
        except AMQPError as failed:
            await connection.close()
            raise BrokerError(f"RabbitMQ at {where} refused a channel: {failed}") from None
        return cls(
            connection,
            publishing,
            now=now,
            confirm_timeout=confirm_timeout,
            failure_delay=failure_delay,
        )

    async def publish(self, topology: Topology, message: Outgoing) -> None:
        """Publish persistently, ``mandatory``, and wait for the broker's confirmation."""
        if len(message.body) > topology.max_message:
            raise PublishError(
                f"message {message.message_id} is {len(message.body)} bytes, "
                f"over the integration's max_message ({topology.max_message})"
            )
        left = (message.expires_at - self._now()).total_seconds()
        if left <= 0:
            raise PublishError(f"message {message.message_id} expired before it was published")
        amqp = aio_pika.Message(
            message.body,
            headers=dict(message.headers),
            content_type=message.content_type,
            message_id=message.message_id,
            timestamp=self._now(),
            expiration=math.ceil(left * 1000) / 1000,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        exchange = await self._exchange(topology.destination)
        await confirmed(
            exchange.publish(
                amqp, topology.integration, mandatory=True, timeout=self._confirm_timeout
            ),
            f"message {message.message_id} to {topology.destination}",
        )

    async def consume(
        self, topology: Topology, consumer: str, handler: Handler, *, prefetch: int = 32
    ) -> Consumption:
        """Deliver ``consumer``'s queue to ``handler``; see the module docstring."""
        if consumer not in topology.consumers:
            raise BrokerError(f"{consumer!r} is not a consumer of {topology.integration!r}")
        if prefetch < 1:  # AMQP's 0 would mean "no limit"
            raise BrokerError("prefetch must be at least 1")
        channel = await self._connection.channel(publisher_confirms=False)
        await channel.set_qos(prefetch_count=prefetch)
        try:
            queue = await channel.declare_queue(topology.queue(consumer), passive=True)
        except ChannelNotFoundEntity:
            raise BrokerError(
                f"queue {topology.queue(consumer)} does not exist: run `interlock messaging apply`"
            ) from None
        running = _RabbitConsumption(self, topology, consumer, handler, channel)
        running.tag = await queue.consume(running.receive, no_ack=False)
        running.queue = queue
        return running

    async def dead_letters(self, topology: Topology, *, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first, left in the queue."""
        return await self._dead.peek(topology, limit)

    async def take_dead_letter(self, topology: Topology, ref: str) -> DeadLetter | None:
        """Remove the dead letter ``ref`` (:attr:`DeadLetter.ref`); None if it is not there."""
        return await self._dead.take(topology, ref)

    async def replay_dead_letter(self, topology: Topology, ref: str) -> str | None:
        """Send dead letter ``ref`` again, unchanged, to the consumer that refused it alone."""
        return await self._dead.replay(topology, ref)

    async def purge_dead_letters(self, topology: Topology) -> int:
        """Empty the dead-letter queue; how many were removed."""
        return await self._dead.purge(topology)

    async def plan(self, topology: Topology) -> list[Change]:
        """What :meth:`apply` would declare, and drift (:mod:`.rabbitmq_topology`)."""
        return await rabbitmq_topology.plan(self._connection, topology)

    async def apply(self, topology: Topology) -> list[Change]:
        """Declare what is missing; drifted queues and exchanges are reported, left alone."""
        return await rabbitmq_topology.apply(self._connection, topology)

    async def close(self) -> None:
        """Close the connection (unacknowledged deliveries go back to their queues)."""
        await self._connection.close()

    async def _exchange(self, name: str) -> aio_pika.abc.AbstractExchange:
        channel = await self.publishing_channel()
        return await channel.get_exchange(name, ensure=False)

    async def publishing_channel(self) -> AbstractChannel:
        """The confirming channel; reopened if the broker closed it (a missing exchange)."""
        async with self._reopening:
            if self._publishing.is_closed:
                self._publishing = await self._connection.channel(
                    publisher_confirms=True, on_return_raises=True
                )
            return self._publishing

    async def dead_letter(
        self, topology: Topology, consumer: str, message: Delivery, why: str
    ) -> None:
        """Copy ``message`` unchanged to the dead-letter queue, confirmed (for consumers)."""
        await self._dead.put(topology, consumer, message, why)

    @property
    def failure_delay(self) -> float:
        """Seconds before a message whose handler raised is requeued."""
        return self._failure_delay


class _RabbitConsumption:
    """A running consumer on its own channel; settles each delivery by the handler's decision."""

    def __init__(
        self,
        broker: RabbitMqBroker,
        topology: Topology,
        consumer: str,
        handler: Handler,
        channel: AbstractChannel,
    ) -> None:
        self._broker = broker
        self._topology = topology
        self._consumer = consumer
        self._handler = handler
        self._channel = channel
        self._running: set[asyncio.Task[None]] = set()
        self.tag: str | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None

    async def receive(self, message: AbstractIncomingMessage) -> None:
        """Hand one delivery to the handler and settle it (aio-pika runs each in a task)."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            await self._settle(message)
        finally:
            if task is not None:
                self._running.discard(task)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        delivery = Delivery(
            body=message.body,
            content_type=message.content_type,
            message_id=message.message_id,
            headers={key: header_text(value) for key, value in (message.headers or {}).items()},
            redelivered=bool(message.redelivered),
            delivery_count=2 if message.redelivered else 1,
        )
        try:
            decision: Decision = await self._handler(delivery)
        except Exception as failed:  # noqa: BLE001  (any failure: redeliver, never lose)
            # At least once: the message goes back to the queue (redelivered), after a pause
            # so a handler that keeps failing does not spin. Only the type is logged: the
            # exception's text may quote the message.
            _log.warning(
                "handler of %s failed on message %s (%s); it will be redelivered",
                self._consumer,
                message.message_id,
                type(failed).__name__,
            )
            await self._requeue(message)
            return
        if decision.settle is Settle.ACK:
            await self._ack(message)
        elif decision.settle is Settle.RETRY:
            await asyncio.sleep(decision.retry_after.total_seconds())
            await self._requeue(message, pause=False)
        else:
            try:
                await self._broker.dead_letter(
                    self._topology, self._consumer, delivery, decision.reason or "refused"
                )
            except PublishError as failed:
                _log.warning("dead-lettering message %s failed: %s", message.message_id, failed)
                await self._requeue(message)
                return
            await self._ack(message)

    async def _ack(self, message: AbstractIncomingMessage) -> None:
        """Acknowledge; if the channel is gone the broker redelivers it (at least once)."""
        try:
            await message.ack()
        except (AMQPError, RuntimeError) as failed:
            _log.warning(
                "could not acknowledge message %s (%s); it will be redelivered",
                message.message_id,
                type(failed).__name__,
            )

    async def _requeue(self, message: AbstractIncomingMessage, *, pause: bool = True) -> None:
        """Back to the queue; if the channel is gone, the broker requeued it already."""
        if pause:
            await asyncio.sleep(self._broker.failure_delay)
        with suppress(AMQPError, RuntimeError):
            await message.nack(requeue=True)

    async def stop(self) -> None:
        """Stop receiving; wait for handlers already running; close the channel."""
        if self.queue is not None and self.tag is not None and not self._channel.is_closed:
            await self.queue.cancel(self.tag)
        await asyncio.sleep(0)  # deliveries already handed over start their tasks
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
        if not self._channel.is_closed:
            await self._channel.close()


def _checked_url(url: str, tls: ssl.SSLContext) -> URL:
    parsed = URL(url)
    if parsed.scheme != "amqps":
        raise BrokerError("RabbitMQ is reached over TLS only: the URL must be amqps://")
    if parsed.query_string:
        raise BrokerError("the RabbitMQ URL takes no query (TLS comes from the configuration)")
    if parsed.password is not None:
        raise BrokerError("the RabbitMQ URL must not hold a password (give it as credentials)")
    if not parsed.host:
        raise BrokerError("the RabbitMQ URL has no host")
    if tls.verify_mode != ssl.CERT_REQUIRED or not tls.check_hostname:
        raise BrokerError("the TLS context must verify the broker's certificate and host name")
    return parsed if parsed.port else parsed.with_port(5671)


def _reason(failed: BaseException, password: str | None) -> str:
    """Why a connection failed, in a line, with the password (should it appear) masked."""
    text = f"{type(failed).__name__}: {failed}"
    cause = failed.__context__
    if cause is not None and str(cause):
        text += f" ({cause})"
    if password:
        text = text.replace(password, "******")
    return text[:300]
