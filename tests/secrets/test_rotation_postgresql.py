"""The PostgreSQL rotator end to end on the real server: new password works, old one stops.

The local server trusts every connection from 127.0.0.1 (``pg_hba.conf``), so
a wrong password would log in too and prove nothing. The set-up therefore
makes the server check passwords for the test's roles only: it puts

    host all +interlock_rotation_test 127.0.0.1/32 scram-sha-256

at the top of the server's ``pg_hba.conf`` (once; it matches only members of
that group role, which these tests create) and reloads the configuration. It
checks that a wrong password is refused before trusting any result. Where
the file cannot be written (another machine's server), the tests skip, or
fail under ``INTERLOCK_REQUIRE_SERVICES=1``.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.secrets import rotators
from interlock.secrets.rotation import RotationEngine
from interlock.secrets.rotators.base import RotatorContext
from interlock.secrets.vault import SecretInfo, Vault
from interlock.store import Deployment, initialise
from interlock.testing.services import POSTGRES, require_env
from tests.conftest import need
from tests.secrets.rotation_support import ADMIN

# The rotator changes logins on the real PostgreSQL.
pytestmark = pytest.mark.postgres

GROUP: Final = "interlock_rotation_test"
HBA_LINE: Final = f"host all +{GROUP} 127.0.0.1/32 scram-sha-256"


def _plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _ensure_password_auth(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """Make the server check passwords of GROUP's members over TCP (see the module docstring)."""
    row = admin.execute("SHOW hba_file").fetchone()
    hba = Path(str(row[0])) if row else None
    if hba is None or not hba.exists():
        _unavailable("the server's pg_hba.conf is not on this machine")
        return
    text = hba.read_text()
    if HBA_LINE not in text.splitlines():
        try:
            hba.write_text(
                f"# Interlock tests: passwords checked for {GROUP} members\n{HBA_LINE}\n{text}"
            )
        except OSError:
            _unavailable(f"cannot write {hba} to make the server check passwords")
            return
        admin.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)


def _unavailable(reason: str) -> None:
    if require_env():
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def logins() -> Iterator[tuple[str, str, str]]:
    """Two login roles in a fresh application role, password auth in force; dropped after."""
    url = _plain(need(POSTGRES))
    suffix = secrets.token_hex(4)
    app, first, second = f"rt_{suffix}_app", f"rt_{suffix}_a", f"rt_{suffix}_b"
    with psycopg.connect(url, autocommit=True) as admin:
        _ensure_password_auth(admin)
        admin.execute(
            sql.SQL(
                "DO $$ BEGIN CREATE ROLE {} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$"
            ).format(sql.Identifier(GROUP))
        )
        admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(app)))
        for login in (first, second):
            admin.execute(
                sql.SQL("CREATE ROLE {} NOLOGIN IN ROLE {}, {}").format(
                    sql.Identifier(login), sql.Identifier(app), sql.Identifier(GROUP)
                )
            )
    yield url, first, second
    with psycopg.connect(url, autocommit=True) as admin:
        for role in (first, second, app):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", (role,)
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _logs_in(url: str, user: str, password: str) -> bool:
    """Whether the server lets ``user`` in with ``password`` over TCP; other errors raise."""
    target = make_url(url)
    try:
        with psycopg.connect(
            host="127.0.0.1",
            port=target.port or 5432,
            dbname=target.database,
            user=user,
            password=password,
            connect_timeout=60,
        ) as connection:
            row = connection.execute("SELECT current_user").fetchone()
            return row is not None and row[0] == user
    except psycopg.OperationalError as error:
        refused = ("password authentication failed", "not permitted to log in")
        if any(text in str(error) for text in refused):
            return False
        raise


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """The deployment whose vault holds the database credential."""
    opened = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    yield opened
    opened.close()


def _engine(vault: Vault, deployment: Deployment, later: timedelta) -> RotationEngine:
    def unused() -> object:
        raise AssertionError("not needed")

    context = RotatorContext(vault, deployment.engine, deployment.keyring, unused, unused)  # type: ignore[arg-type]

    def build(info: SecretInfo) -> rotators.Rotator:
        return rotators.build(info.rotator or "", info.rotator_config, context)

    return RotationEngine(
        vault,
        deployment.engine,
        build,
        actor=ADMIN,
        now=lambda: datetime.now(UTC) + later,
        audit=MemorySink(),
    )


def _credential(vault: Vault, stage: str = "current") -> dict[str, str]:
    secret, _ = vault.read("db/app", actor=ADMIN, stage=stage)  # type: ignore[arg-type]
    value: dict[str, str] = json.loads(secret.reveal())
    return value


def test_postgresql_rotation_alternates_logins_and_the_old_password_stops_after_the_overlap(
    logins: tuple[str, str, str], deployment: Deployment
) -> None:
    """Real ALTER ROLE: the new password logs in, the old one works until retired, then not."""
    url, first, second = logins
    vault = Vault(deployment.engine, deployment.keyring, audit=MemorySink(), cache_seconds=0)
    initial = secrets.token_urlsafe(24)
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(first), sql.Literal(initial)
            )
        )
    assert _logs_in(url, first, initial)
    assert not _logs_in(url, first, initial + "x"), "the server does not check passwords"

    vault.write("db/admin-url", url.encode(), actor=ADMIN)
    vault.write(
        "db/app",
        json.dumps({"username": first, "password": initial}).encode(),
        actor=ADMIN,
        kind="database_password",
    )
    vault.configure(
        "db/app",
        actor=ADMIN,
        overlap=1,
        rotator="postgresql",
        rotator_config={"admin": "secret://db/admin-url", "logins": f"{first},{second}"},
    )
    assert _engine(vault, deployment, timedelta(0)).rotate("db/app") == 2
    new = _credential(vault)
    assert new["username"] == second
    assert new["password"] != initial
    assert _logs_in(url, second, new["password"])
    assert not _logs_in(url, second, "wrong")
    assert _logs_in(url, first, initial)  # the overlap: the old credential still works

    assert _engine(vault, deployment, timedelta(seconds=5)).retire("db/app") == 1
    assert not _logs_in(url, first, initial)
    assert _logs_in(url, second, new["password"])

    # The next rotation goes back to the first login, with a password never used before.
    assert _engine(vault, deployment, timedelta(seconds=5)).rotate("db/app") == 3
    third = _credential(vault)
    assert third["username"] == first
    assert third["password"] != initial
    assert _logs_in(url, first, third["password"])
    assert not _logs_in(url, first, initial)
    assert _logs_in(url, second, new["password"])  # the previous one, in its overlap
    with psycopg.connect(url, autocommit=True) as admin:
        row = admin.execute(
            "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (first,)
        ).fetchone()
    assert row is not None
    assert str(row[0]).startswith("SCRAM-SHA-256$")
