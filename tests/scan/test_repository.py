"""This repository scans clean (with its reviewed baseline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.scan import BASELINE_NAME, load_baseline, scan, to_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(900)  # the whole tree, on a shared CI machine
def test_this_repository_has_no_finding() -> None:
    """No secret and no insecure switch outside the baseline; every baseline entry still matches."""
    baseline = load_baseline(ROOT / BASELINE_NAME)
    report = scan(ROOT, baseline)
    assert report.findings == (), "\n".join(to_text(report))
    matched = {(f.rule_id, f.path, f.fingerprint) for f in report.suppressed}
    stale = [e for e in baseline.entries if e.key not in matched]
    assert stale == [], f"baseline entries that no longer match anything: {stale}"
