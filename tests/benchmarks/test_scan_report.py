"""benchmarks/scan/run.py reports its ratios per family through benchmarks/results.py.

Issue 31 asks for recall against detect-secrets and precision per family, not
only overall: each family's two figures go through :func:`benchmarks.results.report`
so ``make bench`` records them as met or missed. A family without labels in the
fetched data gets a note, never a figure that reads as met. Synthetic scores
only: no scanner runs and nothing is fetched here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.results import RESULTS_ENV
from benchmarks.scan.labelled import FAMILIES, Label
from benchmarks.scan.run import BENCHMARK, INTERLOCK, report_scores
from tools.bench_report import BENCHMARKS, render

PEER = "detect-secrets 1.5.0 (default plugins, --all-files)"


def _label(path: str, line: int, family: str) -> Label:
    return Label(path, frozenset({line}), family)


def test_each_family_with_labels_gets_both_figures_and_the_others_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "figures.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(recorded))
    labels = [
        _label("a/key.pem", 2, "private-key"),
        _label("a/key2.pem", 2, "private-key"),
        _label("b/app.cfg", 1, "password-assignment"),
        _label("b/app.cfg", 5, "password-assignment"),
        _label("c/unmapped.txt", 1, "other"),
    ]
    results = {
        # private-key: both found, one stray line of ours; passwords: 1 of 2 against 2 of 2.
        INTERLOCK: {("a/key.pem", 2), ("a/key2.pem", 2), ("a/key.pem", 9), ("b/app.cfg", 1)},
        PEER: {("a/key.pem", 2), ("b/app.cfg", 1), ("b/app.cfg", 5)},
        "bandit 1.9.4 (B105-B107, Python only)": set(),
    }
    paths = {label.path for label in labels} | {"d/clean.txt"}
    report_scores(labels, results, paths)
    figures = {f["name"]: f for f in map(json.loads, recorded.read_text().splitlines())}
    assert {f["benchmark"] for f in figures.values()} == {BENCHMARK}

    key = figures["scan-recall-vs-detect-secrets[private-key]"]
    assert key["value"] == pytest.approx(1.0 / 0.5)
    assert (key["target"], key["met"], key["kind"], key["peer"]) == (1.0, True, "quality", PEER)
    assert figures["scan-precision[private-key]"]["value"] == pytest.approx(2 / 3)
    assert figures["scan-precision[private-key]"]["met"] is False  # target 0.9

    password = figures["scan-recall-vs-detect-secrets[password-assignment]"]
    assert (password["value"], password["met"]) == (pytest.approx(0.5), False)
    assert figures["scan-precision[password-assignment]"]["met"] is True

    # Neither scanner found the unmapped family's label: no ratio (it would be infinite
    # or undefined), but our recall, which must find at least one: missed here.
    other = figures["scan-recall[other]"]
    assert (other["value"], other["target"], other["met"]) == (0.0, 1.0, False)
    assert "scan-recall-vs-detect-secrets[other]" not in figures
    # Every value is a finite number (the file stays JSON that strict readers take).
    assert all(
        isinstance(f["value"], float | int) and abs(f["value"]) < 1e308 for f in figures.values()
    )
    # Interlock reported nothing in its files: no precision figure that reads as met.
    assert "scan-precision[other]" not in figures

    # Families the sources can label but this data holds none of: a note, no figure.
    empty = [f for f in FAMILIES if f not in {"private-key", "password-assignment"}]
    assert empty
    out = capsys.readouterr().out
    for family in empty:
        assert not any(name.endswith(f"[{family}]") for name in figures)
        assert f"family {family}: no labelled secret in the data; no figure reported" in out

    assert figures["scan-recall-vs-detect-secrets"]["value"] == pytest.approx((3 / 5) / (3 / 5))
    assert figures["scan-precision"]["value"] == pytest.approx(3 / 4)
    assert "ratio scan-recall-vs-detect-secrets[private-key]: 2.00 (target >= 1) met" in out
    assert "ratio scan-precision[private-key]: 0.67 (target >= 0.9) missed" in out

    page = render({"figures": list(figures.values()), "benchmarks": {}})
    assert "| scan | `scan-precision[private-key]` | 0.67 | >= 0.9 | **missed** |" in page


def test_make_bench_runs_the_scan_benchmark() -> None:
    assert BENCHMARK in BENCHMARKS
