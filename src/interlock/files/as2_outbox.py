"""An outbound AS2 integration's outbox: each waiting file sent, confirmed, then moved to sent.

:func:`send_outbox` sends the files waiting in the integration's
:class:`~interlock.files.transfers.Outbox` one at a time. A file moves to
``sent/`` only when its synchronous MDN confirmed it, or — ``mdn: async`` —
once it is recorded as awaiting its MDN (:class:`~interlock.files.as2_async.As2Messages`);
a failed send leaves it in the outbox for the next run, and the failure is
audited (``files.as2.send``) and raised.
"""

from __future__ import annotations

import asyncio

from interlock.audit import AuditSink
from interlock.clock import Clock, utc_now
from interlock.errors import ConfigError
from interlock.files.as2_async import As2Messages
from interlock.files.as2_profile import As2Flow
from interlock.files.as2_send import Sent, send
from interlock.files.transfers import Outbox

__all__ = ["send_outbox"]


async def send_outbox(
    as2: As2Flow,
    outbox: Outbox,
    *,
    audit: AuditSink,
    messages: As2Messages | None = None,
    now: Clock = utc_now,
) -> list[Sent]:
    """Send every waiting file; the sends, in order. Raises on the first failure."""
    if as2.spec.direction != "outbound":
        raise ConfigError(f"integration {as2.name!r} receives AS2; it has no outbox")
    if as2.partner.mdn == "async" and messages is None:
        raise ConfigError(f"integration {as2.name!r} awaits asynchronous MDNs: needs the store")
    done: list[Sent] = []
    for name, data in outbox.pending():
        sent = await send(as2, name, data, audit=audit, now=now)
        if sent.mdn is None and messages is not None:
            await asyncio.to_thread(messages.awaiting, as2.name, as2.partner_name, name, sent)
        outbox.sent(name)
        done.append(sent)
    return done
