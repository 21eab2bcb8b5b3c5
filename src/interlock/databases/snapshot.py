"""Schema-change control: what each consumer's views rest on, and what a migration changes.

:func:`take` records, for one integration, each consumer's view definitions
(the statements the plan generates) and the columns and types of every source
table as the server reports them. :func:`diff` compares a snapshot with the
source tables now (a migration applied to a staging copy, say) and with the
manifest's plan, and reports:

* **breaking** — a source table gone; a column a view reads dropped or
  renamed (a new column of the same type is named as the likely new name);
  a column a view reads whose type changed; a column removed from a view;
* **widening** — a new source column whose name suggests personal data
  (:mod:`interlock.gdpr.field_names`): nobody reads it through the views yet,
  but the owners should decide before the data lands in a shared table; a
  column added to a consumer's view;
* **added** — any other new source column (reported, not a failure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from interlock.databases.plan import Plan
from interlock.errors import InvalidRequestError
from interlock.gdpr.field_names import suggested_category

__all__ = ["FORMAT", "Change", "diff", "take"]

FORMAT: Final = "interlock-db-snapshot/1"

Kind = Literal["breaking", "widening", "added"]


@dataclass(frozen=True)
class Change:
    """One difference, whom it affects, and what it means."""

    kind: Kind
    table: str
    column: str | None
    detail: str
    consumers: tuple[str, ...] = ()

    def as_json(self) -> dict[str, object]:
        """A JSON object for ``--json``."""
        return {
            "kind": self.kind,
            "table": self.table,
            "column": self.column,
            "detail": self.detail,
            "consumers": list(self.consumers),
        }


def take(
    plan: Plan,
    columns: dict[tuple[str, str], dict[str, str]],
    definitions: Callable[[Plan], dict[str, dict[str, str]]],
) -> dict[str, Any]:
    """The snapshot of ``plan``: view definitions (``definitions(plan)``) and source columns."""
    views = definitions(plan)
    return {
        "format": FORMAT,
        "integration": plan.integration,
        "system": plan.system_name,
        "kind": plan.kind,
        "consumers": {
            consumer.client: {
                "schema": consumer.schema,
                "views": {
                    view.name: {
                        "table": f"{view.source_schema}.{view.source_table}",
                        "columns": list(view.columns),
                        "definition": views.get(consumer.client, {}).get(view.name, ""),
                    }
                    for view in consumer.views
                },
            }
            for consumer in plan.consumers
        },
        "tables": {f"{s}.{t}": dict(cols) for (s, t), cols in sorted(columns.items())},
    }


def _loaded(snapshot: object, plan: Plan) -> dict[str, Any]:
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        raise InvalidRequestError(f"the snapshot is not an {FORMAT} document")
    if snapshot.get("integration") != plan.integration:
        raise InvalidRequestError(
            f"the snapshot is of {snapshot.get('integration')!r}, not {plan.integration!r}"
        )
    return snapshot


def diff(plan: Plan, snapshot: object, live: dict[tuple[str, str], dict[str, str]]) -> list[Change]:
    """What changed between ``snapshot`` and the ``live`` source columns and the plan now."""
    taken = _loaded(snapshot, plan)
    tables: dict[str, dict[str, str]] = taken.get("tables", {})
    readers: dict[tuple[str, str], set[str]] = {}
    for client, consumer in taken.get("consumers", {}).items():
        for view in consumer.get("views", {}).values():
            for column in view.get("columns", []):
                readers.setdefault((view["table"], column), set()).add(client)
    now = {f"{s}.{t}": cols for (s, t), cols in live.items()}
    changes: list[Change] = []
    for table, before in sorted(tables.items()):
        after = now.get(table)
        users = tuple(sorted({c for (t, _), cs in readers.items() if t == table for c in cs}))
        if after is None:
            changes.append(
                Change("breaking", table, None, "the table is gone (dropped or renamed)", users)
            )
            continue
        appeared = [c for c in after if c not in before]
        for column, kind in before.items():
            who = tuple(sorted(readers.get((table, column), ())))
            if column not in after:
                if not who:
                    continue
                same = [c for c in appeared if after[c] == kind]
                hint = f"; renamed to {same[0]}?" if len(same) == 1 else ""
                changes.append(
                    Change("breaking", table, column, f"dropped or renamed (was {kind}){hint}", who)
                )
            elif after[column] != kind and who:
                changes.append(
                    Change(
                        "breaking", table, column, f"retyped from {kind} to {after[column]}", who
                    )
                )
        for column in appeared:
            category = suggested_category(column)
            if category is not None and category.startswith("user"):
                changes.append(
                    Change(
                        "widening",
                        table,
                        column,
                        f"new column whose name suggests personal data ({category})",
                        users,
                    )
                )
            else:
                changes.append(Change("added", table, column, f"new column ({after[column]})"))
    changes.extend(_plan_changes(plan, taken))
    return changes


def _plan_changes(plan: Plan, taken: dict[str, Any]) -> list[Change]:
    """Columns the manifest now removes from (breaking) or adds to (widening) a view."""
    changes: list[Change] = []
    consumers: dict[str, Any] = taken.get("consumers", {})
    for consumer in plan.consumers:
        before_views = consumers.get(consumer.client, {}).get("views", {})
        for view in consumer.views:
            if view.name not in before_views:
                continue
            table = f"{view.source_schema}.{view.source_table}"
            before = before_views[view.name].get("columns", [])
            who = (consumer.client,)
            changes.extend(
                Change("breaking", table, c, f"removed from view {view.name}", who)
                for c in before
                if c not in view.columns
            )
            changes.extend(
                Change("widening", table, c, f"added to view {view.name}", who)
                for c in view.columns
                if c not in before
            )
    return changes
