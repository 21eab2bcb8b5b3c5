"""The audit database: engines, appending a batch in one transaction, reading hashes.

One transaction appends a whole batch: leaves, bodies, their search-index
rows (:mod:`interlock.audit.search_index`), the tree nodes they complete
and a signed checkpoint of the new size, so the stored log and its
latest tree head never disagree, whatever moment a crash strikes. Appenders
in several processes are serialised (SQLite ``BEGIN IMMEDIATE``, PostgreSQL
an advisory lock) and each re-reads the size under the lock, so indexes stay
contiguous.

SQLite runs with ``synchronous=FULL`` here (the main store uses NORMAL): an
entry is acknowledged only once it is on disk, even across a power loss.
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Engine, Table, and_, event, func, inspect, or_, select, text

from interlock.audit.frontier import Frontier
from interlock.audit.keys import LogKeys
from interlock.audit.schema import (
    BODIES,
    CHECKPOINTS,
    COSIGNATURES,
    LEAVES,
    NODES,
    SEARCH,
    ensure_schema,
)
from interlock.audit.search_index import SearchHead, SearchRow, backfill, search_row
from interlock.proofs.checkpoint import Checkpoint
from interlock.proofs.cosignature import Cosignature
from interlock.proofs.rfc9162 import Piece, leaf_hash, leaf_hashes
from interlock.store.engine import create_store_engine, is_sqlite

__all__ = [
    "Batch",
    "LogStore",
    "StoredCheckpoint",
    "StoredCosignature",
    "create_audit_engines",
    "fetch_pieces",
]

_LOCK_SQL: Final = "SELECT pg_advisory_xact_lock(hashtext('interlock-audit-append'))"


def _durable_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous=FULL")
        # REPLACE conflict resolution then fires the delete triggers (SQLite §lang_conflict).
        cursor.execute("PRAGMA recursive_triggers=ON")
    finally:
        cursor.close()


def _immediate(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves


def create_audit_engines(url: str) -> tuple[Engine, Engine]:
    """A reading engine and an appending engine for the audit database; creates the schema.

    A log made before the search index is backfilled here (once, resumably).
    """
    engine = create_store_engine(url)
    writer = engine
    try:
        if is_sqlite(engine):
            event.listen(engine, "connect", _durable_sqlite)
            writer = create_store_engine(url)
            event.listen(writer, "connect", _durable_sqlite)
            event.listen(writer, "connect", _immediate)
            event.listen(writer, "begin", _begin_immediate)
        ensure_schema(engine)
        backfill(writer, lock_sql=None if is_sqlite(engine) else _LOCK_SQL)
    except BaseException:
        engine.dispose()
        writer.dispose()
        raise
    return engine, writer


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@dataclass(frozen=True)
class StoredCheckpoint:
    """A stored signed tree head."""

    size: int
    root: bytes
    note: str


@dataclass(frozen=True)
class StoredCosignature:
    """A witness's cosignature of the tree head of ``size``, as kept."""

    size: int
    witness: str
    timestamp: int
    line: str


@dataclass
class Batch:
    """Entries being appended in one transaction; read :attr:`first` for their first index."""

    connection: Connection
    frontier: Frontier
    first: int
    # Rows as the INSERTs of _write take them, in column order.
    leaves: list[tuple[int, bytes, int, str | None]] = field(default_factory=list)
    bodies: list[tuple[int, bytes]] = field(default_factory=list)
    search: list[SearchRow] = field(default_factory=list)
    nodes: list[tuple[int, int, bytes]] = field(default_factory=list)  # (level, index, hash)

    def add(self, body: bytes, time_us: int, integration: str | None) -> int:
        """Append one encoded entry; returns its index."""
        index = self.frontier.size
        digest = leaf_hash(body)
        self.leaves.append((index, digest, time_us, integration))
        self.bodies.append((index, body))
        row = search_row(index, body, time_us, integration)
        if row is not None:
            self.search.append(row)
        self.nodes.extend((n.level, n.index, n.hash) for n in self.frontier.append(digest))
        return index

    def extend(
        self,
        bodies: Sequence[bytes],
        times_us: Sequence[int],
        integrations: Sequence[str | None],
        heads: Sequence[SearchHead | None] | None = None,
    ) -> range:
        """Append many encoded entries at once (leaf hashes and tree in bulk); their indexes.

        ``heads``: each entry's search-index fields when the caller had them
        (they must be those its bytes hold); None ones are read from the bytes.
        """
        first = self.frontier.size
        digests = leaf_hashes(bodies)
        indexes = range(first, first + len(digests))
        self.leaves.extend(zip(indexes, digests, times_us, integrations, strict=True))
        self.bodies.extend(zip(indexes, bodies, strict=True))
        if heads is None:
            rows = map(search_row, indexes, bodies, times_us, integrations)
            self.search.extend(row for row in rows if row is not None)
        else:
            self.search.extend(_rows(indexes, bodies, times_us, integrations, heads))
        self.nodes.extend(self.frontier.extend(digests))
        return indexes


def _rows(
    indexes: range,
    bodies: Sequence[bytes],
    times_us: Sequence[int],
    integrations: Sequence[str | None],
    heads: Sequence[SearchHead | None],
) -> Iterator[SearchRow]:
    for index, body, time_us, integration, head in zip(
        indexes, bodies, times_us, integrations, heads, strict=True
    ):
        if head is None:
            row = search_row(index, body, time_us, integration)
            if row is not None:
                yield row
        else:
            correlation_id, client, action = head
            yield (index, time_us, correlation_id, client, integration, action)


class LogStore:
    """Reads and appends the log in one audit database."""

    def __init__(self, engine: Engine, writer: Engine | None = None) -> None:
        """Use ``engine`` to read and ``writer`` (default: the same) to append."""
        self.engine = engine
        self._writer = writer or engine
        self._frontier: Frontier | None = None

    def dispose(self) -> None:
        """Release the database connections."""
        self.engine.dispose()
        if self._writer is not self.engine:
            self._writer.dispose()

    def size(self) -> int:
        """How many entries the log holds."""
        with self.engine.connect() as connection:
            return _size(connection)

    def checkpoints(self) -> list[StoredCheckpoint]:
        """Every stored tree head, smallest first."""
        query = select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(CHECKPOINTS.c.size)).all()
        return [StoredCheckpoint(r.size, bytes(r.root), r.note) for r in rows]

    def latest_checkpoint(self) -> StoredCheckpoint | None:
        """The tree head of the largest size."""
        query = select(CHECKPOINTS.c.size, CHECKPOINTS.c.root, CHECKPOINTS.c.note)
        with self.engine.connect() as connection:
            row = connection.execute(query.order_by(CHECKPOINTS.c.size.desc()).limit(1)).first()
        return None if row is None else StoredCheckpoint(row.size, bytes(row.root), row.note)

    def add_cosignature(self, size: int, cosignature: Cosignature) -> None:
        """Keep a witness's verified cosignature of the tree head of ``size`` (once)."""
        c = cosignature
        row = (size, c.witness, c.key_id, c.timestamp, c.line)
        query = select(COSIGNATURES.c.size).where(
            COSIGNATURES.c.size == size, COSIGNATURES.c.witness == cosignature.witness
        )
        with self._writer.begin() as connection:
            if connection.execute(query).first() is None:
                _insert(connection, COSIGNATURES, [row])

    def cosignatures(self) -> list[StoredCosignature]:
        """Every kept cosignature, by tree size then witness (none in a log made before them)."""
        if not inspect(self.engine).has_table(COSIGNATURES.name):
            return []
        query = select(COSIGNATURES).order_by(COSIGNATURES.c.size, COSIGNATURES.c.witness)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        return [StoredCosignature(r.size, r.witness, int(r.timestamp), r.line) for r in rows]

    def last_checkpoint_us(self) -> int | None:
        """When the newest tree head was signed (µs since the epoch), by any writer.

        The head of the largest size is the newest (appends are serialised), and
        the size is the key: one index look-up, not a scan of every head.
        """
        query = select(CHECKPOINTS.c.created_us).order_by(CHECKPOINTS.c.size.desc()).limit(1)
        with self.engine.connect() as connection:
            latest = connection.execute(query).scalar()
        return None if latest is None else int(latest)

    @contextmanager
    def appending(self, keys: LogKeys) -> Iterator[Batch]:
        """One transaction: add entries to the yielded batch; commits with a signed checkpoint.

        Returns (from the ``with``) once the transaction is durable. On any
        error nothing is written and the cached tree edge is dropped.
        """
        try:
            with self._writer.begin() as connection:
                if not is_sqlite(self._writer):
                    connection.execute(text(_LOCK_SQL))
                size = _size(connection)
                cached = self._frontier
                frontier = (
                    cached.copy()
                    if cached is not None and cached.size == size
                    else _load_frontier(connection, size)
                )
                batch = Batch(connection, frontier, size)
                yield batch
                if batch.leaves:
                    _write(connection, batch, keys)
        except BaseException:
            self._frontier = None
            raise
        if batch.leaves:
            self._frontier = batch.frontier


def _size(connection: Connection) -> int:
    last = connection.execute(select(func.max(LEAVES.c.idx))).scalar()
    return 0 if last is None else int(last) + 1


def _load_frontier(connection: Connection, size: int) -> Frontier:
    pieces = Frontier.pieces(size)
    found = fetch_pieces(connection, pieces)
    return Frontier(size, [found[p] for p in pieces])


def fetch_pieces(connection: Connection, pieces: Iterable[Piece]) -> dict[Piece, bytes]:
    """The stored hashes of perfect subtrees (level 0: leaf hashes); ``KeyError`` if absent."""
    by_level: dict[int, list[int]] = defaultdict(list)
    for level, index in set(pieces):
        by_level[level].append(index)
    found: dict[Piece, bytes] = {}
    leaves = by_level.pop(0, [])
    if leaves:
        query = select(LEAVES.c.idx, LEAVES.c.leaf_hash).where(LEAVES.c.idx.in_(leaves))
        found.update({(0, r.idx): bytes(r.leaf_hash) for r in connection.execute(query)})
    if by_level:
        condition = or_(
            *(and_(NODES.c.level == lv, NODES.c.idx.in_(ix)) for lv, ix in by_level.items())
        )
        query = select(NODES.c.level, NODES.c.idx, NODES.c.hash).where(condition)
        found.update({(r.level, r.idx): bytes(r.hash) for r in connection.execute(query)})
    return found


_MAX_PARAMETERS: Final = 30_000  # below SQLite's 32,766 and PostgreSQL's 65,535 per statement


def _insert(connection: Connection, table: Table, rows: Sequence[Sequence[object]]) -> None:
    """Insert ``rows`` (in column order) with as few statements as the drivers allow.

    PostgreSQL: one ``COPY`` per table (:func:`_copy`). SQLite: one
    multi-row ``INSERT ... VALUES (...), (...)`` per chunk, in the driver's
    paramstyle, handed to the driver directly: names come from our schema,
    values only ever as parameters. ``executemany`` would run one statement
    per row, and SQLite's driver gives up and retakes the interpreter lock
    around each, which the gateway's event loop then waits for; SQLAlchemy's
    per-row parameter processing would cost more than the rest of an append.
    """
    if not rows:
        return
    if connection.dialect.name == "postgresql":
        _copy(connection, table, rows)
        return
    width = len(table.columns)
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(column.name for column in table.columns)
    group = "(" + ", ".join([marker] * width) + ")"
    per_statement = _MAX_PARAMETERS // width
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        values = ", ".join([group] * len(chunk))
        sql = f"INSERT INTO {table.name} ({columns}) VALUES {values}"  # noqa: S608  (our names)
        connection.exec_driver_sql(sql, tuple(itertools.chain.from_iterable(chunk)))


def _copy(connection: Connection, table: Table, rows: Sequence[Sequence[object]]) -> None:
    """PostgreSQL: ``COPY ... FROM STDIN`` in the appending transaction.

    A multi-row ``INSERT`` of a batch costs the server far more than the rows
    (measured: about 30 µs an entry for the search index's six columns, parsing
    and planning thousands of parameters); COPY streams the rows, adapted by
    psycopg as parameters are.
    """
    columns = ", ".join(column.name for column in table.columns)
    driver = connection.connection.driver_connection
    if driver is None:  # pragma: no cover - an open connection always has one
        raise RuntimeError("the audit database connection is closed")
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY {table.name} ({columns}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _write(connection: Connection, batch: Batch, keys: LogKeys) -> None:
    _insert(connection, LEAVES, batch.leaves)
    _insert(connection, BODIES, batch.bodies)
    _insert(connection, SEARCH, batch.search)
    _insert(connection, NODES, batch.nodes)
    checkpoint = Checkpoint(keys.origin, batch.frontier.size, batch.frontier.root())
    connection.execute(
        CHECKPOINTS.insert().values(
            size=checkpoint.size,
            root=checkpoint.root,
            note=checkpoint.sign(keys.origin, keys.signer),
            created_us=time.time_ns() // 1000,
        )
    )
