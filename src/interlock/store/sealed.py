"""Columns holding sealed blobs, and re-wrapping them after a KEK rotation.

Each package that stores keyring-sealed values registers the column here.
After ``interlock keyring rotate`` adds a KEK version, :func:`rewrap_all`
re-wraps every stored data key under the new version, batch by batch, without
touching the bulk ciphertext (and without needing the records' associated
data). It is safe to interrupt and run again: rows already under the current
version are skipped, and an update only lands if the row still holds the blob
that was read (a concurrent writer wins and is simply re-examined next time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Engine, Table, and_, select, tuple_, update

from interlock.crypto import Keyring, needs_rewrap, rewrap

__all__ = [
    "RewrapReport",
    "SealedColumn",
    "register_sealed_column",
    "registered_sealed_columns",
    "rewrap_all",
]

_BATCH: Final = 500


@dataclass(frozen=True)
class SealedColumn:
    """A column of ``table`` whose values are blobs from ``Keyring.seal``."""

    table: Table
    column: str


@dataclass(frozen=True)
class RewrapReport:
    """What a re-wrap pass did, with what it left alone and why."""

    examined: int
    rewrapped: int
    current: int = 0  # already under the current KEK version
    empty: int = 0  # NULL: nothing sealed

    @property
    def contended(self) -> int:
        """Values another writer changed between read and update (re-examined next pass)."""
        return self.examined - self.rewrapped - self.current - self.empty


_REGISTRY: list[SealedColumn] = []


def register_sealed_column(table: Table, column: str) -> None:
    """Declare that ``table.column`` holds sealed blobs (idempotent)."""
    if column not in table.c:
        raise ValueError(f"{table.name} has no column {column!r}")
    entry = SealedColumn(table, column)
    if entry not in _REGISTRY:
        _REGISTRY.append(entry)


def registered_sealed_columns() -> tuple[SealedColumn, ...]:
    """The sealed columns of the table modules imported so far.

    Only :mod:`interlock.tables` knows that every package's tables are imported:
    use its ``sealed_columns()`` for "all of them".
    """
    return tuple(_REGISTRY)


def rewrap_all(
    engine: Engine,
    keyring: Keyring,
    columns: tuple[SealedColumn, ...],
    batch_size: int = _BATCH,
) -> RewrapReport:
    """Re-wrap the sealed values of ``columns`` under the current KEK.

    ``columns`` is required: a default of "what is registered" would silently
    skip the tables of a package nobody had imported yet.
    (:func:`interlock.tables.sealed_columns` is every column of every package.)
    """
    total = RewrapReport(0, 0)
    for sealed in columns:
        part = _rewrap_column(engine, keyring, sealed, batch_size)
        total = RewrapReport(
            examined=total.examined + part.examined,
            rewrapped=total.rewrapped + part.rewrapped,
            current=total.current + part.current,
            empty=total.empty + part.empty,
        )
    return total


def _rewrap_column(
    engine: Engine, keyring: Keyring, sealed: SealedColumn, batch_size: int
) -> RewrapReport:
    table = sealed.table
    pk = list(table.primary_key.columns)
    value = table.c[sealed.column]
    examined = rewrapped = current = empty = 0
    last: tuple[Any, ...] | None = None
    while True:
        query = select(*pk, value).order_by(*pk).limit(batch_size)
        if last is not None:
            query = query.where(tuple_(*pk) > tuple_(*last))
        with engine.begin() as connection:
            rows = connection.execute(query).all()
            for row in rows:
                key, blob = tuple(row[: len(pk)]), row[len(pk)]
                examined += 1
                if blob is None:
                    empty += 1
                    continue
                if not needs_rewrap(keyring, blob):
                    current += 1
                    continue
                where = and_(*(c == k for c, k in zip(pk, key, strict=True)), value == blob)
                result = connection.execute(
                    update(table).where(where).values({sealed.column: rewrap(keyring, blob)})
                )
                rewrapped += result.rowcount
        if len(rows) < batch_size:
            return RewrapReport(examined, rewrapped, current, empty)
        last = tuple(rows[-1][: len(pk)])
