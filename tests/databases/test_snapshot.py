"""``db diff``: the snapshot document is validated whole, and manifest edits that widen a
consumer are reported as widening (against the real PostgreSQL's source columns)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from interlock.config.loader import load_manifest
from interlock.databases import service, snapshot
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
