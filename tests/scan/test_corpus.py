"""Precision and recall over a corpus of planted secrets, switches and look-alikes (written at run time).

A regression test for the rules it was written with, not a measure of real
repositories: benchmarks/scan/run.py measures on independently labelled data
(docs/scan.md, "Precision and recall").
"""

from __future__ import annotations

from pathlib import Path

from interlock.scan import Baseline, scan
from interlock.testing.scan_corpus import score, write_corpus


def test_precision_and_recall_on_the_planted_corpus(tmp_path: Path) -> None:
    """Over 100 planted secrets, switches and look-alikes each: precision and recall >= 0.95."""
    cases = write_corpus(tmp_path, seed=9, rounds=5)
    counts = {kind: sum(1 for c in cases if c.kind == kind) for kind in ("secret", "switch", None)}
    assert counts["secret"] >= 100
    assert counts["switch"] >= 100
    assert counts[None] >= 200
    report = scan(tmp_path, Baseline())
    lines = []
    for kind in ("secret", "switch"):
        planted = [c for c in cases if c.kind in (kind, None)]
        planted_paths = {c.path for c in planted}
        found = {
            (f.path, f.line, f.kind)
            for f in report.findings
            if f.kind == kind and f.path in planted_paths
        }
        result = score([c for c in planted if c.kind in (kind, None)], found)
        lines.append(
            f"{kind} findings: precision {result.precision:.3f} recall {result.recall:.3f} "
            f"(tp {result.true_positives}, fp {result.false_positives}, fn {result.false_negatives})"
        )
    overall = score(cases, {(f.path, f.line, f.kind) for f in report.findings})
    lines.append(
        f"overall: precision {overall.precision:.3f} recall {overall.recall:.3f} over "
        f"{counts['secret']} planted secrets, {counts['switch']} switches, {counts[None]} look-alikes"
    )
    summary = "\n".join(lines)
    print("\n" + summary)  # noqa: T201 - the numbers are the point (pytest -s)
    assert overall.precision >= 0.95, summary
    assert overall.recall >= 0.95, summary
