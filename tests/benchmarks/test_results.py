"""The benchmarks' ratio report: met on the unrounded value, never printed across the target."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.results import RESULTS_ENV, SKIPPED_EXIT, report, shown, skip


@pytest.mark.parametrize(
    ("value", "target", "direction", "text"),
    [
        (0.497, 0.5, ">=", "0.497"),  # missed: never "0.50"
        (0.4999999, 0.5, ">=", "0.4999999"),
        (0.5, 0.5, ">=", "0.50"),
        (1.004, 1.0, ">=", "1.00"),
        (1.004, 1.0, "<=", "1.004"),  # missed from above: never "1.00"
        (26.6, 5.0, ">=", "26.60"),
        (0.2, None, ">=", "0.20"),
    ],
)
def test_a_missed_target_is_never_printed_as_met(
    value: float, target: float | None, direction: str, text: str
) -> None:
    assert shown(value, target, direction, 2) == text  # type: ignore[arg-type]


def test_report_prints_the_verdict_and_appends_one_json_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    report("oauth", "issuance-vs-authlib", 0.56, target=1.0, peer="authlib 1.6 minimal server")
    report("audit", "log2n-per-inclusion-hash", 0.997, target=1.0, peer="", kind="property")
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == (
        "ratio issuance-vs-authlib: 0.56 (target >= 1) missed  [vs authlib 1.6 minimal server]"
    )
    assert printed[1] == "ratio log2n-per-inclusion-hash: 0.997 (target >= 1) missed"
    records = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["name"], r["met"], r["kind"]) for r in records] == [
        ("issuance-vs-authlib", False, "speed"),
        ("log2n-per-inclusion-hash", False, "property"),
    ]


def test_skip_records_the_reason_and_exits_with_the_skipped_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "results.jsonl"
    monkeypatch.setenv(RESULTS_ENV, str(results))
    with pytest.raises(SystemExit) as stopped:
        skip("tls", "no cgroup cpu controller")
    assert stopped.value.code == SKIPPED_EXIT
    assert capsys.readouterr().out == "skipped tls: no cgroup cpu controller\n"
    assert json.loads(results.read_text()) == {
        "benchmark": "tls",
        "skipped": "no cgroup cpu controller",
    }
