"""A running JetStream consumer: fetch from a durable pull consumer, run the handler, settle.

At least once: a message is acknowledged only after the handler returned
:attr:`~interlock.messaging.model.Settle.ACK` (or after its copy reached the
dead-letter stream, for :attr:`~interlock.messaging.model.Settle.DEAD`).
While a handler runs, a progress ack (``+WPI``) every third of ``ack_wait``
keeps JetStream from giving the message to another replica; a replica that
dies stops sending them, so after ``ack_wait`` its unacknowledged messages
go to another replica of the same consumer.

A handler that asks to retry gets the message again after its
``retry_after``; one that raises, after ``error_delay`` doubled at each
delivery (at most a minute). At the consumer's ``max_deliver``-th delivery
there will be no next one, so the adapter dead-letters it instead (reason
``delivery_limit``): nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Final

import nats.errors
from nats.aio.msg import Msg
from nats.js.client import JetStreamContext

from interlock.logs import get_logger
from interlock.messaging.model import Decision, Delivery, Handler, Settle

__all__ = [
    "CONTENT_TYPE",
    "DELIVERY_LIMIT",
    "HEADER_MESSAGE_ID",
    "MESSAGE_ID",
    "DeadLetterer",
    "NatsConsumption",
    "application_headers",
    "message_id_of",
]

#: The NATS header of the JetStream de-duplication id (the message id).
MESSAGE_ID: Final = "Nats-Msg-Id"
#: Where the message's media type travels (NATS messages have no such property).
CONTENT_TYPE: Final = "Content-Type"
#: The original message id, where the NATS id is another (dead letters, replays).
HEADER_MESSAGE_ID: Final = "interlock-message-id"
#: The dead-letter reason when JetStream would not deliver a message again.
DELIVERY_LIMIT: Final = "delivery_limit"

_MAX_ERROR_DELAY: Final = timedelta(minutes=1)

#: Dead-letters ``msg`` with a reason; raises when the dead-letter stream did not confirm.
DeadLetterer = Callable[[Msg, str], Awaitable[None]]

_log = get_logger("interlock.messaging")


def application_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The headers a producer set: without NATS's own (``Nats-*``), the content type and id."""
    return {
        name: value
        for name, value in (headers or {}).items()
        if not name.lower().startswith("nats-") and name not in {CONTENT_TYPE, HEADER_MESSAGE_ID}
    }


def message_id_of(headers: Mapping[str, str] | None) -> str | None:
    """The message's own id: the original one on a replay, else the de-duplication id."""
    headers = headers or {}
    return headers.get(HEADER_MESSAGE_ID) or headers.get(MESSAGE_ID)


def _delivery(msg: Msg) -> Delivery:
    headers = msg.headers or {}
    count = msg.metadata.num_delivered or 1
    return Delivery(
        body=msg.data,
        content_type=headers.get(CONTENT_TYPE),
        message_id=message_id_of(headers),
        headers=application_headers(headers),
        redelivered=count > 1,
        delivery_count=count,
    )


class NatsConsumption:
    """Fetches batches of up to ``prefetch`` messages and handles each batch concurrently.

    A message whose subject ``unseen`` accepts (another consumer's replay) is
    acknowledged without reaching the handler.
    """

    def __init__(
        self,
        subscription: JetStreamContext.PullSubscription,
        handler: Handler,
        dead_letter: DeadLetterer,
        *,
        prefetch: int,
        unseen: Callable[[str], bool],
        ack_wait: timedelta,
        max_deliver: int,
        error_delay: timedelta,
    ) -> None:
        """Prepare; :meth:`start` begins fetching."""
        if prefetch < 1:
            raise ValueError("prefetch is at least 1")
        self._subscription = subscription
        self._handler = handler
        self._dead_letter = dead_letter
        self._prefetch = prefetch
        self._unseen = unseen
        self._progress_every = max(ack_wait.total_seconds() / 3, 0.05)
        self._max_deliver = max_deliver
        self._error_delay = error_delay
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin fetching and handling in a task of the running loop."""
        self._task = asyncio.create_task(self._run(), name="interlock-nats-consumer")

    async def stop(self) -> None:
        """Stop fetching; wait for the handlers of the current batch; unsubscribe."""
        self._stopping.set()
        if self._task is not None:
            await self._task
        await self._unsubscribe()

    async def abandon(self) -> None:
        """Stop at once, handlers included, settling nothing (their messages come back)."""
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._unsubscribe()

    async def _unsubscribe(self) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self._subscription.unsubscribe()

    async def _run(self) -> None:
        stopping = asyncio.create_task(self._stopping.wait())
        try:
            while not self._stopping.is_set():
                batch = await self._next_batch(stopping)
                if batch:
                    await asyncio.gather(*(self._handle(msg) for msg in batch))
        finally:
            stopping.cancel()

    async def _next_batch(self, stopping: asyncio.Task[bool]) -> list[Msg]:
        fetch = asyncio.create_task(self._subscription.fetch(self._prefetch, timeout=5))
        await asyncio.wait({fetch, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not fetch.done():
            # Stopping while idle: whatever the pending pull still brings is not
            # acknowledged and comes back after ack_wait (at least once).
            fetch.cancel()
            with contextlib.suppress(asyncio.CancelledError, nats.errors.Error):
                await fetch
            return []
        try:
            return fetch.result()
        except nats.errors.TimeoutError:
            return []
        except nats.errors.Error as exc:
            _log.warning("nats_fetch_failed", error=type(exc).__name__)
            await asyncio.sleep(1)
            return []

    async def _handle(self, msg: Msg) -> None:
        if self._unseen(msg.subject):
            # Another consumer's replay: not ours to see; ours to acknowledge.
            await msg.ack()
            return
        delivery = _delivery(msg)
        progress = asyncio.create_task(self._keep_in_progress(msg))
        try:
            decision = await self._handler(delivery)
        except Exception as exc:  # noqa: BLE001  (any failure: the message comes back)
            _log.warning(
                "nats_handler_failed",
                error=type(exc).__name__,
                message_id=delivery.message_id,
                delivery=delivery.delivery_count,
            )
            decision = None
        finally:
            progress.cancel()
        try:
            await self._settle(msg, delivery, decision)
        except Exception as exc:  # noqa: BLE001  (unsettled: JetStream redelivers it)
            _log.warning(
                "nats_settle_failed", error=type(exc).__name__, message_id=delivery.message_id
            )

    async def _keep_in_progress(self, msg: Msg) -> None:
        while True:
            await asyncio.sleep(self._progress_every)
            with contextlib.suppress(nats.errors.Error):
                await msg.in_progress()

    async def _settle(self, msg: Msg, delivery: Delivery, decision: Decision | None) -> None:
        last = self._max_deliver > 0 and delivery.delivery_count >= self._max_deliver
        if decision is not None and decision.settle is Settle.ACK:
            await msg.ack()
        elif decision is not None and decision.settle is Settle.DEAD:
            await self._dead(msg, decision.reason or "refused")
        elif last:
            # JetStream will not deliver it again: keep it, sealed, in the dead letters.
            await self._dead(msg, DELIVERY_LIMIT)
        elif decision is not None:
            await msg.nak(delay=decision.retry_after.total_seconds())
        else:
            # A failing handler backs off: error_delay, doubling, at most a minute.
            doubled = self._error_delay * 2 ** min(delivery.delivery_count - 1, 16)
            await msg.nak(delay=min(doubled, _MAX_ERROR_DELAY).total_seconds())

    async def _dead(self, msg: Msg, reason: str) -> None:
        try:
            await self._dead_letter(msg, reason)
        except Exception:
            # Not in the dead letters, so not acknowledged: it comes back.
            await msg.nak(delay=self._error_delay.total_seconds())
            raise
        await msg.ack()
