"""Alembic environment: always run programmatically by ``interlock.store.migrate``.

The caller hands over an open connection in ``config.attributes["connection"]``;
there is no ``alembic.ini`` and no URL in any file (URLs may carry secrets).
Upgrades run the version scripts, which need no models; comparing the models with
the migrated schema imports :mod:`interlock.tables` first (tests/store/test_migrate.py).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from interlock.store.base import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise TypeError("interlock migrations must be run through interlock.store.migrate")
_run(connection)
