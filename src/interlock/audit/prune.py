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

An integration removed from the manifest still has entries in the log: its
bodies keep the retention it was last declared with, found in the stored
manifest versions (:func:`retentions`, which ``interlock audit prune`` and
``check --live`` both use); the prune names the integrations whose retention
nobody declared any more, and keeps their bodies until the operator gives one.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Engine, Select, select

from interlock.audit.entry import AuditEntry, Outcome, Volume, encode_entry
from interlock.audit.keys import LogKeys
from interlock.audit.schema import BODIES, LEAVES, PRUNED, SEARCH
from interlock.audit.storage import LogStore
from interlock.audit.verify import PRUNE_ACTION, pruned_digest
from interlock.config.units import parse_duration
from interlock.config.yaml_source import YamlSourceError, parse_yaml
from interlock.store.manifest_versions import version_history

__all__ = [
    "LastDeclared",
    "PruneReport",
    "Retentions",
    "last_declared",
    "prune",
    "retentions",
    "stale_bodies",
    "trail_integrations",
]

_DELETE_CHUNK: Final = 500
# Stored manifest versions searched for a removed integration's retention, newest first.
_HISTORY: Final = 10_000


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


@dataclass(frozen=True)
class LastDeclared:
    """A removed integration's retention, as the newest manifest version that declared it says."""

    retention: timedelta
    version: int


def trail_integrations(store: LogStore) -> frozenset[str]:
    """The integrations named by entries of the log that still hold a body."""
    query = (
        select(LEAVES.c.integration)
        .join(BODIES, BODIES.c.idx == LEAVES.c.idx)
        .where(LEAVES.c.integration.is_not(None))
        .distinct()
    )
    with store.engine.connect() as connection:
        return frozenset(str(name) for name in connection.execute(query).scalars())


def last_declared(engine: Engine, names: Collection[str]) -> dict[str, LastDeclared]:
    """Each of ``names``' retention in the newest stored manifest version that declares it.

    ``engine``: the deployment's store (``interlock manifest apply`` keeps every
    version there). A version whose text or ``retention`` no longer reads is
    passed over for an older one; a name no version declares is left out.
    """
    wanted = set(names)
    found: dict[str, LastDeclared] = {}
    for version in version_history(engine, limit=_HISTORY):  # newest first
        if not wanted:
            break
        try:
            data = parse_yaml(version.text).data
        except YamlSourceError:
            continue
        flows = data.get("integrations") if isinstance(data, dict) else None
        if not isinstance(flows, dict):
            continue
        for name in sorted(wanted & flows.keys()):
            flow = flows[name]
            try:
                retention = parse_duration(
                    flow.get("retention") if isinstance(flow, dict) else None
                )
            except ValueError:
                continue
            found[name] = LastDeclared(retention, version.version)
            wanted.discard(name)
    return found


@dataclass(frozen=True)
class Retentions:
    """What a prune keeps, per integration: the manifest's and the removed ones'."""

    keep: dict[str, timedelta]  # every integration whose bodies are pruned, with its retention
    removed: dict[str, str]  # a removed integration among them -> where its retention comes from
    unknown: tuple[str, ...]  # removed integrations with no known retention: bodies kept


def retentions(
    store: LogStore,
    engine: Engine,
    declared: Mapping[str, timedelta],
    fallback: timedelta | None = None,
) -> Retentions:
    """The manifest's retentions (``declared``), and those of the integrations it no longer has.

    A removed integration (entries of the log with a body, not in ``declared``)
    keeps the retention it was last declared with in the deployment's store
    (``engine``, :func:`last_declared`), else ``fallback``, else none is known.
    """
    keep = dict(declared)
    gone = sorted(trail_integrations(store) - keep.keys())
    found = last_declared(engine, gone) if gone else {}
    removed: dict[str, str] = {}
    unknown: list[str] = []
    for name in gone:
        if name in found:
            keep[name] = found[name].retention
            removed[name] = f"removed; retention of manifest version {found[name].version}"
        elif fallback is not None:
            keep[name] = fallback
            removed[name] = "removed; --removed-retention"
        else:
            unknown.append(name)
    return Retentions(keep, removed, tuple(unknown))


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
