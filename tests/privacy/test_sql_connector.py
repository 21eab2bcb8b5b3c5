"""The SQL connector on the running PostgreSQL and MariaDB: bound parameters, TLS rules."""

# The tests' own tables get unique names, written into their set-up SQL (S608).
# ruff: noqa: S608

from __future__ import annotations

import base64
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
import yaml
from sqlalchemy.engine import make_url

from interlock.config.manifest import SqlConnector as SqlSettings
from interlock.errors import InterlockError, NotFoundError
from interlock.gdpr.identifiers import normalise
from interlock.outbound import tls_context
from interlock.privacy.connectors import ConnectorEnvironment, ConnectorError
from interlock.privacy.connectors import sql as sql_connector
from interlock.privacy.connectors.sql import SqlConnector, check_database_url
from interlock.sdk.rfc9421 import RequestSigner
from interlock.secret import Secret
from tests.conftest import REPO_ROOT

ADA = "ada@example.com"
REQUEST = "dsr_abcdefghijklmnopqrstuvwx"
REFERENCE = "secret://crm/privacy-db"


@dataclass
class Vault:
    """The database URL behind the reference."""

    url: str

    def resolve(self, reference: str) -> Secret:
        """The URL, for REFERENCE only."""
        if reference != REFERENCE:
            raise NotFoundError("no such secret")
        return Secret(self.url.encode())


def _no_signer() -> RequestSigner:
    raise AssertionError("the SQL connector signs nothing")


def connector(url: str, table: str, **statements: str) -> SqlConnector:
    """A SQL connector on ``url`` whose statements name ``table``."""
    defaults = {
        "access": f"SELECT email, name, joined, balance, photo FROM {table} WHERE email = :subject",
        "erase": f"DELETE FROM {table} WHERE email = :subject",
        "rectify": f"UPDATE {table} SET name = :name WHERE email = :subject",
    }
    defaults.update(statements)
    settings = SqlSettings(database=REFERENCE, **defaults)
    environment = ConnectorEnvironment(
        secrets=Vault(url), trust=lambda _: tls_context(), signer=_no_signer
    )
    return SqlConnector("crm", settings, environment)


def fill(url: str, table: str, blob_type: str) -> None:
    """Create ``table`` with Ada and Grace."""
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE {table} (email VARCHAR(200), name VARCHAR(200), joined DATE, "
                f"balance DECIMAL(10, 2), photo {blob_type})"
            )
        )
        connection.execute(
            sa.text(f"INSERT INTO {table} VALUES (:e, :n, '2024-02-29', 12.50, :p)"),
            [
                {"e": ADA, "n": "Ada Lovelace", "p": b"\x00\xff"},
                {"e": "grace@example.com", "n": "Grace Hopper", "p": None},
            ],
        )
    engine.dispose()


def names(url: str, table: str) -> list[str]:
    """Every name in ``table``."""
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        found = list(
            connection.execute(sa.text(f"SELECT name FROM {table} ORDER BY name")).scalars()
        )
    engine.dispose()
    return found


@pytest.fixture
def postgres_table(postgres_url: str) -> tuple[str, str]:
    """(URL, table) on PostgreSQL, in the test's own schema."""
    fill(postgres_url, "customers", "BYTEA")
    return postgres_url, "customers"


@pytest.fixture
def mariadb_table(mariadb_url: str) -> Iterator[tuple[str, str]]:
    """(URL, table) on MariaDB: a uniquely named table in database ``test``, dropped after."""
    table = f"dsr_{uuid.uuid4().hex[:12]}"
    fill(mariadb_url, table, "BLOB")
    yield mariadb_url, table
    engine = sa.create_engine(mariadb_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f"DROP TABLE {table}"))
    engine.dispose()


@pytest.fixture(params=["postgresql", "mariadb"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Each database in turn (a ``backend`` parameter: marked by tests/conftest.py)."""
    table: tuple[str, str] = request.getfixturevalue(f"{request.param.replace('ql', '')}_table")
    return table


def test_access_answers_the_rows_as_json(backend: tuple[str, str]) -> None:
    url, table = backend
    answer = connector(url, table).ask("access", REQUEST, "email", ADA, None)
    assert answer.status == "done"
    assert answer.records == 1
    assert answer.data == [
        {
            "email": ADA,
            "name": "Ada Lovelace",
            "joined": "2024-02-29",
            "balance": "12.50",
            "photo": base64.b64encode(b"\x00\xff").decode(),
        }
    ]


def test_nobody_is_not_found(backend: tuple[str, str]) -> None:
    url, table = backend
    answer = connector(url, table).ask("export", REQUEST, "email", "nobody@example.com", None)
    assert (answer.status, answer.records, answer.data) == ("not_found", 0, [])


def test_erase_deletes_only_the_person(backend: tuple[str, str]) -> None:
    url, table = backend
    answer = connector(url, table).ask("erase", REQUEST, "email", ADA, None)
    assert (answer.status, answer.records) == ("done", 1)
    assert names(url, table) == ["Grace Hopper"]
    again = connector(url, table).ask("erase", REQUEST, "email", ADA, None)
    assert again.status == "not_found"


def test_rectify_binds_the_corrections_by_name(backend: tuple[str, str]) -> None:
    url, table = backend
    answer = connector(url, table).ask("rectify", REQUEST, "email", ADA, {"name": "Ada King"})
    assert (answer.status, answer.records) == ("done", 1)
    assert names(url, table) == ["Ada King", "Grace Hopper"]


def test_a_value_is_never_sql(backend: tuple[str, str]) -> None:
    url, table = backend
    hostile = "x' OR '1'='1"
    answer = connector(url, table).ask("erase", REQUEST, "email", hostile, None)
    assert answer.status == "not_found"
    assert len(names(url, table)) == 2


@pytest.mark.parametrize(
    ("corrections", "message"),
    [
        ({"name": "A", "email": "b"}, "binds no field named email"),
        ({}, "no value for the statement's bind parameter"),
    ],
)
def test_binds_are_checked_before_anything_runs(
    postgres_table: tuple[str, str], corrections: dict[str, str], message: str
) -> None:
    url, table = postgres_table
    with pytest.raises(ConnectorError, match=message) as caught:
        connector(url, table).ask("rectify", REQUEST, "email", ADA, corrections)
    assert not caught.value.retryable
    assert names(url, table) == ["Ada Lovelace", "Grace Hopper"]


def test_a_statement_error_fails_without_echoing_the_identifier(
    backend: tuple[str, str],
) -> None:
    url, table = backend
    with pytest.raises(ConnectorError, match="the statement failed") as caught:
        connector(url, table, erase="DELETE FROM no_such_table WHERE email = :subject").ask(
            "erase", REQUEST, "email", ADA, None
        )
    assert not caught.value.retryable
    assert ADA not in str(caught.value)


def test_a_statement_that_runs_too_long_is_stopped_and_may_be_retried(
    backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hung database does not hold the request worker: the statement is cut off."""
    url, table = backend
    monkeypatch.setattr(sql_connector, "STATEMENT_SECONDS", 1)
    sleep = "pg_sleep(5)" if url.startswith("postgresql") else "SLEEP(5)"
    slow = connector(
        url,
        table,
        access=f"SELECT email FROM {table} WHERE email = :subject AND {sleep} IS NOT NULL",
    )
    started = time.monotonic()
    with pytest.raises(ConnectorError, match="could not be used") as caught:
        slow.ask("access", REQUEST, "email", ADA, None)
    assert time.monotonic() - started < 4.5  # stopped, not run to the end
    assert caught.value.retryable
    assert ADA not in str(caught.value)


def test_a_driver_message_quoting_the_value_is_not_repeated(
    postgres_table: tuple[str, str],
) -> None:
    url, table = postgres_table
    statement = f"SELECT name FROM {table} WHERE joined = CAST(:subject AS date)"
    with pytest.raises(ConnectorError) as caught:
        connector(url, table, access=statement).ask("access", REQUEST, "email", ADA, None)
    assert ADA not in str(caught.value)
    assert "22007" in str(caught.value)  # the SQL state says what kind of error it was


def test_an_unreachable_database_may_be_retried() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:1/test"
    with pytest.raises(ConnectorError, match="could not be used") as caught:
        connector(url, "customers").ask("erase", REQUEST, "email", ADA, None)
    assert caught.value.retryable


def test_a_missing_statement_is_a_clear_failure(postgres_table: tuple[str, str]) -> None:
    url, table = postgres_table
    settings = SqlSettings(database=REFERENCE, erase=f"DELETE FROM {table} WHERE email = :subject")
    environment = ConnectorEnvironment(Vault(url), lambda _: tls_context(), _no_signer)
    with pytest.raises(ConnectorError, match="no access statement"):
        SqlConnector("crm", settings, environment).ask("access", REQUEST, "email", ADA, None)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u@127.0.0.1/db",
        "postgresql+psycopg://u@localhost:5432/db",
        "postgresql+psycopg://u@[::1]/db",
        "postgresql+psycopg://u@/db?host=/var/run/postgresql",
        "postgresql+psycopg://u@db.example.com/db?sslmode=verify-full",
        "mysql+pymysql://u@db.example.com/db?ssl_ca=/etc/ca.pem",
        "mariadb+pymysql://u@10.1.2.3/db?ssl_ca=/etc/ca.pem&ssl_check_hostname=true",
    ],
)
def test_local_or_verified_connections_are_accepted(url: str) -> None:
    check_database_url(make_url(url))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql+psycopg://u@db.example.com/db", "sslmode=verify-full"),
        ("postgresql+psycopg://u@db.example.com/db?sslmode=require", "sslmode=verify-full"),
        ("postgresql+psycopg://u@10.0.0.8/db?sslmode=verify-ca", "sslmode=verify-full"),
        ("mysql+pymysql://u@db.example.com/db", "ssl_ca="),
        (
            "mysql+pymysql://u@db.example.com/db?ssl_ca=/ca.pem&ssl_check_hostname=false",
            "ssl_check_hostname",
        ),
        ("postgresql://u@127.0.0.1/db", r"postgresql\+psycopg://"),
        ("sqlite:///x.db", "not sqlite://"),
    ],
)
def test_clear_text_to_another_host_is_refused(url: str, message: str) -> None:
    with pytest.raises(InterlockError, match=message):
        check_database_url(make_url(url))


def test_a_refused_url_fails_before_connecting() -> None:
    with pytest.raises(ConnectorError, match="sslmode=verify-full") as caught:
        connector("postgresql+psycopg://u@db.invalid/db", "customers").ask(
            "erase", REQUEST, "email", ADA, None
        )
    assert not caught.value.retryable


def _documented_statements() -> dict[str, str]:
    """docs/privacy.md's SQL connector example: the statements a reader copies."""
    text = (REPO_ROOT / "docs" / "privacy.md").read_text(encoding="utf-8")
    for block in re.findall(r"^```yaml\n(.*?)^```", text, re.MULTILINE | re.DOTALL):
        if "sql:" not in block:
            continue  # other blocks are excerpts with "..." in them, not YAML
        document = yaml.safe_load(block)
        crm = document.get("systems", {}).get("crm") if isinstance(document, dict) else None
        if isinstance(crm, dict) and "privacy" in crm:
            statements: dict[str, str] = crm["privacy"]["sql"]
            return {k: v for k, v in statements.items() if k != "database"}
    raise LookupError("docs/privacy.md has no SQL connector example")


def test_the_documented_statements_find_an_address_stored_in_mixed_case(
    postgres_url: str,
) -> None:
    """:subject is the lower-cased address; PostgreSQL compares text case-sensitively.

    The example once read ``WHERE email = :subject``: ``Ada@Example.com`` was
    ``not_found``, and an erasure closed ``completed`` with the row still there.
    """
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("CREATE TABLE contacts (email VARCHAR(200), name VARCHAR(200), created DATE)")
        )
        connection.execute(
            sa.text("INSERT INTO contacts VALUES ('Ada@Example.com', 'Ada', '2024-02-29')")
        )
    statements = _documented_statements()
    documented = connector(postgres_url, "contacts", **statements)
    subject = normalise("email", "Ada@Example.com")
    found = documented.ask("access", REQUEST, "email", subject, None)
    assert (found.status, found.records) == ("done", 1)
    fixed = documented.ask("rectify", REQUEST, "email", subject, {"name": "Ada King"})
    assert (fixed.status, fixed.records) == ("done", 1)
    erased = documented.ask("erase", REQUEST, "email", subject, None)
    assert (erased.status, erased.records) == ("done", 1)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM contacts")).scalar() == 0
    engine.dispose()
