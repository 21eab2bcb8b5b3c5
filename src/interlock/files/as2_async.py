"""Asynchronous MDNs (RFC 4130 §7.3): the messages awaiting one, and the MDNs posted back.

When a partner's profile says ``mdn: async``, :func:`~interlock.files.as2_send.send`
gets no receipt in the HTTP answer: :class:`As2Messages` keeps the message
(id, file hash, the MIC we computed) as ``awaiting``. The partner later posts
its signed MDN to ``mdn_url`` — the gateway's ``/v1/as2/INTEGRATION/mdn`` —
where :class:`MdnReceiver` verifies it (the partner's pinned certificate,
chained to its anchor, valid, not revoked), finds the message it answers and
settles it: ``confirmed`` when it says ``processed`` with exactly our MIC,
``refused`` otherwise. Each settlement is an audit entry (``files.as2.mdn``).

The other way round, :func:`post_mdn` delivers the MDNs Interlock owes a
partner that asked for them asynchronously.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx
from sqlalchemy import Engine, select, update

from interlock.audit import AuditEntry, AuditSink, Outcome, Volume
from interlock.clock import Clock, utc_now
from interlock.crypto.cms import CmsError
from interlock.errors import InterlockError
from interlock.files.as2_mime import entity_of
from interlock.files.as2_profile import As2Flow
from interlock.files.as2_receive import MdnDelivery
from interlock.files.as2_send import As2SendError, Sent, check_mdn
from interlock.files.tables import As2MessageRow
from interlock.outbound import Timeouts, outbound_async_client
from interlock.store.base import table_of

__all__ = ["As2Messages", "MdnAnswer", "MdnReceiver", "post_mdn"]

_TABLE: Final = table_of(As2MessageRow)
_TIMEOUTS: Final = Timeouts(connect=30.0, read=60.0, write=60.0, pool=30.0)


class As2Messages:
    """The AS2 messages sent, in the store's ``as2_messages`` table."""

    def __init__(self, engine: Engine, *, now: Clock = utc_now) -> None:
        """Bind to the store."""
        self._engine = engine
        self._now = now

    def awaiting(self, integration: str, partner: str, file: str, sent: Sent) -> None:
        """Record ``sent`` as awaiting its MDN."""
        with self._engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(
                    message_id=sent.message_id,
                    integration=integration,
                    partner=partner,
                    file=file,
                    sha256=sent.sha256,
                    size=sent.size,
                    mic=sent.mic,
                    sent_at=self._now(),
                    state="awaiting",
                )
            )

    def expected(self, integration: str, message_id: str) -> tuple[str, str, int] | None:
        """(MIC, SHA-256, size) of a message of ``integration`` still awaiting its MDN."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(_TABLE.c.mic, _TABLE.c.sha256, _TABLE.c.size).where(
                    _TABLE.c.message_id == message_id,
                    _TABLE.c.integration == integration,
                    _TABLE.c.state == "awaiting",
                )
            ).first()
        return None if row is None else (row.mic, row.sha256, row.size)

    def settle(self, message_id: str, *, confirmed: bool, reason: str | None) -> bool:
        """Settle an awaiting message once; False when it was not awaiting any more."""
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(_TABLE)
                .where(_TABLE.c.message_id == message_id, _TABLE.c.state == "awaiting")
                .values(
                    state="confirmed" if confirmed else "refused",
                    settled_at=self._now(),
                    reason=reason,
                )
            ).rowcount
        return bool(changed)

    def state(self, message_id: str) -> str | None:
        """``awaiting``, ``confirmed`` or ``refused``; None for a message never sent."""
        with self._engine.connect() as connection:
            found = connection.execute(
                select(_TABLE.c.state).where(_TABLE.c.message_id == message_id)
            ).scalar_one_or_none()
        return None if found is None else str(found)


@dataclass(frozen=True)
class MdnAnswer:
    """How the gateway answers a posted MDN: 200, or a refusal (RFC 9457 title)."""

    status: int
    problem: str | None = None


class MdnReceiver:
    """Takes the asynchronous MDNs of one outbound AS2 integration."""

    def __init__(
        self, as2: As2Flow, messages: As2Messages, *, audit: AuditSink, now: Clock = utc_now
    ) -> None:
        """The integration, the store of awaiting messages, and the audit trail."""
        self._as2 = as2
        self._messages = messages
        self._audit = audit
        self._now = now

    async def receive(self, headers: Mapping[str, str], body: bytes) -> MdnAnswer:
        """Verify and settle a posted MDN (``headers`` with lower-case names)."""
        profile = self._as2.partner
        sender = headers.get("as2-from", "").strip().strip('"')
        if sender != profile.as2_id or headers.get("as2-to", "").strip('" ') != profile.our_id:
            await self._record("", None, "unknown partner")
            return MdnAnswer(403, "unknown AS2 partner")
        try:
            mdn = await asyncio.to_thread(
                check_mdn, self._as2, entity_of(headers, body), now=self._now
            )
        except (CmsError, As2SendError, ValueError) as refused:
            reason = (
                refused.message if isinstance(refused, CmsError | As2SendError) else "malformed"
            )
            await self._record("", None, f"MDN refused: {reason}")
            return MdnAnswer(400, "the MDN was refused")
        found = await asyncio.to_thread(
            self._messages.expected, self._as2.name, mdn.original_message_id
        )
        if found is None:
            await self._record(mdn.original_message_id, None, "no message awaits this MDN")
            return MdnAnswer(400, "no message awaits this MDN")
        mic, sha256, size = found
        confirmed = mdn.confirms(mdn.original_message_id, mic)
        refusal: str | None = None
        if not confirmed:
            refusal = f"processed/error: {mdn.error}" if mdn.error else "the MIC is not ours"
        settled = await asyncio.to_thread(
            self._messages.settle, mdn.original_message_id, confirmed=confirmed, reason=refusal
        )
        if not settled:
            refusal = "the message was settled already"
        await self._record(mdn.original_message_id, (sha256, size), refusal)
        return MdnAnswer(200)

    async def _record(
        self, message_id: str, sent: tuple[str, int] | None, reason: str | None
    ) -> None:
        flow = self._as2.flow
        await self._audit.record_async(
            AuditEntry(
                time=self._now(),
                actor=f"partner:{self._as2.partner_name}",
                action="files.as2.mdn",
                integration=self._as2.name,
                source=flow.source,
                target=flow.target,
                volume=Volume(records=0, bytes=sent[1] if sent else 0),
                outcome=Outcome(result="success" if reason is None else "failure"),
                reason=reason,
                details={
                    "message_id": message_id[:200],
                    "sha256": sent[0] if sent else "",
                    "partner": self._as2.partner_name,
                },
            )
        )


async def post_mdn(delivery: MdnDelivery, anchor: Path | None) -> str | None:
    """POST an asynchronous MDN over HTTPS, TLS verified against the partner's anchor.

    None when the partner took it; otherwise why not (for the audit entry).
    """
    try:
        async with outbound_async_client(trust=anchor, timeouts=_TIMEOUTS) as client:
            response = await client.post(
                delivery.url, content=delivery.body, headers=delivery.headers
            )
    except (httpx.HTTPError, InterlockError, OSError):
        return "the partner's MDN URL is unreachable"
    if not response.is_success:
        return f"the partner refused the MDN: HTTP {response.status_code}"
    return None
