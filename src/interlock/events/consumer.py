"""The event consumer: the gate each copy passes before the consumer's handler sees it.

::

    consumer = EventConsumer(manifest, "order-stream", "crm-events", registry=registry,
                             broker=broker, dedup=store, audit=audit,
                             reader_versions={"order.created": 2})
    running = await consumer.start(handle)        # async def handle(event: Event) -> None

:meth:`EventConsumer.decide`, in this order (refusals are dead-lettered with
the reason, each audited ``events.refuse``). When the integration declares
``encrypt: payload``, steps 2-5 are the messaging consumer's: the copy is
**opened** (:func:`~interlock.messaging.consumer.open_delivery`: the
producer's signature, this consumer's key, integration, producer, expiry —
``malformed``, ``undecryptable``, ``bad_signature``, ``wrong_signer``,
``expired``, …), the subject and writer's version are the **protected** ones
(the broker's headers must repeat them: else ``bad_signature``), and the
claim's fingerprint is what the producer signed; then steps 6-9 as below.

1. **size** over the integration's ``max_message``: ``too_large``;
2. **granted** — the ``interlock-subject`` header names a subject granted to
   this consumer, and the ``interlock-integration`` header this integration:
   else ``not_granted`` / ``wrong_integration``;
3. **writer version** — ``interlock-schema-version`` is a version the registry
   holds for the subject, with the id ``interlock-schema-id`` (both plain
   positive decimals): else ``unknown_version``;
4. **parse** — strict JSON (:func:`~interlock.validation.json_body.parse_json`):
   else ``malformed``; the event id (the broker's message id) must be present;
5. **de-duplicate** by event id (:class:`~interlock.messaging.claims.DeliveryClaims`,
   the approach of :mod:`interlock.messaging.consumer`, shared with it; scope
   ``events:INTEGRATION:CONSUMER``, kept for the integration's ttl plus the
   leeway): ``duplicate``, ``id_reused``, or RETRY while another replica holds it;
6. **validate** against the writer's version *as it applies to the cut copy*:
   the writer's schema with the properties the grant removes no longer
   required (:func:`~interlock.events.grants.cut_schema`) — every other rule
   (types, formats, bounds, closed content models) stays. A copy is thus
   checked as strictly as the writer's schema allows without asking for
   fields this consumer may never see: ``schema``;
7. **cut** to the grant's fields once more (the handler never sees more than
   the grant, even from a producer that sent more);
8. **resolve** — with ``reader_versions[subject]`` other than the writer's,
   the event is read with the reader's version
   (:func:`~interlock.events.resolution.resolve`: members a closed reader does
   not know dropped, defaults filled) and must validate against it, cut like
   the writer's: else ``schema`` (an unknown reader version: ``unknown_version``);
9. **handle** — the handler returns (acknowledged, ``events.consume``), raises
   :class:`~interlock.messaging.consumer.MessageRejected` (``handler``) or
   anything else (the claim is released, the broker redelivers).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from interlock.audit.sink import AuditSink, record_decision
from interlock.clock import Clock, utc_now
from interlock.config.manifest import JsonLimits, Manifest
from interlock.errors import InterlockError, InvalidRequestError, NotFoundError, did_you_mean
from interlock.events.grants import Grant, cut_schema
from interlock.events.resolution import resolve
from interlock.events.streams import (
    HEADER_SCHEMA_ID,
    HEADER_SCHEMA_VERSION,
    HEADER_SUBJECT,
    Registered,
    SchemaSource,
    event_stream,
)
from interlock.logs import get_logger
from interlock.messaging.claims import Claimed, DeliveryClaims, safe_id
from interlock.messaging.consumer import MessageRejected, open_delivery
from interlock.messaging.model import (
    HEADER_INTEGRATION,
    BrokerAdapter,
    Consumption,
    Decision,
    Delivery,
    EnvelopeRefused,
    RefusalReason,
    Settle,
)
from interlock.messaging.window_keys import WindowKeyCache
from interlock.replay.idempotency import IdempotencyStore
from interlock.validation.errors import BodyRefused
from interlock.validation.json_body import parse_json
from interlock.validation.minimise import NotFilterable
from interlock.validation.schema import RequestSchema, compile_schema

if TYPE_CHECKING:
    from interlock.messaging.keys import MessagingKeys

__all__ = ["CONSUME_ACTION", "REFUSE_ACTION", "Event", "EventConsumer", "EventHandler"]

CONSUME_ACTION: Final = "events.consume"
REFUSE_ACTION: Final = "events.refuse"
_log = get_logger("interlock.events.consumer")


@dataclass(frozen=True)
class Event:
    """An event that passed the gate: cut to the grant, read with the reader's version."""

    event_id: str
    subject: str
    writer_version: int
    read_version: int
    schema_id: int
    payload: Any


EventHandler = Callable[[Event], Awaitable[None]]


@dataclass(frozen=True)
class _Admitted:
    """A copy past steps 1-4: what the claim and the reading need."""

    grant: Grant
    writer: Registered
    payload: Any
    event_id: str
    content: bytes  # the claim's fingerprint: the body, or what the producer signed
    ttl: timedelta  # how long the claim is remembered


class _Refused(Exception):  # noqa: N818  (internal verdict)
    def __init__(self, reason: RefusalReason, detail: str = "") -> None:
        super().__init__(reason)
        self.reason: RefusalReason = reason
        self.detail = detail


class EventConsumer:
    """Receives one consumer's copies of one event-streaming integration, through the gate."""

    def __init__(
        self,
        manifest: Manifest,
        integration: str,
        consumer: str,
        *,
        registry: SchemaSource,
        broker: BrokerAdapter,
        dedup: IdempotencyStore,
        audit: AuditSink,
        keys: MessagingKeys | None = None,
        reader_versions: Mapping[str, int] | None = None,
        now: Clock = utc_now,
        lease: timedelta = timedelta(seconds=30),
        leeway: timedelta = timedelta(seconds=30),
    ) -> None:
        """Consume as ``consumer``; ``reader_versions``: the version to read each subject with.

        ``dedup`` must be shared by every replica of this consumer. ``keys``:
        the integration's keys, required (and only used) when it declares
        ``encrypt: payload``.
        """
        self._stream = stream = event_stream(manifest, integration)
        grants = stream.grants.get(consumer)
        if grants is None:
            hint = did_you_mean(consumer, stream.grants)
            raise InterlockError(f"{consumer!r} is not a consumer of {integration!r}{hint}")
        if stream.spec.encrypt is not None and keys is None:
            raise InterlockError(
                f"{integration!r} declares encrypt: {stream.spec.encrypt}: its consumers need "
                "the messaging keys (keys=)"
            )
        self._keys = keys if stream.spec.encrypt is not None else None
        self._leeway = leeway
        self._grants: Mapping[str, Grant] = grants
        self._consumer = consumer
        self._registry = registry
        self._broker = broker
        self._claims = DeliveryClaims(dedup, f"events:{integration}:{consumer}", lease=lease)
        self._audit = audit
        self._reader_versions = dict(reader_versions or {})
        self._now = now
        self._windows = WindowKeyCache()
        self._ttl = stream.spec.ttl + leeway
        self._limits = JsonLimits()
        self._actor = f"client:{consumer}"
        # Versions never change: each (subject, version) is looked up and compiled once.
        self._schemas: dict[tuple[str, int], tuple[Registered, RequestSchema]] = {}

    async def start(self, handler: EventHandler, *, prefetch: int = 32) -> Consumption:
        """Receive copies, each through :meth:`decide` to ``handler``, until stopped."""

        async def gate(delivery: Delivery) -> Decision:
            return await self.decide(delivery, handler)

        return await self._broker.consume(
            self._stream.topology(self._consumer), self._consumer, gate, prefetch=prefetch
        )

    async def decide(self, delivery: Delivery, handler: EventHandler) -> Decision:
        """The verdict on one delivery (see the module docstring for the steps)."""
        try:
            if self._keys is None:
                admitted = await self._admit(delivery)
            else:
                admitted = await self._admit_sealed(delivery, self._keys)
        except _Refused as refused:
            return await self._refuse(delivery, refused.reason, None, refused.detail)
        grant, event_id = admitted.grant, admitted.event_id
        claim = await self._claims.claim(event_id, admitted.content, admitted.ttl)
        if claim == "retry":
            return Decision(Settle.RETRY, retry_after=self._claims.retry_after)
        if not isinstance(claim, Claimed):
            return await self._refuse(delivery, claim, grant)
        try:
            event = await self._read(grant, admitted.writer, admitted.payload, event_id)
        except _Refused as refused:
            await self._claims.abandon(event_id, claim)
            return await self._refuse(delivery, refused.reason, grant, refused.detail)
        return await self._handle(delivery, grant, event, handler, claim)

    async def _admit(self, delivery: Delivery) -> _Admitted:
        """Steps 1-4: the grant, the writer's version, the parsed payload, the event id."""
        headers = delivery.headers
        if len(delivery.body) > self._stream.spec.max_message:
            raise _Refused("too_large")
        if headers.get(HEADER_INTEGRATION) != self._stream.name:
            raise _Refused("wrong_integration")
        grant = self._grants.get(headers.get(HEADER_SUBJECT, ""))
        if grant is None:
            raise _Refused("not_granted")
        version = _positive(headers.get(HEADER_SCHEMA_VERSION, ""))
        schema_id = _positive(headers.get(HEADER_SCHEMA_ID, ""))
        if version is None or schema_id is None:
            # Anyone who can publish to the stream sets these: "0" or "-1" must be a
            # verdict here, not an exception (which the adapters redeliver for ever).
            raise _Refused("unknown_version", "no schema version or id")
        writer, _ = await self._schema(grant, version)
        if writer.id != schema_id:
            raise _Refused("unknown_version", f"version {version} is not schema {schema_id}")
        event_id = delivery.message_id
        if not event_id:
            raise _Refused("malformed", "no event id")
        try:
            payload = parse_json(delivery.body, self._limits)
        except BodyRefused as exc:
            raise _Refused("malformed", exc.code) from None
        return _Admitted(grant, writer, payload, event_id, delivery.body, self._ttl)

    async def _admit_sealed(self, delivery: Delivery, keys: MessagingKeys) -> _Admitted:
        """Steps 1-4 of a sealed copy: opened, then the protected subject and version."""
        stream, headers = self._stream, delivery.headers
        if len(delivery.body) > stream.spec.max_message:
            raise _Refused("too_large")
        if headers.get(HEADER_INTEGRATION) != stream.name:
            raise _Refused("wrong_integration")
        now = self._now()
        try:
            opened = await open_delivery(
                delivery,
                keys,
                integration=stream.name,
                producer=stream.producer,
                consumer=self._consumer,
                encrypt="payload",
                now=now,
                leeway=self._leeway,
                max_bytes=stream.spec.max_message,
                event=True,
                windows=self._windows,
            )
        except EnvelopeRefused as refused:
            raise _Refused(refused.reason, refused.detail) from None
        facts = opened.facts
        event = facts.event
        if event is None:  # open_delivery(event=True) refuses it; for the type checker
            raise _Refused("malformed", "not an event")
        routed = (
            headers.get(HEADER_SUBJECT),
            headers.get(HEADER_SCHEMA_ID),
            headers.get(HEADER_SCHEMA_VERSION),
        )
        if routed != (event.subject, str(event.schema_id), str(event.schema_version)):
            # The broker's headers are unprotected: what they say must be what was signed.
            raise _Refused("bad_signature", "the headers differ from the protected subject/schema")
        grant = self._grants.get(event.subject)
        if grant is None:
            raise _Refused("not_granted")
        writer, _ = await self._schema(grant, event.schema_version)
        if writer.id != event.schema_id:
            raise _Refused(
                "unknown_version", f"version {event.schema_version} is not schema {event.schema_id}"
            )
        ttl = facts.expires_at + self._leeway - now
        return _Admitted(grant, writer, opened.payload, facts.message_id, opened.signing_input, ttl)

    async def _schema(self, grant: Grant, version: int) -> tuple[Registered, RequestSchema]:
        """Version ``version`` of the grant's subject, and its schema cut to the grant."""
        key = (grant.subject, version)
        found = self._schemas.get(key)
        if found is None:
            try:
                registered = await asyncio.to_thread(self._registry.get, grant.subject, version)
            except (NotFoundError, InvalidRequestError):
                raise _Refused("unknown_version", f"{grant.subject} version {version}") from None
            found = (registered, compile_schema(cut_schema(registered.schema, grant.fields)))
            self._schemas[key] = found
        return found

    async def _read(self, grant: Grant, writer: Registered, payload: Any, event_id: str) -> Event:
        """Steps 6-8: validated with the writer's version, cut, resolved to the reader's."""
        _, writer_check = await self._schema(grant, writer.version)
        if writer_check.violations(payload):
            raise _Refused("schema", f"does not match version {writer.version}")
        try:
            payload = grant.cut(payload)
        except NotFilterable as exc:
            raise _Refused("schema", exc.message) from None
        read_version = self._reader_versions.get(grant.subject, writer.version)
        if read_version != writer.version:
            reader, reader_check = await self._schema(grant, read_version)
            # Cut again: a default of the reader's may name a field the grant does not give.
            payload = grant.cut(resolve(payload, reader.schema))
            if reader_check.violations(payload):
                raise _Refused("schema", f"cannot be read with version {read_version}")
        return Event(
            event_id=event_id,
            subject=grant.subject,
            writer_version=writer.version,
            read_version=read_version,
            schema_id=writer.id,
            payload=payload,
        )

    async def _handle(
        self,
        delivery: Delivery,
        grant: Grant,
        event: Event,
        handler: EventHandler,
        claim: Claimed,
    ) -> Decision:
        try:
            await handler(event)
        except MessageRejected as rejected:
            await self._claims.abandon(event.event_id, claim)
            return await self._refuse(delivery, "handler", grant, rejected.message)
        except BaseException as exc:
            await self._claims.abandon(event.event_id, claim)
            if isinstance(exc, Exception):
                await self._record(
                    CONSUME_ACTION,
                    delivery,
                    grant,
                    "failure",
                    f"the handler failed ({type(exc).__name__}); redelivered",
                )
            raise
        await self._claims.complete(event.event_id, claim)
        await self._record(CONSUME_ACTION, delivery, grant, "success")
        return Decision(Settle.ACK)

    async def _refuse(
        self, delivery: Delivery, reason: RefusalReason, grant: Grant | None, detail: str = ""
    ) -> Decision:
        _log.info(
            "event_refused",
            integration=self._stream.name,
            consumer=self._consumer,
            reason=reason,
            detail=detail,
            event_id=safe_id(delivery.message_id),
        )
        await self._record(REFUSE_ACTION, delivery, grant, "failure", reason)
        return Decision(Settle.DEAD, reason=reason)

    async def _record(
        self,
        action: str,
        delivery: Delivery,
        grant: Grant | None,
        result: Literal["success", "failure"],
        reason: str | None = None,
    ) -> None:
        details: dict[str, str | int | bool] = {
            "delivery_count": delivery.delivery_count,
            "sealed": self._keys is not None,
        }
        event_id = safe_id(delivery.message_id)
        if event_id is not None:
            details["event_id"] = event_id
        if grant is not None:
            details["subject"] = grant.subject
        await record_decision(
            self._audit,
            self._stream.decision(
                actor=self._actor,
                action=action,
                result=result,
                categories=() if grant is None else grant.categories(),
                size=len(delivery.body),
                reason=reason,
                details=details,
            ),
        )


_NUMBER: Final = re.compile(r"[1-9][0-9]{0,17}")  # positive; ASCII digits, no sign or padding


def _positive(text: str) -> int | None:
    """``text`` as a positive decimal number (ASCII digits only), else None."""
    return int(text) if _NUMBER.fullmatch(text) else None
