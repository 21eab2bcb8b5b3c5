"""One entry per operation, whatever the database: plan, apply (audited), audit, columns.

The dialect is chosen by the system's ``kind``; the driver modules are
imported when first used, so ``interlock db plan`` needs neither driver.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from interlock.audit.entry import AuditEntry, Outcome
from interlock.errors import InterlockError

if TYPE_CHECKING:
    from interlock.actors import Operator
    from interlock.audit.sink import AuditSink
    from interlock.databases.connection import Login
    from interlock.databases.drift import Drift
    from interlock.databases.plan import Plan

__all__ = ["apply", "audit", "planned_sql", "source_columns", "view_definitions"]


def _dialect(plan: Plan) -> ModuleType:
    return importlib.import_module(f"interlock.databases.{plan.kind}")


def planned_sql(plan: Plan) -> list[str]:
    """The plan's statements as SQL text, in order."""
    dialect = _dialect(plan)
    return [dialect.render(s) for s in dialect.statements(plan)]


def view_definitions(plan: Plan) -> dict[str, dict[str, str]]:
    """Each consumer's ``CREATE VIEW`` statements as the plan writes them."""
    dialect = _dialect(plan)
    found: dict[str, dict[str, str]] = {}
    for consumer in plan.consumers:
        for view in consumer.views:
            found.setdefault(consumer.client, {})[view.name] = dialect.render(
                dialect.view_statement(plan, consumer, view)
            )
    return found


def apply(plan: Plan, admin: Login, *, audit_sink: AuditSink, actor: Operator) -> list[str]:
    """Run the plan on its server and record the outcome on the audit trail (either way)."""
    categories = tuple(
        sorted({c for consumer in plan.consumers for v in consumer.views for c in v.categories})
    )
    details: dict[str, str | int | bool] = {
        "system": plan.system_name,
        "kind": plan.kind,
        "consumers": ",".join(c.client for c in plan.consumers)[:200],
    }
    try:
        done: list[str] = _dialect(plan).apply(plan, admin)
    except InterlockError as error:
        audit_sink.record(
            AuditEntry(
                actor=actor.label,
                action="databases.apply",
                integration=plan.integration,
                data_categories=categories[:64],
                outcome=Outcome(
                    result="partial_failure" if getattr(error, "applied", 0) else "failure"
                ),
                reason=str(error)[:500],
                details=details,
            )
        )
        raise
    audit_sink.record(
        AuditEntry(
            actor=actor.label,
            action="databases.apply",
            integration=plan.integration,
            data_categories=categories[:64],
            outcome=Outcome(result="success"),
            details={**details, "statements": len(done)},
        )
    )
    return done


def audit(plan: Plan, admin: Login) -> list[Drift]:
    """Every privilege beyond the plan on its server."""
    drifts: list[Drift] = _dialect(plan).audit(plan, admin)
    return drifts


def source_columns(plan: Plan, admin: Login) -> dict[tuple[str, str], dict[str, str]]:
    """Each source table's columns and types now."""
    columns: dict[tuple[str, str], dict[str, str]] = _dialect(plan).source_columns(plan, admin)
    return columns
