"""The scorecard as JSON, and the arrangement every format shares.

:func:`to_json` gives one stable shape (docs/check.md, "JSON output"; the
``version`` key changes only when a key is removed or changes meaning). The
helpers here fix, once for JSON, SARIF and HTML alike, which items a
scorecard is read against (:func:`catalogue`), the order of integrations
(the deployment first, then as found) and of findings (by integration, then
checklist order), and the one verdict of a cell (:func:`verdict`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final, Literal

from interlock import __version__
from interlock.check.catalogue import item
from interlock.check.items import ITEMS, Item
from interlock.check.results import Finding, Location, Scorecard, Severity

__all__ = [
    "CATALOGUE",
    "FORMAT_VERSION",
    "TOOL_NAME",
    "Verdict",
    "catalogue",
    "integrations",
    "ordered",
    "summarise",
    "to_json",
    "verdict",
]

FORMAT_VERSION: Final = 1
TOOL_NAME: Final = "interlock check"
CATALOGUE: Final[tuple[Item, ...]] = ITEMS
"""The items every output lists, findings or not: the checklist."""

Verdict = Literal["fail", "needs_evidence", "waived", "pass", "not_applicable", "not_checked"]
"""What one integration shows for one item: its worst finding (``waived``: a failure
a valid waiver covers; ``not_checked``: no finding at all)."""

# Worst first: an unwaived failure hides nothing behind it; evidence still owed
# outranks an accepted (waived) failure, which outranks a pass.
_RANK: Final[dict[Verdict, int]] = {
    "fail": 0,
    "needs_evidence": 1,
    "waived": 2,
    "pass": 3,
    "not_applicable": 4,
    "not_checked": 5,
}
_SEVERITIES: Final[tuple[Severity, ...]] = ("high", "medium", "low")


def catalogue(scorecard: Scorecard, items: Iterable[Item] = CATALOGUE) -> tuple[Item, ...]:
    """``items`` in order, then any other item a finding names, as :func:`item` knows it.

    :func:`interlock.check.items.item` resolves the integration types' items
    (``type.*``); a finding naming an item nobody knows is a ValueError: a
    finding is never rendered against a made-up title or severity.
    """
    known = {i.id: i for i in items}
    unknown = []
    for item_id in dict.fromkeys(f.item for f in scorecard.findings):
        if item_id in known:
            continue
        try:
            known[item_id] = item(item_id)
        except KeyError:
            unknown.append(item_id)
    if unknown:
        msg = f"findings name unknown items: {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    return tuple(known.values())


def integrations(scorecard: Scorecard) -> tuple[str | None, ...]:
    """The integrations with findings: None (the deployment) first, then as found."""
    seen = dict.fromkeys(f.integration for f in scorecard.findings)
    named = tuple(name for name in seen if name is not None)
    return ((None,) if None in seen else ()) + named


def ordered(scorecard: Scorecard, items: Sequence[Item]) -> list[Finding]:
    """The findings by integration (as :func:`integrations`), then by item; stable."""
    row = {name: n for n, name in enumerate(integrations(scorecard))}
    column = {i.id: n for n, i in enumerate(items)}
    return sorted(scorecard.findings, key=lambda f: (row[f.integration], column[f.item]))


def _verdict_of(finding: Finding) -> Verdict:
    if finding.status == "fail" and finding.waiver is not None:
        return "waived"
    return finding.status


def verdict(findings: Iterable[Finding]) -> Verdict:
    """The worst verdict among ``findings`` (``not_checked`` for none)."""
    return min((_verdict_of(f) for f in findings), key=_RANK.__getitem__, default="not_checked")


def _counts(findings: Sequence[Finding], severity: dict[str, Severity]) -> dict[str, Any]:
    failed = dict.fromkeys(_SEVERITIES, 0)
    for f in findings:
        if f.failed:
            failed[severity[f.item]] += 1
    return {
        "pass": sum(f.status == "pass" for f in findings),
        "fail": sum(f.status == "fail" for f in findings),
        "needs_evidence": sum(f.status == "needs_evidence" for f in findings),
        "not_applicable": sum(f.status == "not_applicable" for f in findings),
        "waived": sum(f.status == "fail" and f.waiver is not None for f in findings),
        "failed": failed,
    }


def summarise(scorecard: Scorecard, items: Iterable[Item] = CATALOGUE) -> dict[str, Any]:
    """Counts per integration and in total; ``failed``: unwaived failures by severity."""
    known = catalogue(scorecard, items)
    severity = {i.id: i.severity for i in known}
    rows = [
        {
            "integration": name,
            **_counts([f for f in scorecard.findings if f.integration == name], severity),
        }
        for name in integrations(scorecard)
    ]
    return {"integrations": rows, "total": _counts(scorecard.findings, severity)}


def _location(location: Location | None) -> dict[str, Any] | None:
    if location is None:
        return None
    return {"file": location.file, "line": location.line, "column": location.column}


def _finding(finding: Finding, severity: Severity) -> dict[str, Any]:
    waiver = finding.waiver
    return {
        "item": finding.item,
        "integration": finding.integration,
        "severity": severity,
        "status": finding.status,
        "failed": finding.failed,
        "reason": finding.reason,
        "evidence": list(finding.evidence),
        "location": _location(finding.location),
        "fix": finding.fix,
        "live": finding.live,
        "waiver": None
        if waiver is None
        else {
            "reason": waiver.reason,
            "owner": waiver.owner,
            "expires": waiver.expires.isoformat(),
        },
    }


def _item(item: Item) -> dict[str, Any]:
    return {
        "id": item.id,
        "title": item.title,
        "severity": item.severity,
        "description": item.description,
        "asvs": list(item.asvs),
        "api_top10": list(item.api_top10),
    }


def to_json(scorecard: Scorecard, *, items: Iterable[Item] = CATALOGUE) -> dict[str, Any]:
    """The scorecard as a JSON-ready dict (docs/check.md, "JSON output")."""
    known = catalogue(scorecard, items)
    severity = {i.id: i.severity for i in known}
    return {
        "version": FORMAT_VERSION,
        "tool": {"name": TOOL_NAME, "version": __version__},
        "manifest": scorecard.manifest,
        "generated": scorecard.generated.isoformat(),
        "live": scorecard.live,
        "items": [_item(i) for i in known],
        "findings": [_finding(f, severity[f.item]) for f in ordered(scorecard, known)],
        "summary": summarise(scorecard, known),
    }
