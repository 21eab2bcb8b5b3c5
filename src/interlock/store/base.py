"""The declarative base shared by every package that owns tables.

A fixed naming convention gives every constraint and index a deterministic
name, so Alembic migrations can drop or alter them on SQLite and PostgreSQL
alike.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, MetaData, Table, and_, or_
from sqlalchemy.orm import DeclarativeBase

__all__ = ["Base", "active_clause", "as_utc", "is_active", "metadata", "table_of"]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class Base(DeclarativeBase):
    """Base class of every ORM-mapped table in Interlock."""

    metadata = metadata


def table_of(mapped: type[Base]) -> Table:
    """The :class:`Table` behind a mapped class, typed as such."""
    table = mapped.__table__
    if not isinstance(table, Table):  # declarative classes always map a Table
        raise TypeError(f"{mapped.__name__} is not mapped to a table")
    return table


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime.

    SQLite returns naive datetimes even for ``DateTime(timezone=True)`` columns;
    PostgreSQL returns aware ones. Every reader of a timestamp goes through this.
    """
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def active_clause(table: Table, now: datetime) -> ColumnElement[bool]:
    """Rows of a revocable, expiring credential table (``revoked_at``, ``expires_at``) in force."""
    # Stored times are UTC (SQLite keeps them naive), so compare in UTC.
    return and_(
        table.c.revoked_at.is_(None),
        or_(table.c.expires_at.is_(None), table.c.expires_at > now.astimezone(UTC)),
    )


def is_active(row: Any, now: datetime) -> bool:
    """Whether a row of such a table is in force at ``now``: not revoked, not expired."""
    if row.revoked_at is not None:
        return False
    return row.expires_at is None or now < as_utc(row.expires_at)
