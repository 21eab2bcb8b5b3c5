"""The SQL connector: the manifest's parameterised statements on the system's own database.

``systems.X.privacy.sql.database`` names a vault secret holding a SQLAlchemy
URL, ``postgresql+psycopg://`` or ``mysql+pymysql://`` (``mariadb+pymysql://``).
Each action runs its one statement through ``sqlalchemy.text()`` with bound
parameters only: ``:subject`` is the identifier, a rectification's corrected
fields bind by name. A correction the statement does not bind, or a bind no
value is given for, is refused before anything runs. ``access`` and
``export`` run the ``access`` SELECT and answer its rows as JSON objects
(dates as ISO 8601 strings, decimals as strings, bytes as base64);
``erase`` and ``rectify`` answer the affected row count. Everything runs in
one transaction; no rows is ``not_found``.

Transport (fail closed): a database on another host than this one must be
reached over TLS that verifies the server — PostgreSQL ``sslmode=verify-full``,
MariaDB/MySQL ``ssl_ca=`` (with host name checking left on). A URL that would
connect in clear to another host is refused before connecting.

A statement runs at most :data:`STATEMENT_SECONDS`. Connection and
operational errors (a timeout included) may pass (``retryable``); errors in the
statement itself will not. Messages name the error class and SQL state, never
the driver's text (it can quote the bound values).
"""

from __future__ import annotations

import base64
import math
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

from interlock.config.manifest import SqlConnector as SqlSettings
from interlock.config.remote_tls import check_database_tls
from interlock.errors import InterlockError
from interlock.privacy.connectors.base import (
    Action,
    ConnectorAnswer,
    ConnectorEnvironment,
    ConnectorError,
)

__all__ = ["MAX_ROWS", "STATEMENT_SECONDS", "SqlConnector", "check_database_url", "json_value"]

_DRIVERS: Final = frozenset({"postgresql+psycopg", "mysql+pymysql", "mariadb+pymysql"})
#: The most rows an access statement may answer (the rest would not fit an export).
MAX_ROWS: Final = 100_000
_CONNECT_TIMEOUT: Final = 10  # seconds
#: How long one statement may run (PostgreSQL statement_timeout; MariaDB/MySQL socket
#: read and write timeouts): a hung database must not hold the request worker.
STATEMENT_SECONDS = 30
_MAX_RECORDS: Final = 2**31 - 1


class SqlConnector:
    """Runs ``system``'s statements on its database; one instance per system, reusable."""

    def __init__(self, system: str, settings: SqlSettings, environment: ConnectorEnvironment):
        """``settings``: the system's ``privacy.sql``."""
        self.system = system
        self._settings = settings
        self._environment = environment

    def ask(
        self,
        action: Action,
        request_id: str,
        subject_kind: str,
        identifier: str,
        corrections: Mapping[str, str] | None,
    ) -> ConnectorAnswer:
        """Run ``action``'s statement for ``identifier`` (see the module's docstring)."""
        statement_name = "access" if action == "export" else action
        statement = getattr(self._settings, statement_name)
        if statement is None:
            raise ConnectorError(
                f"the system's SQL connector has no {statement_name} statement", retryable=False
            )
        clause = sa.text(statement)
        values = _binds(set(clause._bindparams), identifier, corrections, action)
        url = self._url()
        postgres = url.drivername.startswith("postgresql")
        connect_args: dict[str, int] = {"connect_timeout": _CONNECT_TIMEOUT}
        if not postgres:
            connect_args |= {"read_timeout": STATEMENT_SECONDS, "write_timeout": STATEMENT_SECONDS}
        engine = sa.create_engine(url, poolclass=NullPool, connect_args=connect_args)
        try:
            with engine.begin() as connection:
                if postgres:  # for this transaction only; a constant, no value of the request
                    connection.execute(
                        sa.text(f"SET LOCAL statement_timeout = {STATEMENT_SECONDS * 1000:d}")
                    )
                result = connection.execute(clause, values)
                if statement_name == "access":
                    rows = result.mappings().fetchmany(MAX_ROWS + 1)
                    if len(rows) > MAX_ROWS:
                        raise ConnectorError(
                            f"the access statement answered more than {MAX_ROWS} rows",
                            retryable=False,
                        )
                    data = [{str(k): json_value(v) for k, v in row.items()} for row in rows]
                    return ConnectorAnswer("done" if data else "not_found", len(data), data)
                count = max(result.rowcount, 0)
                return ConnectorAnswer("done" if count else "not_found", min(count, _MAX_RECORDS))
        except sa_exc.SQLAlchemyError as exc:
            raise _failure(exc) from None
        finally:
            engine.dispose()

    def _url(self) -> URL:
        try:
            secret = self._environment.secrets.resolve(self._settings.database)
        except InterlockError as exc:
            raise ConnectorError(
                f"the database URL could not be read from the vault ({exc.code})", retryable=True
            ) from None
        try:
            url = make_url(secret.reveal().decode())
        except (sa_exc.ArgumentError, UnicodeDecodeError, ValueError):
            raise ConnectorError(
                "the database secret is not a SQLAlchemy URL", retryable=False
            ) from None
        try:
            check_database_url(url)
        except InterlockError as exc:
            raise ConnectorError(exc.message, retryable=False) from None
        return url


def check_database_url(url: URL) -> None:
    """Refuse a driver outside the allow-list, or a URL that would cross the network in clear."""
    if url.drivername not in _DRIVERS:
        raise InterlockError(
            "the database URL must use postgresql+psycopg://, mysql+pymysql:// or "
            f"mariadb+pymysql://, not {url.drivername}://"
        )
    check_database_tls(url)


def _binds(
    names: set[str], identifier: str, corrections: Mapping[str, str] | None, action: Action
) -> dict[str, str]:
    given = dict(corrections or {}) if action == "rectify" else {}
    if "subject" in given:
        raise ConnectorError("a correction may not be named subject", retryable=False)
    unknown = sorted(set(given) - names)
    if unknown:
        raise ConnectorError(
            f"the rectify statement binds no field named {', '.join(unknown)}", retryable=False
        )
    values = {"subject": identifier, **given}
    missing = sorted(names - set(values))
    if missing:
        raise ConnectorError(
            f"no value for the statement's bind parameter(s) {', '.join(missing)}",
            retryable=False,
        )
    return values


def _failure(exc: sa_exc.SQLAlchemyError) -> ConnectorError:
    """A message from the error's class and SQL state only (driver text may quote values)."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlstate", None)
    if code is None and orig is not None and getattr(orig, "args", None):
        first = orig.args[0]
        code = first if isinstance(first, int) else None
    detail = type(orig).__name__ if orig is not None else type(exc).__name__
    suffix = f" {code}" if code is not None else ""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return ConnectorError(f"the database could not be used ({detail}{suffix})", retryable=True)
    if isinstance(exc, sa_exc.DisconnectionError):
        return ConnectorError("the database connection was lost", retryable=True)
    return ConnectorError(f"the statement failed ({detail}{suffix})", retryable=False)


def json_value(value: Any) -> Any:  # noqa: PLR0911  (one return per type, read as a table)
    """A database value as JSON: ISO 8601 times, decimals as strings, bytes as base64."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return str(value)
