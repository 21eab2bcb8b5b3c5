"""Checklist items about the GDPR facts of an integration: register, audit trail, retention.

``retention`` fails where the manifest contradicts the integration's own
``retention``: a queue of the integration (messages or events until their
``ttl``, dead letters, refused files in quarantine) keeping its data longer.
``--live`` adds what the deployment holds (:mod:`interlock.check.live_retention`).
"""

from __future__ import annotations

from datetime import timedelta

from interlock.check.config_context import Context, no_routes
from interlock.check.results import Finding
from interlock.config.manifest import Integration
from interlock.config.units import format_duration
from interlock.config.yaml_source import DocPath
from interlock.privacy.ropa import build_register

__all__ = ["audit_trail", "flows_documented", "holding_periods", "outlived", "retention"]


def flows_documented(context: Context) -> Finding:
    manifest, flow = context.manifest, context.flow
    register = build_register(
        manifest, source="", kek_backend="(not read in configuration mode)", now=context.now
    )
    record = next(r for r in register.records if r.integration == context.name)
    evidence = [
        f"purpose: {flow.purpose[:80]}",
        f"legal basis: {record.legal_basis} ({record.legal_basis_article})",
        f"categories: {', '.join(c.key for c in record.data_categories) or 'none'}",
        f"subjects: {', '.join(s.key for s in record.data_subjects) or 'none'}",
        f"retention: {record.retention}",
        f"transfers: {record.transfer_statement}",
    ]
    gaps: list[tuple[str, DocPath]] = []
    if not flow.data_categories:
        gaps.append(("no data_categories declared", ("integrations", context.name)))
    if flow.personal:
        if manifest.organisation is None:
            gaps.append(("no organisation (controller) declared, Art. 30(1)(a)", ()))
        if not flow.data_subjects:
            gaps.append(
                (
                    "no data_subjects declared, Art. 30(1)(c)",
                    ("integrations", context.name, "data_categories"),
                )
            )
    if gaps:
        return context.finding(
            "flows_documented",
            "fail",
            "the Art. 30 record is incomplete: " + "; ".join(g for g, _ in gaps),
            evidence,
            context.locate(gaps[0][1]),
            "declare the missing facts (interlock privacy ropa shows the record)",
        )
    return context.finding(
        "flows_documented",
        "pass",
        "the integration makes a complete Art. 30 record: controller, purpose, legal basis, "
        "categories, subjects, recipients, retention and transfers with their safeguard",
        evidence,
        context.at("purpose"),
    )


def audit_trail(context: Context) -> Finding:
    flow = context.flow
    mode = "required" if flow.audit_required else "best_effort"
    declared = f"audit: {flow.audit}" if flow.audit else f"audit: default ({mode})"
    evidence = (declared, f"personal data: {'yes' if flow.personal else 'no'}")
    if not flow.routes:
        return no_routes(context, "audit_trail", "its transfers to record them")
    if flow.personal and not flow.audit_required:
        return context.finding(
            "audit_trail",
            "fail",
            "the flow carries personal data but its audit entries are best effort: a request "
            "can release data without a durable record",
            evidence,
            context.at("audit"),
            "remove audit: best_effort (personal data defaults to required)",
        )
    return context.finding(
        "audit_trail",
        "pass",
        f"every request is recorded on the tamper-evident audit log ({mode}); --live checks "
        "that the log verifies and has a recent signed checkpoint",
        evidence,
        context.at("audit") if flow.audit else context.at(),
    )


def holding_periods(flow: Integration) -> list[tuple[tuple[str, ...], timedelta]]:
    """How long the integration's own queues keep its data: (path under the integration, period).

    Messages and events until their ``ttl``, dead letters for their
    ``dead_letter.retention``, refused files for ``files.quarantine_retention``.
    Each has a default, so a queue never lacks one.
    """
    periods: list[tuple[tuple[str, ...], timedelta]] = []
    for section, spec in (("messaging", flow.messaging), ("events", flow.events)):
        if spec is not None:
            periods.append(((section, "ttl"), spec.ttl))
            periods.append(((section, "dead_letter", "retention"), spec.dead_letter.retention))
    if flow.files is not None:
        periods.append((("files", "quarantine_retention"), flow.files.quarantine_retention))
    return periods


def outlived(flow: Integration) -> list[tuple[tuple[str, ...], timedelta]]:
    """The holding periods longer than the integration's ``retention``."""
    return [(path, period) for path, period in holding_periods(flow) if period > flow.retention]


def retention(context: Context) -> Finding:
    flow = context.flow
    keep = _days(flow.retention)
    idempotent = sum(1 for route in flow.routes if route.idempotency is not None)
    periods = holding_periods(flow)
    evidence = [f"retention: {keep}"]
    evidence.extend(f"{'.'.join(path)}: {_days(period)}" for path, period in periods)
    if idempotent:
        evidence.append(f"{idempotent} route(s) keep idempotency records, bounded by the retention")
    longer = outlived(flow)
    if longer:
        named = ", ".join(f"{'.'.join(path)} ({_days(period)})" for path, period in longer)
        return context.finding(
            "retention",
            "fail",
            f"the integration's queues keep its data longer than its retention ({keep}): {named}",
            evidence,
            context.at(*longer[0][0]),
            f"lower {', '.join('.'.join(path) for path, _ in longer)} to at most {keep}, or "
            "declare the retention the data really has",
        )
    queues = "; its queues expire within it" if periods else ""
    return context.finding(
        "retention",
        "pass",
        "the integration declares its retention; idempotency records and lineage entries "
        f"expire within it{queues}. --live checks that audit entry bodies and lineage rows "
        "are pruned on time",
        evidence,
        context.at("retention"),
    )


def _days(period: timedelta) -> str:
    """Whole days as "30 days" (as the register shows them), anything else as ISO 8601."""
    if period >= timedelta(days=1) and period % timedelta(days=1) == timedelta(0):
        return f"{period.days} days"
    return format_duration(period)
