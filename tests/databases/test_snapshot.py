"""``db diff``: the snapshot document is validated whole, and manifest edits that widen a
consumer are reported as widening (against the real PostgreSQL's source columns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from interlock.config.loader import load_manifest
from interlock.databases import service, snapshot
from interlock.databases.connection import postgresql_params
from interlock.databases.plan import plan_for
from interlock.errors import InvalidRequestError
from tests.databases.conftest import INTEGRATION, Shared, manifest_text
from tests.databases.helpers import BILLING, edited_plan


def _taken(pg: Shared) -> dict[str, Any]:
    return snapshot.take(
        pg.plan, service.source_columns(pg.plan, pg.admin), service.view_definitions
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "              rows: \"country = 'DE' and email is not null and id <> -1\"\n",
            "",
            "row filter of view customers dropped",
        ),
        ("write: [email]", "write: [email, country]", "made writable through view customers"),
        (
            "              columns: {id: system.operations}\n",
            "              columns: {{id: system.operations}}\n"
            "            emails:\n"
            "              table: {source}.customers\n"
            "              columns: {{id: system.operations, email: user.contact.email}}\n",
            "new view emails",
        ),
    ],
)
def test_a_manifest_edit_that_widens_a_consumer_is_widening(
    pg: Shared, old: str, new: str, expected: str
) -> None:
    """Dropping the row filter, adding write columns or a view fails the pipeline (exit 1)."""
    taken = _taken(pg)
    edited = edited_plan(pg.path, INTEGRATION, old, new.format(source=pg.source))
    changes = snapshot.diff(edited, taken, service.source_columns(edited, pg.admin))
    widening = [c.detail for c in changes if c.kind == "widening"]
    assert any(expected in detail for detail in widening), changes


def test_a_new_consumer_is_widening(pg: Shared) -> None:
    """A consumer the snapshot does not know reads data it never read: widening."""
    without = edited_plan(pg.path, INTEGRATION, BILLING.format(source=pg.source), "")
    taken = snapshot.take(
        without, service.source_columns(without, pg.admin), service.view_definitions
    )
    changes = snapshot.diff(pg.plan, taken, service.source_columns(pg.plan, pg.admin))
    assert [(c.kind, c.consumers) for c in changes if "billing" in c.detail] == [
        ("widening", ("billing",))
    ]


def test_an_unchanged_manifest_reports_nothing(pg: Shared) -> None:
    """The new checks stay quiet when nothing changed."""
    assert snapshot.diff(pg.plan, _taken(pg), service.source_columns(pg.plan, pg.admin)) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"tables": []}, "tables"),
        ({"consumers": {"x": []}}, "consumers.x"),
        ({"consumers": {"x": {"schema": "s", "views": {"v": {}}}}}, "consumers.x.views.v"),
        ({"tables": {"public.t": None}}, "tables.public.t"),
        ({"tables": {"public.t": {"id": 1}}}, "tables.public.t.id"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_a_malformed_snapshot_is_one_located_error(
    tmp_path: Path, change: dict[str, Any], where: str
) -> None:
    """Never an internal error: the key that is wrong is named."""
    path = tmp_path / "interlock.yaml"
    path.write_text(
        manifest_text("postgresql", "127.0.0.1", 5432, "test", "sales", "p"), encoding="utf-8"
    )
    plan = plan_for(load_manifest(path), INTEGRATION)
    document = snapshot.take(plan, {("sales", "customers"): {"id": "integer"}}, lambda _: {})
    document.update(change)
    with pytest.raises(InvalidRequestError) as raised:
        snapshot.diff(plan, document, {})
    message = str(raised.value)
    assert f"snapshot: {where}" in message, message
    assert "\n" not in message


def test_a_narrowed_length_or_precision_is_breaking(pg: Shared) -> None:
    """varchar(200) to varchar(20), numeric(10,2) to numeric(5,0): retyped, as MariaDB sees it."""
    table = sql.Identifier(pg.source, "customers")
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN email TYPE varchar(200)").format(table)
        )
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE numeric(10,2)").format(table)
        )
    taken = _taken(pg)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN email TYPE varchar(20)").format(table)
        )
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE numeric(5,0)").format(table)
        )
    changes = snapshot.diff(pg.plan, taken, service.source_columns(pg.plan, pg.admin))
    found = {(c.kind, c.column, c.detail) for c in changes}
    assert (
        "breaking",
        "email",
        "retyped from character varying(200) to character varying(20)",
    ) in found, found
    assert ("breaking", "id", "retyped from numeric(10,2) to numeric(5,0)") in found, found


def test_a_snapshot_of_type_names_only_still_compares(pg: Shared) -> None:
    """Snapshots taken before types carried their length compare the type names alone."""
    table = sql.Identifier(pg.source, "customers")
    admin = postgresql_params(pg.plan.system, pg.admin)
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(
            sql.SQL("ALTER TABLE {} ALTER COLUMN email TYPE varchar(200)").format(table)
        )
    old = _taken(pg)
    old.pop("types", None)
    old["tables"] = {
        f"{pg.source}.customers": {
            "id": "integer",
            "email": "character varying",
            "country": "text",
            "name": "text",
        }
    }
    assert snapshot.diff(pg.plan, old, service.source_columns(pg.plan, pg.admin)) == []
    with psycopg.connect(**admin, autocommit=True) as connection:
        connection.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN id TYPE bigint").format(table))
    changes = snapshot.diff(pg.plan, old, service.source_columns(pg.plan, pg.admin))
    assert [(c.kind, c.column) for c in changes] == [("breaking", "id")]
