"""What every part of secure messaging shares: message facts, refusals, the broker protocol.

The broker adapters (:mod:`interlock.messaging.rabbitmq`,
:mod:`interlock.messaging.nats`) implement :class:`BrokerAdapter`; the
producer, the consumer and the dead-letter tools use only this protocol, so
they work the same on every broker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, Final, Literal, Protocol

from interlock.config.manifest import Manifest
from interlock.errors import InterlockError, did_you_mean

__all__ = [
    "CONTENT_TYPE_COMPACT",
    "CONTENT_TYPE_JSON",
    "CONTENT_TYPE_KEYED",
    "HEADER_CONSUMER",
    "HEADER_DEAD_AT",
    "HEADER_INTEGRATION",
    "HEADER_REASON",
    "BrokerAdapter",
    "BrokerError",
    "Change",
    "Consumption",
    "DeadLetter",
    "Decision",
    "Delivery",
    "EnvelopeRefused",
    "EventFacts",
    "Handler",
    "MessageFacts",
    "Opened",
    "Outgoing",
    "PublishError",
    "RefusalReason",
    "Settle",
    "Topology",
    "topology_of",
]

#: Media types of a sealed message: JWE compact serialisation (one consumer), JWE
#: general JSON serialisation (several consumers, RFC 7516 §7.2.1); a message whose
#: payload is signed with encrypted fields is a JWS compact serialisation.
CONTENT_TYPE_COMPACT: Final = "application/jose"
CONTENT_TYPE_JSON: Final = "application/jose+json"
#: A message sealed under a window key (:mod:`interlock.messaging.window_keys`): a JSON
#: object with ``key``, the window key as an encrypted JWK (RFC 7517 §7), and
#: ``message``, the JWE (or, with encrypted fields, the JWS) that the key opens.
CONTENT_TYPE_KEYED: Final = "application/vnd.interlock.keyed+json"

#: Broker headers Interlock sets (never secret; the protected facts are inside the
#: envelope, these only route and explain).
HEADER_INTEGRATION: Final = "interlock-integration"
HEADER_REASON: Final = "interlock-refusal"
HEADER_CONSUMER: Final = "interlock-consumer"
HEADER_DEAD_AT: Final = "interlock-dead-at"

RefusalReason = Literal[
    "malformed",  # not a JOSE object we accept (size, serialisation, algorithms, headers)
    "undecryptable",  # no key of this consumer opens it, or the ciphertext was altered
    "bad_signature",  # the signature does not verify
    "wrong_signer",  # signed by a key that is not the integration's producer's
    "wrong_integration",  # sealed for another integration
    "expired",  # past its expiry (the broker may also have expired it)
    "not_yet_valid",  # issued in the future beyond the leeway
    "too_large",  # over the integration's max_message
    "duplicate",  # this message id was processed already
    "id_reused",  # this message id was used for another message
    "schema",  # the payload does not match the integration's schema
    "handler",  # the consumer's handler refused it (raised MessageRejected)
    # Event streams (interlock.events.consumer):
    "unknown_version",  # the event names a schema version the registry does not hold
    "not_granted",  # the event's subject is not granted to this consumer
]


class EnvelopeRefused(InterlockError):  # noqa: N818  (a verdict on a message, not a fault)
    """A message that must not be delivered, and why (``reason``; ``detail`` for the log)."""

    code = "message_refused"

    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(f"message refused: {reason}" + (f" ({detail})" if detail else ""))
        self.reason: RefusalReason = reason
        self.detail = detail


class BrokerError(InterlockError):
    """The broker could not be reached, refused us, or its configuration is wrong."""

    code = "broker_error"


class PublishError(BrokerError):
    """The broker did not confirm a message (nacked, unroutable, timed out): it was not sent."""

    code = "publish_failed"


@dataclass(frozen=True)
class EventFacts:
    """What a sealed event is (:mod:`interlock.events`): its subject and the writer's schema.

    Protected like the other facts, so a relay cannot pass an event off as
    another subject or version than the producer validated it against.
    """

    subject: str
    schema_id: int
    schema_version: int


@dataclass(frozen=True)
class MessageFacts:
    """The protected facts of a message: in the signed and the encrypted headers alike.

    ``event``: set on the copies of an event-streaming integration, None on messages.
    """

    message_id: str
    integration: str
    producer: str
    issued_at: datetime
    expires_at: datetime
    event: EventFacts | None = None


@dataclass(frozen=True)
class Opened:
    """A message that verified and decrypted: its facts and its JSON payload.

    ``signing_input`` is what the producer signed (RFC 7515 §5.2, the JWS's
    header and payload segments): the same for every copy of the message,
    however its wrapper was re-serialised, so de-duplication fingerprints it.
    The signature is left out: ECDSA signatures are malleable, and a JWE's
    wrapper (member order, other recipients) is not authenticated at all.
    """

    facts: MessageFacts
    payload: Any
    signer_kid: str
    signing_input: bytes = field(repr=False)


@dataclass(frozen=True)
class Outgoing:
    """A sealed message ready for the broker."""

    body: bytes
    content_type: str
    message_id: str
    expires_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delivery:
    """One message as the broker handed it to a consumer (body still sealed)."""

    body: bytes
    content_type: str | None
    message_id: str | None
    headers: Mapping[str, str]
    redelivered: bool
    # How often the broker has delivered it (NATS counts; RabbitMQ says only whether
    # it was delivered before: 1 or 2).
    delivery_count: int


class Settle(Enum):
    """What the adapter does with a delivery once the handler decided."""

    ACK = "ack"  # processed: remove it (a copy of a processed message is dead-lettered)
    RETRY = "retry"  # not now (another replica holds it): deliver again after retry_after
    DEAD = "dead"  # refused: copy to the dead-letter queue with the reason, then remove


@dataclass(frozen=True)
class Decision:
    """The handler's verdict on one delivery."""

    settle: Settle
    reason: RefusalReason | None = None
    retry_after: timedelta = timedelta(seconds=1)


Handler = Callable[[Delivery], Awaitable[Decision]]


@dataclass(frozen=True)
class DeadLetter:
    """A refused message in the dead-letter queue: still sealed, with why and when."""

    message_id: str
    body: bytes
    content_type: str | None
    reason: str
    consumer: str | None
    dead_at: datetime | None
    # Broker-specific handle, one per letter (NATS: the stream sequence; RabbitMQ: a
    # random id or a digest, never the message id, which copies share) for take().
    ref: str


@dataclass(frozen=True)
class Change:
    """One difference between the broker and the manifest (plan), or one made (apply)."""

    action: Literal["create", "update", "drift", "ok"]
    kind: str  # exchange, queue, binding, stream, consumer
    name: str
    detail: str = ""


@dataclass(frozen=True)
class Topology:
    """What a messaging integration needs on its broker, from the manifest."""

    integration: str
    broker: str
    destination: str
    consumers: tuple[str, ...]
    ttl: timedelta
    max_length: int
    max_message: int
    dead_letter_retention: timedelta
    dead_letter_max_length: int

    def queue(self, consumer: str) -> str:
        """The consumer's queue (RabbitMQ) or durable consumer name (NATS)."""
        return f"{self.destination}.{consumer}"

    @property
    def dead_letter_queue(self) -> str:
        """The dead-letter queue (RabbitMQ) or stream subject suffix (NATS)."""
        return f"{self.destination}.dead-letter"


def topology_of(manifest: Manifest, integration: str) -> Topology:
    """The topology of ``integration`` (a messaging integration of ``manifest``)."""
    flow = manifest.integrations.get(integration)
    if flow is None or flow.messaging is None:
        names = [n for n, f in manifest.integrations.items() if f.messaging is not None]
        hint = did_you_mean(integration, names)
        raise BrokerError(f"{integration!r} is not a messaging integration of the manifest{hint}")
    spec = flow.messaging
    return Topology(
        integration=integration,
        broker=spec.broker,
        destination=spec.destination,
        consumers=spec.consumers,
        ttl=spec.ttl,
        max_length=spec.max_length,
        max_message=spec.max_message,
        dead_letter_retention=spec.dead_letter.retention,
        dead_letter_max_length=spec.dead_letter.max_length,
    )


class Consumption(Protocol):
    """A running consumer; :meth:`stop` lets in-flight handlers finish, then cancels."""

    async def stop(self) -> None:
        """Stop receiving; wait for handlers already running."""
        ...


class BrokerAdapter(Protocol):
    """One connection to a broker, as the producer, consumer and operators need it."""

    kind: str

    async def publish(self, topology: Topology, message: Outgoing) -> None:
        """Publish to the integration's destination and wait for the broker's confirmation.

        Raises :class:`PublishError` when the broker nacks, cannot route it to a
        queue or stream, or does not confirm in time: the caller may retry with
        the same message (its id makes the retry harmless). A broker that drops
        duplicates (NATS) drops only these very bytes, never another message
        under the same id, so a confirmation means the message is stored.
        """
        ...

    async def consume(
        self, topology: Topology, consumer: str, handler: Handler, *, prefetch: int = 32
    ) -> Consumption:
        """Deliver the consumer's messages to ``handler``, at least once, settling each.

        A message is acknowledged only after ``handler`` returned; on
        :attr:`Settle.DEAD` the adapter first publishes the body unchanged to the
        dead-letter queue (with :data:`HEADER_REASON`, :data:`HEADER_CONSUMER`,
        :data:`HEADER_DEAD_AT`), waits for the confirmation, then acknowledges.
        A handler that raises leaves the message for redelivery.
        """
        ...

    async def dead_letters(self, topology: Topology, *, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first, without removing them."""
        ...

    async def take_dead_letter(self, topology: Topology, ref: str) -> DeadLetter | None:
        """Remove one dead letter (by :attr:`DeadLetter.ref`) and return it; None if absent."""
        ...

    async def replay_dead_letter(self, topology: Topology, ref: str) -> str | None:
        """Send dead letter ``ref`` again, unchanged, to the consumer that refused it alone.

        The other consumers processed the message already; a plain republish
        would reach them too (and NATS would drop it inside its duplicate
        window). The letter leaves the dead-letter queue only once the broker
        confirmed the copy. Returns its message id; None if there is no such letter.
        """
        ...

    async def purge_dead_letters(self, topology: Topology) -> int:
        """Remove every dead letter; how many were removed."""
        ...

    async def plan(self, topology: Topology) -> list[Change]:
        """What :meth:`apply` would change, and drift from the manifest, without changing it."""
        ...

    async def apply(self, topology: Topology) -> list[Change]:
        """Declare what the manifest needs (idempotent); what changed and what drifted."""
        ...

    async def close(self) -> None:
        """Close the connection."""
        ...
