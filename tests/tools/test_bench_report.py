"""make bench's report: one results file, a page where no missed target reads as met.

Synthetic figures only: no benchmark runs here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.results import SKIPPED_EXIT
from tools.bench_report import main, merge, outcome, read_figures, render, verdict


def figure(benchmark: str, name: str, value: float, **fields: Any) -> dict[str, Any]:
    """A figure as benchmarks/results.report() writes it."""
    return {
        "benchmark": benchmark,
        "name": name,
        "value": value,
        "target": fields.get("target"),
        "direction": fields.get("direction", ">="),
        "kind": fields.get("kind", "speed"),
        "peer": fields.get("peer", ""),
        "met": None,
        "note": "",
        "digits": fields.get("digits", 2),
    }


def results(*figures: dict[str, Any], **benchmarks: dict[str, Any]) -> dict[str, Any]:
    """A results file's content."""
    return {
        "commit": "abc1234",
        "date": "2026-12-05 12:00 UTC",
        "machine": {"cores": 2, "cpu_model": "Test CPU"},
        "python": "3.11.7",
        "peers": {"limits": "5.8.0"},
        "benchmarks": benchmarks,
        "figures": list(figures),
    }


def test_skip_records_are_told_apart_from_figures() -> None:
    lines = [
        json.dumps(figure("limits", "inprocess-vs-limits-fixed-window", 1.9, target=3.0)),
        "",
        json.dumps({"benchmark": "limits", "skipped": "the Redis half: unreachable"}),
    ]
    figures, skips = read_figures(lines)
    assert [f["name"] for f in figures] == ["inprocess-vs-limits-fixed-window"]
    assert skips == ["the Redis half: unreachable"]


def test_a_benchmark_is_never_silently_absent() -> None:
    one = [figure("tls", "full-handshakes-vs-nginx", 0.4, target=0.5)]
    assert outcome(0, one, [], []) == ("ok", "")
    assert outcome(SKIPPED_EXIT, [], ["no cgroup"], []) == ("skipped", "no cgroup")
    status, reason = outcome(1, one, [], ["Traceback", "RuntimeError: boom"])
    assert status == "failed"
    assert "exit status 1" in reason
    assert "RuntimeError: boom" in reason
    assert outcome(0, [], [], ["ratio x: 1.0"])[0] == "failed"  # printed, not reported


def test_met_is_decided_on_the_unrounded_value_in_either_direction() -> None:
    assert verdict(figure("v", "a", 0.497, target=0.5)) == "missed"
    assert verdict(figure("v", "a", 0.5, target=0.5)) == "met"
    assert verdict(figure("l", "trips", 1.004, target=1.0, direction="<=")) == "missed"
    assert verdict(figure("l", "trips", 1.0, target=1.0, direction="<=")) == "met"
    assert verdict(figure("s", "p99", 12.0)) == "no target"


def test_the_page_never_prints_a_missed_target_as_met() -> None:
    page = render(
        results(
            figure("validation", "validation-2kib-vs-jsonschema-rs", 0.497, target=0.5, peer="rs"),
            figure("limits", "inprocess-vs-limits-sliding-window-counter", 4.09, target=3.0),
        )
    )
    (missed,) = [line for line in page.splitlines() if "validation-2kib" in line]
    assert "| 0.497 |" in missed
    assert "**missed**" in missed
    assert "0.50" not in missed
    (met,) = [line for line in page.splitlines() if "sliding-window" in line]
    assert "| 4.09 |" in met
    assert "| met |" in met
    assert "2 targets: 1 met, 1 missed." in page


def test_properties_and_quality_are_listed_apart_from_speeds() -> None:
    page = render(
        results(
            figure("oauth", "issuance-vs-authlib", 0.56, target=1.0),
            figure(
                "audit", "inclusion-proof-max", 1.0, target=1.0, direction="<=", kind="property"
            ),
            figure("scan", "precision", 0.91, target=0.9, kind="quality"),
        )
    )
    speed, rest = page.split("## Quality", 1)
    quality, properties = rest.split("## Property checks", 1)
    assert "issuance-vs-authlib" in speed
    assert "inclusion-proof-max" not in speed
    assert "precision" in quality
    assert "inclusion-proof-max" in properties.split("## Benchmarks that did not run")[0]


def test_failed_and_skipped_benchmarks_are_listed_with_their_reason() -> None:
    page = render(
        results(
            tls={"status": "skipped", "reason": "no cgroup cpu controller", "command": ["python"]},
            gateway={"status": "failed", "reason": "exit status 1: boom", "command": ["python"]},
            limits={"status": "ok", "reason": "", "command": ["python"]},
        )
    )
    absent = page.split("## Benchmarks that did not run to completion", 1)[1].split("## How", 1)[0]
    assert "| tls | skipped | no cgroup cpu controller |" in absent
    assert "| gateway | failed | exit status 1: boom |" in absent
    assert "limits" not in absent


def test_a_subset_run_replaces_only_its_own_benchmarks() -> None:
    old = results(
        figure("oauth", "issuance-vs-authlib", 0.5, target=1.0),
        figure("limits", "inprocess-vs-limits-fixed-window", 1.5, target=3.0),
        oauth={"status": "ok", "commit": "old"},
        limits={"status": "ok", "commit": "old"},
    )
    new = results(
        figure("limits", "inprocess-vs-limits-fixed-window", 1.9, target=3.0),
        limits={"status": "ok", "commit": "new"},
    )
    merged = merge(old, new, ["limits"])
    assert {(f["benchmark"], f["value"]) for f in merged["figures"]} == {
        ("oauth", 0.5),
        ("limits", 1.9),
    }
    assert merged["benchmarks"]["oauth"]["commit"] == "old"
    assert merged["benchmarks"]["limits"]["commit"] == "new"
    assert list(merged["benchmarks"]) == ["limits", "oauth"]  # make bench's order


def test_each_run_keeps_the_cpu_it_ran_on_and_the_page_says_when_they_differ() -> None:
    """A subset run on another machine: the older runs keep the CPU they were measured on."""
    old = results(oauth={"status": "ok", "commit": "old"})
    old["machine"]["cpu_model"] = "Old CPU"
    new = results(limits={"status": "ok", "commit": "new", "cpu_model": "New CPU"})
    new["machine"]["cpu_model"] = "New CPU"
    merged = merge(old, new, ["limits"])
    assert merged["benchmarks"]["oauth"]["cpu_model"] == "Old CPU"
    assert merged["benchmarks"]["limits"]["cpu_model"] == "New CPU"
    page = render(merged)
    assert "New CPU: limits; Old CPU: oauth" in page
    assert "not comparable" in page
    assert "| oauth | `` | ok | ? | `old` | Old CPU |" in page
    alone = render(merge(None, new, ["limits"]))
    assert "(New CPU)" in alone
    assert "not comparable" not in alone


def test_a_benchmark_that_reports_nothing_this_time_loses_its_old_figures() -> None:
    old = results(figure("tls", "full-handshakes-vs-nginx", 0.6, target=0.5))
    new = results(tls={"status": "failed", "reason": "not saturated"})
    merged = merge(old, new, ["tls"])
    assert merged["figures"] == []
    assert merged["benchmarks"]["tls"]["status"] == "failed"


def test_render_only_regenerates_the_page_from_the_results_file(tmp_path: Path) -> None:
    stored = tmp_path / "results.json"
    page = tmp_path / "performance.md"
    stored.write_text(json.dumps(results(figure("events", "events-vs-jsonschema", 26.4, target=5))))
    assert main(["--render-only", "--results", str(stored), "--doc", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("# Performance\n")
    assert "`events-vs-jsonschema` | 26.40 | >= 5 | met" in text
    assert "Test CPU" in text
    assert main(["--render-only", "--results", str(tmp_path / "none"), "--doc", str(page)]) == 1


def test_an_unknown_benchmark_name_is_refused(tmp_path: Path) -> None:
    code = main(["--only", "oauth,nope", "--results", str(tmp_path / "r.json")])
    assert code == 2
    assert not (tmp_path / "r.json").exists()
