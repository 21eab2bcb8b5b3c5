"""MariaDB: a consumer reads exactly its declared columns and rows, and nothing else."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.databases import mariadb, service, snapshot
from interlock.databases.connection import Login
from interlock.databases.plan import Plan, plan_for
from tests.databases.conftest import INTEGRATION, Shared
from tests.databases.helpers import BILLING, edited_plan, login_of, rotate, rotator

ADMIN = Operator("admin:test")


@contextmanager
def connected(plan: Plan, login: Login, database: str | None = None) -> Iterator[Any]:
    with mariadb.connect(plan, login, database) as connection, connection.cursor() as cursor:
        yield cursor


def _applied(shared: Shared, client: str = "crm-sync") -> Login:
    service.apply(shared.plan, shared.admin, audit_sink=MemorySink(), actor=ADMIN)
    return login_of(rotate(shared.plan, shared.admin, client))


def _denied(cursor: Any, query: str) -> None:
    with pytest.raises(pymysql.err.OperationalError) as raised:
        cursor.execute(query)
    # 1142 table, 1143 column, 1044 database, 1227 privilege, 1045 access, 1370 routine,
    # 1356 the view's definer lacks the right (the owner holds only the declared columns)
    assert raised.value.args[0] in {1044, 1045, 1142, 1143, 1227, 1356, 1370}, raised.value.args


def test_the_consumer_reads_exactly_the_declared_columns_and_rows(maria: Shared) -> None:
    login = _applied(maria)
    consumer = maria.plan.consumers[0]
    with connected(maria.plan, login, consumer.schema) as cursor:
        cursor.execute("SELECT * FROM customers ORDER BY id")
        assert [d[0] for d in cursor.description] == ["id", "email", "country"]
        assert cursor.fetchall() == ((1, "anna@example.de", "DE"), (3, "carl@example.de", "DE"))
        cursor.execute("SHOW DATABASES")
        assert {row[0] for row in cursor.fetchall()} == {"information_schema", consumer.schema}
        cursor.execute("SELECT @@max_statement_time")
        assert cursor.fetchone() == (5.0,)


def test_the_connection_limit_holds(maria: Shared) -> None:
    """connection_limit: 3 (MAX_USER_CONNECTIONS) -- a fourth session is refused."""
    login = _applied(maria)
    schema = maria.plan.consumers[0].schema
    with ExitStack() as stack:
        for _ in range(3):
            stack.enter_context(mariadb.connect(maria.plan, login, schema))
        with pytest.raises(pymysql.err.OperationalError) as raised:
            mariadb.connect(maria.plan, login, schema).close()
    assert raised.value.args[0] == 1226, raised.value.args  # max_user_connections exceeded


def test_a_granted_role_is_drift_and_apply_revokes_it(maria: Shared) -> None:
    """A role granted to a login (mysql.roles_mapping) is reported; apply takes it away."""
    _applied(maria)
    login = maria.plan.consumers[0].logins[0]
    role = f"r{maria.source.removeprefix('src_')}"
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE `{role}`")
        try:
            cursor.execute(f"GRANT SELECT ON `{maria.source}`.`customers` TO `{role}`")
            cursor.execute(f"GRANT `{role}` TO %s@'%%'", (login,))
            found = {d.privilege.describe() for d in service.audit(maria.plan, maria.admin)}
            assert f"{login}: is a member of {role}" in found, found
            service.apply(maria.plan, maria.admin, audit_sink=MemorySink(), actor=ADMIN)
            assert service.audit(maria.plan, maria.admin) == []
        finally:
            cursor.execute(f"DROP ROLE IF EXISTS `{role}`")


def test_the_base_table_files_and_other_databases_are_refused(maria: Shared) -> None:
    login = _applied(maria)
    consumer = maria.plan.consumers[0]
    billing = next(c for c in maria.plan.consumers if c.client == "billing")
    with connected(maria.plan, login, consumer.schema) as cursor:
        _denied(cursor, f"SELECT * FROM `{maria.source}`.`customers`")  # noqa: S608
        _denied(cursor, f"SELECT email FROM `{maria.source}`.`customers`")  # noqa: S608
        _denied(cursor, f"SELECT * FROM `{billing.schema}`.`customer_ids`")  # noqa: S608
        _denied(cursor, "SELECT * FROM mysql.user")
        _denied(cursor, f"CREATE TABLE `{consumer.schema}`.`planted` (x INT)")
        _denied(cursor, f"USE `{maria.source}`")
        _denied(cursor, "SELECT * FROM customers INTO OUTFILE '/tmp/leak.txt'")
        _denied(cursor, "CREATE ROLE planted")
        # LOAD_FILE needs the FILE privilege: without it, NULL, never the file.
        cursor.execute("SELECT LOAD_FILE('/etc/passwd')")
        assert cursor.fetchone() == (None,)
        # information_schema lists only what the account may use.
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            (maria.source,),
        )
        assert cursor.fetchall() == ()
        cursor.execute("SELECT VIEW_DEFINITION FROM information_schema.VIEWS")
        assert cursor.fetchall() in ((), (("",),))


def test_writes_only_to_declared_columns_and_only_inside_the_filter(maria: Shared) -> None:
    login = _applied(maria)
    with connected(maria.plan, login, maria.plan.consumers[0].schema) as cursor:
        cursor.execute("UPDATE customers SET email = 'anna@new.de' WHERE id = 1")
        cursor.execute("SELECT email FROM customers WHERE id = 1")
        assert cursor.fetchone() == ("anna@new.de",)
        _denied(cursor, "UPDATE customers SET country = 'FR' WHERE id = 1")
        _denied(cursor, "DELETE FROM customers WHERE id = 1")
        _denied(cursor, "INSERT INTO customers (id, email, country) VALUES (9, 'x', 'DE')")
        cursor.execute("SELECT id, country FROM customers ORDER BY id")
        assert cursor.fetchall() == ((1, "DE"), (3, "DE"))
        assert cursor.execute("UPDATE customers SET email = 'x@y' WHERE id = 2") == 0
        with pytest.raises(pymysql.err.OperationalError) as raised:
            cursor.execute("UPDATE customers SET email = NULL WHERE id = 3")
        assert raised.value.args[0] == 1369  # CHECK OPTION failed


def test_drift_after_a_manual_grant_is_reported(maria: Shared) -> None:
    _applied(maria)
    consumer = maria.plan.consumers[0]
    login = consumer.logins[0]
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"GRANT SELECT ON `{maria.source}`.* TO %s@'%%'", (login,))
        cursor.execute(f"GRANT SELECT ON `{maria.source}`.`customers` TO %s@'%%'", (login,))
        cursor.execute("GRANT PROCESS ON *.* TO %s@'%%'", (login,))
        # What PUBLIC holds, every account holds (MariaDB 10.11+).
        cursor.execute(f"GRANT SELECT ON `{maria.source}`.`customers` TO PUBLIC")
    try:
        found = {d.privilege.describe() for d in service.audit(maria.plan, maria.admin)}
        assert f"{login}: SELECT on schema {maria.source}" in found
        assert f"{login}: SELECT on table {maria.source}.customers" in found
        assert f"{login}: has global PROCESS" in found
        assert f"PUBLIC: SELECT on table {maria.source}.customers" in found
        service.apply(maria.plan, maria.admin, audit_sink=MemorySink(), actor=ADMIN)
        assert service.audit(maria.plan, maria.admin) == []
    finally:  # grants outlive DROP DATABASE in MariaDB: leave none behind
        with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES "
                "WHERE GRANTEE = %s AND TABLE_SCHEMA = %s",
                ("'PUBLIC'@''", maria.source),
            )
            if cursor.fetchone() != (0,):
                cursor.execute(f"REVOKE SELECT ON `{maria.source}`.`customers` FROM PUBLIC")  # noqa: S608


def test_a_dropped_column_is_breaking(maria: Shared) -> None:
    _applied(maria)
    taken = snapshot.take(
        maria.plan, service.source_columns(maria.plan, maria.admin), service.view_definitions
    )
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` DROP COLUMN email")
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` MODIFY country CHAR(3)")
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` ADD COLUMN iban VARCHAR(34)")
    changes = snapshot.diff(maria.plan, taken, service.source_columns(maria.plan, maria.admin))
    found = {(c.kind, c.column, c.detail) for c in changes}
    assert ("breaking", "email", "dropped or renamed (was varchar(200))") in found
    assert ("breaking", "country", "retyped from char(2) to char(3)") in found
    assert (
        "widening",
        "iban",
        "new column whose name suggests personal data (user.financial.bank_account)",
    ) in found


def test_rotation_alternates_accounts_and_locks_the_old_one(maria: Shared) -> None:
    service.apply(maria.plan, maria.admin, audit_sink=MemorySink(), actor=ADMIN)
    first = rotate(maria.plan, maria.admin, "crm-sync")
    second = rotate(maria.plan, maria.admin, "crm-sync", first)
    assert login_of(first).username != login_of(second).username
    schema = maria.plan.consumers[0].schema
    with connected(maria.plan, login_of(first), schema) as cursor:
        cursor.execute("SELECT count(*) FROM customers")  # the overlap: both work
    rotator(maria.plan, maria.admin, "crm-sync").retire(first, second)
    with pytest.raises(pymysql.err.OperationalError):
        mariadb.connect(maria.plan, login_of(first), schema).close()
    # A wrong password is refused (MariaDB authenticates for real here).
    wrong = Login(login_of(second).username, login_of(first).password)
    with pytest.raises(pymysql.err.OperationalError):
        mariadb.connect(maria.plan, wrong, schema).close()
    with connected(maria.plan, login_of(second), schema) as cursor:
        cursor.execute("SELECT count(*) FROM customers")
        assert cursor.fetchone() == (2,)
    assert service.audit(maria.plan, maria.admin) == []


def test_a_refused_statement_reports_how_far_apply_got(maria: Shared) -> None:
    with mariadb.connect(maria.plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE `{maria.source}`.`customers` DROP COLUMN country")
    sink = MemorySink()
    with pytest.raises(mariadb.ApplyError, match=r"statement \d+ of \d+ .* run apply again"):
        service.apply(maria.plan, maria.admin, audit_sink=sink, actor=ADMIN)
    assert [e.outcome.result for e in sink.entries] == ["partial_failure"]


ORIGINAL_ROWS = "rows: \"country = 'DE' and email is not null and id <> -1\""
HOSTILE_ROWS = (
    r"""rows: 'country in (''DE'', ''x''''); DROP TABLE customers; --'', ''a\'', ''\'')'"""
)


@pytest.mark.parametrize("sql_mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_a_hostile_literal_in_the_row_filter_stays_a_value(maria: Shared, sql_mode: str) -> None:
    """Quotes and backslashes stay text, whether or not the server treats \\ as an escape."""
    text = maria.path.read_text(encoding="utf-8")
    assert ORIGINAL_ROWS in text
    maria.path.write_text(text.replace(ORIGINAL_ROWS, HOSTILE_ROWS), encoding="utf-8")
    plan = plan_for(load_manifest(maria.path), INTEGRATION)
    with mariadb.connect(plan, maria.admin) as connection, connection.cursor() as cursor:
        # The session's mode only (the server is shared): PyMySQL escapes for the mode it is in.
        cursor.execute("SET SESSION sql_mode = CONCAT(@@SESSION.sql_mode, ',', %s)", (sql_mode,))
        for statement in mariadb.statements(plan):
            cursor.execute(statement.text, statement.params)
    login = login_of(rotate(plan, maria.admin, "crm-sync"))
    schema = plan.consumers[0].schema
    with connected(plan, login, schema) as cursor:
        cursor.execute("SELECT id FROM customers ORDER BY id")
        assert cursor.fetchall() == ((1,), (3,))
    with mariadb.connect(plan, maria.admin) as connection, connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM `{maria.source}`.`customers`")  # noqa: S608
        assert cursor.fetchone() == (3,)
        cursor.execute(
            "SELECT VIEW_DEFINITION FROM information_schema.VIEWS "
            "WHERE TABLE_SCHEMA = %s AND TABLE_NAME = 'customers'",
            (schema,),
        )
        (definition,) = cursor.fetchone()
    assert "DROP TABLE customers; --" in definition


def test_a_consumer_removed_from_the_manifest_loses_its_login_and_grants(maria: Shared) -> None:
    """Its accounts are found by the naming scheme: audit reports them, apply locks them."""
    _applied(maria)
    billing = next(c for c in maria.plan.consumers if c.client == "billing")
    gone = login_of(rotate(maria.plan, maria.admin, "billing"))
    plan = edited_plan(maria.path, INTEGRATION, BILLING.format(source=maria.source), "")
    drifts = service.audit(plan, maria.admin)
    assert set(billing.logins) <= {d.privilege.role for d in drifts}
    assert f"{gone.username}: has LOGIN" in {d.privilege.describe() for d in drifts}
    service.apply(plan, maria.admin, audit_sink=MemorySink(), actor=ADMIN)
    assert service.audit(plan, maria.admin) == []
    with pytest.raises(pymysql.err.OperationalError):
        mariadb.connect(plan, gone, billing.schema).close()
    with connected(maria.plan, maria.admin) as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = %s",
            (f"'{gone.username}'@'{billing.from_host}'",),
        )
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize(
    ("statements", "expected"),
    [
        (
            [
                "CREATE DEFINER = CURRENT_USER PROCEDURE `{source}`.`dump`() "
                "SQL SECURITY DEFINER SELECT * FROM `{source}`.`customers`",
                "GRANT EXECUTE ON PROCEDURE `{source}`.`dump` TO %s@'%%'",
            ],
            "{login}: Execute on function {source}.dump",
        ),
        (
            ["GRANT SELECT ON `{schema}`.`customers` TO %s@'%%' WITH GRANT OPTION"],
            "{login}: GRANT OPTION on table {schema}.customers",
        ),
    ],
    ids=["a routine granted to a login", "a view granted WITH GRANT OPTION"],
)
def test_out_of_band_access_is_reported(
    maria: Shared, statements: list[str], expected: str
) -> None:
    """A definer-rights routine, or the right to pass a view on, reported; apply removes it."""
    _applied(maria)
    consumer = maria.plan.consumers[0]
    names = {"login": consumer.logins[0], "source": maria.source, "schema": consumer.schema}
    with connected(maria.plan, maria.admin) as cursor:
        for statement in statements:
            text = statement.replace("{source}", maria.source).replace("{schema}", consumer.schema)
            cursor.execute(text, (names["login"],) if "%s" in text else None)
    found = {d.privilege.describe() for d in service.audit(maria.plan, maria.admin)}
    assert expected.format(**names) in found, found
    service.apply(maria.plan, maria.admin, audit_sink=MemorySink(), actor=ADMIN)
    assert service.audit(maria.plan, maria.admin) == []
