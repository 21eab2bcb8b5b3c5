"""What a messaging integration needs on RabbitMQ, and how to compare it with the broker.

The mapping (one integration, destination ``D``, consumers ``C1``, ``C2``):

* a durable *topic* exchange ``D``; the producer publishes to it with the
  integration's name as routing key;
* per consumer a durable classic queue ``D.C`` (:meth:`Topology.queue`) bound
  to ``D`` with ``#`` (every message), so each consumer name receives every
  message (fan-out) and the replicas of one consumer share its queue. Its
  arguments: ``x-message-ttl`` (the integration's ``ttl``), ``x-max-length``
  (``max_length``, oldest dropped first), and ``x-dead-letter-exchange`` /
  ``x-dead-letter-routing-key`` so that what the broker expires or drops
  lands in the dead-letter queue (why: the ``x-death`` header);
* a durable *direct* exchange ``D.dead-letter`` and the dead-letter queue
  ``D.dead-letter`` (:attr:`Topology.dead_letter_queue`) bound to it, with
  ``x-message-ttl`` = dead-letter retention and ``x-max-length``.

AMQP cannot read a queue's arguments back: a passive declaration only says
whether it exists. :func:`plan` therefore redeclares an existing queue or
exchange with the wanted arguments on a throw-away channel: RabbitMQ accepts
that as a no-op when they are equal and refuses it (406 PRECONDITION_FAILED)
when they differ, which is drift; nothing is ever deleted or redeclared over
it. Bindings are not visible over AMQP either: a binding whose queue and
exchange are in place is reported ``ok`` and :func:`apply` binds again
(binding is idempotent).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final, Literal

import aio_pika
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from interlock.messaging.model import Change, Topology

__all__ = [
    "ALL_MESSAGES",
    "Binding",
    "Exchange",
    "Queue",
    "Wanted",
    "apply",
    "dead_letter_exchange",
    "plan",
    "wanted",
]

#: The binding key of consumer queues on the destination's topic exchange.
ALL_MESSAGES: Final = "#"

State = Literal["missing", "ok", "drift"]


@dataclass(frozen=True)
class Exchange:
    """A durable exchange."""

    name: str
    type: aio_pika.ExchangeType


@dataclass(frozen=True)
class Queue:
    """A durable classic queue and its arguments."""

    name: str
    arguments: dict[str, Any] = field(hash=False)


@dataclass(frozen=True)
class Binding:
    """``queue`` bound to ``exchange`` with ``routing_key``."""

    queue: str
    exchange: str
    routing_key: str


@dataclass(frozen=True)
class Wanted:
    """Everything an integration needs, in the order it is declared."""

    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]


def dead_letter_exchange(topology: Topology) -> str:
    """The direct exchange the dead-letter queue is bound to (same name as the queue)."""
    return topology.dead_letter_queue


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def wanted(topology: Topology) -> Wanted:
    """The exchanges, queues and bindings of ``topology``."""
    dead = topology.dead_letter_queue
    consumer_arguments: dict[str, Any] = {
        "x-message-ttl": _ms(topology.ttl.total_seconds()),
        "x-max-length": topology.max_length,
        "x-overflow": "drop-head",
        "x-dead-letter-exchange": dead_letter_exchange(topology),
        "x-dead-letter-routing-key": dead,
    }
    dead_arguments: dict[str, Any] = {
        "x-message-ttl": _ms(topology.dead_letter_retention.total_seconds()),
        "x-max-length": topology.dead_letter_max_length,
        "x-overflow": "drop-head",
    }
    queues = tuple(Queue(topology.queue(c), dict(consumer_arguments)) for c in topology.consumers)
    return Wanted(
        exchanges=(
            Exchange(topology.destination, aio_pika.ExchangeType.TOPIC),
            Exchange(dead_letter_exchange(topology), aio_pika.ExchangeType.DIRECT),
        ),
        queues=(*queues, Queue(dead, dead_arguments)),
        bindings=(
            *(Binding(q.name, topology.destination, ALL_MESSAGES) for q in queues),
            Binding(dead, dead_letter_exchange(topology), dead),
        ),
    )


async def plan(connection: AbstractConnection, topology: Topology) -> list[Change]:
    """What :func:`apply` would do, and what drifted, without changing anything."""
    return await _walk(connection, topology, change=False)


async def apply(connection: AbstractConnection, topology: Topology) -> list[Change]:
    """Declare what is missing; report what exists (``ok``) and what drifted (left alone)."""
    return await _walk(connection, topology, change=True)


async def _walk(
    connection: AbstractConnection, topology: Topology, *, change: bool
) -> list[Change]:
    want = wanted(topology)
    changes: list[Change] = []
    states: dict[str, State] = {}
    for exchange in want.exchanges:
        state = await _exchange_state(connection, exchange)
        states[f"exchange:{exchange.name}"] = state
        if state == "missing" and change:
            await _declare_exchange(connection, exchange)
        changes.append(_change(state, "exchange", exchange.name, f"type {exchange.type.value}"))
    for queue in want.queues:
        state = await _queue_state(connection, queue)
        states[f"queue:{queue.name}"] = state
        if state == "missing" and change:
            await _declare_queue(connection, queue)
        changes.append(_change(state, "queue", queue.name, _describe(queue.arguments)))
    for binding in want.bindings:
        ends = (states[f"queue:{binding.queue}"], states[f"exchange:{binding.exchange}"])
        name = f"{binding.exchange} -> {binding.queue} ({binding.routing_key})"
        if "drift" in ends:
            changes.append(Change("drift", "binding", name, "left alone: an end has drifted"))
            continue
        if change:
            await _bind(connection, binding)
        changes.append(_change("missing" if "missing" in ends else "ok", "binding", name, ""))
    return changes


def _change(state: State, kind: str, name: str, detail: str) -> Change:
    if state == "missing":
        return Change("create", kind, name, detail)
    if state == "drift":
        return Change(
            "drift", kind, name, f"exists with other settings (wanted {detail}); left alone"
        )
    return Change("ok", kind, name, detail)


def _describe(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in sorted(arguments.items()))


async def _exchange_state(connection: AbstractConnection, exchange: Exchange) -> State:
    async with connection.channel(publisher_confirms=False) as channel:
        try:
            await channel.declare_exchange(exchange.name, passive=True)
        except ChannelNotFoundEntity:
            return "missing"
    try:
        await _declare_exchange(connection, exchange)  # equal settings: a no-op
    except ChannelPreconditionFailed:
        return "drift"
    return "ok"


async def _queue_state(connection: AbstractConnection, queue: Queue) -> State:
    async with connection.channel(publisher_confirms=False) as channel:
        try:
            await channel.declare_queue(queue.name, passive=True)
        except ChannelNotFoundEntity:
            return "missing"
    try:
        await _declare_queue(connection, queue)  # equal arguments: a no-op
    except ChannelPreconditionFailed:
        return "drift"
    return "ok"


async def _declare_exchange(connection: AbstractConnection, exchange: Exchange) -> None:
    async with connection.channel(publisher_confirms=False) as channel:
        await channel.declare_exchange(exchange.name, exchange.type, durable=True)


async def _declare_queue(connection: AbstractConnection, queue: Queue) -> None:
    async with connection.channel(publisher_confirms=False) as channel:
        await channel.declare_queue(queue.name, durable=True, arguments=queue.arguments)


async def _bind(connection: AbstractConnection, binding: Binding) -> None:
    async with connection.channel(publisher_confirms=False) as channel:
        queue = await channel.declare_queue(binding.queue, passive=True)
        await queue.bind(binding.exchange, binding.routing_key)
