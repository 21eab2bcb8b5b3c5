"""PostgreSQL: a plan as statements, applied in one transaction; the catalog as privileges.

Every statement is composed with :mod:`psycopg.sql`: names are
``sql.Identifier`` (quoted by the driver), values ``sql.Literal`` (quoted by
the driver: DDL takes no bind parameters). Views are ``security_barrier``
(a consumer's own functions in a ``WHERE`` never see rows the filter hides),
writable views add ``check_option = cascaded`` (no update moves a row out of
the filter), and every view belongs to the integration's owner role, which
holds column-level ``SELECT``/``UPDATE`` on exactly the source columns used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, assert_never

import psycopg
from psycopg import sql

from interlock.config.databases import And, Compare, Filter, InList, IsNull, Not, Or
from interlock.databases.connection import Login, postgresql_params
from interlock.databases.drift import Drift, Privilege, compare
from interlock.databases.plan import ConsumerPlan, Plan, ViewPlan
from interlock.databases.postgresql_catalog import catalog, expected_privileges, found_privileges
from interlock.errors import InterlockError

__all__ = [
    "ApplyError",
    "Statement",
    "apply",
    "audit",
    "found_privileges",
    "render",
    "source_columns",
    "statements",
    "view_statement",
]

#: The advisory lock every ``interlock db apply`` holds for its transaction (one at a time).
APPLY_LOCK: Final = 0x696E746C6B6462  # "intlkdb"

_ROLE_SAFE: Final = sql.SQL(
    "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS NOINHERIT"
)


@dataclass(frozen=True)
class Statement:
    """One statement; ``creates`` names the role it creates (skipped when it exists)."""

    sql: sql.Composed
    creates: str | None = None


def _id(*names: str) -> sql.Identifier:
    return sql.Identifier(*names)


def _literal(value: str | int | Decimal | bool) -> sql.Composable:
    return sql.Literal(value)


def filter_sql(tree: Filter) -> sql.Composable:
    """A row filter as SQL: identifiers and literals quoted by psycopg."""
    if isinstance(tree, Compare):
        return sql.SQL("{} {} {}").format(_id(tree.column), sql.SQL(tree.op), _literal(tree.value))
    if isinstance(tree, InList):
        values = sql.SQL(", ").join(_literal(v) for v in tree.values)
        return sql.SQL("{} IN ({})").format(_id(tree.column), values)
    if isinstance(tree, IsNull):
        return sql.SQL("{} IS NOT NULL" if tree.negated else "{} IS NULL").format(_id(tree.column))
    if isinstance(tree, Not):
        return sql.SQL("NOT ({})").format(filter_sql(tree.part))
    if isinstance(tree, And | Or):
        joiner = sql.SQL(" AND " if isinstance(tree, And) else " OR ")
        return sql.SQL("({})").format(joiner.join(filter_sql(part) for part in tree.parts))
    assert_never(tree)


def _view(consumer: ConsumerPlan, view: ViewPlan) -> sql.Composed:
    options = "security_barrier, check_option = cascaded" if view.write else "security_barrier"
    where = (
        sql.SQL(" WHERE {}").format(filter_sql(view.row_filter))
        if view.row_filter is not None
        else sql.SQL("")
    )
    return sql.SQL("CREATE VIEW {} WITH ({}) AS SELECT {} FROM {}{}").format(
        _id(consumer.schema, view.name),
        sql.SQL(options),
        sql.SQL(", ").join(_id(c) for c in view.columns),
        _id(view.source_schema, view.source_table),
        where,
    )


def view_statement(plan: Plan, consumer: ConsumerPlan, view: ViewPlan) -> Statement:
    """The ``CREATE VIEW`` of one consumer's view."""
    del plan  # the PostgreSQL view does not name its owner (ALTER VIEW ... OWNER TO does)
    return Statement(_view(consumer, view))


def _owner(plan: Plan) -> Iterator[Statement]:
    owner = _id(plan.owner)
    yield Statement(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(owner), plan.owner)
    yield Statement(sql.SQL("ALTER ROLE {} NOLOGIN {}").format(owner, _ROLE_SAFE))
    for schema, table in plan.source_tables:
        source = _id(schema, table)
        # Reset what the owner and PUBLIC hold on the source, then grant the columns used.
        yield Statement(sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC, {}").format(source, owner))
        yield Statement(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_id(schema), owner))
        read = dict.fromkeys(
            c
            for consumer in plan.consumers
            for v in consumer.views
            if (v.source_schema, v.source_table) == (schema, table)
            for c in v.columns
        )
        write = dict.fromkeys(
            c
            for consumer in plan.consumers
            for v in consumer.views
            if (v.source_schema, v.source_table) == (schema, table)
            for c in v.write
        )
        yield Statement(
            sql.SQL("GRANT SELECT ({}) ON TABLE {} TO {}").format(
                sql.SQL(", ").join(_id(c) for c in read), source, owner
            )
        )
        if write:
            yield Statement(
                sql.SQL("GRANT UPDATE ({}) ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(_id(c) for c in write), source, owner
                )
            )


def _consumer(plan: Plan, consumer: ConsumerPlan) -> Iterator[Statement]:
    database = _id(plan.system.database)
    schema = _id(consumer.schema)
    logins = sql.SQL(", ").join(_id(n) for n in consumer.logins)
    timeout = int(consumer.statement_timeout.total_seconds() * 1000)
    for login in consumer.logins:
        role = _id(login)
        # Created without LOGIN: the rotation engine gives one of the two a password and LOGIN.
        yield Statement(sql.SQL("CREATE ROLE {} NOLOGIN NOINHERIT").format(role), login)
        yield Statement(
            sql.SQL("ALTER ROLE {} {} CONNECTION LIMIT {}").format(
                role, _ROLE_SAFE, _literal(consumer.connection_limit)
            )
        )
        yield Statement(
            sql.SQL("ALTER ROLE {} SET statement_timeout = {}").format(role, _literal(timeout))
        )
        yield Statement(sql.SQL("ALTER ROLE {} SET search_path = {}").format(role, schema))
        if not consumer.writes:
            yield Statement(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(role)
            )
        # Direct grants on the database and its public schema, whatever they were.
        yield Statement(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, role))
        yield Statement(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(role))
    yield Statement(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, logins))
    yield Statement(
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(schema, _id(plan.owner))
    )
    yield Statement(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(schema, _id(plan.owner)))
    yield Statement(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(schema))
    yield Statement(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, logins))
    for view in consumer.views:
        name = _id(consumer.schema, view.name)
        yield Statement(sql.SQL("DROP VIEW IF EXISTS {}").format(name))
        yield Statement(_view(consumer, view))
        yield Statement(sql.SQL("ALTER VIEW {} OWNER TO {}").format(name, _id(plan.owner)))
        yield Statement(sql.SQL("REVOKE ALL ON TABLE {} FROM PUBLIC").format(name))
        yield Statement(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(name, logins))
        if view.write:
            yield Statement(
                sql.SQL("GRANT UPDATE ({}) ON TABLE {} TO {}").format(
                    sql.SQL(", ").join(_id(c) for c in view.write), name, logins
                )
            )


def statements(plan: Plan) -> list[Statement]:
    """Every statement of ``plan``, in order (roles first, then schemas and views)."""
    found = list(_owner(plan))
    for consumer in plan.consumers:
        found.extend(_consumer(plan, consumer))
    return found


def render(statement: Statement) -> str:
    """The statement as SQL text (literals quoted by psycopg's default adapters)."""
    text = statement.sql.as_string()
    suffix = "  -- skipped when the role exists" if statement.creates else ""
    return f"{text};{suffix}"


class ApplyError(InterlockError):
    """The server refused a statement: nothing was changed (the transaction rolled back)."""

    code = "database_apply_failed"


def apply(plan: Plan, admin: Login) -> list[str]:
    """Run the plan in one transaction, then revoke what drifted beyond it; the SQL run.

    Either everything is changed or nothing is (PostgreSQL DDL is transactional).
    """
    done: list[str] = []
    try:
        with psycopg.connect(**postgresql_params(plan.system, admin)) as connection:
            # GRANTs on shared catalog rows (the database's ACL) by two transactions at once
            # fail with "tuple concurrently updated": applies take turns on the server.
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
            names = [n for c in plan.consumers for n in c.logins] + [plan.owner]
            existing = {
                row[0]
                for row in connection.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,)
                )
            }
            for statement in statements(plan):
                if statement.creates in existing:
                    continue
                connection.execute(statement.sql)
                done.append(render(statement))
            for drift in _drift(plan, connection):
                undo = drift.revoke if isinstance(drift.revoke, tuple) else ()
                for revoke in undo:
                    connection.execute(revoke)
                if undo:
                    text = "; ".join(r.as_string(connection) for r in undo)
                    done.append(f"{text};  -- {drift.detail}")
            _nothing_left(plan, connection)
    except psycopg.Error as error:
        raise ApplyError(
            f"PostgreSQL refused the plan of {plan.integration} (SQLSTATE "
            f"{error.sqlstate or 'none'}: {error.diag.message_primary or type(error).__name__}); "
            "nothing was changed"
        ) from None
    return done


def _nothing_left(plan: Plan, connection: psycopg.Connection[Any]) -> None:
    """Before commit: a revoke that left its grant (an unexpected grantor) fails the apply."""
    left = [d for d in _drift(plan, connection) if d.revoke]
    if left:
        raise ApplyError(
            f"PostgreSQL still grants {len(left)} privilege(s) beyond the plan of "
            f"{plan.integration} after the revokes (first: {left[0].detail}); nothing was "
            "changed: revoke it as the role that granted it and run apply again"
        )


# -- the catalog (interlock.databases.postgresql_catalog) ---------------------------------


def _revoke(plan: Plan, privilege: Privilege) -> sql.Composed | None:  # noqa: PLR0911  (one per kind)
    role = sql.SQL("PUBLIC") if privilege.role == "PUBLIC" else _id(privilege.role)
    if privilege.kind == "attribute" and plan.retired(privilege.role):
        # A removed consumer's login: locked out, and nothing it could regain access with.
        return sql.SQL("ALTER ROLE {} NOLOGIN {}").format(role, _ROLE_SAFE)
    if privilege.kind == "membership":
        return sql.SQL("REVOKE {} FROM {}").format(_id(privilege.privilege), role)
    if not privilege.privilege.replace(" ", "").isalpha():
        return None
    what = sql.SQL(privilege.privilege)  # a privilege keyword the catalog reported
    # CASCADE: what the role passed on with a grant option goes with it.
    if privilege.kind == "table":
        return sql.SQL("REVOKE {} ON TABLE {} FROM {} CASCADE").format(
            what, _id(*privilege.on), role
        )
    if privilege.kind == "column":
        schema, table, column = privilege.on
        return sql.SQL("REVOKE {} ({}) ON TABLE {} FROM {} CASCADE").format(
            what, _id(column), _id(schema, table), role
        )
    if privilege.kind == "schema":
        return sql.SQL("REVOKE {} ON SCHEMA {} FROM {} CASCADE").format(
            what, _id(*privilege.on), role
        )
    if privilege.kind == "database":
        return sql.SQL("REVOKE {} ON DATABASE {} FROM {} CASCADE").format(
            what, _id(*privilege.on), role
        )
    return None  # attributes are reset by ALTER ROLE; functions, defaults, ownership by hand


def _revokes(plan: Plan, privilege: Privilege, grantors: set[str]) -> list[sql.Composable]:
    """The statements undoing ``privilege``: its REVOKE run as each role that granted it.

    A superuser's REVOKE acts as the object's owner and leaves a grant made by
    another role holding the grant option in place; ``SET LOCAL ROLE`` makes the
    REVOKE that grantor's own (reset after, within the transaction).
    """
    revoke = _revoke(plan, privilege)
    if revoke is None:
        return []
    if not grantors:
        return [revoke]
    statements: list[sql.Composable] = []
    for grantor in sorted(grantors):
        statements += [sql.SQL("SET LOCAL ROLE {}").format(_id(grantor)), revoke]
    return [*statements, sql.SQL("RESET ROLE")]


def _drift(plan: Plan, connection: psycopg.Connection[Any]) -> list[Drift]:
    found, grantors = catalog(plan, connection)
    drifts = compare(plan, found, expected_privileges(plan))
    return [
        Drift(
            d.privilege,
            d.detail,
            tuple(_revokes(plan, d.privilege, grantors.get(d.privilege, set()))) or None,
        )
        for d in drifts
    ]


def audit(plan: Plan, admin: Login) -> list[Drift]:
    """Every privilege the plan's roles (and PUBLIC on its objects) hold beyond the plan."""
    with psycopg.connect(**postgresql_params(plan.system, admin)) as connection:
        return _drift(plan, connection)


def source_columns(plan: Plan, admin: Login) -> dict[tuple[str, str], dict[str, str]]:
    """Each source table's columns and their types, as the server reports them now.

    The type is ``format_type`` of the column's type and modifier (``character
    varying(20)``, ``numeric(10,2)``): a narrowed length or precision is a retype,
    as MariaDB's ``COLUMN_TYPE`` shows it (information_schema's ``data_type`` names
    the type alone).
    """
    query = """
        SELECT n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE (n.nspname, c.relname) IN (SELECT * FROM unnest(%s::text[], %s::text[]))
          AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
    """
    schemas = [s for s, _ in plan.source_tables]
    tables = [t for _, t in plan.source_tables]
    found: dict[tuple[str, str], dict[str, str]] = {}
    with psycopg.connect(**postgresql_params(plan.system, admin)) as connection:
        for schema, table, column, kind in connection.execute(query, (schemas, tables)):
            found.setdefault((schema, table), {})[column] = kind
    return found
