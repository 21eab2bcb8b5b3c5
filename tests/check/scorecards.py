"""Scorecards for the format tests, built from interlock.check.results alone.

One scorecard holds every verdict a cell can show: a pass, an unwaived
failure of each severity, a waived failure, a finding that needs evidence, one
that does not apply, a deployment-wide finding without a place, a live probe's
failure next to a configuration pass for the same item, and a reason with
markup in it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Final

from interlock.check.results import Finding, Location, Scorecard, Waiver

__all__ = ["MANIFEST", "MARKUP", "NOW", "scorecard"]

MANIFEST: Final = "examples/interlock.yaml"
NOW: Final = datetime(2026, 12, 5, 6, 0, tzinfo=UTC)
MARKUP: Final = '<script>alert("x")</script> & <b>bold</b>'


def _at(line: int, column: int = 5) -> Location:
    return Location(MANIFEST, line, column)


WAIVER: Final = Waiver(
    item="rate_limiting",
    integration="analytics-feed",
    reason="batch export runs once a night from one address",
    owner="data-platform@example.com",
    expires=date(2027, 3, 31),
)

FINDINGS: Final = (
    Finding(
        "authentication",
        "order-sync",
        "pass",
        "every route authenticates: oauth2, mtls",
        evidence=("clients.order-sync.auth: [oauth2, mtls]",),
        location=_at(40),
    ),
    Finding(
        "least_privilege",
        "order-sync",
        "fail",
        "client order-sync holds orders.write, which no route of order-sync uses",
        evidence=("roles.order-writer.scopes: [orders.write]",),
        location=_at(31, 7),
        fix="remove orders.write from the client's roles",
    ),
    Finding("tls_required", "order-sync", "pass", "upstream erp is https", location=_at(8)),
    Finding(
        "tls_required",
        "order-sync",
        "fail",
        "erp answered with TLS 1.1",
        evidence=("probe erp.internal:9443: TLSv1.1",),
        location=_at(8),
        fix="raise the upstream's TLS floor to 1.2",
        live=True,
    ),
    Finding("sanitised_errors", "order-sync", "fail", MARKUP, live=True),
    Finding(
        "rate_limiting",
        "analytics-feed",
        "fail",
        "route GET /exports has no rate limit",
        location=_at(70),
        fix="add rate_limit: {per_client: 60/min}",
        waiver=WAIVER,
    ),
    Finding(
        "retention",
        "analytics-feed",
        "fail",
        "no retention for idempotency records",
        location=_at(66),
        fix="set retention: P30D",
    ),
    Finding(
        "minimisation",
        "analytics-feed",
        "not_applicable",
        "analytics-feed carries no personal data",
    ),
    Finding(
        "encryption_at_rest",
        None,
        "needs_evidence",
        "the KEK backend is only known to a running deployment",
        fix="interlock check --live",
    ),
)


def scorecard(*, live: bool = True) -> Scorecard:
    """The scorecard above, generated at ``NOW``."""
    return Scorecard(manifest=MANIFEST, generated=NOW, live=live, findings=FINDINGS)
