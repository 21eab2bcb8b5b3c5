"""Schema-change control: what each consumer's views rest on, and what a migration changes.

:func:`take` records, for one integration, each consumer's view definitions
(the statements the plan generates) and the columns and types of every source
table as the server reports them. :func:`diff` compares a snapshot with the
source tables now (a migration applied to a staging copy, say) and with the
manifest's plan, and reports:

* **breaking** — a source table gone; a column a view reads dropped or
  renamed (a new column of the same type is named as the likely new name);
  a column a view reads whose type changed; a column removed from a view;
  a view or a consumer the manifest no longer declares;
* **widening** — a new source column whose name suggests personal data
  (:mod:`interlock.gdpr.field_names`): nobody reads it through the views yet,
  but the owners should decide before the data lands in a shared table; a
  column added to a consumer's view; a new view or a new consumer; a row
  filter dropped or changed (a changed filter may admit other rows); a
  column made writable;
* **added** — any other new source column (reported, not a failure).

Types are compared with their length, precision or other modifier
(``character varying(20)``, ``numeric(10,2)``; MariaDB's ``COLUMN_TYPE``), so a
narrowed column is a retype. PostgreSQL snapshots written before that (no
``types: full``) recorded the type names alone (information_schema's
``data_type``); for them the modifiers are left out of the comparison.

A snapshot is validated whole before it is compared (:class:`InvalidRequestError`
naming the first bad key): it is a file a pipeline hands over, not trusted input.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from interlock.config.databases import parse_filter
from interlock.databases.plan import Plan, ViewPlan
from interlock.errors import InvalidRequestError
from interlock.gdpr.field_names import suggested_category

__all__ = ["FORMAT", "Change", "diff", "take"]

FORMAT: Final = "interlock-db-snapshot/1"
#: ``types`` of a snapshot whose column types carry their modifiers (``varchar(20)``).
FULL_TYPES: Final = "full"

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
        "types": FULL_TYPES,
        "consumers": {
            consumer.client: {
                "schema": consumer.schema,
                "views": {
                    view.name: {
                        "table": f"{view.source_schema}.{view.source_table}",
                        "columns": list(view.columns),
                        "rows": view.rows,
                        "write": list(view.write),
                        "definition": views.get(consumer.client, {}).get(view.name, ""),
                    }
                    for view in consumer.views
                },
            }
            for consumer in plan.consumers
        },
        "tables": {f"{s}.{t}": dict(cols) for (s, t), cols in sorted(columns.items())},
    }


_Text = Annotated[str, StringConstraints(max_length=100_000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class _View(_Strict):
    table: _Text
    columns: list[_Text] = Field(max_length=500)
    # Recorded since the widening checks; None in older snapshots (then not compared).
    rows: _Text | None = None
    write: list[_Text] | None = Field(default=None, max_length=500)
    definition: _Text = ""


class _Consumer(_Strict):
    schema_: _Text = Field(alias="schema")
    views: dict[_Text, _View] = Field(max_length=200)


class _Snapshot(_Strict):
    format: Literal["interlock-db-snapshot/1"]
    integration: _Text
    system: _Text | None = None
    kind: Literal["postgresql", "mariadb"] | None = None
    # "full" since types carry their modifiers; None in older snapshots.
    types: Literal["full"] | None = None
    consumers: dict[_Text, _Consumer] = Field(default_factory=dict, max_length=50)
    tables: dict[_Text, dict[_Text, _Text]] = Field(default_factory=dict, max_length=10_000)


def _loaded(snapshot: object, plan: Plan) -> _Snapshot:
    if not isinstance(snapshot, dict) or snapshot.get("format") != FORMAT:
        raise InvalidRequestError(f"the snapshot is not an {FORMAT} document")
    try:
        taken = _Snapshot.model_validate(snapshot)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the document"
        message = " ".join(first["msg"].split())
        raise InvalidRequestError(f"snapshot: {where}: {message}") from None
    if taken.integration != plan.integration:
        raise InvalidRequestError(
            f"the snapshot is of {taken.integration!r}, not {plan.integration!r}"
        )
    return taken


def diff(plan: Plan, snapshot: object, live: dict[tuple[str, str], dict[str, str]]) -> list[Change]:
    """What changed between ``snapshot`` and the ``live`` source columns and the plan now."""
    taken = _loaded(snapshot, plan)
    tables = taken.tables
    readers: dict[tuple[str, str], set[str]] = {}
    for client, consumer in taken.consumers.items():
        for view in consumer.views.values():
            for column in view.columns:
                readers.setdefault((view.table, column), set()).add(client)
    now = {f"{s}.{t}": cols for (s, t), cols in live.items()}
    names_only = taken.types is None and plan.kind == "postgresql"
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
                same = [c for c in appeared if _same_type(kind, after[c], names_only=names_only)]
                hint = f"; renamed to {same[0]}?" if len(same) == 1 else ""
                changes.append(
                    Change("breaking", table, column, f"dropped or renamed (was {kind}){hint}", who)
                )
            elif not _same_type(kind, after[column], names_only=names_only) and who:
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


def _same_type(before: str, after: str, *, names_only: bool) -> bool:
    """Whether a column's type is unchanged; ``names_only``: ``before`` is a ``data_type``.

    information_schema's ``data_type`` is ``format_type`` without modifiers
    (``character varying``, ``timestamp with time zone``), ``ARRAY`` for an array
    and ``USER-DEFINED`` for an enum, domain or composite (compared as unchanged:
    the name is not recorded).
    """
    if before == after:
        return True
    if not names_only:
        return False
    if before == "USER-DEFINED":
        return True
    if before == "ARRAY":
        return after.endswith("]")
    name = " ".join(re.sub(r"\([^)]*\)", "", after).split())
    return name == before or name.startswith(f"{before} ")


def _plan_changes(plan: Plan, taken: _Snapshot) -> list[Change]:
    """What the manifest now removes from (breaking) or adds to (widening) a consumer."""
    changes: list[Change] = []
    for consumer in plan.consumers:
        known = taken.consumers.get(consumer.client)
        who = (consumer.client,)
        for view in consumer.views:
            table = f"{view.source_schema}.{view.source_table}"
            before = known.views.get(view.name) if known is not None else None
            if before is None:
                what = "view" if known is not None else f"consumer {consumer.client}'s view"
                changes.append(
                    Change(
                        "widening",
                        table,
                        None,
                        f"new {what} {view.name} reads {', '.join(view.columns)}",
                        who,
                    )
                )
                continue
            changes.extend(_view_changes(view, before, table, who))
        if known is not None:
            names = {v.name for v in consumer.views}
            changes.extend(
                Change("breaking", v.table, None, f"view {name} removed", who)
                for name, v in known.views.items()
                if name not in names
            )
    clients = {c.client for c in plan.consumers}
    changes.extend(
        Change("breaking", v.table, None, f"consumer {client} removed (view {name})", (client,))
        for client, known in taken.consumers.items()
        if client not in clients
        for name, v in known.views.items()
    )
    return changes


def _view_changes(view: ViewPlan, before: _View, table: str, who: tuple[str, ...]) -> list[Change]:
    changes = [
        Change("breaking", table, c, f"removed from view {view.name}", who)
        for c in before.columns
        if c not in view.columns
    ]
    changes.extend(
        Change("widening", table, c, f"added to view {view.name}", who)
        for c in view.columns
        if c not in before.columns
    )
    if before.rows is not None and _filter(before.rows) != view.row_filter:
        detail = (
            f"row filter of view {view.name} dropped (was {before.rows})"
            if view.rows is None
            else f"row filter of view {view.name} changed from {before.rows} to {view.rows}"
        )
        changes.append(Change("widening", table, None, detail, who))
    if before.write is not None:
        changes.extend(
            Change("widening", table, c, f"made writable through view {view.name}", who)
            for c in view.write
            if c not in before.write
        )
    return changes


def _filter(text: str) -> object:
    """A recorded filter as a tree (a filter that no longer parses compares unequal)."""
    try:
        return parse_filter(text)
    except ValueError:
        return text
