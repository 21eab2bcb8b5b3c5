"""The scorecard as SARIF 2.1.0, for code-scanning services (docs/check.md, "SARIF").

One run; one rule per checklist item (``tool.driver.rules``) with its OWASP
ASVS 5.0 and API Security Top 10 2023 ids as tags and a numeric
``security-severity`` (GitHub code scanning reads that property: 7.0-8.9 is
"high", 4.0-6.9 "medium", 0.1-3.9 "low"); one result per finding that fails
or still needs evidence, located in the manifest. A waived failure is still
reported, with an external, accepted suppression carrying the waiver's reason
(SARIF 2.1.0 §3.35), so the service shows it as dismissed, not as gone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import quote

from interlock.check.items import Item
from interlock.check.render import CATALOGUE, TOOL_NAME, catalogue, ordered
from interlock.check.results import Finding, Location, Scorecard, Severity
from interlock.scan.sarif import SARIF_SCHEMA, sarif_log

__all__ = ["SARIF_SCHEMA", "SECURITY_SEVERITY", "to_sarif"]

SECURITY_SEVERITY: Final[dict[Severity, str]] = {"high": "8.0", "medium": "5.0", "low": "2.0"}
"""An item's severity as the ``security-severity`` score of its rule."""

_Level = Literal["error", "warning", "note"]
_LEVEL: Final[dict[Severity, _Level]] = {"high": "error", "medium": "warning", "low": "note"}
_FINGERPRINT_KEY: Final = "interlockCheck/v1"
_SRCROOT: Final = "%SRCROOT%"


def _anchor(item: Item) -> str:
    """The item's section of docs/check.md: a heading that is its id; type items share one."""
    return "integration-types" if item.id.startswith("type.") else item.id


def _rule(item: Item, docs_url: str | None) -> dict[str, Any]:
    mapped = [f"OWASP ASVS 5.0 {r}" for r in item.asvs] + [
        f"OWASP API Security Top 10 {r}" for r in item.api_top10
    ]
    help_text = f"{item.description} Maps to: {', '.join(mapped) or 'no OWASP entry'}. "
    help_text += f"See docs/check.md#{_anchor(item)}."
    rule: dict[str, Any] = {
        "id": item.id,
        "name": "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", item.id)),
        "shortDescription": {"text": item.title},
        "fullDescription": {"text": item.description},
        "help": {"text": help_text},
        "defaultConfiguration": {"level": _LEVEL[item.severity]},
        "properties": {
            "security-severity": SECURITY_SEVERITY[item.severity],
            "severity": item.severity,
            "tags": [
                "security",
                *(f"owasp-asvs-5.0/{r}" for r in item.asvs),
                *(f"owasp-api-top10/{r}" for r in item.api_top10),
            ],
            "asvs": list(item.asvs),
            "apiTop10": list(item.api_top10),
        },
    }
    if docs_url is not None:
        # helpUri must be an absolute URI (schema: format "uri").
        rule["helpUri"] = f"{docs_url}#{_anchor(item)}"
    return rule


def _artifact(file: str, base: Path | None) -> dict[str, str]:
    """A manifest path as an artifact location: relative to %SRCROOT% where it can be."""
    path = Path(file)
    if path.is_absolute() and base is not None and path.is_relative_to(base.absolute()):
        path = path.relative_to(base.absolute())
    if path.is_absolute():
        return {"uri": path.as_uri()}
    return {"uri": quote(path.as_posix(), safe="/"), "uriBaseId": _SRCROOT}


def _location(finding: Finding, manifest: str, base: Path | None) -> dict[str, Any]:
    # A finding about the deployment may have no place; code-scanning services
    # need one, so it points at the manifest's first line.
    where = finding.location or Location(manifest, 1, 1)
    location: dict[str, Any] = {
        "physicalLocation": {
            "artifactLocation": _artifact(where.file, base),
            "region": {"startLine": where.line, "startColumn": where.column},
        }
    }
    if finding.integration is not None:
        location["logicalLocations"] = [
            {
                "name": finding.integration,
                "fullyQualifiedName": f"integrations.{finding.integration}",
            }
        ]
    return location


def _message(finding: Finding) -> str:
    where = finding.integration or "(deployment)"
    fix = f" Fix: {finding.fix}" if finding.fix else ""
    return f"{where}: {finding.reason}{fix}"


def _result(
    finding: Finding, item: Item, index: int, fingerprint: str, location: dict[str, Any]
) -> dict[str, Any]:
    level: _Level = _LEVEL[item.severity] if finding.status == "fail" else "note"
    result: dict[str, Any] = {
        "ruleId": item.id,
        "ruleIndex": index,
        "level": level,
        "message": {"text": _message(finding)},
        "locations": [location],
        "partialFingerprints": {_FINGERPRINT_KEY: fingerprint},
        "properties": {
            "status": finding.status,
            "integration": finding.integration,
            "evidence": list(finding.evidence),
            "live": finding.live,
        },
    }
    if finding.fix:
        result["properties"]["fix"] = finding.fix
    if finding.waiver is not None:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": finding.waiver.reason,
                "properties": {
                    "owner": finding.waiver.owner,
                    "expires": finding.waiver.expires.isoformat(),
                },
            }
        ]
    return result


def _fingerprints(findings: Iterable[Finding]) -> list[str]:
    """Stable across runs and line moves: item, integration, live, and the repeat count."""
    seen: dict[tuple[str, str, bool], int] = {}
    prints = []
    for f in findings:
        key = (f.item, f.integration or "", f.live)
        seen[key] = seen.get(key, 0) + 1
        text = "\x1f".join((*key[:2], "live" if f.live else "config", str(seen[key])))
        prints.append(hashlib.sha256(text.encode()).hexdigest()[:32])
    return prints


def to_sarif(
    scorecard: Scorecard,
    *,
    items: Iterable[Item] = CATALOGUE,
    base: Path | None = None,
    docs_url: str | None = None,
) -> dict[str, Any]:
    """The scorecard as a SARIF 2.1.0 log (a JSON-ready dict).

    ``base``: the directory relative manifest paths are reported against
    (the repository root in CI; absolute paths under it become relative).
    ``docs_url``: the absolute address of docs/check.md, for each rule's
    ``helpUri``; without it the rules carry the help text only.
    """
    known = catalogue(scorecard, items)
    index = {i.id: n for n, i in enumerate(known)}
    reported = [f for f in ordered(scorecard, known) if f.status in {"fail", "needs_evidence"}]
    results = [
        _result(f, known[index[f.item]], index[f.item], fp, _location(f, scorecard.manifest, base))
        for f, fp in zip(reported, _fingerprints(reported), strict=True)
    ]
    return sarif_log(
        TOOL_NAME,
        [_rule(i, docs_url) for i in known],
        results,
        {
            "manifest": scorecard.manifest,
            "generated": scorecard.generated.isoformat(),
            "live": scorecard.live,
        },
    )
