"""Engines: SQLite is tuned (WAL, foreign keys), unsupported backends are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.errors import StoreError
from interlock.store import create_store_engine


def test_sqlite_runs_in_wal_mode_with_foreign_keys_on(tmp_path: Path) -> None:
    """Every SQLite connection gets WAL, enforced foreign keys and a busy timeout."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(sa.text("PRAGMA busy_timeout")).scalar() == 5000
    engine.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    """A dangling reference is refused (SQLite's default would accept it)."""
    engine = create_store_engine(f"sqlite:///{tmp_path / 'fk.db'}")
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        connection.execute(
            sa.text("CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent(id))")
        )
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO child (id, p) VALUES (1, 42)"))
    engine.dispose()


def test_postgresql_url_without_driver_uses_psycopg(postgres_url: str) -> None:
    """A plain postgresql:// URL is served by psycopg 3, the driver Interlock installs."""
    engine = create_store_engine(postgres_url.replace("postgresql+psycopg://", "postgresql://"))
    assert engine.dialect.driver == "psycopg"
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    engine.dispose()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@localhost/test", "unsupported database backend 'mysql'"),
        ("not a url", "not a valid SQLAlchemy URL"),
    ],
)
def test_unsupported_or_malformed_urls_are_refused(url: str, message: str) -> None:
    """Only backends Interlock is tested on are accepted, with a clear message."""
    with pytest.raises(StoreError, match=message):
        create_store_engine(url)
