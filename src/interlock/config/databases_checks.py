"""Cross-references of a shared-database integration: its system, consumers and categories.

* errors — an unknown database system; a consumer that is not a declared
  client; HTTP routes on a shared-database integration; a view column whose
  data category the integration's ``data_categories`` do not cover (the
  register would not know what flows); a view whose source table is not
  ``schema.table`` of the declared database's kind (MariaDB: ``database.table``).

Findings are ``(path, message, is_error)`` for :mod:`interlock.config.checks`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from interlock.config.field_categories import covered
from interlock.config.manifest import Integration
from interlock.config.yaml_source import DocPath

__all__ = ["database_findings"]

Found = tuple[DocPath, str, bool]


def database_findings(
    name: str,
    flow: Integration | None,
    *,
    has_routes: bool,
    undeclared: Callable[[str, str], bool],
    known: Callable[[str, str], str],
) -> Iterator[Found]:
    """Every cross-reference problem of integration ``name``'s ``database:`` section."""
    spec = flow.database if flow is not None else None
    if flow is None or spec is None:
        return
    at: DocPath = ("integrations", name, "database")
    if has_routes:
        yield (
            ("integrations", name, "routes"),
            "a shared-database integration has no HTTP routes",
            True,
        )
    if undeclared("databases", spec.system):
        yield (
            (*at, "system"),
            f"unknown database system {spec.system!r}{known('databases', spec.system)}",
            True,
        )
    for client, consumer in spec.consumers.items():
        if undeclared("clients", client):
            yield (
                (*at, "consumers", client),
                f"unknown client {client!r}{known('clients', client)}",
                True,
            )
        for view_name, view in consumer.views.items():
            for column, category in view.columns.items():
                if not covered(category, flow.data_categories):
                    yield (
                        (*at, "consumers", client, "views", view_name, "columns", column),
                        f"{column} is {category}, not covered by the integration's "
                        "data_categories (add it so the register shows what this consumer reads)",
                        True,
                    )
