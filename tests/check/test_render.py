"""The JSON scorecard: its documented shape, order, verdicts and summary."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from interlock import __version__
from interlock.check.items import ITEMS, Item
from interlock.check.render import catalogue, integrations, to_json, verdict
from interlock.check.results import Finding, Scorecard
from tests.check.scorecards import FINDINGS, MANIFEST, MARKUP, NOW, WAIVER, scorecard


def test_json_has_the_documented_top_level_shape() -> None:
    """version, tool, manifest, generated, live, items, findings, summary; it serialises."""
    document = to_json(scorecard())
    assert list(document) == [
        "version",
        "tool",
        "manifest",
        "generated",
        "live",
        "items",
        "findings",
        "summary",
    ]
    assert document["version"] == 1
    assert document["tool"] == {"name": "interlock check", "version": __version__}
    assert document["manifest"] == MANIFEST
    assert document["generated"] == NOW.isoformat()
    assert document["live"] is True
    assert json.loads(json.dumps(document)) == document


def test_items_carry_their_mappings() -> None:
    """Every checklist item, in order, with its ASVS and Top 10 ids."""
    items = to_json(scorecard())["items"]
    assert [i["id"] for i in items] == [i.id for i in ITEMS]
    tls = items[[i.id for i in ITEMS].index("tls_required")]
    assert tls["severity"] == "high"
    assert tls["asvs"] == list(next(i for i in ITEMS if i.id == "tls_required").asvs)
    assert "API8:2023" in tls["api_top10"]


def test_findings_keep_every_part_and_come_deployment_first_then_by_item() -> None:
    """Status, reason, evidence, location, fix, live and waiver survive; order is stable."""
    findings = to_json(scorecard())["findings"]
    assert len(findings) == len(FINDINGS)
    assert [(f["integration"], f["item"]) for f in findings[:3]] == [
        (None, "encryption_at_rest"),
        ("order-sync", "authentication"),
        ("order-sync", "least_privilege"),
    ]
    # Two findings in one cell keep their relative order (configuration, then live).
    tls = [f for f in findings if f["item"] == "tls_required"]
    assert [f["live"] for f in tls] == [False, True]
    waived = next(f for f in findings if f["item"] == "rate_limiting")
    assert waived["status"] == "fail"
    assert waived["failed"] is False
    assert waived["severity"] == "medium"
    assert waived["waiver"] == {
        "reason": WAIVER.reason,
        "owner": WAIVER.owner,
        "expires": "2027-03-31",
    }
    privilege = next(f for f in findings if f["item"] == "least_privilege")
    assert privilege["location"] == {"file": MANIFEST, "line": 31, "column": 7}
    assert privilege["evidence"] == ["roles.order-writer.scopes: [orders.write]"]
    assert privilege["fix"] == "remove orders.write from the client's roles"
    assert privilege["failed"] is True
    errors = next(f for f in findings if f["item"] == "sanitised_errors")
    assert errors["reason"] == MARKUP  # JSON carries the text as it is; HTML escapes it
    assert errors["location"] is None


def test_summary_counts_per_integration_and_unwaived_failures_by_severity() -> None:
    """The waived failure counts as fail and waived, never as failed."""
    summary = to_json(scorecard())["summary"]
    rows = {row["integration"]: row for row in summary["integrations"]}
    assert list(rows) == [None, "order-sync", "analytics-feed"]
    assert rows["analytics-feed"] == {
        "integration": "analytics-feed",
        "pass": 0,
        "fail": 2,
        "needs_evidence": 0,
        "not_applicable": 1,
        "waived": 1,
        "failed": {"high": 0, "medium": 0, "low": 1},
    }
    assert rows["order-sync"]["failed"] == {"high": 2, "medium": 1, "low": 0}
    assert rows[None]["needs_evidence"] == 1
    assert summary["total"]["failed"] == {"high": 2, "medium": 1, "low": 1}
    assert summary["total"]["pass"] == 2


def test_a_cell_shows_its_worst_finding() -> None:
    """fail > needs_evidence > waived > pass > not_applicable; nothing: not_checked."""
    ok = Finding("tls_required", "a", "pass", "ok")
    failing = replace(ok, status="fail")
    assert verdict([ok, failing]) == "fail"
    assert verdict([ok, replace(failing, waiver=WAIVER)]) == "waived"
    assert verdict([replace(failing, waiver=WAIVER), replace(ok, status="needs_evidence")]) == (
        "needs_evidence"
    )
    assert verdict([replace(ok, status="not_applicable"), ok]) == "pass"
    assert verdict([]) == "not_checked"


def test_an_item_outside_the_catalogue_is_refused_until_it_is_passed_in() -> None:
    """A type-specific item renders only with its own title and severity, never a guess."""
    extra = Item("dlq_access", "Dead-letter queue access control", "medium", "DLQ readers.")
    card = Scorecard(
        manifest=MANIFEST,
        generated=NOW,
        live=False,
        findings=(Finding("dlq_access", "events", "needs_evidence", "no broker adapter"),),
    )
    with pytest.raises(ValueError, match="dlq_access"):
        to_json(card)
    document = to_json(card, items=(*ITEMS, extra))
    assert document["items"][-1]["id"] == "dlq_access"
    assert document["findings"][0]["severity"] == "medium"
    assert catalogue(card, (*ITEMS, extra))[-1] is extra


def test_an_empty_scorecard_renders() -> None:
    """No findings: every item, no integrations, zero counts."""
    document = to_json(Scorecard(manifest=MANIFEST, generated=NOW, live=False))
    assert document["findings"] == []
    assert document["summary"]["integrations"] == []
    assert document["summary"]["total"]["failed"] == {"high": 0, "medium": 0, "low": 0}
    assert integrations(Scorecard(manifest=MANIFEST, generated=NOW, live=False)) == ()


def test_items_the_checklist_knows_are_resolved_without_being_passed() -> None:
    """What items.item() resolves (the checklist, the types' items) needs no items=."""
    card = Scorecard(manifest=MANIFEST, generated=NOW, live=False, findings=FINDINGS[:1])
    assert catalogue(card, items=()) == (ITEMS[0],)
