"""Checklist items about the GDPR facts of an integration: register, audit trail, retention."""

from __future__ import annotations

from datetime import UTC, datetime

from interlock.check.config_context import Context, no_routes
from interlock.check.results import Finding
from interlock.config.yaml_source import DocPath
from interlock.privacy.ropa import build_register

__all__ = ["audit_trail", "flows_documented", "retention"]


def flows_documented(context: Context) -> Finding:
    manifest, flow = context.manifest, context.flow
    register = build_register(
        manifest, source="", kek_backend="(not read in configuration mode)", now=datetime.now(UTC)
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


def retention(context: Context) -> Finding:
    flow = context.flow
    idempotent = sum(1 for route in flow.routes if route.idempotency is not None)
    evidence = [f"retention: {flow.retention.days} days"]
    if idempotent:
        evidence.append(f"{idempotent} route(s) keep idempotency records, bounded by the retention")
    return context.finding(
        "retention",
        "pass",
        "the integration declares its retention; idempotency records and lineage entries "
        "expire within it",
        evidence,
        context.at("retention"),
    )
