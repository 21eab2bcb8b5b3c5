"""The producer: check a payload, seal it, publish it with the broker's confirmation, audit it.

::

    producer = Producer(manifest, "order-events", keys=keys, broker=broker, audit=audit)
    message_id = await producer.publish({"id": "o-1", "customer": {"email": "a@example.com"}})

A payload is checked against the integration's schema before anything is
sealed: an invalid one raises :class:`PayloadRefused` and nothing is sent (the
consumer would only dead-letter it). It is then signed with the producer's
current key and encrypted to every consumer's current key (or, with
``encrypt: fields``, only its personal-data fields are), and published; the
broker's confirmation is awaited (:class:`~interlock.messaging.model.PublishError`
if it does not come).

A retry after a :class:`PublishError` must send the same sealed bytes
(:meth:`Producer.seal` then :meth:`Producer.send`, as often as needed): the
consumers recognise the second copy as a duplicate of the first by its id and
what was signed, while a fresh seal under the same id (signed at another
time) would be a different message ("id reused") to them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from interlock.audit.sink import AuditSink, record_decision
from interlock.clock import Clock, utc_now
from interlock.errors import InterlockError, InvalidRequestError
from interlock.messaging.envelope import message_id as new_message_id
from interlock.messaging.envelope import payload_bytes, seal
from interlock.messaging.flow import messaging_flow
from interlock.messaging.model import BrokerAdapter, MessageFacts, Outgoing, PublishError
from interlock.messaging.window_keys import KeyWindows
from interlock.validation.errors import Violation

if TYPE_CHECKING:
    from interlock.config.manifest import Manifest
    from interlock.messaging.keys import MessagingKeys

__all__ = ["PUBLISH_ACTION", "PayloadRefused", "Producer"]

PUBLISH_ACTION: Final = "messaging.publish"
# Broker message ids are short strings (AMQP shortstr, NATS header values): a safe alphabet.
_MESSAGE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class PayloadRefused(InterlockError):  # noqa: N818  (a verdict on a payload, not a fault)
    """A payload the producer will not send: it fails the schema, or it is too large.

    ``violations`` locates each schema problem (never quoting the payload's values).
    """

    code = "payload_refused"

    def __init__(self, message: str, violations: tuple[Violation, ...] = ()) -> None:
        super().__init__(message)
        self.violations = violations


class Producer:
    """Publishes the messages of one messaging integration, as its client (the producer)."""

    def __init__(
        self,
        manifest: Manifest,
        integration: str,
        *,
        keys: MessagingKeys,
        broker: BrokerAdapter,
        audit: AuditSink,
        now: Clock = utc_now,
    ) -> None:
        """Produce for ``integration`` of ``manifest`` through ``broker``.

        ``keys`` holds the producer's signing key and the consumers' public
        keys; every publish is recorded in ``audit``.
        """
        self._flow = messaging_flow(manifest, integration)
        self._keys = keys
        self._broker = broker
        self._audit = audit
        self._now = now
        self._actor = f"client:{self._flow.producer}"
        window = self._flow.spec.key_window
        self._windows = None if window is None else KeyWindows(age=window)

    def seal(self, payload: Mapping[str, Any], *, message_id: str | None = None) -> Outgoing:
        """Check ``payload`` and seal it (blocking: it reads the keys from the store).

        Raises :class:`PayloadRefused` for a payload that fails the schema or is
        over ``max_message`` once sealed, and :class:`InvalidRequestError` for
        a ``message_id`` outside ``[A-Za-z0-9._:-]`` (1 to 128 characters).
        """
        flow, spec = self._flow, self._flow.spec
        if message_id is not None and not _MESSAGE_ID.fullmatch(message_id):
            raise InvalidRequestError(
                "a message id is 1 to 128 letters, digits, '.', '_', ':' or '-'"
            )
        plain = _plain(payload)
        try:
            encoded = payload_bytes(plain)
        except (TypeError, ValueError, RecursionError):
            raise PayloadRefused("the payload is not JSON (a value JSON cannot carry)") from None
        if flow.schema is not None:
            found = flow.schema.violations(plain)
            if found:
                raise PayloadRefused(
                    f"the payload does not match the schema of {flow.name} "
                    f"({len(found)} problem{'s' if len(found) > 1 else ''})",
                    found,
                )
        issued = self._now()
        facts = MessageFacts(
            message_id=message_id or new_message_id(),
            integration=flow.name,
            producer=flow.producer,
            issued_at=issued,
            expires_at=issued + spec.ttl,
        )
        outgoing = seal(
            plain,
            facts,
            signer=self._keys.signer(flow.name, flow.producer),
            recipients=self._keys.recipients(flow.name, spec.consumers),
            encrypt_fields=spec.encrypted_fields,
            windows=self._windows,
            encoded=encoded,
        )
        if len(outgoing.body) > spec.max_message:
            raise PayloadRefused(
                f"the sealed message is {len(outgoing.body)} bytes, over {flow.name}'s "
                f"max_message of {spec.max_message}"
            )
        return outgoing

    async def send(self, message: Outgoing) -> None:
        """Publish a sealed message and wait for the broker's confirmation; audit either way."""
        flow = self._flow
        details = {"message_id": message.message_id}
        try:
            await self._broker.publish(flow.topology, message)
        except PublishError as exc:
            await record_decision(
                self._audit,
                flow.decision(
                    actor=self._actor,
                    action=PUBLISH_ACTION,
                    result="failure",
                    size=len(message.body),
                    reason=f"not confirmed by the broker ({exc.code})",
                    details=details,
                ),
            )
            raise
        await record_decision(
            self._audit,
            flow.decision(
                actor=self._actor,
                action=PUBLISH_ACTION,
                result="success",
                size=len(message.body),
                details=details,
            ),
        )

    async def publish(self, payload: Mapping[str, Any], *, message_id: str | None = None) -> str:
        """Check, seal, publish and audit ``payload``; its message id.

        A refused payload (:class:`PayloadRefused`) is audited as a failed
        publish and never reaches the broker.
        """
        try:
            if self._keys.in_memory():  # CPU only: a thread hop would cost more than it frees
                message = self.seal(payload, message_id=message_id)
            else:
                message = await asyncio.to_thread(self.seal, payload, message_id=message_id)
        except PayloadRefused as refused:
            await record_decision(
                self._audit,
                self._flow.decision(
                    actor=self._actor,
                    action=PUBLISH_ACTION,
                    result="failure",
                    size=0,
                    reason=f"refused before sending: {refused.code}",
                    details={"violations": len(refused.violations)},
                ),
            )
            raise
        await self.send(message)
        return message.message_id


def _plain(payload: Mapping[str, Any]) -> Any:
    """The payload as plain JSON values (a Mapping that is not a dict becomes one)."""
    return payload if isinstance(payload, dict) else dict(payload)
