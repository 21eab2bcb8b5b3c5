"""``interlock audit search``: find entries by correlation id, client, integration, action, time.

A search reads the index (``audit_search``, :mod:`interlock.audit.search_index`):
client, integration, action and time are indexed with the time, so such a
search is a range scan of one index, newest first, stopping at ``limit``; a
correlation id is looked up in each block of its block-keyed index
(:data:`~interlock.audit.schema.CORRELATION_BLOCK` entries a block) and its
few matches put in order — never a pass over the bodies. It covers the tree
of the latest signed head (no index row outside ``[0, size)`` is read), so
every hit can be proven against it (``proofs=True``: the RFC 9162 inclusion
proof of each).

The index is not itself hashed, so each hit is checked against its entry:
the body must hash to the stored leaf and say what the index row says; a
disagreement is an :class:`AuditError` that names the entry (tampering
shows; ``interlock audit verify`` checks the rest). An entry whose body was
pruned has no index row and is not found; :attr:`SearchResult.pruned` says
how many such entries the log holds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    Connection,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    select,
)

from interlock.audit.entry import decode_entry, entry_time
from interlock.audit.errors import AuditError
from interlock.audit.proofs import ProofReader
from interlock.audit.schema import (
    BODIES,
    CHECKPOINTS,
    CORRELATION_BLOCK,
    LEAVES,
    PRUNED,
    SEARCH,
)
from interlock.audit.search_index import backfill_progress, search_row
from interlock.audit.storage import LogStore, StoredCheckpoint
from interlock.errors import did_you_mean
from interlock.proofs.rfc9162 import inclusion_path, leaf_hash

__all__ = ["MAX_LIMIT", "Hit", "SearchQuery", "SearchResult", "search"]

MAX_LIMIT: Final = 10_000
_MAX_KNOWN: Final = 10_000  # distinct names read to suggest from


@dataclass(frozen=True)
class SearchQuery:
    """What to look for; every given field must match (``since <= time < until``)."""

    correlation_id: str | None = None
    client: str | None = None
    integration: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


@dataclass(frozen=True)
class Hit:
    """One entry found: its index, time, the entry's fields, and its proof when asked."""

    index: int
    time: datetime
    entry: dict[str, Any]  # the stored entry (pseudonyms, not values)
    body: bytes  # its canonical bytes: the leaf input
    leaf_hash: bytes
    proof: tuple[bytes, ...] | None  # inclusion proof in the tree of ``tree_size``


@dataclass(frozen=True)
class SearchResult:
    """The hits (newest first) and the tree head they are in."""

    hits: tuple[Hit, ...]
    tree_size: int
    checkpoint: str | None  # the signed tree head (C2SP note) of ``tree_size``
    truncated: bool  # more entries matched than ``limit``
    pruned: int  # entries of the log whose body was pruned: not indexed, never found
    backfill_pending: int  # entries of an older log not yet indexed (0 once backfilled)
    # When nothing was found: for each client, integration or action asked for that no
    # indexed entry names, a line saying so with the closest names that do (did you mean).
    hints: tuple[str, ...] = ()


def search(store: LogStore, query: SearchQuery, *, proofs: bool = False) -> SearchResult:
    """The entries matching ``query`` in the tree of the latest signed head, newest first."""
    if not 0 < query.limit <= MAX_LIMIT:
        raise ValueError(f"the limit is between 1 and {MAX_LIMIT}")
    with store.engine.connect() as connection:
        latest = _latest(connection)
        if latest is None:
            return SearchResult((), 0, None, truncated=False, pruned=0, backfill_pending=0)
        postgresql = connection.dialect.name == "postgresql"
        # Only the rows of the head's tree: those of a later batch wait for its head, and
        # no row outside [0, size) is an entry (a row planted there is never a hit).
        statement = _statement(query, latest.size, postgresql=postgresql)
        rows = connection.execute(statement).all()
        truncated = len(rows) > query.limit
        rows = rows[: query.limit]
        hits = [_hit(row) for row in rows]
        if proofs and hits:
            hits = _with_proofs(connection, latest, hits)
        pruned = int(connection.execute(select(func.count()).select_from(PRUNED)).scalar_one())
        upto, target = backfill_progress(connection)
        hints = () if hits else _hints(connection, query)
    return SearchResult(
        tuple(hits),
        latest.size,
        latest.note,
        truncated=truncated,
        pruned=pruned,
        backfill_pending=max(target - upto, 0),
        hints=hints,
    )


def _hints(connection: Connection, query: SearchQuery) -> tuple[str, ...]:
    """For a search that found nothing: each asked-for name no indexed entry has, with near ones.

    A client, integration or action may be gone from the manifest and still be on
    the trail, so the names come from the index itself (the distinct values of the
    column, read through its index), never from the manifest.
    """
    hints: list[str] = []
    for field, column, value in (
        ("client", SEARCH.c.client, query.client),
        ("integration", SEARCH.c.integration, query.integration),
        ("action", SEARCH.c.action, query.action),
    ):
        if value is None:
            continue
        present = select(column).where(column == value).limit(1)
        if connection.execute(present).first() is not None:
            continue
        known = select(column).where(column.is_not(None)).distinct().limit(_MAX_KNOWN)
        names = [str(name) for name in connection.execute(known).scalars()]
        hints.append(f"no indexed entry names {field} {value!r}{did_you_mean(value, names)}")
    return tuple(hints)


def _latest(connection: Connection) -> StoredCheckpoint | None:
    query = select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
    row = connection.execute(query.order_by(CHECKPOINTS.c.size.desc()).limit(1)).first()
    return None if row is None else StoredCheckpoint(row.size, bytes(row.root), row.note)


def _statement(query: SearchQuery, size: int, *, postgresql: bool = False) -> Any:
    """The rows matching ``query`` among entries ``[0, size)``, newest first."""
    # Unary + keeps this bound from choosing the plan: SQLite would read a range of the
    # rowid (audit_search.idx), then sort, instead of the filter's index in order.
    indexed: ColumnElement[int] = literal_column("+audit_search.idx", BigInteger)
    conditions: list[ColumnElement[bool]] = [indexed.between(0, size - 1)]
    if query.correlation_id is not None:
        last_block = (size - 1) // CORRELATION_BLOCK
        # One probe of the block-keyed index per block up to ``last_block``; the few
        # rows an id matches are then put in order. PostgreSQL probes an array of the
        # blocks (= ANY); SQLite a list the query makes itself (a recursive CTE).
        block: ColumnElement[int] = literal_column(
            f"audit_search.idx / {CORRELATION_BLOCK}", BigInteger
        )
        if postgresql:
            numbers = bindparam("blocks", list(range(last_block + 1)), ARRAY(BigInteger))
            conditions.append(block == any_(numbers))
        else:
            blocks = select(literal(last_block).label("b")).cte("blocks", recursive=True)
            blocks = blocks.union_all(select(blocks.c.b - 1).where(blocks.c.b > 0))
            conditions.append(block.in_(select(blocks.c.b)))
        conditions.append(SEARCH.c.correlation_id == query.correlation_id)
    for column, value in (
        (SEARCH.c.client, query.client),
        (SEARCH.c.integration, query.integration),
        (SEARCH.c.action, query.action),
    ):
        if value is not None:
            conditions.append(column == value)
    if query.since is not None:
        conditions.append(SEARCH.c.time_us >= _micros(query.since))
    if query.until is not None:
        conditions.append(SEARCH.c.time_us < _micros(query.until))
    return (
        select(*SEARCH.c, BODIES.c.body, LEAVES.c.leaf_hash)
        .join(BODIES, BODIES.c.idx == SEARCH.c.idx)
        .join(LEAVES, LEAVES.c.idx == SEARCH.c.idx)
        .where(*conditions)
        .order_by(SEARCH.c.time_us.desc(), SEARCH.c.idx.desc())
        .limit(query.limit + 1)
    )


def _micros(value: datetime) -> int:
    return int(value.timestamp() * 1_000_000)


def _hit(row: Any) -> Hit:
    """The hit of an index row, once its entry confirms the row (else :class:`AuditError`)."""
    body, stored_leaf = bytes(row.body), bytes(row.leaf_hash)
    indexed = (row.idx, row.time_us, row.correlation_id, row.client, row.integration, row.action)
    derived = search_row(row.idx, body, row.time_us, row.integration)
    fields = decode_entry(body) if leaf_hash(body) == stored_leaf and derived == indexed else {}
    if fields.get("integration") != row.integration or "time" not in fields:
        raise AuditError(
            f"entry {row.idx} does not match its leaf hash or its search index row; "
            "run `interlock audit verify`"
        )
    return Hit(row.idx, entry_time(fields), fields, body, stored_leaf, None)


def _with_proofs(connection: Connection, latest: StoredCheckpoint, hits: list[Hit]) -> list[Hit]:
    reader = ProofReader(connection, latest.size)
    reader.prefetch([r for hit in hits for r in inclusion_path(hit.index, latest.size)])
    return [replace(hit, proof=tuple(reader.inclusion(hit.index, latest.size))) for hit in hits]
