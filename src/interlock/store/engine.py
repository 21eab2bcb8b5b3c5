"""Database engines for the store: SQLite by default, PostgreSQL by URL.

SQLite is tuned for a gateway that reads far more than it writes: WAL so
readers never block the writer, foreign keys on (off by default in SQLite!),
a busy timeout instead of instant "database is locked" errors, and
``synchronous=NORMAL``, which is durable in WAL mode except on power loss of
the last transaction.
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from interlock.errors import MissingExtraError, StoreError

__all__ = ["SUPPORTED_BACKENDS", "create_store_engine", "is_sqlite"]

SUPPORTED_BACKENDS: Final = frozenset({"sqlite", "postgresql"})
_BUSY_TIMEOUT_MS: Final = 5_000


def create_store_engine(url: str, **engine_args: Any) -> Engine:
    """An engine for ``url``; refuses backends Interlock is not tested on."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("the database URL is not a valid SQLAlchemy URL") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise StoreError(f"unsupported database backend {backend!r}; use sqlite or postgresql")
    if backend == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the driver we install; SQLAlchemy's bare default is psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if backend == "sqlite":
            engine = create_engine(parsed, **engine_args)
            event.listen(engine, "connect", _tune_sqlite)
        else:
            engine_args.setdefault("pool_pre_ping", True)
            engine = create_engine(parsed, **engine_args)
    except NoSuchModuleError as exc:
        raise StoreError(f"no database driver for {parsed.drivername!r}") from exc
    except ModuleNotFoundError as missing:  # the driver itself: psycopg
        raise MissingExtraError("a PostgreSQL database URL", "postgres", missing) from None
    return engine


def is_sqlite(engine: Engine) -> bool:
    """Whether ``engine`` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def _tune_sqlite(dbapi_connection: Any, _record: object) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
