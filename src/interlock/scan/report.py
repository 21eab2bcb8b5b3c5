"""Text and JSON renderings of a scan report (SARIF is in ``sarif``)."""

from __future__ import annotations

from typing import Any

from interlock.scan.scanner import ScanReport

__all__ = ["to_json", "to_text"]


def to_text(report: ScanReport) -> list[str]:
    """One ``path:line:col: level rule-id: message`` line per finding, then a summary."""
    lines = [
        f"{f.path}:{f.line}:{f.column}: {f.level} {f.rule_id}: {f.message}" for f in report.findings
    ]
    suppressed = f", {len(report.suppressed)} in the baseline" if report.suppressed else ""
    count = len(report.findings)
    verdict = "no findings" if count == 0 else f"{count} finding{'' if count == 1 else 's'}"
    lines.append(f"{report.files_scanned} files scanned: {verdict}{suppressed}")
    return lines


def to_json(report: ScanReport) -> dict[str, Any]:
    """The report as a JSON-ready dict (masked values only)."""
    return {
        "version": 1,
        "files_scanned": report.files_scanned,
        "suppressed": len(report.suppressed),
        "findings": [
            {
                "rule": f.rule_id,
                "kind": f.kind,
                "level": f.level,
                "path": f.path,
                "line": f.line,
                "column": f.column,
                "message": f.message,
                "match": f.shown,
                "fingerprint": f.fingerprint,
            }
            for f in report.findings
        ],
    }
