"""The event producer: validates each event, then publishes each consumer its own copy.

::

    producer = EventProducer(manifest, "order-stream", registry=registry,
                             broker=broker, audit=audit)
    event_id = await producer.publish("order.created", {"id": "o-1", ...})

:meth:`EventProducer.publish`, in this order:

1. the subject must be one the integration declares;
2. **validate** against the subject's latest registered version (jsonschema-rs,
   through the registry's compiled validator). An invalid event is refused
   with :class:`EventRefused` listing the violations, and nothing reaches the
   broker;
3. for each consumer granted the subject whose **content filter** matches,
   its own copy **cut** to the grant's fields
   (:class:`~interlock.events.grants.Grant`), published to the consumer's own
   topology (:meth:`~interlock.events.streams.EventStream.topology`) — as plain
   JSON, or, when the integration declares ``encrypt: payload``, **sealed** in
   the messaging envelope (:func:`~interlock.messaging.envelope.seal`: signed
   with the producer's key, encrypted to that consumer's key alone, the
   subject, schema id and version in the protected header as
   :class:`~interlock.messaging.model.EventFacts`; a sealed copy over
   ``max_message`` is refused before any is sent) — with the headers
   :data:`~interlock.events.streams.HEADER_SUBJECT`,
   ``HEADER_SCHEMA_ID``, ``HEADER_SCHEMA_VERSION`` and the event id as the
   broker's message id. A failed publication raises
   :class:`~interlock.messaging.model.PublishError`; publishing the same event
   again with the same id (``event_id=``) is harmless on NATS (its duplicate
   window) and caught by each consumer's de-duplication.

One audit entry per event, ``events.publish``: the subject and version, how
many consumers it reached, the data categories of the fields sent (those of
the subject's ``field_categories`` that any copy kept), whether the copies
were sealed, the outcome — never the payload.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

from interlock.audit.sink import AuditSink, record_decision
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.errors import InterlockError, NotFoundError, did_you_mean
from interlock.events.grants import Grant
from interlock.events.streams import (
    CONTENT_TYPE_EVENT,
    HEADER_SCHEMA_ID,
    HEADER_SCHEMA_VERSION,
    HEADER_SUBJECT,
    Registered,
    SchemaSource,
    event_stream,
)
from interlock.messaging.envelope import seal
from interlock.messaging.model import (
    HEADER_INTEGRATION,
    BrokerAdapter,
    EventFacts,
    MessageFacts,
    Outgoing,
    PublishError,
)
from interlock.messaging.window_keys import KeyWindows
from interlock.validation.errors import Violation

if TYPE_CHECKING:
    from interlock.messaging.keys import MessagingKeys

__all__ = ["PUBLISH_ACTION", "EventProducer", "EventRefused"]

PUBLISH_ACTION: Final = "events.publish"


class EventRefused(InterlockError):  # noqa: N818  (a verdict on an event, not a fault)
    """An event that was not published: why, and the schema violations if any."""

    code = "event_refused"

    def __init__(self, message: str, violations: tuple[Violation, ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations


class EventProducer:
    """Publishes the events of one event-streaming integration."""

    def __init__(
        self,
        manifest: Manifest,
        integration: str,
        *,
        registry: SchemaSource,
        broker: BrokerAdapter,
        audit: AuditSink,
        keys: MessagingKeys | None = None,
        now: Clock = utc_now,
    ) -> None:
        """Publish ``integration``'s events on ``broker`` (a BrokerAdapter).

        ``keys``: the integration's keys, required (and only used) when it
        declares ``encrypt: payload``.
        """
        self._stream = stream = event_stream(manifest, integration)
        if stream.spec.encrypt is not None and keys is None:
            raise InterlockError(
                f"{integration!r} declares encrypt: {stream.spec.encrypt}: its producer needs "
                "the messaging keys (keys=)"
            )
        self._keys = keys if stream.spec.encrypt is not None else None
        self._registry = registry
        self._broker = broker
        self._audit = audit
        self._now = now
        window = self._stream.spec.key_window
        self._windows = None if window is None else KeyWindows(age=window)
        self._actor = f"client:{self._stream.producer}"

    async def publish(
        self, subject: str, event: Mapping[str, Any], *, event_id: str | None = None
    ) -> str:
        """Validate ``event`` and publish each granted consumer its copy; the event id.

        Raises :class:`EventRefused` (nothing published) when the subject is not
        declared, has no registered schema, or the event does not validate;
        :class:`~interlock.messaging.model.PublishError` when the broker did not
        confirm a copy (copies confirmed before it stay published: publish again
        with the same ``event_id``).
        """
        stream = self._stream
        event_id = event_id or str(uuid.uuid4())
        if subject not in stream.spec.subjects:
            await self._record(subject, None, 0, set(), "failure", reason="undeclared subject")
            hint = did_you_mean(subject, stream.spec.subjects)
            raise EventRefused(f"{stream.name!r} declares no subject {subject!r}{hint}")
        try:
            registered = await asyncio.to_thread(self._registry.get, subject, "latest")
            validator = await asyncio.to_thread(
                self._registry.validator, subject, registered.version
            )
        except NotFoundError as exc:
            await self._record(subject, None, 0, set(), "failure", reason="no registered schema")
            raise EventRefused(f"subject {subject!r} has no registered schema") from exc
        try:
            payload = json.loads(_encode(event))  # a JSON document, and a copy of its own
        except (TypeError, ValueError, RecursionError):
            await self._record(subject, registered, 0, set(), "failure", reason="not JSON")
            raise EventRefused("the event is not a JSON document") from None
        violations = validator.violations(payload)
        if violations:
            await self._record(subject, registered, 0, set(), "failure", reason="schema")
            raise EventRefused(
                f"the event does not match {subject!r} version {registered.version}", violations
            )
        headers = {
            HEADER_INTEGRATION: stream.name,
            HEADER_SUBJECT: subject,
            HEADER_SCHEMA_ID: str(registered.id),
            HEADER_SCHEMA_VERSION: str(registered.version),
        }
        issued = self._now()
        facts = MessageFacts(
            message_id=event_id,
            integration=stream.name,
            producer=stream.producer,
            issued_at=issued,
            expires_at=issued + stream.spec.ttl,
            event=EventFacts(subject, registered.id, registered.version),
        )
        # Every copy is made before any is sent: a copy that cannot be made sends none.
        cuts = [
            (consumer, grant, grant.cut(payload))
            for consumer, grants in stream.grants.items()
            if (grant := grants.get(subject)) is not None and grant.matches(payload)
        ]
        keys = self._keys
        try:
            if keys is None:
                copies = self._copies(cuts, facts, headers)
            elif keys.in_memory():  # CPU only: a thread hop would cost more than it frees
                copies = self._copies(cuts, facts, headers, keys)
            else:
                copies = await asyncio.to_thread(self._copies, cuts, facts, headers, keys)
        except EventRefused:
            await self._record(subject, registered, 0, set(), "failure", reason="too large")
            raise
        categories: set[str] = set()
        size = reached = 0
        try:
            for consumer, grant, outgoing in copies:
                await self._broker.publish(stream.topology(consumer), outgoing)
                reached += 1
                size += len(outgoing.body)
                categories.update(grant.categories())
        except PublishError as exc:
            await self._record(
                subject, registered, reached, categories, "failure", size=size, reason=exc.message
            )
            raise
        await self._record(
            subject, registered, reached, categories, "success", size=size, event_id=event_id
        )
        return event_id

    def _copies(
        self,
        cuts: list[tuple[str, Grant, Any]],
        facts: MessageFacts,
        headers: Mapping[str, str],
        keys: MessagingKeys | None = None,
    ) -> list[tuple[str, Grant, Outgoing]]:
        """Each consumer's copy: plain JSON, or sealed to that consumer's key alone."""
        if keys is None:
            return [
                (
                    consumer,
                    grant,
                    Outgoing(
                        body=_encode(cut),
                        content_type=CONTENT_TYPE_EVENT,
                        message_id=facts.message_id,
                        expires_at=facts.expires_at,
                        headers=headers,
                    ),
                )
                for consumer, grant, cut in cuts
            ]
        stream = self._stream
        signer = keys.signer(stream.name, stream.producer)
        copies = []
        for consumer, grant, cut in cuts:
            # One recipient: a copy cut for this consumer opens with its key and no other.
            sealed = seal(
                cut,
                facts,
                signer=signer,
                recipients=keys.recipients(stream.name, [consumer]),
                windows=self._windows,
            )
            if len(sealed.body) > stream.spec.max_message:
                raise EventRefused(
                    f"the sealed copy for {consumer} is {len(sealed.body)} bytes, over "
                    f"{stream.name}'s max_message of {stream.spec.max_message}"
                )
            outgoing = Outgoing(
                body=sealed.body,
                content_type=sealed.content_type,
                message_id=facts.message_id,
                expires_at=facts.expires_at,
                headers={**headers, **sealed.headers},
            )
            copies.append((consumer, grant, outgoing))
        return copies

    async def _record(
        self,
        subject: str,
        registered: Registered | None,
        reached: int,
        categories: set[str],
        result: Literal["success", "failure"],
        *,
        size: int = 0,
        event_id: str | None = None,
        reason: str | None = None,
    ) -> None:
        details: dict[str, str | int | bool] = {
            "subject": subject,
            "consumers": reached,
            "sealed": self._keys is not None,
        }
        if registered is not None:
            details["version"] = registered.version
            details["schema_id"] = registered.id
        if event_id is not None:
            details["event_id"] = event_id
        await record_decision(
            self._audit,
            self._stream.decision(
                actor=self._actor,
                action=PUBLISH_ACTION,
                result=result,
                categories=tuple(sorted(categories)),
                size=size,
                reason=reason,
                details=details,
            ),
        )


def _encode(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
