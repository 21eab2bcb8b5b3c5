"""De-duplication of deliveries: each message id claimed once in the shared idempotency store.

At-least-once brokers hand a consumer copies of a message (a producer's
retry, a redelivery, a copy another replica received). Of every copy one is
processed: the consumer claims the message id in the idempotency store
(:mod:`interlock.replay.idempotency`, shared by every replica), under a
scope of its own and with the SHA-256 of the message's content as
fingerprint (for a sealed message, what its producer signed). The claim
answers:

* :class:`Claimed` — process it, then :meth:`DeliveryClaims.complete` (or
  :meth:`DeliveryClaims.abandon` on a refusal or failure, so that a replayed
  dead letter or a redelivery is processed afresh);
* ``"retry"`` — another replica holds it now: settle RETRY; once that
  replica's lease runs out (it died) the next delivery takes over;
* ``"duplicate"`` — processed before; ``"id_reused"`` — the id was used for
  other content.

Used by :class:`interlock.messaging.consumer.Consumer` and
:class:`interlock.events.consumer.EventConsumer`.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final, Literal, TypeVar

from interlock.replay.idempotency import (
    Begun,
    IdempotencyStore,
    InFlight,
    MemoryIdempotency,
    Mismatch,
    StoredResponse,
)

__all__ = ["Claim", "Claimed", "DeliveryClaims", "safe_id"]

# What a completed record keeps: nothing but "processed" (a message has no response).
_PROCESSED: Final = StoredResponse(status=200, headers=(), body=b"")
# Message ids named in audit entries and logs: as producers make them, else left out.
_SAFE_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
T = TypeVar("T")


@dataclass(frozen=True)
class Claimed:
    """This replica processes the message; complete or abandon the claim with ``token``."""

    token: str


Claim = Claimed | Literal["retry", "duplicate", "id_reused"]


class DeliveryClaims:
    """One consumer's claims on message ids (see the module docstring)."""

    def __init__(self, store: IdempotencyStore, scope: str, *, lease: timedelta) -> None:
        """Claim in ``scope`` of ``store``; ``lease``: how long a replica may hold a message."""
        self._store = store
        self._scope = scope
        self._lease = lease
        # The in-process store does no I/O: calling it from a thread only costs a hop.
        self._inline = isinstance(store, MemoryIdempotency)
        #: When a RETRY comes back: soon, but not before the holder could plausibly finish.
        self.retry_after = min(lease, timedelta(seconds=1))

    async def claim(self, message_id: str, content: bytes, ttl: timedelta) -> Claim:
        """Claim ``message_id`` for ``content``, remembered for ``ttl`` (at least one second).

        ``content``: the bytes every copy of the message shares and no other
        message has — what the producer signed, never a wrapper a relay may
        re-serialise.
        """
        outcome = await self._call(
            self._store.begin,
            self._scope,
            message_id,
            hashlib.sha256(content).hexdigest(),
            max(ttl, timedelta(seconds=1)),
            self._lease,
        )
        if isinstance(outcome, Begun):
            return Claimed(outcome.token)
        if isinstance(outcome, InFlight):
            return "retry"
        if isinstance(outcome, Mismatch):
            return "id_reused"
        return "duplicate"  # Replay or Unreadable: processed before

    async def complete(self, message_id: str, claimed: Claimed) -> None:
        """Record ``message_id`` as processed."""
        await self._call(self._store.complete, self._scope, message_id, claimed.token, _PROCESSED)

    async def abandon(self, message_id: str, claimed: Claimed) -> None:
        """Forget the claim, so that a later copy is processed afresh (survives cancellation)."""
        await asyncio.shield(
            self._call(self._store.abandon, self._scope, message_id, claimed.token)
        )

    async def _call(self, call: Callable[..., T], *args: Any) -> T:
        """A call to the store: in a thread, unless the store is in-process."""
        if self._inline:
            return call(*args)
        return await asyncio.to_thread(call, *args)


def safe_id(candidate: str | None) -> str | None:
    """``candidate`` if it looks like a message id a producer makes, else None (for logs)."""
    return candidate if candidate is not None and _SAFE_ID.fullmatch(candidate) else None
