"""The dead-letter desk: list, show, replay and purge one integration's refused messages.

Dead letters stay sealed in their queue; only an operator holding the
integration's ``dead_letter.role`` (a role granting ``messaging.dead_letters``)
may handle them, and every attempt is audited once — a refused or failed one
included (not permitted, no such letter, it does not open, the broker
failed), as ``messaging.dead_letter.<action>`` with a failure outcome and
why. What the broker says of a letter (its message id, reason, consumer) is
unverified: a listing and the audit trail show it only if it looks like
what Interlock writes there (:func:`~interlock.messaging.claims.safe_id`),
else ``-`` — no control character or markup reaches a terminal. ``show`` is the only
action that reveals a payload: it decrypts with the consumers' keys and
records that it did. ``replay`` publishes the sealed bytes unchanged (never a
re-seal, never in clear), to the consumer that refused it alone (the others
processed it already): :meth:`BrokerAdapter.replay_dead_letter`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from interlock.actors import Operator
from interlock.audit.sink import AuditSink, record_decision
from interlock.clock import Clock, utc_now
from interlock.config.manifest import OPERATOR_SCOPES
from interlock.errors import AuthorisationError, InterlockError, NotFoundError
from interlock.messaging.claims import safe_id
from interlock.messaging.envelope import open_envelope
from interlock.messaging.flow import messaging_flow
from interlock.messaging.model import (
    BrokerAdapter,
    DeadLetter,
    EnvelopeRefused,
    Opened,
)

if TYPE_CHECKING:
    from interlock.config.manifest import Manifest
    from interlock.messaging.keys import MessagingKeys

__all__ = ["DeadLetterDesk", "DeadLetterError", "DeadLetterView"]

_SCOPE: Final = OPERATOR_SCOPES[0]  # messaging.dead_letters
_ACTION: Final = "messaging.dead_letter"
_OPERATOR_PREFIX: Final = "admin:"
# A dead letter may have expired long before an operator looks at it: its times are
# not checked when showing or replaying it (its signature and recipients are).
_MARGIN: Final = timedelta(days=1)
_UNSAFE: Final = "-"


class DeadLetterError(InterlockError):
    """A dead letter cannot be handled as asked (it would only be refused again).

    ``reason`` says why for the audit trail (never key material or payload).
    """

    code = "dead_letter_refused"

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Attempt:
    """What one action found so far, for its audit entry."""

    ref: str | None = None
    letter: DeadLetter | None = None
    records: int = 0


@dataclass(frozen=True)
class DeadLetterView:
    """What a listing shows of a dead letter: never its payload.

    ``ref``, ``message_id``, ``reason`` and ``consumer`` come from the broker,
    unverified: each is ``-`` (``consumer`` None) unless it looks like what
    Interlock writes there (:func:`~interlock.messaging.claims.safe_id`).
    """

    ref: str
    message_id: str
    reason: str
    consumer: str | None
    dead_at: datetime | None
    size: int


class DeadLetterDesk:
    """An operator's access to one messaging integration's dead-letter queue."""

    def __init__(
        self,
        manifest: Manifest,
        integration: str,
        *,
        broker: BrokerAdapter,
        keys: MessagingKeys,
        audit: AuditSink,
        operator: Operator,
        now: Clock = utc_now,
    ) -> None:
        """Handle ``integration``'s dead letters on ``broker`` as ``operator``."""
        self._manifest = manifest
        self._flow = messaging_flow(manifest, integration)
        self._broker = broker
        self._keys = keys
        self._audit = audit
        self._operator = operator
        self._now = now

    async def list(self, limit: int = 100) -> list[DeadLetterView]:
        """Up to ``limit`` dead letters, oldest first: id, reason, consumer, time, size."""
        async with self._attempt("list") as attempt:
            letters = await self._broker.dead_letters(self._flow.topology, limit=limit)
            attempt.records = len(letters)
        return [
            DeadLetterView(
                ref=safe_id(letter.ref) or _UNSAFE,
                message_id=safe_id(letter.message_id) or _UNSAFE,
                reason=safe_id(letter.reason) or _UNSAFE,
                consumer=safe_id(letter.consumer),
                dead_at=letter.dead_at,
                size=len(letter.body),
            )
            for letter in letters
        ]

    async def show(self, ref: str) -> Opened:
        """The dead letter ``ref`` verified and decrypted (audited: a payload was revealed)."""
        async with self._attempt("show", ref) as attempt:
            attempt.letter = await self._find(ref)
            return await self._open(attempt.letter)

    async def replay(self, ref: str) -> str:
        """Send the dead letter ``ref`` again to its consumer, sealed bytes unchanged; its id.

        Refused (:class:`DeadLetterError`) when it no longer verifies or has
        expired: its consumer would only refuse it again. It leaves the
        dead-letter queue once the broker confirmed the copy.
        """
        async with self._attempt("replay", ref) as attempt:
            attempt.letter = letter = await self._find(ref)
            facts = (await self._open(letter)).facts
            if facts.expires_at <= self._now():
                raise DeadLetterError(
                    f"dead letter {ref!r} expired at {facts.expires_at.isoformat()}: its "
                    "consumer would refuse it again",
                    "the message has expired",
                )
            # To the refusing consumer alone, unchanged; it leaves the dead-letter queue
            # once the broker confirmed the copy.
            replayed = await self._broker.replay_dead_letter(self._flow.topology, ref)
            if replayed is None:
                raise NotFoundError(f"no dead letter {ref!r} in {self._flow.name}'s queue")
            return facts.message_id

    async def purge(self) -> int:
        """Remove every dead letter of the integration; how many were removed."""
        async with self._attempt("purge") as attempt:
            attempt.records = await self._broker.purge_dead_letters(self._flow.topology)
        return attempt.records

    @asynccontextmanager
    async def _attempt(self, action: str, ref: str | None = None) -> AsyncIterator[_Attempt]:
        """Authorise ``action``, then audit it exactly once: success, or failure and why.

        Whatever the body raises (no such letter, it does not open, a broker
        error) is recorded as a failure, then re-raised.
        """
        await self._authorise(action)
        attempt = _Attempt(ref=ref)
        try:
            yield attempt
        except Exception as failed:
            await self._record(action, attempt, refused=_why(failed))
            raise
        await self._record(action, attempt)

    async def _authorise(self, action: str) -> None:
        """Refuse (and audit) an operator who does not hold the dead-letter role."""
        role = self._flow.spec.dead_letter.role
        name = self._operator.name.removeprefix(_OPERATOR_PREFIX)
        account = self._manifest.operators.get(name)
        granted = self._manifest.roles.get(role)
        if (
            self._operator.name.startswith(_OPERATOR_PREFIX)
            and account is not None
            and role in account.roles
            and granted is not None
            and _SCOPE in granted.scopes
        ):
            return
        await self._record(
            action, _Attempt(), refused=f"the operator does not hold the role {role}"
        )
        raise AuthorisationError(
            f"handling the dead letters of {self._flow.name} needs the role {role!r} "
            f"(granting {_SCOPE}) in the manifest's operators",
            _SCOPE,
        )

    async def _find(self, ref: str) -> DeadLetter:
        letters = await self._broker.dead_letters(
            self._flow.topology, limit=self._flow.spec.dead_letter.max_length
        )
        for letter in letters:
            if letter.ref == ref:
                return letter
        known = [ref for ref in (safe_id(letter.ref) for letter in letters) if ref]
        raise NotFoundError.unknown(
            "dead letter", ref, known, where=f"in {self._flow.name}'s queue"
        )

    async def _open(self, letter: DeadLetter) -> Opened:
        flow = self._flow
        verification, decryption = await asyncio.to_thread(self._keys_for, letter.consumer)
        spec = flow.spec
        try:
            return open_envelope(
                letter.body,
                letter.content_type,
                integration=flow.name,
                producer=flow.producer,
                encrypt=spec.encrypt,
                encrypted_fields=spec.encrypted_fields,
                verification_keys=verification,
                decryption_keys=decryption,
                now=self._now(),
                leeway=spec.ttl + spec.dead_letter.retention + _MARGIN,
                max_bytes=spec.max_message,
            )
        except EnvelopeRefused as refused:
            raise DeadLetterError(
                f"dead letter {letter.ref!r} does not open ({refused.reason})",
                f"it does not open: {refused.reason}",
            ) from None

    def _keys_for(self, consumer: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """The producer's keys, and the refusing consumer's (every consumer's if unknown)."""
        flow = self._flow
        consumers = [consumer] if consumer in flow.spec.consumers else list(flow.spec.consumers)
        decryption: dict[str, Any] = {}
        for name in consumers:
            decryption.update(self._keys.decryption_keys(flow.name, name))
        return self._keys.verification_keys(flow.name, flow.producer), decryption

    async def _record(self, action: str, attempt: _Attempt, *, refused: str | None = None) -> None:
        result: Literal["success", "failure"] = "failure" if refused else "success"
        letter = attempt.letter
        # Unverified (from the broker or the operator): named only if safe to print.
        found = {"ref": attempt.ref}
        if letter is not None:
            found = {
                "ref": letter.ref,
                "dead_letter_reason": letter.reason,
                "message_id": letter.message_id,
            }
        details: dict[str, str | int | bool] = {
            name: safe for name, value in found.items() if (safe := safe_id(value))
        }
        await record_decision(
            self._audit,
            self._flow.decision(
                actor=self._operator.label,
                action=f"{_ACTION}.{action}",
                result=result,
                size=0 if letter is None else len(letter.body),
                records=1 if letter is not None else attempt.records,
                reason=refused,
                details=details,
            ),
        )


def _why(failed: Exception) -> str:
    """Why an attempt failed, for the audit trail (no operator input, no payload)."""
    if isinstance(failed, DeadLetterError):
        return failed.reason
    if isinstance(failed, NotFoundError):
        return "no such dead letter"
    code = failed.code if isinstance(failed, InterlockError) else type(failed).__name__
    return f"failed ({code})"
