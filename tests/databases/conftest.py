"""Shared-database fixtures: a manifest over fresh source tables on the real servers.

PostgreSQL: the source table lives in the fresh schema ``postgres_url`` makes;
the generated roles are cluster-global, so every test's prefix is random and
its roles (and what they own) are dropped afterwards. MariaDB: a fresh source
database per test, its view databases and accounts dropped afterwards.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pymysql  # type: ignore[import-untyped]
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.databases.connection import Login
from interlock.databases.plan import Plan, plan_for
from interlock.databases.postgresql import APPLY_LOCK
from interlock.secret import Secret

INTEGRATION = "crm-customers"

ROWS = (
    (1, "anna@example.de", "DE", "Anna"),
    (2, "bob@example.fr", "FR", "Bob"),
    (3, "carl@example.de", "DE", "Carl"),
)


def manifest_text(  # noqa: PLR0917  (the manifest's six blanks)
    kind: str, host: str, port: int, database: str, source: str, prefix: str
) -> str:
    """A manifest with one shared_database integration over ``source``.customers."""
    return f"""
version: 1
systems:
  erp: {{url: "https://erp.example.com", location: DE}}
  crm: {{url: "https://crm.example.com", location: DE}}
clients:
  crm-sync: {{auth: [oauth2]}}
  billing: {{auth: [oauth2]}}
databases:
  shared:
    kind: {kind}
    host: "{host}"
    port: {port}
    database: {database}
    tls: disable
    admin: secret://db/shared-admin
integrations:
  {INTEGRATION}:
    type: shared_database
    source: erp
    target: crm
    client: crm-sync
    purpose: The CRM reads German customers from the ERP database
    legal_basis: contract
    data_categories: [user.contact.email, user.contact.address.country, system.operations]
    data_subjects: [customer]
    retention: P90D
    database:
      system: shared
      prefix: {prefix}
      consumers:
        crm-sync:
          connection_limit: 3
          statement_timeout: 5s
          views:
            customers:
              table: {source}.customers
              columns:
                id: system.operations
                email: user.contact.email
                country: user.contact.address.country
              rows: "country = 'DE' and email is not null and id <> -1"
              write: [email]
        billing:
          views:
            customer_ids:
              table: {source}.customers
              columns: {{id: system.operations}}
"""


@dataclass
class Shared:
    """One test's world: the manifest, its plan, the admin login and the source schema."""

    manifest: Manifest
    plan: Plan
    admin: Login
    source: str
    path: Path


def _pg_admin_params(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "dbname": parsed.database or "test",
        "user": parsed.username or "postgres",
    }


@pytest.fixture
def pg(postgres_url: str, tmp_path: Path) -> Iterator[Shared]:
    """A source table ``customers`` in a fresh schema, and a manifest over it (PostgreSQL)."""
    options = str(make_url(postgres_url).query.get("options", ""))
    source = options.removeprefix("-csearch_path=")
    params = _pg_admin_params(postgres_url)
    prefix = f"t{secrets.token_hex(5)}"
    with psycopg.connect(**params, autocommit=True) as connection:
        connection.execute(
            sql.SQL(
                "CREATE TABLE {} (id integer PRIMARY KEY, email text, country text, name text)"
            ).format(sql.Identifier(source, "customers"))
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s)").format(
                    sql.Identifier(source, "customers")
                ),
                ROWS,
            )
    path = tmp_path / "interlock.yaml"
    path.write_text(
        manifest_text(
            "postgresql", params["host"], params["port"], params["dbname"], source, prefix
        ),
        encoding="utf-8",
    )
    manifest = load_manifest(path)
    plan = plan_for(manifest, INTEGRATION)
    admin = Login(params["user"], Secret((make_url(postgres_url).password or "").encode()))
    try:
        yield Shared(manifest, plan, admin, source, path)
    finally:
        roles = [plan.owner, *(n for c in plan.consumers for n in c.logins)]
        with psycopg.connect(**params) as connection:
            # DROP OWNED changes the database's ACL: wait for concurrent applies (their lock).
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (APPLY_LOCK,))
            for role in roles:
                exists = connection.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                if exists:
                    connection.execute(
                        sql.SQL("DROP OWNED BY {} CASCADE").format(sql.Identifier(role))
                    )
                    connection.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _maria_admin(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    return {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 3306,
        "user": parsed.username or "root",
        "password": parsed.password or "",
    }


@pytest.fixture
def maria(mariadb_url: str, tmp_path: Path) -> Iterator[Shared]:
    """A source table ``customers`` in a fresh database, and a manifest over it (MariaDB)."""
    params = _maria_admin(mariadb_url)
    suffix = secrets.token_hex(5)
    source, prefix = f"src_{suffix}", f"t{suffix}"
    with pymysql.connect(**params, autocommit=True) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{source}`")
        cursor.execute(
            f"CREATE TABLE `{source}`.`customers` "
            "(id INT PRIMARY KEY, email VARCHAR(200), country CHAR(2), name VARCHAR(100))"
        )
        cursor.executemany(
            f"INSERT INTO `{source}`.`customers` VALUES (%s, %s, %s, %s)",  # noqa: S608  (a test's own name)
            ROWS,
        )
    path = tmp_path / "interlock.yaml"
    path.write_text(
        manifest_text("mariadb", params["host"], params["port"], "test", source, prefix),
        encoding="utf-8",
    )
    manifest = load_manifest(path)
    plan = plan_for(manifest, INTEGRATION)
    admin = Login(params["user"], Secret(params["password"].encode()))
    try:
        yield Shared(manifest, plan, admin, source, path)
    finally:
        with (
            pymysql.connect(**params, autocommit=True) as connection,
            connection.cursor() as cursor,
        ):
            cursor.execute(f"DROP DATABASE IF EXISTS `{source}`")
            for consumer in plan.consumers:
                cursor.execute(f"DROP DATABASE IF EXISTS `{consumer.schema}`")
                for login in consumer.logins:
                    cursor.execute("DROP USER IF EXISTS %s@%s", (login, consumer.from_host))
            cursor.execute("DROP USER IF EXISTS %s@'localhost'", (plan.owner,))
