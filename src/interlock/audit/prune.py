"""Retention: remove entry bodies older than their integration's retention, keep the proofs.

Pruning deletes bodies and their search-index rows only (a row repeats the
entry's time, correlation id, client and action, and retention is about not
holding those any longer; a pruned entry is no longer found by ``audit
search``); leaf hashes, tree nodes and tree heads stay, so
the log still verifies and every remaining entry is still provable. Each
prune is itself an entry of the log (action ``audit.prune``) that commits to
exactly which bodies it removed (their count and a digest of their indexes),
written in the same transaction as the deletions; ``audit verify`` accepts a
missing body only when such an entry accounts for it. The schema lets a body
be deleted only after its index is recorded in ``audit_pruned``; on
PostgreSQL only the maintenance role holds DELETE on ``audit_bodies`` and
``audit_search``.

Entries without an integration (key and admin events, prunes) are kept.
:func:`stale_bodies` is the selection a prune deletes; ``interlock check
--live`` counts the same selection to fail ``retention`` when pruning lags.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Select, select

from interlock.audit.entry import AuditEntry, Outcome, Volume, encode_entry
from interlock.audit.keys import LogKeys
from interlock.audit.schema import BODIES, LEAVES, PRUNED, SEARCH
from interlock.audit.storage import LogStore
from interlock.audit.verify import PRUNE_ACTION, pruned_digest

__all__ = ["PruneReport", "prune", "stale_bodies"]

_DELETE_CHUNK: Final = 500


@dataclass(frozen=True)
class PruneReport:
    """What one integration's prune removed, and the entry that records it."""

    integration: str
    before: datetime
    pruned: int
    entry_index: int | None


def prune(
    store: LogStore,
    keys: LogKeys,
    retention: Mapping[str, timedelta],
    *,
    now: datetime | None = None,
    actor: str = "maintenance:prune",
) -> list[PruneReport]:
    """Prune each integration's bodies older than ``now - retention[integration]``."""
    moment = now or datetime.now(UTC)
    reports = []
    for integration, keep in sorted(retention.items()):
        reports.append(
            _prune_one(store, keys, integration, before=moment - keep, now=moment, actor=actor)
        )
    return reports


def stale_bodies(integration: str, before: datetime, *, upto: int | None = None) -> Select[int]:
    """Indexes of ``integration``'s entries older than ``before`` that still hold a body.

    ``upto``: only entries below this index (a prune excludes the batch it is
    appending). Ordered by index.
    """
    cutoff_us = int(before.timestamp() * 1_000_000)
    query = (
        select(LEAVES.c.idx)
        .join(BODIES, BODIES.c.idx == LEAVES.c.idx)
        .where(LEAVES.c.integration == integration, LEAVES.c.time_us < cutoff_us)
    )
    if upto is not None:
        query = query.where(LEAVES.c.idx < upto)
    return query.order_by(LEAVES.c.idx)


def _prune_one(
    store: LogStore,
    keys: LogKeys,
    integration: str,
    *,
    before: datetime,
    now: datetime,
    actor: str,
) -> PruneReport:
    with store.appending(keys) as batch:
        connection = batch.connection
        indexes = list(
            connection.execute(stale_bodies(integration, before, upto=batch.first)).scalars()
        )
        if not indexes:
            return PruneReport(integration, before, 0, None)
        entry = AuditEntry(
            time=now,
            actor=actor,
            action=PRUNE_ACTION,
            outcome=Outcome(result="success"),
            volume=Volume(records=len(indexes)),
            details={
                "integration": integration,
                "before": before.astimezone(UTC).isoformat(),
                "upto": batch.first,
                "count": len(indexes),
                "digest": pruned_digest(indexes),
            },
        )
        body = encode_entry(entry, keys.pseudonymiser)
        index = batch.add(body, int(now.timestamp() * 1_000_000), None)
        for position in range(0, len(indexes), _DELETE_CHUNK):
            chunk = indexes[position : position + _DELETE_CHUNK]
            connection.execute(PRUNED.insert(), [{"idx": i, "prune_idx": index} for i in chunk])
            connection.execute(SEARCH.delete().where(SEARCH.c.idx.in_(chunk)))
            connection.execute(BODIES.delete().where(BODIES.c.idx.in_(chunk)))
    return PruneReport(integration, before, len(indexes), index)
