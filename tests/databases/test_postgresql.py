"""PostgreSQL: a consumer reads exactly its declared columns and rows, and nothing else."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import psycopg
import pytest
from psycopg import errors, sql

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.databases import postgresql, service, snapshot
from interlock.databases.connection import Login, postgresql_params
from interlock.databases.plan import Plan, plan_for
from tests.databases.conftest import INTEGRATION, Shared
from tests.databases.helpers import BILLING, edited_plan, login_of, rotate

ADMIN = Operator("admin:test")


@contextmanager
def connected(plan: Plan, login: Login) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(**postgresql_params(plan.system, login), autocommit=True) as connection:
        yield connection


def _applied(shared: Shared) -> Login:
    sink = MemorySink()
    service.apply(shared.plan, shared.admin, audit_sink=sink, actor=ADMIN)
    return login_of(rotate(shared.plan, shared.admin, "crm-sync"))


def _denied(connection: psycopg.Connection[Any], query: str | sql.Composed) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        connection.execute(query)


def test_the_consumer_reads_exactly_the_declared_columns_and_rows(pg: Shared) -> None:
    login = _applied(pg)
    consumer = pg.plan.consumers[0]
    with connected(pg.plan, login) as connection:
        cursor = connection.execute(
            sql.SQL("SELECT * FROM {} ORDER BY id").format(
                sql.Identifier(consumer.schema, "customers")
            )
        )
        assert [d.name for d in cursor.description or ()] == ["id", "email", "country"]
        assert cursor.fetchall() == [(1, "anna@example.de", "DE"), (3, "carl@example.de", "DE")]
        # The search_path is the consumer's schema of views; nothing else is on it.
        assert connection.execute("SELECT count(*) FROM customers").fetchone() == (2,)
        # Asking for the hidden rows finds none.
        hidden = connection.execute("SELECT count(*) FROM customers WHERE country = 'FR'")
        assert hidden.fetchone() == (0,)
        # The role's settings came from the manifest.
        assert connection.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert connection.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
        attributes = connection.execute(
            "SELECT rolconnlimit, rolinherit FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert attributes == (3, False)  # connection_limit: 3, NOINHERIT


def test_the_connection_limit_holds(pg: Shared) -> None:
    """connection_limit: 3 -- a fourth session of the consumer is refused by the server."""
    login = _applied(pg)
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(connected(pg.plan, login))
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(**postgresql_params(pg.plan.system, login)).close()


def test_the_base_table_other_schemas_and_server_functions_are_refused(pg: Shared) -> None:
    login = _applied(pg)
    source = sql.Identifier(pg.source, "customers")
    with connected(pg.plan, login) as connection:
        _denied(connection, sql.SQL("SELECT * FROM {}").format(source))
        _denied(connection, sql.SQL("SELECT email FROM {}").format(source))
        _denied(connection, sql.SQL("COPY {} TO STDOUT").format(source))
        _denied(connection, "SELECT pg_read_file('/etc/passwd')")
        _denied(connection, "SELECT pg_ls_dir('.')")
        _denied(connection, "SELECT lo_import('/etc/passwd')")
        dblink = connection.execute(
            "SELECT count(*) FROM pg_proc WHERE proname = 'dblink_connect'"
        ).fetchone()
        if dblink != (0,):  # installed on this server: no way around the grants through it
            with pytest.raises(psycopg.Error):
                connection.execute("SELECT dblink_connect('host=127.0.0.1 user=postgres')")
        _denied(connection, "CREATE TABLE public.planted (x int)")
        consumer = pg.plan.consumers[0]
        _denied(
            connection,
            sql.SQL("CREATE VIEW {} AS SELECT 1").format(
                sql.Identifier(consumer.schema, "planted")
            ),
        )
        _denied(
            connection, sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(pg.source, "x"))
        )
        # The other consumer's schema of views is not this one's.
        billing = next(c for c in pg.plan.consumers if c.client == "billing")
        _denied(
            connection,
            sql.SQL("SELECT * FROM {}").format(sql.Identifier(billing.schema, "customer_ids")),
        )


def test_no_role_can_be_assumed(pg: Shared) -> None:
    login = _applied(pg)
    other = next(n for n in pg.plan.consumers[0].logins if n != login.username)
    with connected(pg.plan, login) as connection:
        for role in ("postgres", other, pg.plan.owner, "pg_read_all_data", "pg_read_server_files"):
            _denied(connection, sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
        _denied(
            connection, sql.SQL("SET SESSION AUTHORIZATION {}").format(sql.Identifier("postgres"))
        )


def test_catalog_statistics_do_not_show_the_hidden_rows(pg: Shared) -> None:
    login = _applied(pg)
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(pg.source, "customers")))
    with connected(pg.plan, login) as connection:
        leaked = connection.execute(
            "SELECT most_common_vals::text FROM pg_stats WHERE schemaname = %s", (pg.source,)
        ).fetchall()
        assert leaked == []
        _denied(connection, "SELECT * FROM pg_statistic")
        # information_schema lists only what the role may use: not the source table.
        columns = connection.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s",
            (pg.source,),
        ).fetchall()
        assert columns == []


def test_a_leaky_function_in_the_where_clause_sees_no_filtered_row(pg: Shared) -> None:
    """security_barrier: the consumer's own function runs only on rows the filter let through."""
    login = _applied(pg)
    notices: list[str] = []
    with connected(pg.plan, login) as connection:
        connection.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        connection.execute(
            "CREATE FUNCTION pg_temp.leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 "
            "AS $$BEGIN RAISE NOTICE 'seen %', $1; RETURN true; END$$"
        )
        rows = connection.execute(
            "SELECT id FROM customers WHERE pg_temp.leak(email) ORDER BY id"
        ).fetchall()
    assert rows == [(1,), (3,)]
    assert notices
    assert not [n for n in notices if "bob@example.fr" in n]


def test_writes_only_to_declared_columns_and_only_inside_the_filter(pg: Shared) -> None:
    login = _applied(pg)
    with connected(pg.plan, login) as connection:
        connection.execute("UPDATE customers SET email = 'anna@new.de' WHERE id = 1")
        assert connection.execute("SELECT email FROM customers WHERE id = 1").fetchone() == (
            "anna@new.de",
        )
        _denied(connection, "UPDATE customers SET country = 'FR' WHERE id = 1")
        _denied(connection, "DELETE FROM customers WHERE id = 1")
        _denied(connection, "INSERT INTO customers (id, email, country) VALUES (9, 'x', 'DE')")
        # A row the filter hides cannot be touched...
        hidden = connection.execute("UPDATE customers SET email = 'x@y' WHERE id = 2")
        assert hidden.rowcount == 0
        # ...and no update moves a row out of the filter (check option).
        with pytest.raises(errors.WithCheckOptionViolation):
            connection.execute("UPDATE customers SET email = NULL WHERE id = 3")


def test_the_read_only_consumer_cannot_write_at_all(pg: Shared) -> None:
    service.apply(pg.plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
    login = login_of(rotate(pg.plan, pg.admin, "billing"))
    with connected(pg.plan, login) as connection:
        assert connection.execute("SELECT count(*) FROM customer_ids").fetchone() == (3,)
        with pytest.raises(errors.UndefinedColumn):
            connection.execute("SELECT email FROM customer_ids")
        with pytest.raises(errors.ReadOnlySqlTransaction):
            connection.execute("CREATE TEMP TABLE t (x int)")


def test_apply_is_recorded_and_repeatable(pg: Shared) -> None:
    sink = MemorySink()
    service.apply(pg.plan, pg.admin, audit_sink=sink, actor=ADMIN)
    service.apply(pg.plan, pg.admin, audit_sink=sink, actor=ADMIN)
    entries = [e for e in sink.entries if e.action == "databases.apply"]
    assert len(entries) == 2
    assert all(e.outcome.result == "success" and e.integration == "crm-customers" for e in entries)
    assert "user.contact.email" in entries[0].data_categories
    assert service.audit(pg.plan, pg.admin) == []


def test_drift_after_a_manual_grant_is_reported_and_apply_revokes_it(pg: Shared) -> None:
    _applied(pg)
    login = pg.plan.consumers[0].logins[0]
    group = f"g{secrets.token_hex(6)}"
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        role = sql.Identifier(login)
        connection.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(pg.source, "customers"), role)
        )
        connection.execute(sql.SQL("ALTER ROLE {} SUPERUSER CREATEDB CREATEROLE").format(role))
        connection.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(group)))
        connection.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), role))
        connection.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} GRANT SELECT ON TABLES TO PUBLIC").format(
                role
            )
        )
        connection.execute(
            sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(sql.Identifier(pg.source, "customers"))
        )
    try:
        found = {d.privilege.describe() for d in service.audit(pg.plan, pg.admin)}
        assert f"{login}: SELECT on table {pg.source}.customers" in found
        assert f"{login}: has SUPERUSER" in found
        assert f"{login}: has CREATEDB" in found
        assert f"{login}: has CREATEROLE" in found
        assert f"{login}: is a member of {group}" in found
        assert f"PUBLIC: SELECT on table {pg.source}.customers" in found
        assert any(d.startswith(f"{login}: default privileges") for d in found)
        service.apply(pg.plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
        left = {d.privilege.describe() for d in service.audit(pg.plan, pg.admin)}
        # Default privileges are reported, never silently dropped: the operator removes them.
        assert [d for d in left if "default privileges" not in d] == []
    finally:
        with psycopg.connect(**admin, autocommit=True) as connection:
            connection.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(group)))


def test_a_dropped_column_is_breaking_and_a_personal_one_widening(pg: Shared) -> None:
    _applied(pg)
    taken = snapshot.take(
        pg.plan, service.source_columns(pg.plan, pg.admin), service.view_definitions
    )
    assert json.loads(json.dumps(taken)) == taken
    admin = postgresql_params(pg.plan.system, pg.admin)
    table = sql.Identifier(pg.source, "customers")
    with psycopg.connect(**admin, autocommit=True) as connection:
        # The migration drops what depends on the columns it changes, as PostgreSQL demands.
        connection.execute(sql.SQL("ALTER TABLE {} DROP COLUMN email CASCADE").format(table))
        billing = next(c for c in pg.plan.consumers if c.client == "billing")
        connection.execute(
            sql.SQL("DROP VIEW {}").format(sql.Identifier(billing.schema, "customer_ids"))
        )
        connection.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE bigint").format(table))
        connection.execute(sql.SQL("ALTER TABLE {} ADD COLUMN phone_number text").format(table))
        connection.execute(sql.SQL("ALTER TABLE {} ADD COLUMN loyalty_tier text").format(table))
    changes = snapshot.diff(pg.plan, taken, service.source_columns(pg.plan, pg.admin))
    found = {(c.kind, c.column, c.detail) for c in changes}
    table_name = f"{pg.source}.customers"
    # Two text columns appeared: no single candidate for a rename, so no hint.
    assert ("breaking", "email", "dropped or renamed (was text)") in found
    assert ("breaking", "id", "retyped from integer to bigint") in found
    assert (
        "widening",
        "phone_number",
        "new column whose name suggests personal data (user.contact.phone_number)",
    ) in found
    assert ("added", "loyalty_tier", "new column (text)") in found
    assert all(c.table == table_name for c in changes)
    email = next(c for c in changes if c.column == "email")
    assert email.consumers == ("crm-sync",)


def test_rotation_alternates_logins_and_locks_the_old_one(pg: Shared) -> None:
    service.apply(pg.plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
    first = rotate(pg.plan, pg.admin, "crm-sync")
    second = rotate(pg.plan, pg.admin, "crm-sync", first)
    assert login_of(first).username != login_of(second).username
    from tests.databases.helpers import rotator

    rotator(pg.plan, pg.admin, "crm-sync").retire(first, second)
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin) as connection:
        rows = dict(
            connection.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY(%s)",
                (list(pg.plan.consumers[0].logins),),
            ).fetchall()
        )
    assert rows == {login_of(first).username: False, login_of(second).username: True}
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**postgresql_params(pg.plan.system, login_of(first))).close()
    # Rotation gives the login a password and LOGIN; it never gives anything else.
    assert service.audit(pg.plan, pg.admin) == []


ORIGINAL_ROWS = "rows: \"country = 'DE' and email is not null and id <> -1\""
# In YAML's single-quoted style '' is one quote; in the filter '' is one quote again.
HOSTILE_ROWS = r"""rows: 'country in (''DE'', ''x''''); DROP TABLE customers; --'', ''a\b'')'"""


def test_a_hostile_literal_in_the_row_filter_stays_a_value(pg: Shared) -> None:
    """The filter's literals are quoted by the driver: quotes, backslashes and SQL stay text."""
    text = pg.path.read_text(encoding="utf-8")
    assert ORIGINAL_ROWS in text
    pg.path.write_text(text.replace(ORIGINAL_ROWS, HOSTILE_ROWS), encoding="utf-8")
    plan = plan_for(load_manifest(pg.path), INTEGRATION)
    spec = load_manifest(pg.path).integrations[INTEGRATION].database
    assert spec is not None
    declared = spec.consumers["crm-sync"].views["customers"].rows
    assert declared == r"country in ('DE', 'x''); DROP TABLE customers; --', 'a\b')"
    rendered = "\n".join(service.planned_sql(plan))
    assert "'x''); DROP TABLE customers; --'" in rendered
    service.apply(plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
    login = login_of(rotate(plan, pg.admin, "crm-sync"))
    with connected(plan, login) as connection:
        assert connection.execute("SELECT count(*) FROM customers").fetchone() == (2,)
    admin = postgresql_params(plan.system, pg.admin)
    with psycopg.connect(**admin) as connection:
        count = connection.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(pg.source, "customers"))
        ).fetchone()
    assert count == (3,)


def test_a_refused_plan_changes_nothing(pg: Shared) -> None:
    """One transaction: a failing statement late in the plan leaves no role or schema behind."""
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {} DROP COLUMN country").format(
                sql.Identifier(pg.source, "customers")
            )
        )
    sink = MemorySink()
    with pytest.raises(postgresql.ApplyError, match="nothing was changed"):
        service.apply(pg.plan, pg.admin, audit_sink=sink, actor=ADMIN)
    assert [e.outcome.result for e in sink.entries] == ["failure"]
    names = [pg.plan.owner, *(n for c in pg.plan.consumers for n in c.logins)]
    schemas = [c.schema for c in pg.plan.consumers]
    with psycopg.connect(**admin) as connection:
        roles = connection.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,)
        ).fetchall()
        found = connection.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (schemas,)
        ).fetchall()
    assert roles == []
    assert found == []


def test_a_consumer_removed_from_the_manifest_loses_its_login_and_grants(pg: Shared) -> None:
    """Its roles are found by the naming scheme: audit reports them, apply locks and revokes."""
    _applied(pg)
    billing = next(c for c in pg.plan.consumers if c.client == "billing")
    gone = login_of(rotate(pg.plan, pg.admin, "billing"))
    plan = edited_plan(pg.path, INTEGRATION, BILLING.format(source=pg.source), "")
    reported = {d.privilege.role for d in service.audit(plan, pg.admin)}
    assert set(billing.logins) <= reported
    assert any(
        d.privilege.describe() == f"{gone.username}: has LOGIN"
        for d in service.audit(plan, pg.admin)
    )
    service.apply(plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
    assert service.audit(plan, pg.admin) == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(**postgresql_params(plan.system, gone)).close()
    # The remaining consumer keeps working.
    with connected(plan, _applied_login(pg, plan)) as connection:
        assert connection.execute("SELECT count(*) FROM customers").fetchone() == (2,)


def _applied_login(pg: Shared, plan: Plan) -> Login:
    return login_of(rotate(plan, pg.admin, "crm-sync"))


@contextmanager
def _grantor(pg: Shared) -> Iterator[tuple[psycopg.Connection[Any], str]]:
    """A third role holding SELECT on the source WITH GRANT OPTION, dropped afterwards."""
    name = f"g{secrets.token_hex(6)}"
    admin = postgresql_params(pg.plan.system, pg.admin)
    source = sql.Identifier(pg.source, "customers")
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        try:
            connection.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {} WITH GRANT OPTION").format(
                    sql.Identifier(pg.source), sql.Identifier(name)
                )
            )
            connection.execute(
                sql.SQL("GRANT SELECT ON {} TO {} WITH GRANT OPTION").format(
                    source, sql.Identifier(name)
                )
            )
            yield connection, name
        finally:
            connection.execute("RESET ROLE")
            connection.execute(sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(name)))
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_a_grant_by_a_third_grantor_is_revoked_as_that_grantor(pg: Shared) -> None:
    """The superuser's REVOKE acts as the owner: the grantor's grant is revoked as the grantor."""
    login = _applied(pg)
    source = sql.Identifier(pg.source, "customers")
    with _grantor(pg) as (connection, grantor):
        connection.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(grantor)))
        connection.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(pg.source), sql.Identifier(login.username)
            )
        )
        connection.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(source, sql.Identifier(login.username))
        )
        connection.execute(sql.SQL("GRANT SELECT ON {} TO PUBLIC").format(source))
        connection.execute("RESET ROLE")
        assert len(service.audit(pg.plan, pg.admin)) == 3
        service.apply(pg.plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
        assert service.audit(pg.plan, pg.admin) == []
        with connected(pg.plan, login) as consumer:
            _denied(consumer, sql.SQL("SELECT * FROM {}").format(source))


def test_apply_fails_and_rolls_back_when_a_revoke_leaves_the_grant(
    pg: Shared, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never success while the audit still shows drift: the re-check before commit fails."""
    login = _applied(pg)
    source = sql.Identifier(pg.source, "customers")
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("GRANT SELECT ON {} TO {}").format(source, sql.Identifier(login.username))
        )
    # A revoke that does nothing, as a REVOKE by the wrong grantor did.
    monkeypatch.setattr(
        postgresql, "_revokes", lambda plan, privilege, grantors: [sql.SQL("SELECT 1").format()]
    )
    sink = MemorySink()
    with pytest.raises(postgresql.ApplyError, match="still"):
        service.apply(pg.plan, pg.admin, audit_sink=sink, actor=ADMIN)
    assert [e.outcome.result for e in sink.entries] == ["failure"]
    assert len(service.audit(pg.plan, pg.admin)) == 1


# Out-of-band changes the audit must report: (label, statements, the drift, apply undoes it).
# Names in the statements: {login}, {owner}, {source}, {schema} (the consumer's), {outsider}.
_OUT_OF_BAND = [
    (
        "a schema owned by a login",
        ["CREATE SCHEMA {source}_own", "ALTER SCHEMA {source}_own OWNER TO {login}"],
        "{login}: owns {source}_own",
        False,
    ),
    (
        "a function owned by a login",
        [
            "CREATE FUNCTION {source}.f() RETURNS int LANGUAGE sql AS 'select 1'",
            "ALTER FUNCTION {source}.f() OWNER TO {login}",
        ],
        "{login}: owns {source}.f",
        False,
    ),
    (
        "a role made a member of the owner role",
        ["GRANT {owner} TO {outsider}"],
        "{outsider}: is a member of {owner}",
        True,
    ),
    (
        "a role made a member of a login",
        ["GRANT {login} TO {outsider}"],
        "{outsider}: is a member of {login}",
        True,
    ),
    (
        "a table granted to the owner role",
        [
            "CREATE TABLE {source}.salaries (who text, amount int)",
            "GRANT SELECT ON {source}.salaries TO {owner}",
        ],
        "{owner}: SELECT on table {source}.salaries",
        True,
    ),
    (
        "a column of the source granted to PUBLIC",
        ["GRANT SELECT (id, name) ON {source}.customers TO PUBLIC"],
        "PUBLIC: SELECT on column {source}.customers.name",
        True,
    ),
    (
        "a view granted WITH GRANT OPTION",
        ["GRANT SELECT ON {schema}.customers TO {login} WITH GRANT OPTION"],
        "{login}: GRANT OPTION FOR SELECT on table {schema}.customers",
        True,
    ),
]


@pytest.mark.parametrize(
    ("statements", "expected", "undone"),
    [case[1:] for case in _OUT_OF_BAND],
    ids=[case[0] for case in _OUT_OF_BAND],
)
def test_out_of_band_access_is_reported(
    pg: Shared, statements: list[str], expected: str, undone: bool
) -> None:
    """Each of these gave a consumer (or anyone) more access while the audit said ``[]``."""
    _applied(pg)
    consumer = pg.plan.consumers[0]
    names = {
        "login": consumer.logins[0],
        "owner": pg.plan.owner,
        "source": pg.source,
        "schema": consumer.schema,
        "outsider": f"o{secrets.token_hex(6)}",
    }
    quoted = {k: sql.Identifier(v).as_string() for k, v in names.items()}
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(names["outsider"]))
        )
        try:
            for statement in statements:
                text = statement.replace("{source}_own", f'"{pg.source}_own"')
                connection.execute(text.format(**quoted).encode())
            found = {d.privilege.describe() for d in service.audit(pg.plan, pg.admin)}
            assert expected.format(**names) in found, found
            if undone:
                service.apply(pg.plan, pg.admin, audit_sink=MemorySink(), actor=ADMIN)
                assert service.audit(pg.plan, pg.admin) == []
        finally:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(f"{pg.source}_own")
                )
            )
            connection.execute(
                sql.SQL("DROP OWNED BY {}").format(sql.Identifier(names["outsider"]))
            )
            connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(names["outsider"])))
