"""Migrations apply, re-apply and roll back on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from interlock.store import create_store_engine, current_revision, head_revision, upgrade
from interlock.store.migrate import downgrade


def _tables(engine: sa.Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def test_upgrade_creates_the_schema_and_is_idempotent(store_url: str) -> None:
    """A fresh database reaches head; a second upgrade changes nothing."""
    engine = create_store_engine(store_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert {"deployment", "alembic_version"} <= _tables(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    engine.dispose()


def test_downgrade_to_base_removes_every_table(store_url: str) -> None:
    """Each migration's downgrade undoes its upgrade."""
    engine = create_store_engine(store_url)
    upgrade(engine)
    downgrade(engine, "base")
    assert _tables(engine) <= {"alembic_version"}
    assert current_revision(engine) is None
    engine.dispose()


def test_schema_matches_the_models_after_upgrade(store_url: str) -> None:
    """Autogenerate finds no difference between migrations and the ORM models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from interlock.tables import metadata

    engine = create_store_engine(store_url)
    upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
    engine.dispose()


def test_concurrent_starts_migrate_once_on_postgresql(postgres_url: str) -> None:
    """Replicas starting together serialise on an advisory lock and all succeed."""
    engine = create_store_engine(postgres_url)
    errors: list[BaseException] = []

    def start() -> None:
        try:
            upgrade(engine)
        except Exception as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert current_revision(engine) == head_revision()
    engine.dispose()
