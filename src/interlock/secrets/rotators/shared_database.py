"""Rotate a shared-database consumer's login: two alternating roles, PostgreSQL or MariaDB.

``interlock db apply`` gives each consuming client two login roles
(``<prefix>_<client>_a`` and ``_b``, identical grants, created without
``LOGIN``/locked). A rotation gives the *other* login a fresh password and
lets it log in, connects with it, and promotes it; the retire after the
overlap gives the old login a random password nobody knows, takes its login
away (PostgreSQL ``NOLOGIN``, MariaDB ``ACCOUNT LOCK``) and ends its sessions.
The secret's value is ``{"username": ..., "password": ...}``.

Settings: ``integration`` and ``client`` — the rotator reads the server,
its TLS settings and the admin credential from the manifest's ``databases:``
entry, so nothing about the server lives in the secret's settings.

PostgreSQL receives a SCRAM-SHA-256 verifier computed by libpq, MariaDB the
``mysql_native_password`` hash (``IDENTIFIED BY PASSWORD``): the clear
password never reaches either server's statement log or binary log.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping
from typing import Any, Final

from interlock.databases.connection import Login, login_from, postgresql_params
from interlock.databases.plan import ConsumerPlan, Plan, plan_for
from interlock.errors import InterlockError, InvalidRequestError
from interlock.secret import Secret
from interlock.secrets.rotators.base import Credential, RotationError, RotatorContext, option
from interlock.secrets.rotators.two_logins import login_of, password_of, strict_login_of

__all__ = ["SharedDatabaseRotator", "build"]

_PASSWORD_BYTES: Final = 32  # 256 bits


def native_password_hash(password: str) -> str:
    """MariaDB's ``mysql_native_password`` stored form: ``*`` and SHA1(SHA1(password)) in hex."""
    # The server's own format (it stores and compares exactly this); not our choice of hash.
    inner = hashlib.sha1(password.encode()).digest()  # noqa: S324
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


class SharedDatabaseRotator:
    """Alternates between a consumer's two logins, setting and testing fresh passwords."""

    def __init__(self, plan: Plan, consumer: ConsumerPlan, admin: Login) -> None:
        self._plan = plan
        self._consumer = consumer
        self._admin = admin

    def generate(self, current: Credential) -> bytes:
        """The other login, with a fresh random password."""
        user = self._login(current, strict=False)
        first, second = self._consumer.logins
        other = second if user == first else first
        password = secrets.token_urlsafe(_PASSWORD_BYTES)
        return json.dumps({"username": other, "password": password}).encode()

    def set(self, pending: Credential, current: Credential) -> None:
        """Give the pending login its password and let it log in (repeatable)."""
        del current
        self._alter(self._strict(pending), password_of(pending), login=True)

    def test(self, pending: Credential) -> None:
        """Connect as the pending login and check who the server says we are."""
        user = self._strict(pending)
        login = Login(user, Secret(password_of(pending).encode()))
        try:
            seen = self._whoami(login)
        except InterlockError:
            raise
        except Exception:  # noqa: BLE001  (a driver's error text may name the password's hash)
            raise RotationError(f"could not log in as {user} with the new password") from None
        if seen != user:
            raise RotationError(f"the server did not log the new password in as {user}")

    def retire(self, old: Credential, current: Credential) -> None:
        """Lock the old login out: a random password, no login, its sessions ended."""
        user = self._login(old, strict=False)
        if user is None or user == self._login(current, strict=False):
            return
        self._alter(user, secrets.token_urlsafe(_PASSWORD_BYTES), login=False)

    # -- the two servers ------------------------------------------------------------------

    def _whoami(self, login: Login) -> str:
        if self._plan.kind == "postgresql":
            import psycopg

            with psycopg.connect(**postgresql_params(self._plan.system, login)) as connection:
                row = connection.execute("SELECT current_user").fetchone()
            return str(row[0]) if row else ""
        from interlock.databases import mariadb

        schema = self._consumer.schema  # the only database the consumer may enter
        with (
            mariadb.connect(self._plan, login, schema) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute("SELECT SUBSTRING_INDEX(CURRENT_USER(), '@', 1)")
            row = cursor.fetchone()
        return str(row[0]) if row else ""

    def _alter(self, user: str, password: str, *, login: bool) -> None:
        try:
            if self._plan.kind == "postgresql":
                self._alter_postgresql(user, password, login=login)
            else:
                self._alter_mariadb(user, password, login=login)
        except InterlockError:
            raise
        except Exception as error:  # noqa: BLE001  (only the error's type and code are kept)
            code = getattr(error, "sqlstate", None) or (error.args[0] if error.args else "?")
            raise RotationError(
                f"the database refused the change for {user} ({type(error).__name__} {code})"
            ) from None

    def _alter_postgresql(self, user: str, password: str, *, login: bool) -> None:
        import psycopg

        from interlock.secrets.rotators.postgresql import alter_role

        params = postgresql_params(self._plan.system, self._admin)
        with psycopg.connect(**params, autocommit=True) as connection:
            connection.execute(alter_role(connection, user, password, login=login))
            if not login:
                connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    (user,),
                )

    def _alter_mariadb(self, user: str, password: str, *, login: bool) -> None:
        from interlock.databases import mariadb

        host = self._consumer.from_host
        lock = "ACCOUNT UNLOCK" if login else "ACCOUNT LOCK"
        with mariadb.connect(self._plan, self._admin) as connection, connection.cursor() as cursor:
            cursor.execute(
                f"ALTER USER %s@%s IDENTIFIED BY PASSWORD %s {lock}",
                (user, host, native_password_hash(password)),
            )
            if not login:
                cursor.execute(
                    "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", (user,)
                )
                for (session,) in cursor.fetchall():
                    cursor.execute("KILL CONNECTION %s", (int(session),))

    # -- the secret's value ---------------------------------------------------------------

    def _strict(self, credential: Credential) -> str:
        return strict_login_of(credential, self._consumer.logins)

    def _login(self, credential: Credential, *, strict: bool) -> str | None:
        return login_of(credential, self._consumer.logins, strict=strict)


def build(config: Mapping[str, Any], context: RotatorContext) -> SharedDatabaseRotator:
    """The rotator for ``-o integration=NAME -o client=CLIENT``."""
    integration, client = option(config, "integration"), option(config, "client")
    plan = plan_for(context.manifest(), integration)
    consumer = next((c for c in plan.consumers if c.client == client), None)
    if consumer is None:
        raise InvalidRequestError(f"{client!r} is not a consumer of {integration}")
    admin = login_from(
        context.secret(plan.system.admin), f"the admin credential of {plan.system_name}"
    )
    return SharedDatabaseRotator(plan, consumer, admin)
