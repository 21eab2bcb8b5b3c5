"""The checklist for a shared-database integration, from its ``database:`` section and system.

Interlock generates the consumers' roles and views (``interlock db apply``):
one pair of login roles per consuming client, holding ``SELECT`` (and
``UPDATE`` of declared columns) on views of exactly the declared columns and
rows, nothing on the tables behind them; credentials rotate through the vault.
What the manifest shows is the design; whether the server still matches it is
live evidence (``interlock db audit``, ``interlock check --live``), so the
least-privilege items say so in their reason. Items the database decides by
itself (rate limiting, errors) are ``needs_evidence``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from interlock.check.config_context import Context
from interlock.check.results import Finding, Status
from interlock.config.databases import DatabaseSpec, DatabaseSystem
from interlock.config.units import format_duration

__all__ = ["DATABASE_CHECKS", "database_type_findings"]

_LIVE: Final = "the server's grants are compared with the plan by `interlock db audit` (and --live)"


def _spec(context: Context) -> DatabaseSpec:
    spec = context.flow.database
    if spec is None:
        raise ValueError(f"{context.name} is not a shared_database integration")
    return spec


def _system(context: Context) -> DatabaseSystem | None:
    return context.manifest.databases.get(_spec(context).system)


def _views(context: Context) -> list[str]:
    spec = _spec(context)
    return [
        f"{client}: {name} = {', '.join(view.columns)} of {view.table}"
        + (f" where {view.rows}" if view.rows else "")
        + (f"; writes {', '.join(view.write)}" if view.write else "")
        for client, consumer in spec.consumers.items()
        for name, view in consumer.views.items()
    ]


def _least_privilege(context: Context) -> Finding:
    return context.finding(
        "least_privilege",
        "pass",
        "each consuming client gets its own login roles with SELECT on views of exactly the "
        "declared columns and rows (UPDATE of declared columns only), nothing on the tables "
        f"behind them, no inheritance, no attribute; {_LIVE}",
        _views(context),
        context.at("database", "consumers"),
    )


def _tls(context: Context) -> tuple[Status, str, list[str]]:
    system = _system(context)
    if system is None:
        return "fail", "the database system is not declared", []
    evidence = [f"{_spec(context).system}: {system.kind} at {system.host}, tls: {system.tls}"]
    if system.tls == "verify-full":
        evidence.append(f"ca: {system.ca}")
        return "pass", "TLS with the server's certificate and host name verified", evidence
    return (
        "pass",
        "the server is on the loopback interface or a Unix socket: the connection never "
        "crosses a network (tls: disable is refused anywhere else)",
        evidence,
    )


def _tls_item(item: str) -> Callable[[Context], Finding]:
    def check(context: Context) -> Finding:
        status, reason, evidence = _tls(context)
        return context.finding(
            item, status, reason, evidence, context.locate(("databases", _spec(context).system))
        )

    return check


def _secrets(context: Context) -> Finding:
    system = _system(context)
    spec = _spec(context)
    return context.finding(
        "secrets_manager",
        "pass",
        "the admin credential is a vault reference; each consumer's password is made and "
        "rotated by the vault's rotation engine (two alternating logins, rotator "
        "shared_database), never written anywhere else",
        [f"admin: {system.admin if system else '?'}"]
        + [f"secret://db/{context.name}/{client}" for client in spec.consumers],
        context.locate(("databases", spec.system, "admin")),
    )


def _authentication(context: Context) -> Finding:
    return context.finding(
        "authentication",
        "pass",
        "each consumer logs in as its own role with a password from the vault; the roles are "
        "created without LOGIN (MariaDB: locked) until the first rotation gives one a password",
        [f"{client}: two logins" for client in _spec(context).consumers],
        context.at("database", "consumers"),
    )


def _minimisation(context: Context) -> Finding:
    spec = _spec(context)
    filtered = sum(1 for c in spec.consumers.values() for v in c.views.values() if v.rows)
    return context.finding(
        "minimisation",
        "pass",
        "consumers read views of the declared columns only (each mapped to its data category); "
        f"{filtered} view(s) also filter rows",
        _views(context),
        context.at("database", "consumers"),
    )


def _rate_limiting(context: Context) -> Finding:
    spec = _spec(context)
    return context.finding(
        "rate_limiting",
        "pass",
        "each consumer's login has a connection limit and a statement timeout",
        [
            f"{client}: {c.connection_limit} connection(s), "
            f"statement_timeout {format_duration(c.statement_timeout)}"
            for client, c in spec.consumers.items()
        ],
        context.at("database", "consumers"),
    )


def _not_applicable(item: str, why: str) -> Callable[[Context], Finding]:
    def check(context: Context) -> Finding:
        return context.finding(item, "not_applicable", why, (), context.at("database"))

    return check


def _audit_trail(context: Context) -> Finding:
    return context.finding(
        "audit_trail",
        "needs_evidence",
        "Interlock records every apply of the roles and views (databases.apply), but the "
        "consumers' queries run on the database server, not through Interlock",
        ("action: databases.apply",),
        context.at("database"),
        "enable the server's audit log (pgAudit, MariaDB server_audit) for the consumer "
        "roles, or waive with the reason",
    )


DATABASE_CHECKS: Final[dict[str, Callable[[Context], Finding]]] = {
    "authentication": _authentication,
    "least_privilege": _least_privilege,
    "secrets_manager": _secrets,
    "tls_required": _tls_item("tls_required"),
    "certificates_validated": _tls_item("certificates_validated"),
    "minimisation": _minimisation,
    "input_validation": _not_applicable(
        "input_validation", "consumers read views; writes are typed by the database's columns"
    ),
    "rate_limiting": _rate_limiting,
    "sanitised_errors": _not_applicable(
        "sanitised_errors", "the database answers its consumers itself; no Interlock endpoint"
    ),
    "audit_trail": _audit_trail,
}
"""The items a shared-database integration answers from its database section and system."""


def database_type_findings(context: Context) -> list[Finding]:
    """The ``type.shared_database.*`` mitigations, with evidence."""
    spec = _spec(context)
    status, reason, evidence = _tls(context)
    views = context.finding(
        "type.shared_database.least_privilege_views",
        "pass",
        "consumers hold grants on generated views only (security_barrier on PostgreSQL, "
        f"SQL SECURITY DEFINER with a locked owner on MariaDB), never the tables; {_LIVE}",
        _views(context),
        context.at("database", "consumers"),
    )
    change = context.finding(
        "type.shared_database.change_control",
        "needs_evidence",
        "`interlock db snapshot` records what the views rest on and `interlock db diff` fails "
        "on breaking or widening source changes; running it in the migration pipeline is the "
        "owners' process",
        (f"consumers: {', '.join(spec.consumers)}",),
        context.at("database"),
        "run `interlock db diff INTEGRATION --snapshot FILE` against every migration before it "
        "reaches the shared database, or waive with the reason",
    )
    tls = context.finding(
        "type.shared_database.database_tls",
        status,
        reason,
        evidence,
        context.locate(("databases", spec.system)),
    )
    return [views, change, tls]
