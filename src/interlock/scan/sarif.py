"""SARIF 2.1.0 output (OASIS Static Analysis Results Interchange Format).

One run, the rule catalogue in ``tool.driver.rules``, one result per finding
with a ``partialFingerprints`` entry so code-scanning services track a result
across commits (SARIF 2.1.0 §3.27.17). Messages carry only masked values.
"""

from __future__ import annotations

from typing import Any, Final

from interlock import __version__
from interlock.scan.rules import RULES
from interlock.scan.scanner import ScanReport

__all__ = ["SARIF_SCHEMA", "sarif_log", "to_sarif"]

SARIF_SCHEMA: Final = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
_FINGERPRINT_KEY: Final = "interlockScan/v1"


def to_sarif(report: ScanReport) -> dict[str, Any]:
    """The report as a SARIF 2.1.0 log (a JSON-ready dict)."""
    index = {rule_id: position for position, rule_id in enumerate(RULES)}
    rules = [
        {
            "id": spec.id,
            "name": "".join(part.capitalize() for part in spec.id.split("-")),
            "shortDescription": {"text": spec.title},
            "fullDescription": {"text": spec.help},
            "help": {"text": spec.help},
            "defaultConfiguration": {"level": spec.level},
            "properties": {
                "tags": ["security", spec.kind, *([spec.family] if spec.family else [])],
                # GitHub code scanning ranks by this (0.0-10.0, a string).
                "security-severity": f"{spec.severity:.1f}",
            },
        }
        for spec in RULES.values()
    ]
    results = [
        {
            "ruleId": finding.rule_id,
            "ruleIndex": index[finding.rule_id],
            "level": finding.level,
            "message": {"text": finding.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": finding.path, "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": finding.line, "startColumn": finding.column},
                    }
                }
            ],
            "partialFingerprints": {_FINGERPRINT_KEY: finding.fingerprint},
        }
        for finding in report.findings
    ]
    return sarif_log("interlock-scan", rules, results)


def sarif_log(
    tool: str,
    rules: list[dict[str, Any]],
    results: list[dict[str, Any]],
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log of one run of ``tool`` (Interlock's version): its rules and results.

    Columns count Unicode code points (what Python's string offsets are).
    """
    run: dict[str, Any] = {
        "tool": {"driver": {"name": tool, "version": __version__, "rules": rules}},
        "columnKind": "unicodeCodePoints",
        "results": results,
    }
    if properties is not None:
        run["properties"] = properties
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}
