"""benchmarks/gateway/lineage.py reports its figures through benchmarks/results.py.

Issue 20: the gateway benchmark reports the lineage cost as a ratio against the
same route without subject extraction. A ratio that is only printed is never
recorded by ``make bench`` (tools/bench_report.py counts such a run as failed),
so the figures must go through :func:`benchmarks.results.report`. Synthetic
results only: no benchmark runs here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.gateway.lineage import BENCHMARK, Result, report
from benchmarks.results import RESULTS_ENV
from tools.bench_report import BENCHMARKS, SCRIPTS


def _results() -> list[Result]:
    return [
        Result("traced warm-up", 900.0, 0, 0, 1800, 0, 0),
        Result("plain", 1000.0, 10.0, 20.0, 8000, 0, 400.0),
        Result("traced", 950.0, 10.5, 21.0, 7600, 0, 430.0),
        Result("plain", 1010.0, 10.0, 20.0, 8080, 0, 398.0),
        Result("traced", 940.0, 10.6, 21.5, 7520, 0, 428.0),
        Result("plain", 990.0, 10.1, 20.2, 7920, 0, 402.0),
        Result("traced", 945.0, 10.5, 21.2, 7560, 0, 431.0),
    ]


def test_the_ratio_and_the_added_cpu_are_recorded_for_make_bench(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recorded = tmp_path / "figures.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(recorded))
    args = argparse.Namespace(duration=8, repeat=3, connections=32, json=None)
    report(_results(), 24_480, args)
    figures = {f["name"]: f for f in map(json.loads, recorded.read_text().splitlines())}
    ratio = figures["lineage-traced-vs-plain-rps"]
    assert ratio["benchmark"] == BENCHMARK
    assert ratio["value"] == pytest.approx(945.0 / 1000.0)  # the medians of each route
    assert "without" in ratio["peer"]  # the same route without subject extraction
    added = figures["lineage-added-cpu-us-per-request"]
    assert added["value"] == pytest.approx(430.0 - 400.0)
    assert added["peer"] == ""  # an absolute figure
    assert "ratio lineage-traced-vs-plain-rps: 0.945" in capsys.readouterr().out


def test_make_bench_runs_the_lineage_benchmark() -> None:
    assert BENCHMARK in BENCHMARKS
    script = Path(__file__).parents[2] / SCRIPTS[BENCHMARK]
    assert script == Path(__file__).parents[2] / "benchmarks" / "gateway" / "lineage.py"
    assert script.exists()
