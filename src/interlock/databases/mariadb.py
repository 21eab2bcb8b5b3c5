"""MariaDB: a plan as statements, applied idempotently; the catalog as privileges.

PyMySQL quotes values (``%s`` placeholders, escaped by the connection, which
knows the server's ``NO_BACKSLASH_ESCAPES`` mode) but offers nothing for
identifiers. Identifiers are therefore checked against
``^[a-z_][a-z0-9_]{0,63}$`` (the manifest allows nothing else) and wrapped in
backticks: with no backtick, quote or ``%`` possible in the name, the quoting
cannot be escaped. Account names and hosts are string literals in MariaDB's
grammar and are bound like any other value.

Views are ``SQL SECURITY DEFINER`` views owned by a dedicated, locked account
(``<prefix>_owner@localhost``, ``ACCOUNT LOCK``: nobody logs in as it) that
holds column-level ``SELECT``/``UPDATE`` on exactly the source columns used;
each consumer's views live in their own database. Writable views carry
``WITH CASCADED CHECK OPTION``.

MariaDB DDL is not transactional: every statement commits on its own. The
statements are written to be repeated (``IF NOT EXISTS``, ``CREATE OR
REPLACE``, a full ``REVOKE`` before the grants), so a failed apply is
finished by running it again; :class:`ApplyError` says how many statements
ran before the failure.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, assert_never

import pymysql  # type: ignore[import-untyped]
import pymysql.converters  # type: ignore[import-untyped]

from interlock.config.databases import And, Compare, Filter, InList, IsNull, Not, Or
from interlock.databases.connection import CONNECT_SECONDS, Login, mariadb_ssl
from interlock.databases.drift import Drift, Privilege, compare
from interlock.databases.plan import ConsumerPlan, Plan, ViewPlan
from interlock.errors import InterlockError

__all__ = [
    "ApplyError",
    "Statement",
    "apply",
    "audit",
    "connect",
    "ident",
    "render",
    "source_columns",
    "statements",
    "view_statement",
]

_IDENTIFIER: Final = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
_OWNER_HOST: Final = "localhost"
_PUBLIC_GRANTEE: Final = "'PUBLIC'@''"
_PRIVILEGE: Final = re.compile(r"^[A-Z]+( [A-Z]+)*$")
Value = str | int | Decimal | bool


@dataclass(frozen=True)
class Statement:
    """SQL with ``%s`` for each value, and the values (bound by PyMySQL's escaping)."""

    text: str
    params: tuple[Value, ...] = ()


def ident(*names: str) -> str:
    """``a``.``b``: each part checked against the identifier pattern, then backtick-quoted."""
    for name in names:
        if not _IDENTIFIER.match(name):
            raise ValueError(f"{name!r} is not an identifier Interlock writes")
    return ".".join(f"`{name}`" for name in names)


def _columns(columns: Sequence[str]) -> str:
    return ", ".join(ident(c) for c in columns)


def filter_sql(tree: Filter) -> tuple[str, tuple[Value, ...]]:
    """A row filter as SQL with ``%s`` for each literal, and the literals."""
    if isinstance(tree, Compare):
        return f"{ident(tree.column)} {tree.op} %s", (tree.value,)
    if isinstance(tree, InList):
        marks = ", ".join("%s" for _ in tree.values)
        return f"{ident(tree.column)} IN ({marks})", tree.values
    if isinstance(tree, IsNull):
        return f"{ident(tree.column)} IS {'NOT ' if tree.negated else ''}NULL", ()
    if isinstance(tree, Not):
        text, params = filter_sql(tree.part)
        return f"NOT ({text})", params
    if isinstance(tree, And | Or):
        parts = [filter_sql(part) for part in tree.parts]
        joiner = " AND " if isinstance(tree, And) else " OR "
        return (
            "(" + joiner.join(text for text, _ in parts) + ")",
            tuple(value for _, params in parts for value in params),
        )
    assert_never(tree)


def view_statement(plan: Plan, consumer: ConsumerPlan, view: ViewPlan) -> Statement:
    where, params = ("", ()) if view.row_filter is None else filter_sql(view.row_filter)
    check = " WITH CASCADED CHECK OPTION" if view.write else ""
    return Statement(
        f"CREATE OR REPLACE DEFINER = %s@%s SQL SECURITY DEFINER VIEW "  # noqa: S608  (names by ident(), values bound)
        f"{ident(consumer.schema, view.name)} AS SELECT {_columns(view.columns)} "
        f"FROM {ident(view.source_schema, view.source_table)}"
        f"{' WHERE ' + where if where else ''}{check}",
        (plan.owner, _OWNER_HOST, *params),
    )


def _owner(plan: Plan) -> Iterator[Statement]:
    owner = (plan.owner, _OWNER_HOST)
    yield Statement("CREATE USER IF NOT EXISTS %s@%s ACCOUNT LOCK", owner)
    yield Statement("ALTER USER %s@%s ACCOUNT LOCK", owner)
    yield Statement("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", owner)
    for schema, table in plan.source_tables:
        views = [
            v
            for c in plan.consumers
            for v in c.views
            if (v.source_schema, v.source_table) == (schema, table)
        ]
        read = list(dict.fromkeys(c for v in views for c in v.columns))
        write = list(dict.fromkeys(c for v in views for c in v.write))
        yield Statement(
            f"GRANT SELECT ({_columns(read)}) ON {ident(schema, table)} TO %s@%s", owner
        )
        if write:
            yield Statement(
                f"GRANT UPDATE ({_columns(write)}) ON {ident(schema, table)} TO %s@%s", owner
            )


def _consumer(plan: Plan, consumer: ConsumerPlan) -> Iterator[Statement]:
    seconds = max(1, int(consumer.statement_timeout.total_seconds()))
    yield Statement(f"CREATE DATABASE IF NOT EXISTS {ident(consumer.schema)}")
    for view in consumer.views:
        yield view_statement(plan, consumer, view)
    for login in consumer.logins:
        account = (login, consumer.from_host)
        # Created locked: the rotation engine gives one of the two a password and unlocks it.
        yield Statement("CREATE USER IF NOT EXISTS %s@%s ACCOUNT LOCK", account)
        yield Statement(
            "ALTER USER %s@%s WITH MAX_USER_CONNECTIONS %s MAX_STATEMENT_TIME %s",
            (*account, consumer.connection_limit, seconds),
        )
        yield Statement("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", account)
        yield Statement("SET DEFAULT ROLE NONE FOR %s@%s", account)
        for view in consumer.views:
            name = ident(consumer.schema, view.name)
            yield Statement(f"GRANT SELECT ON {name} TO %s@%s", account)
            if view.write:
                yield Statement(
                    f"GRANT UPDATE ({_columns(view.write)}) ON {name} TO %s@%s", account
                )


def statements(plan: Plan) -> list[Statement]:
    """Every statement of ``plan``, in order (owner first, then each consumer)."""
    found = list(_owner(plan))
    for consumer in plan.consumers:
        found.extend(_consumer(plan, consumer))
    return found


def render(statement: Statement) -> str:
    """The statement as text, values quoted as PyMySQL quotes them (backslash escapes)."""
    quoted = tuple(pymysql.converters.escape_item(v, "utf8mb4") for v in statement.params)
    return (statement.text % quoted) + ";"


class ApplyError(InterlockError):
    """The server refused a statement; those before it stay applied (run apply again)."""

    code = "database_apply_failed"

    def __init__(self, message: str, applied: int) -> None:
        super().__init__(message)
        self.applied = applied


def connect(plan: Plan, login: Login, database: str | None = None) -> Any:
    """A connection to the plan's server, TLS verified unless it is on loopback."""
    system = plan.system
    target: dict[str, Any] = (
        {"unix_socket": system.host}
        if system.host.startswith("/")
        else {"host": system.host, "port": system.default_port}
    )
    return pymysql.connect(
        **target,
        user=login.username,
        password=login.password.reveal().decode(),
        database=database or system.database,
        ssl=mariadb_ssl(system),
        connect_timeout=CONNECT_SECONDS,
        autocommit=True,
        charset="utf8mb4",
    )


def _execute(connection: Any, statement: Statement) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement.text, statement.params)


def apply(plan: Plan, admin: Login) -> list[str]:
    """Run every statement, then revoke role memberships beyond the plan; the SQL run."""
    done: list[str] = []
    planned = statements(plan)
    try:
        with connect(plan, admin) as connection:
            for statement in planned:
                _execute(connection, statement)
                done.append(render(statement))
            for drift in _drift(plan, connection):
                for revoke in drift.revoke if isinstance(drift.revoke, list) else ():
                    if any(line.startswith(render(revoke)) for line in done):
                        continue  # a retired account's REVOKE ALL, once
                    _execute(connection, revoke)
                    done.append(f"{render(revoke)}  -- {drift.detail}")
    except pymysql.MySQLError as error:
        code = error.args[0] if error.args else "?"
        raise ApplyError(
            f"MariaDB refused statement {len(done) + 1} of {len(planned)} of the plan of "
            f"{plan.integration} (error {code}); the {len(done)} before it are applied "
            "(MariaDB DDL is not transactional): fix the cause and run apply again",
            len(done),
        ) from None
    return done


# -- the catalog -------------------------------------------------------------------------


def _grantee(user: str, host: str) -> str:
    return f"'{user}'@'{host}'"


def retired_accounts(plan: Plan, connection: Any) -> list[tuple[str, str, bool]]:
    """``(user, host, locked)`` of every account of a consumer the manifest no longer has."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT User, Host, COALESCE(JSON_VALUE(Priv, '$.account_locked'), 0) "
            "FROM mysql.global_priv WHERE LEFT(User, CHAR_LENGTH(%s)) = %s",
            (f"{plan.prefix}_", f"{plan.prefix}_"),
        )
        rows = cursor.fetchall()
    return [(str(u), str(h), str(locked) == "1") for u, h, locked in rows if plan.retired(str(u))]


def found_privileges(plan: Plan, connection: Any) -> list[Privilege]:
    """What the plan's accounts hold, as ``information_schema`` and ``mysql.roles_mapping`` say.

    The accounts of consumers the manifest no longer has are read too; an unlocked one is
    itself drift (``LOGIN``).
    """
    accounts = {_grantee(login, c.from_host): login for c in plan.consumers for login in c.logins}
    accounts[_grantee(plan.owner, _OWNER_HOST)] = plan.owner
    retired = retired_accounts(plan, connection)
    accounts.update({_grantee(user, host): user for user, host, _ in retired})
    # MariaDB 10.11+: what is granted TO PUBLIC, every account holds.
    accounts[_PUBLIC_GRANTEE] = "PUBLIC"
    names = tuple(accounts)
    marks = ", ".join("%s" for _ in names)
    found = [Privilege(user, "attribute", "LOGIN") for user, _, locked in retired if not locked]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT GRANTEE, PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES "  # noqa: S608  (placeholders only)
            f"WHERE GRANTEE IN ({marks})",
            names,
        )
        for grantee, privilege in cursor.fetchall():
            if privilege != "USAGE":
                found.append(Privilege(accounts[grantee], "attribute", f"global {privilege}"))
        # IS_GRANTABLE: the account may pass the privilege on (a GRANT OPTION row of its own).
        cursor.execute(
            "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE "  # noqa: S608  (placeholders only)
            f"FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE IN ({marks})",
            names,
        )
        for grantee, schema, privilege, grantable in cursor.fetchall():
            schema_grant = Privilege(accounts[grantee], "schema", privilege, (schema,))
            found.extend(_with_option(schema_grant, grantable))
        cursor.execute(
            "SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE "  # noqa: S608
            f"FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE IN ({marks})",
            names,
        )
        for grantee, schema, table, privilege, grantable in cursor.fetchall():
            table_grant = Privilege(accounts[grantee], "table", privilege, (schema, table))
            found.extend(_with_option(table_grant, grantable))
        found.extend(_routines(cursor, accounts))
        cursor.execute(
            "SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE "  # noqa: S608
            f"FROM information_schema.COLUMN_PRIVILEGES WHERE GRANTEE IN ({marks})",
            names,
        )
        for grantee, schema, table, column, privilege in cursor.fetchall():
            found.append(Privilege(accounts[grantee], "column", privilege, (schema, table, column)))
        members = [(login, c.from_host) for c in plan.consumers for login in c.logins]
        for login, host in [*members, *((u, h) for u, h, _ in retired)]:
            cursor.execute(
                "SELECT Role FROM mysql.roles_mapping WHERE User = %s AND Host = %s", (login, host)
            )
            found.extend(Privilege(login, "membership", r) for (r,) in cursor.fetchall())
    return [p for p in found if p.role != "PUBLIC" or _managed(plan, p)]


def _with_option(privilege: Privilege, grantable: str) -> list[Privilege]:
    if grantable != "YES":
        return [privilege]
    return [privilege, Privilege(privilege.role, privilege.kind, "GRANT OPTION", privilege.on)]


def _routines(cursor: Any, accounts: dict[str, str]) -> list[Privilege]:
    """Routine grants (``mysql.procs_priv``): a definer-rights procedure reads as its definer."""
    users = tuple({role for role in accounts.values() if role != "PUBLIC"})
    marks = ", ".join("%s" for _ in users)
    cursor.execute(
        "SELECT User, Host, Db, Routine_name, Proc_priv FROM mysql.procs_priv "  # noqa: S608  (placeholders only)
        f"WHERE User IN ({marks})",
        users,
    )
    return [
        Privilege(accounts[_grantee(user, host)], "function", privilege, (schema, routine))
        for user, host, schema, routine, privileges in cursor.fetchall()
        if _grantee(user, host) in accounts
        for privilege in sorted(str(privileges).split(","))
        if privilege
    ]


def _managed(plan: Plan, privilege: Privilege) -> bool:
    """Whether a ``PUBLIC`` privilege touches what the plan manages (or the whole server)."""
    views = {(c.schema, v.name) for c in plan.consumers for v in c.views}
    tables = set(plan.source_tables) | views
    databases = {schema for schema, _ in tables}
    if privilege.kind == "attribute":
        return True
    if privilege.kind == "schema":
        return privilege.on[0] in databases
    return tuple(privilege.on[:2]) in tables


def expected_privileges(plan: Plan) -> set[Privilege]:
    """What the plan grants the accounts (the owner's column grants included)."""
    expected: set[Privilege] = set()
    for schema, table in plan.source_tables:
        views = [
            v
            for c in plan.consumers
            for v in c.views
            if (v.source_schema, v.source_table) == (schema, table)
        ]
        for view in views:
            expected.update(
                Privilege(plan.owner, "column", "SELECT", (schema, table, c)) for c in view.columns
            )
            expected.update(
                Privilege(plan.owner, "column", "UPDATE", (schema, table, c)) for c in view.write
            )
    for consumer in plan.consumers:
        for login in consumer.logins:
            for view in consumer.views:
                expected.add(Privilege(login, "table", "SELECT", (consumer.schema, view.name)))
                expected.update(
                    Privilege(login, "column", "UPDATE", (consumer.schema, view.name, c))
                    for c in view.write
                )
    return expected


def _revoke(plan: Plan, privilege: Privilege, retired: dict[str, list[str]]) -> list[Statement]:
    if privilege.role == "PUBLIC":
        return [s for s in [_revoke_public(privilege)] if s is not None]
    if privilege.role in retired:
        return _retire(privilege, retired[privilege.role])
    consumer = plan.login(privilege.role)
    host = consumer.from_host if consumer is not None else _OWNER_HOST
    if privilege.kind == "membership" and _IDENTIFIER.match(privilege.privilege):
        return [
            Statement(f"REVOKE {ident(privilege.privilege)} FROM %s@%s", (privilege.role, host))
        ]
    return []  # everything else is reset by apply's REVOKE ALL


def _retire(privilege: Privilege, hosts: list[str]) -> list[Statement]:
    """A removed consumer's account, on each host: locked, and stripped of what it holds."""
    if privilege.kind == "membership":
        if not _IDENTIFIER.match(privilege.privilege):
            return []
        what = f"{ident(privilege.privilege)}"
        return [Statement(f"REVOKE {what} FROM %s@%s", (privilege.role, h)) for h in hosts]
    if privilege.kind == "attribute" and privilege.privilege == "LOGIN":
        return [Statement("ALTER USER %s@%s ACCOUNT LOCK", (privilege.role, h)) for h in hosts]
    return [
        Statement("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@%s", (privilege.role, h))
        for h in hosts
    ]


def _revoke_public(privilege: Privilege) -> Statement | None:
    """``REVOKE <privilege> ON <what> FROM PUBLIC`` (the privilege keyword as the catalog says)."""
    keyword = privilege.privilege.removeprefix("global ")
    if not _PRIVILEGE.match(keyword):
        return None
    if privilege.kind == "attribute":
        return Statement(f"REVOKE {keyword} ON *.* FROM PUBLIC")
    if privilege.kind == "schema":
        return Statement(f"REVOKE {keyword} ON {ident(privilege.on[0])}.* FROM PUBLIC")
    if privilege.kind == "table":
        return Statement(f"REVOKE {keyword} ON {ident(*privilege.on)} FROM PUBLIC")
    if privilege.kind == "column":
        schema, table, column = privilege.on
        return Statement(
            f"REVOKE {keyword} ({ident(column)}) ON {ident(schema, table)} FROM PUBLIC"
        )
    return None


def _drift(plan: Plan, connection: Any) -> list[Drift]:
    drifts = compare(plan, found_privileges(plan, connection), expected_privileges(plan))
    retired: dict[str, list[str]] = {}
    for user, host, _ in retired_accounts(plan, connection):
        retired.setdefault(user, []).append(host)
    return [Drift(d.privilege, d.detail, _revoke(plan, d.privilege, retired)) for d in drifts]


def audit(plan: Plan, admin: Login) -> list[Drift]:
    """Every privilege the plan's accounts hold beyond the plan."""
    with connect(plan, admin) as connection:
        return _drift(plan, connection)


def source_columns(plan: Plan, admin: Login) -> dict[tuple[str, str], dict[str, str]]:
    """Each source table's columns and their types (``COLUMN_TYPE``), as the server says now."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    with connect(plan, admin) as connection, connection.cursor() as cursor:
        for schema, table in plan.source_tables:
            cursor.execute(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
                (schema, table),
            )
            rows = cursor.fetchall()
            if rows:
                found[(schema, table)] = {str(n): str(t) for n, t in rows}
    return found
