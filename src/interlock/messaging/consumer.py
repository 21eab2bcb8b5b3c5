"""The consumer: the gate every delivery passes before a handler sees it.

::

    consumer = Consumer(manifest, "order-events", "crm-consumer", keys=keys,
                        broker=broker, dedup=store, audit=audit)
    running = await consumer.start(handle)      # async def handle(message: Message) -> None

:meth:`Consumer.decide` is the gate, in this order (the only place it is written):

1. **open** — verify the producer's signature against the keys it published,
   decrypt with this consumer's keys, check the facts (integration, producer,
   expiry): :func:`~interlock.messaging.envelope.open_envelope`; a refusal
   dead-letters the message with its reason;
2. **de-duplicate** — claim the message id in the shared idempotency store
   (:mod:`interlock.replay.idempotency`, scope ``messaging:INTEGRATION:CONSUMER``,
   fingerprint the SHA-256 of what the producer signed — not of the sealed
   body, whose JWE wrapper anyone may re-serialise —, kept until the message
   expires plus the leeway), so that of every copy — a producer's retry, a
   redelivery, a re-serialised copy, a copy another replica received — one is
   processed. Already processed: dead-lettered as ``duplicate``; the same id
   on another signed message: ``id_reused``; another replica holds it now: settled ``RETRY``, and
   once that replica's lease runs out (it died) the next delivery takes over
   (:mod:`interlock.messaging.claims`, shared with the event consumer);
3. **validate** against the integration's schema (``schema``);
4. **minimise** to the integration's ``fields`` (the handler never sees the rest);
5. **handle** — the handler returns (processed: the record is completed, the
   message acknowledged) or raises :class:`MessageRejected` (dead-lettered as
   ``handler``) or anything else (the record is released and the exception
   propagates, so the broker redelivers it).

Each message that reaches a verdict gets one audit entry —
``messaging.consume`` when handled, ``messaging.refuse`` with the reason when
refused, duplicates included — naming the integration, its ends and data
categories and the message's size, never its payload. ``RETRY`` is not a
verdict and is not audited. A handler failure is recorded too
(``messaging.consume``, failure): the payload did reach the handler.

A record that was abandoned (a refusal after the claim) can be claimed again,
so a dead letter replayed from the dead-letter queue is processed afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from interlock.audit.sink import AuditSink, record_decision
from interlock.clock import Clock, utc_now
from interlock.errors import InterlockError, did_you_mean
from interlock.logs import get_logger
from interlock.messaging.claims import Claimed, DeliveryClaims, safe_id
from interlock.messaging.envelope import open_envelope
from interlock.messaging.flow import messaging_flow
from interlock.messaging.model import (
    BrokerAdapter,
    Consumption,
    Decision,
    Delivery,
    EnvelopeRefused,
    MessageFacts,
    Opened,
    RefusalReason,
    Settle,
)
from interlock.messaging.window_keys import WindowKeyCache
from interlock.replay.idempotency import IdempotencyStore
from interlock.validation.minimise import FieldFilter, NotFilterable

if TYPE_CHECKING:
    from interlock.config.manifest import Manifest
    from interlock.messaging.keys import MessagingKeys

__all__ = [
    "CONSUME_ACTION",
    "REFUSE_ACTION",
    "Consumer",
    "Message",
    "MessageHandler",
    "MessageRejected",
    "open_delivery",
]

CONSUME_ACTION: Final = "messaging.consume"
REFUSE_ACTION: Final = "messaging.refuse"
_log = get_logger("interlock.messaging.consumer")


@dataclass(frozen=True)
class Message:
    """A message that passed the gate: its verified facts and its minimised payload."""

    facts: MessageFacts
    payload: Any


MessageHandler = Callable[[Message], Awaitable[None]]


class MessageRejected(InterlockError):  # noqa: N818  (a handler's verdict, not a fault)
    """Raised by a handler to refuse a message for good: it is dead-lettered as ``handler``.

    The message (never secret, never the payload) goes to the log and the audit entry.
    """

    code = "message_rejected"


class Consumer:
    """Receives one consumer's messages of one messaging integration, through the gate."""

    def __init__(
        self,
        manifest: Manifest,
        integration: str,
        consumer: str,
        *,
        keys: MessagingKeys,
        broker: BrokerAdapter,
        dedup: IdempotencyStore,
        audit: AuditSink,
        now: Clock = utc_now,
        lease: timedelta = timedelta(seconds=30),
        leeway: timedelta = timedelta(seconds=30),
    ) -> None:
        """Consume ``integration``'s messages as ``consumer`` (one of its consumers).

        ``dedup`` must be shared by every replica of this consumer (SQL or
        Redis; :class:`~interlock.replay.idempotency.MemoryIdempotency` for one
        process). ``lease`` is how long a replica may hold a message before
        another may take it over (longer than the handler takes); ``leeway``
        the clock skew tolerated on the message's times.
        """
        self._flow = flow = messaging_flow(manifest, integration)
        if consumer not in flow.spec.consumers:
            hint = did_you_mean(consumer, flow.spec.consumers)
            raise InterlockError(f"{consumer!r} is not a consumer of {integration!r}{hint}")
        fields = flow.spec.fields
        self._consumer = consumer
        self._keys = keys
        self._broker = broker
        self._claims = DeliveryClaims(dedup, f"messaging:{integration}:{consumer}", lease=lease)
        self._audit = audit
        self._now = now
        self._leeway = leeway
        self._filter = None if fields is None else FieldFilter(fields)
        self._actor = f"client:{consumer}"
        self._windows = WindowKeyCache()

    async def start(self, handler: MessageHandler, *, prefetch: int = 32) -> Consumption:
        """Receive messages, each through :meth:`decide` to ``handler``, until stopped."""

        async def gate(delivery: Delivery) -> Decision:
            return await self.decide(delivery, handler)

        return await self._broker.consume(
            self._flow.topology, self._consumer, gate, prefetch=prefetch
        )

    async def decide(self, delivery: Delivery, handler: MessageHandler) -> Decision:
        """The verdict on one delivery (see the module docstring for the steps).

        Raises what ``handler`` raised (other than :class:`MessageRejected`), so
        that the broker redelivers the message.
        """
        try:
            opened = await self._open(delivery)
        except EnvelopeRefused as refused:
            return await self._refuse(delivery, refused.reason, detail=refused.detail)
        facts = opened.facts
        ttl = facts.expires_at + self._leeway - self._now()
        claim = await self._claims.claim(facts.message_id, opened.signing_input, ttl)
        if claim == "retry":
            return Decision(Settle.RETRY, retry_after=self._claims.retry_after)
        if not isinstance(claim, Claimed):
            return await self._refuse(delivery, claim, facts=facts)
        return await self._handle(delivery, opened, handler, claim)

    async def _handle(
        self, delivery: Delivery, opened: Opened, handler: MessageHandler, claim: Claimed
    ) -> Decision:
        facts = opened.facts
        key = facts.message_id
        try:
            message = Message(facts=facts, payload=self._accept(opened.payload))
        except EnvelopeRefused as refused:
            await self._claims.abandon(key, claim)
            return await self._refuse(delivery, refused.reason, facts=facts, detail=refused.detail)
        try:
            await handler(message)
        except MessageRejected as rejected:
            await self._claims.abandon(key, claim)
            return await self._refuse(delivery, "handler", facts=facts, detail=rejected.message)
        except BaseException as exc:
            # Cancelled (the replica stops) or failed: release the claim so that the
            # redelivery is processed now rather than after the lease.
            await self._claims.abandon(key, claim)
            if isinstance(exc, Exception):
                await self._record(
                    CONSUME_ACTION,
                    delivery,
                    facts,
                    result="failure",
                    reason=f"the handler failed ({type(exc).__name__}); redelivered",
                )
            raise
        await self._claims.complete(key, claim)
        await self._record(CONSUME_ACTION, delivery, facts, result="success")
        return Decision(Settle.ACK)

    async def _open(self, delivery: Delivery) -> Opened:
        flow = self._flow
        return await open_delivery(
            delivery,
            self._keys,
            integration=flow.name,
            producer=flow.producer,
            consumer=self._consumer,
            encrypt=flow.spec.encrypt,
            encrypted_fields=flow.spec.encrypted_fields,
            now=self._now(),
            leeway=self._leeway,
            max_bytes=flow.spec.max_message,
            windows=self._windows,
        )

    def _accept(self, payload: Any) -> Any:
        """The payload checked against the schema and cut to ``fields``; else refused."""
        schema = self._flow.schema
        if schema is not None:
            found = schema.violations(payload)
            if found:
                raise EnvelopeRefused("schema", f"{len(found)} schema violation(s)")
        if self._filter is None:
            return payload
        try:
            kept, _removed = self._filter.apply(payload)
        except NotFilterable as exc:
            raise EnvelopeRefused("schema", exc.message) from None
        return kept

    async def _refuse(
        self,
        delivery: Delivery,
        reason: RefusalReason,
        *,
        facts: MessageFacts | None = None,
        detail: str = "",
    ) -> Decision:
        _log.info(
            "message_refused",
            integration=self._flow.name,
            consumer=self._consumer,
            reason=reason,
            detail=detail,
            message_id=_safe_id(delivery, facts),
        )
        await self._record(REFUSE_ACTION, delivery, facts, result="failure", reason=reason)
        return Decision(Settle.DEAD, reason=reason)

    async def _record(
        self,
        action: str,
        delivery: Delivery,
        facts: MessageFacts | None,
        *,
        result: Literal["success", "failure"],
        reason: str | None = None,
    ) -> None:
        details: dict[str, str | int | bool] = {"delivery_count": delivery.delivery_count}
        message_id = _safe_id(delivery, facts)
        if message_id is not None:
            details["message_id"] = message_id
        await record_decision(
            self._audit,
            self._flow.decision(
                actor=self._actor,
                action=action,
                result=result,
                size=len(delivery.body),
                reason=reason,
                details=details,
            ),
        )


async def open_delivery(
    delivery: Delivery,
    keys: MessagingKeys,
    *,
    integration: str,
    producer: str,
    consumer: str,
    encrypt: Literal["payload", "fields"],
    encrypted_fields: Sequence[str] = (),
    now: datetime,
    leeway: timedelta,
    max_bytes: int,
    event: bool = False,
    windows: WindowKeyCache | None = None,
) -> Opened:
    """:func:`~interlock.messaging.envelope.open_envelope` with ``consumer``'s keys now.

    The keys are read in a thread unless they are cached (no store read:
    not worth a thread hop). Shared by :class:`Consumer` and the event consumer
    (:mod:`interlock.events.consumer`, ``event=True``).
    """

    def keys_now() -> tuple[dict[str, Any], dict[str, Any]]:
        return (
            keys.verification_keys(integration, producer),
            keys.decryption_keys(integration, consumer),
        )

    verification, decryption = keys_now() if keys.in_memory() else await asyncio.to_thread(keys_now)
    return open_envelope(
        delivery.body,
        delivery.content_type,
        integration=integration,
        producer=producer,
        encrypt=encrypt,
        encrypted_fields=encrypted_fields,
        verification_keys=verification,
        decryption_keys=decryption,
        now=now,
        leeway=leeway,
        max_bytes=max_bytes,
        event=event,
        windows=windows,
    )


def _safe_id(delivery: Delivery, facts: MessageFacts | None) -> str | None:
    """The verified message id, else the broker's if it looks like one (it is unverified)."""
    return safe_id(facts.message_id if facts is not None else delivery.message_id)
