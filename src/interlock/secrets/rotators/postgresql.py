"""Rotate a PostgreSQL login with two alternating roles, so the old password overlaps.

PostgreSQL gives a role one password. To let the old credential keep working
through the overlap and stop after it, the application uses two login roles
(say ``app_a`` and ``app_b``, both members of the application's group role)
and the secret's value names one of them: ``{"username": ..., "password":
...}``. A rotation gives the *other* login a fresh password (``ALTER ROLE ...
LOGIN PASSWORD``), connects with it, and promotes it; the retire after the
overlap gives the old login a random password nobody knows and ``NOLOGIN``,
and ends its sessions.

Settings: ``admin`` - a ``secret://`` reference to the admin connection URL
(a role allowed to alter the logins); ``logins`` - the two login roles,
comma-separated; optionally ``host``, ``port``, ``dbname`` for the test
connection (default: the admin URL's) and ``terminate_sessions`` (default
``true``).

The password is sent as a SCRAM-SHA-256 verifier computed by libpq
(``PQencryptPasswordConn``), the way ``psql``'s ``\\password`` does, so the
clear password never reaches the server's statement log; it is composed as
a SQL literal by ``psycopg.sql``, never by string formatting (``ALTER ROLE``
takes no bind parameters).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from interlock.errors import InvalidRequestError
from interlock.secret import Secret
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext, option
from interlock.secrets.rotators.two_logins import login_of, password_of, strict_login_of

__all__ = ["PostgresqlRotator", "alter_role", "build"]

_CONNECT_SECONDS: Final = 30
_PASSWORD_BYTES: Final = 32  # 256 bits


class PostgresqlRotator:
    """Alternates between two login roles, setting and testing fresh passwords."""

    def __init__(
        self, admin: Secret, logins: tuple[str, str], test_target: Mapping[str, str], *, kill: bool
    ) -> None:
        """``admin``: the admin connection URL; ``test_target``: host, port, dbname."""
        self._admin = admin
        self._logins = logins
        self._target = dict(test_target)
        self._kill = kill

    def generate(self, current: Credential) -> bytes:
        """The other login, with a fresh random password."""
        user = login_of(current, self._logins, strict=False)
        other = self._logins[1] if user == self._logins[0] else self._logins[0]
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        return json.dumps({"username": other, "password": password}).encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """Give the pending login its password and let it log in (repeatable)."""
        user = strict_login_of(pending, self._logins)
        self._alter(user, password_of(pending), login=True)

    def test(self, pending: Credential) -> None:
        """Connect as the pending login with its password and check who the server says we are."""
        user = strict_login_of(pending, self._logins)
        try:
            with psycopg.connect(
                host=self._target["host"],
                port=int(self._target["port"]),
                dbname=self._target["dbname"],
                user=user,
                password=password_of(pending),
                connect_timeout=_CONNECT_SECONDS,
            ) as connection:
                row = connection.execute("SELECT current_user").fetchone()
        except psycopg.Error:
            raise RotationError(
                f"could not log in to PostgreSQL as {user} with the new password"
            ) from None
        if row is None or row[0] != user:
            raise RotationError(f"PostgreSQL did not log the new password in as {user}")

    def retire(self, old: Credential, current: Credential) -> None:
        """Lock the old login out: a random password, ``NOLOGIN``, its sessions ended."""
        user = login_of(old, self._logins, strict=False)
        if user is None or user == login_of(current, self._logins, strict=False):
            return  # not one of ours, or the login now in use
        self._alter(user, secrets.token_urlsafe(_PASSWORD_BYTES), login=False)
        if self._kill:
            self._admin_execute(
                sql.SQL(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = {}"
                ).format(sql.Literal(user))
            )

    def _alter(self, user: str, password: str, *, login: bool) -> None:
        self._admin_execute(lambda connection: alter_role(connection, user, password, login=login))

    def _admin_execute(self, query: Any) -> None:
        url = self._admin.reveal().decode()
        try:
            with psycopg.connect(
                url, connect_timeout=_CONNECT_SECONDS, autocommit=True
            ) as connection:
                composed = query(connection) if callable(query) else query
                connection.execute(composed)
        except psycopg.Error as error:
            # The driver's message names roles and hosts, never the password sent
            # (a verifier, at that); keep only its SQLSTATE to be sure.
            raise RotationError(
                f"PostgreSQL refused the change (SQLSTATE {error.sqlstate or 'none'})"
            ) from None


def _test_target(config: Mapping[str, Any], admin: Secret) -> dict[str, str]:
    url = make_url(admin.reveal().decode())
    return {
        "host": str(config.get("host") or url.host or "127.0.0.1"),
        "port": str(config.get("port") or url.port or 5432),
        "dbname": str(config.get("dbname") or url.database or "postgres"),
    }


def build(config: Mapping[str, Any], context: RotatorContext) -> PostgresqlRotator:
    """The rotator for ``-o admin=secret://... -o logins=app_a,app_b``."""
    logins = tuple(n.strip() for n in option(config, "logins").split(",") if n.strip())
    if len(logins) != 2 or logins[0] == logins[1]:
        raise InvalidRequestError("logins names two different login roles: -o logins=app_a,app_b")
    admin_url = context.secret(option(config, "admin"))
    # SQLAlchemy spells the driver into the scheme; libpq wants the plain one.
    plain = make_url(admin_url.reveal().decode()).set(drivername="postgresql")
    admin = Secret(plain.render_as_string(hide_password=False).encode())
    kill = str(config.get("terminate_sessions", "true")).lower() not in {"false", "0", "no"}
    return PostgresqlRotator(admin, (logins[0], logins[1]), _test_target(config, admin), kill=kill)


def alter_role(
    connection: psycopg.Connection[Any], user: str, password: str, *, login: bool
) -> sql.Composed:
    """``ALTER ROLE user WITH [NO]LOGIN PASSWORD`` with libpq's SCRAM-SHA-256 verifier."""
    verifier = connection.pgconn.encrypt_password(
        password.encode(), user.encode(), b"scram-sha-256"
    )
    return sql.SQL("ALTER ROLE {} WITH {} PASSWORD {}").format(
        sql.Identifier(user),
        sql.SQL("LOGIN" if login else "NOLOGIN"),
        sql.Literal(verifier.decode("ascii")),
    )
