"""An in-process broker for unit tests that keeps the broker protocol's semantics.

Never for production: nothing is persisted and nothing leaves the process. It
keeps the semantics the producer, consumer and dead-letter desk rely on, so
their tests exercise the same paths a real broker would:

* a publish is "confirmed" once the message sits in every consumer's queue
  (each consumer name of the topology has its own); :attr:`MemoryServer.refuse_publishing`
  makes publishes fail as an unconfirmed publish would (:class:`PublishError`),
  and a message over ``max_message`` is refused as NATS refuses it;
* a replayed dead letter goes back, unchanged, to the queue of the consumer
  that refused it alone;
* deliveries are at least once: a message leaves its queue only when the
  handler's :class:`Decision` settles it. ``ACK`` removes it; ``RETRY`` puts it
  back after ``retry_after``; ``DEAD`` copies it, body unchanged, to the
  integration's dead-letter queue with :data:`HEADER_REASON`,
  :data:`HEADER_CONSUMER` and :data:`HEADER_DEAD_AT`, then removes it. A
  handler that raises leaves it for redelivery (``redelivered``, the count
  incremented), as does a connection that closes with the message unsettled
  (:meth:`MemoryBroker.close`, the test's "killed replica");
* a full queue drops its oldest message into the dead-letter queue (reason
  ``max_length``), as RabbitMQ's default overflow does;
* consumers of one name compete for its queue: two :class:`MemoryBroker`
  connections to one :class:`MemoryServer` are two replicas.

Consumers run on one event loop at a time (a later ``asyncio.run`` may use
the same server once the earlier one ended). Not modelled: broker-side expiry (the
consumer's own expiry check is what the tests exercise) and the dead-letter
queue's retention.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from interlock.clock import Clock, utc_now
from interlock.logs import get_logger
from interlock.messaging.model import (
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_REASON,
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

__all__ = ["HEADER_MESSAGE_ID", "MemoryBroker", "MemoryServer"]

#: The original message id, on a dead letter (RabbitMQ keeps it as a property).
HEADER_MESSAGE_ID = "interlock-message-id"

_DEAD_HEADERS = frozenset({HEADER_REASON, HEADER_CONSUMER, HEADER_DEAD_AT, HEADER_MESSAGE_ID})
_log = get_logger("interlock.messaging.memory")


@dataclass
class _Stored:
    """A message in a queue, as the broker keeps it."""

    body: bytes
    content_type: str | None
    message_id: str | None
    headers: dict[str, str]
    deliveries: int = 0


class _Queue:
    """One consumer's queue: messages ready for delivery, and a condition to wait on."""

    def __init__(self) -> None:
        self.ready: deque[_Stored] = deque()
        self._changed: tuple[asyncio.AbstractEventLoop, asyncio.Condition] | None = None

    @property
    def changed(self) -> asyncio.Condition:
        """The condition of the running loop (a new test's loop gets its own)."""
        loop = asyncio.get_running_loop()
        if self._changed is None or self._changed[0] is not loop:
            self._changed = (loop, asyncio.Condition())
        return self._changed[1]

    async def put(self, item: _Stored, *, front: bool = False) -> None:
        async with self.changed:
            if front:
                self.ready.appendleft(item)
            else:
                self.ready.append(item)
            self.changed.notify_all()


@dataclass
class _Dead:
    """A dead letter: the body unchanged and the headers the adapter added."""

    ref: str
    body: bytes
    content_type: str | None
    headers: dict[str, str]


class MemoryServer:
    """The broker's state, shared by every :class:`MemoryBroker` connection to it."""

    def __init__(self, *, now: Clock = utc_now) -> None:
        """An empty broker; ``now`` stamps dead letters."""
        self.now = now
        #: Set to make every publish fail as an unconfirmed one would.
        self.refuse_publishing = False
        #: Every message published (what crossed the wire), in order.
        self.published: list[Outgoing] = []
        self._queues: dict[str, _Queue] = {}
        self._dead: dict[str, list[_Dead]] = {}
        self._declared: set[str] = set()
        self._refs = itertools.count(1)

    def queue(self, topology: Topology, consumer: str) -> _Queue:
        """The consumer's queue, created on first use (as :meth:`MemoryBroker.apply` would)."""
        return self._queues.setdefault(topology.queue(consumer), _Queue())

    def waiting(self, topology: Topology, consumer: str) -> int:
        """How many messages wait in the consumer's queue (not counting unsettled ones)."""
        return len(self.queue(topology, consumer).ready)

    def dead(self, topology: Topology) -> list[_Dead]:
        """The dead-letter queue of ``topology``, oldest first."""
        return self._dead.setdefault(topology.dead_letter_queue, [])

    def bury(self, topology: Topology, item: _Stored, *, reason: str, consumer: str | None) -> None:
        """Copy ``item`` to the dead-letter queue with the reason, consumer and time."""
        headers = dict(item.headers)
        headers[HEADER_REASON] = reason
        headers[HEADER_DEAD_AT] = self.now().isoformat()
        if consumer is not None:
            headers[HEADER_CONSUMER] = consumer
        if item.message_id is not None:
            headers[HEADER_MESSAGE_ID] = item.message_id
        self.dead(topology).append(
            _Dead(str(next(self._refs)), item.body, item.content_type, headers)
        )


class MemoryBroker:
    """A connection to a :class:`MemoryServer` (a fresh server if none is given)."""

    kind = "memory"

    def __init__(self, server: MemoryServer | None = None) -> None:
        """Connect to ``server``."""
        self.server = server or MemoryServer()
        self._consumptions: list[_Consumption] = []
        self._closed = False

    async def publish(self, topology: Topology, message: Outgoing) -> None:
        """Put ``message`` in every consumer's queue (the confirmation)."""
        self._open()
        server = self.server
        if server.refuse_publishing:
            raise PublishError(f"the broker did not confirm message {message.message_id}")
        if len(message.body) > topology.max_message:
            raise PublishError(f"message {message.message_id} is over the maximum size")
        server.published.append(message)
        for consumer in topology.consumers:
            queue = server.queue(topology, consumer)
            if len(queue.ready) >= topology.max_length:
                server.bury(topology, queue.ready.popleft(), reason="max_length", consumer=None)
            await queue.put(
                _Stored(
                    message.body, message.content_type, message.message_id, dict(message.headers)
                )
            )

    async def consume(
        self, topology: Topology, consumer: str, handler: Handler, *, prefetch: int = 32
    ) -> Consumption:
        """Deliver the consumer's messages to ``handler``, up to ``prefetch`` at a time."""
        self._open()
        if prefetch < 1:
            raise ValueError("prefetch is at least 1")
        consumption = _Consumption(self.server, topology, consumer, handler, prefetch)
        self._consumptions.append(consumption)
        consumption.begin()
        return consumption

    async def dead_letters(self, topology: Topology, *, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first."""
        return [_letter(dead) for dead in self.server.dead(topology)[:limit]]

    async def take_dead_letter(self, topology: Topology, ref: str) -> DeadLetter | None:
        """Remove the dead letter ``ref`` and return it."""
        queue = self.server.dead(topology)
        for index, dead in enumerate(queue):
            if dead.ref == ref:
                del queue[index]
                return _letter(dead)
        return None

    async def replay_dead_letter(self, topology: Topology, ref: str) -> str | None:
        """Put dead letter ``ref``, unchanged, back in the queue of the consumer that refused it."""
        self._open()
        for dead in self.server.dead(topology):
            if dead.ref == ref:
                consumer = dead.headers.get(HEADER_CONSUMER)
                if consumer not in topology.consumers:
                    raise PublishError(f"dead letter {ref} is not of a consumer of the integration")
                message_id = dead.headers.get(HEADER_MESSAGE_ID)
                headers = {k: v for k, v in dead.headers.items() if k not in _DEAD_HEADERS}
                queue = self.server.queue(topology, consumer)
                await queue.put(_Stored(dead.body, dead.content_type, message_id, headers))
                self.server.dead(topology).remove(dead)
                return message_id or ""
        return None

    async def purge_dead_letters(self, topology: Topology) -> int:
        """Empty the dead-letter queue."""
        queue = self.server.dead(topology)
        count = len(queue)
        queue.clear()
        return count

    async def plan(self, topology: Topology) -> list[Change]:
        """The queues :meth:`apply` would declare."""
        return [
            Change("ok" if name in self.server._declared else "create", "queue", name)
            for name in _names(topology)
        ]

    async def apply(self, topology: Topology) -> list[Change]:
        """Declare the queues (idempotent)."""
        changes = await self.plan(topology)
        for consumer in topology.consumers:
            self.server.queue(topology, consumer)
        self.server.dead(topology)
        self.server._declared.update(_names(topology))
        return changes

    async def close(self) -> None:
        """Drop the connection: unsettled messages go back to their queues, redelivered."""
        self._closed = True
        for consumption in self._consumptions:
            await consumption.kill()

    def _open(self) -> None:
        if self._closed:
            raise PublishError("the connection is closed")


def _names(topology: Topology) -> list[str]:
    return [*(topology.queue(c) for c in topology.consumers), topology.dead_letter_queue]


def _letter(dead: _Dead) -> DeadLetter:
    headers = dead.headers
    dead_at = headers.get(HEADER_DEAD_AT)
    return DeadLetter(
        message_id=headers.get(HEADER_MESSAGE_ID, ""),
        body=dead.body,
        content_type=dead.content_type,
        reason=headers.get(HEADER_REASON, "unknown"),
        consumer=headers.get(HEADER_CONSUMER),
        dead_at=None if dead_at is None else datetime.fromisoformat(dead_at),
        ref=dead.ref,
    )


@dataclass
class _Attempt:
    """One delivery of a message; ``lost`` once its connection closed before it settled."""

    item: _Stored
    lost: bool = False


class _Consumption:
    """A running consumer of one queue on one connection."""

    def __init__(
        self,
        server: MemoryServer,
        topology: Topology,
        consumer: str,
        handler: Handler,
        prefetch: int,
    ) -> None:
        self._server = server
        self._topology = topology
        self._consumer = consumer
        self._handler = handler
        self._prefetch = prefetch
        self._queue = server.queue(topology, consumer)
        self._running: dict[asyncio.Task[None], _Attempt] = {}
        self._timers: set[asyncio.Task[None]] = set()
        self._stopped = False
        self._receiver: asyncio.Task[None] | None = None

    def begin(self) -> None:
        self._receiver = asyncio.create_task(self._receive())

    async def _receive(self) -> None:
        queue = self._queue
        while True:
            async with queue.changed:
                await queue.changed.wait_for(
                    lambda: (
                        self._stopped or (bool(queue.ready) and len(self._running) < self._prefetch)
                    )
                )
                if self._stopped:
                    return
                item = queue.ready.popleft()
            item.deliveries += 1
            attempt = _Attempt(item)
            task = asyncio.create_task(self._deliver(attempt))
            self._running[task] = attempt
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.pop(task, None)
        if not self._stopped:
            self._timers.add(asyncio.create_task(self._wake()))

    async def _wake(self) -> None:
        async with self._queue.changed:
            self._queue.changed.notify_all()
        self._timers.discard(asyncio.current_task())

    async def _deliver(self, attempt: _Attempt) -> None:
        item = attempt.item
        delivery = Delivery(
            body=item.body,
            content_type=item.content_type,
            message_id=item.message_id,
            headers=dict(item.headers),
            redelivered=item.deliveries > 1,
            delivery_count=item.deliveries,
        )
        try:
            decision = await self._handler(delivery)
        except asyncio.CancelledError:
            if not attempt.lost:
                await self._queue.put(item, front=True)
            raise
        except Exception as exc:  # noqa: BLE001  (the protocol: a handler that raises is redelivered)
            _log.warning("handler_failed", consumer=self._consumer, error=type(exc).__name__)
            if not attempt.lost:
                await self._queue.put(item, front=True)
            return
        if attempt.lost:
            return  # the connection closed first: the broker redelivers it elsewhere
        await self._settle(item, decision)

    async def _settle(self, item: _Stored, decision: Decision) -> None:
        if decision.settle is Settle.RETRY:
            self._timers.add(asyncio.create_task(self._later(item, decision.retry_after)))
        elif decision.settle is Settle.DEAD:
            self._server.bury(
                self._topology, item, reason=decision.reason or "unknown", consumer=self._consumer
            )

    async def _later(self, item: _Stored, delay: timedelta) -> None:
        try:
            await asyncio.sleep(delay.total_seconds())
        finally:
            # Stopped or not, the message must go back to its queue.
            self._timers.discard(asyncio.current_task())
            await asyncio.shield(self._queue.put(item))

    async def stop(self) -> None:
        """Stop receiving; let running handlers settle; waiting retries go back at once."""
        await self._halt()
        if self._running:
            await asyncio.wait(list(self._running))
        await self._cancel_timers()

    async def kill(self) -> None:
        """Stop at once, as a dropped connection: unsettled messages go back, redelivered.

        Running handlers are left to run, as in a process whose link to the broker
        broke: whatever they decide is never settled.
        """
        await self._halt()
        for attempt in self._running.values():
            if not attempt.lost:
                attempt.lost = True
                await self._queue.put(attempt.item, front=True)
        await self._cancel_timers()

    async def _halt(self) -> None:
        self._stopped = True
        async with self._queue.changed:
            self._queue.changed.notify_all()
        if self._receiver is not None:
            await self._receiver

    async def _cancel_timers(self) -> None:
        timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        if timers:
            await asyncio.wait(timers)
