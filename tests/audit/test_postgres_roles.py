"""PostgreSQL: the application role may only INSERT and SELECT; the maintenance role may prune."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from interlock.audit.prune import prune
from interlock.audit.schema import BODIES, LEAVES, grant_roles
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from tests.audit.conftest import T0, sample_entry


@pytest.fixture
def roles(postgres_url: str) -> Iterator[tuple[str, str]]:
    """Two fresh login roles (application, maintenance), dropped afterwards."""
    suffix = uuid.uuid4().hex[:10]
    names = (f"audit_app_{suffix}", f"audit_maint_{suffix}")
    admin = sa.create_engine(postgres_url)
    with admin.begin() as connection:
        for name in names:
            connection.exec_driver_sql(f"CREATE ROLE {name} LOGIN")
    try:
        yield names
    finally:
        with admin.begin() as connection:
            for name in names:
                connection.exec_driver_sql(f"DROP OWNED BY {name}")
                connection.exec_driver_sql(f"DROP ROLE {name}")
        admin.dispose()


def _as(url: str, role: str) -> str:
    return make_url(url).set(username=role).render_as_string(hide_password=False)


def test_roles_and_grants(
    postgres_url: str, roles: tuple[str, str], keyring: Keyring, tmp_path: Path
) -> None:
    """The app role appends but cannot rewrite; the maintenance role prunes only through the log."""
    app_role, maintenance_role = roles
    owner = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=postgres_url), keyring, witnesses=[]
    )
    for i in range(6):
        owner.sink.record(sample_entry(i))
    grant_roles(owner.store.engine, app_role, maintenance_role)
    owner.close()

    app = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=_as(postgres_url, app_role)),
        keyring,
        witnesses=[],
    )
    try:
        assert app.sink.record(sample_entry(6)) == 6
        engine = app.store.engine
        for statement in (
            sa.update(LEAVES).values(leaf_hash=b"\0" * 32),
            sa.delete(BODIES).where(BODIES.c.idx == 0),
            sa.text("TRUNCATE audit_bodies"),
            sa.text("DROP TRIGGER audit_leaves_append_only ON audit_leaves"),
        ):
            with (
                pytest.raises(DBAPIError, match=r"permission denied|must be owner"),
                engine.begin() as c,
            ):
                c.execute(statement)
        with pytest.raises(DBAPIError, match="permission denied"):
            prune(app.store, app.keys, {"order-sync": timedelta(0)}, now=T0 + timedelta(days=1))
    finally:
        app.close()

    maintenance = AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=_as(postgres_url, maintenance_role)),
        keyring,
        witnesses=[],
    )
    try:
        engine = maintenance.store.engine
        with pytest.raises(DBAPIError, match="only once pruned"), engine.begin() as connection:
            connection.execute(sa.delete(BODIES).where(BODIES.c.idx == 0))
        reports = prune(
            maintenance.store,
            maintenance.keys,
            {"order-sync": timedelta(0)},
            now=T0 + timedelta(days=1),
        )
        assert reports[0].pruned == 7
        assert verify_log(engine).pruned == 7
    finally:
        maintenance.close()
