"""Run the benchmarks, keep their figures in one results file, generate docs/performance.md.

``make bench`` runs this. Each benchmark is a script of its own
(``benchmarks/NAME/run.py``), run with ``INTERLOCK_BENCH_RESULTS`` naming a
temporary JSON-lines file into which :func:`benchmarks.results.report` writes
one line per figure. The figures of the benchmarks run are merged into
``benchmarks/results.json`` (the figures of benchmarks not run this time are
kept with their own commit and date), then ``docs/performance.md`` is
generated from that file.

A benchmark is never silently absent: one that exits with
:data:`benchmarks.results.SKIPPED_EXIT` is recorded as skipped with its
reason, one that fails (or reports no figure) as failed with the last lines
it printed. A target is shown as met or missed as decided on the unrounded
value, and printed with :func:`benchmarks.results.shown`, so a missed target
never reads as met.

Usage: python tools/bench_report.py [--only oauth,limits] [--render-only]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Final

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.results import RESULTS_ENV, SKIPPED_EXIT, shown

ROOT: Final = Path(__file__).resolve().parents[1]
RESULTS: Final = ROOT / "benchmarks" / "results.json"
DOC: Final = ROOT / "docs" / "performance.md"

#: Every benchmark, in the order ``make bench`` runs them, with the arguments it gets.
#: The soak runs its full 10 minutes (issue 18's bounded soak), about a quarter
#: of the whole run.
BENCHMARKS: Final[dict[str, tuple[str, ...]]] = {
    "limits": (),
    "validation": (),
    "events": (),
    "audit": (),
    "audit-producers": (),
    "oauth": (),
    "oauth-verify-raw": (),
    "tls": (),
    "messaging": (),
    "scan": (),
    "gateway": (),
    "gateway-lineage": (),
    "scaling": (),
    "replicas-decisions": (),
    "soak": (),
}

#: Benchmarks whose script is not ``benchmarks/NAME/run.py``.
SCRIPTS: Final[dict[str, str]] = {
    "audit-producers": "benchmarks/audit/producers.py",
    "gateway-lineage": "benchmarks/gateway/lineage.py",
    "oauth-verify-raw": "benchmarks/oauth/verify_raw.py",
    "replicas-decisions": "benchmarks/replicas/decisions.py",
}
#: A benchmark still running after this long is stopped and recorded as failed.
TIMEOUT_SECONDS: Final = 3600
#: Lines of a failed benchmark's output kept as its reason.
TAIL_LINES: Final = 5

#: The peers' Python distributions (their versions go into the results file).
PEER_PACKAGES: Final = (
    "authlib",
    "bandit",
    "detect-secrets",
    "jsonschema",
    "jsonschema-rs",
    "limits",
    "pyjwt",
    "redis",
    "aiohttp",
    "cryptography",
)
#: The peers and services that are programs: how each reports its version.
PEER_PROGRAMS: Final[dict[str, tuple[str, ...]]] = {
    "nginx": ("nginx", "-v"),
    "wrk": ("wrk", "-v"),
    "openssl": ("openssl", "version"),
    "redis-server": ("redis-server", "--version"),
    "nats-server": ("nats-server", "--version"),
    "rabbitmq-server": ("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server"),
    "postgresql": ("psql", "--version"),
}

LOAD_NOTE: Final = (
    "The machine was shared with other work while these ran (other agents building and "
    "testing on the same two cores; the load average at each benchmark's start is listed "
    "below). Absolute rates are noisy; each ratio compares both sides measured in the same "
    "run, alternating, so shared load hits both alike, yet ratios too moved by about 0.1 "
    "between runs."
)


def read_figures(lines: Iterable[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The figures and the skip reasons in a results JSON-lines stream."""
    figures: list[dict[str, Any]] = []
    skips: list[str] = []
    for line in lines:
        if not line.strip():
            continue
        record = json.loads(line)
        if "skipped" in record:
            skips.append(str(record["skipped"]))
        else:
            figures.append(record)
    return figures, skips


def outcome(
    returncode: int, figures: Sequence[dict[str, Any]], skips: Sequence[str], tail: Sequence[str]
) -> tuple[str, str]:
    """(status, reason) of one benchmark run: ``ok``, ``skipped`` or ``failed``."""
    if returncode == SKIPPED_EXIT:
        return "skipped", "; ".join(skips) or "skipped (no reason given)"
    if returncode != 0:
        return "failed", f"exit status {returncode}: " + " | ".join(tail)
    if not figures:
        return "failed", "reported no figure through benchmarks/results.report()"
    return "ok", ""


def verdict(figure: dict[str, Any]) -> str:
    """``met``, ``missed`` or ``no target``, decided on the unrounded value."""
    target = figure.get("target")
    if target is None:
        return "no target"
    value = float(figure["value"])
    met = value >= target if figure.get("direction", ">=") == ">=" else value <= target
    return "met" if met else "missed"


def merge(
    existing: dict[str, Any] | None, run: dict[str, Any], ran: Sequence[str]
) -> dict[str, Any]:
    """``existing`` with the benchmarks in ``ran`` replaced by this ``run``'s."""
    benchmarks = dict((existing or {}).get("benchmarks", {}))
    # A run made before each run named its CPU ran on the results' machine of the time.
    earlier = (existing or {}).get("machine", {}).get("cpu_model")
    for name, record in benchmarks.items():
        if "cpu_model" not in record and earlier is not None:
            benchmarks[name] = {**record, "cpu_model": earlier}
    figures = [f for f in (existing or {}).get("figures", []) if f["benchmark"] not in ran]
    for name in ran:
        benchmarks[name] = run["benchmarks"][name]
    figures += [f for f in run["figures"] if f["benchmark"] in ran]
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    figures.sort(key=lambda f: order.get(f["benchmark"], len(order)))
    merged = {key: value for key, value in run.items() if key not in {"benchmarks", "figures"}}
    peers = dict((existing or {}).get("peers", {}))
    peers.update(run.get("peers", {}))
    merged["peers"] = peers
    merged["benchmarks"] = {
        name: benchmarks[name] for name in sorted(benchmarks, key=lambda n: order.get(n, 99))
    }
    merged["figures"] = figures
    return merged


def _row(figure: dict[str, Any]) -> str:
    target = figure.get("target")
    value = shown(
        float(figure["value"]), target, figure.get("direction", ">="), figure.get("digits", 2)
    )
    aim = "—" if target is None else f"{figure.get('direction', '>=')} {target:g}"
    result = verdict(figure)
    result = {"missed": "**missed**", "no target": "— (for information)"}.get(result, result)
    peer = figure.get("peer") or "— (absolute)"
    note = figure.get("note") or ""
    return (
        f"| {figure['benchmark']} | `{figure['name']}` | {value} | {aim} | {result} "
        f"| {_cell(peer)} | {_cell(note)} |"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render(results: dict[str, Any]) -> str:
    """docs/performance.md from the results file's content."""
    machine = results.get("machine", {})
    lines = [
        "# Performance",
        "",
        "<!-- Generated by `make bench` (tools/bench_report.py) from benchmarks/results.json."
        " Do not edit: run `make bench` (or `make bench BENCH=oauth,limits`). -->",
        "",
        f"Generated from `benchmarks/results.json`, last updated at commit "
        f"`{results.get('commit', '?')}` on {results.get('date', '?')} (each benchmark's own "
        f"commit, date and CPU are in the last table but one): {machine.get('cores', '?')} cores "
        f"({_cpus(results)}), Python {results.get('python', '?')}.",
        "",
        LOAD_NOTE,
        "",
        "Every figure is reported by its benchmark through `benchmarks/results.py`: met or"
        " missed is decided on the unrounded value, and the value is printed with enough"
        " digits that it never rounds across its target. Each ratio names the peer and its"
        " configuration; a ratio above 1 means Interlock does more of the same work per"
        " second.",
        "",
    ]
    figures = results.get("figures", [])
    sections = (
        (
            "speed",
            "Speed",
            "Interlock against a named peer doing the same work in the same run; a figure"
            " without a peer is absolute (for information).",
        ),
        ("quality", "Quality", "Accuracy figures (precision, recall), not speeds."),
        (
            "property",
            "Property checks",
            "Figures fixed by the design or required of it (proof sizes, round trips, memory"
            " growth, errors), not speeds.",
        ),
    )
    for kind, title, intro in sections:
        chosen = [f for f in figures if f.get("kind", "speed") == kind]
        targeted = [f for f in chosen if f.get("target") is not None]
        missed = sum(verdict(f) == "missed" for f in targeted)
        lines += [f"## {title}", "", intro, ""]
        if not chosen:
            lines += ["No figure of this kind was reported.", ""]
            continue
        lines += [
            f"{len(targeted)} targets: {len(targeted) - missed} met, {missed} missed.",
            "",
            "| Benchmark | Figure | Value | Target | Result | Peer | Note |",
            "|---|---|---|---|---|---|---|",
            *(_row(f) for f in chosen),
            "",
        ]
    benchmarks = results.get("benchmarks", {})
    absent = {name: b for name, b in benchmarks.items() if b.get("status") != "ok"}
    lines += ["## Benchmarks that did not run to completion", ""]
    if absent:
        lines += ["| Benchmark | Status | Reason |", "|---|---|---|"]
        lines += [
            f"| {name} | {b['status']} | {_cell(b.get('reason', ''))} |"
            for name, b in absent.items()
        ]
    else:
        lines += ["None: every benchmark ran and reported its figures."]
    lines += [
        "",
        "## How each benchmark was run",
        "",
        "| Benchmark | Command | Status | Date | Commit | CPU | Seconds | Load average at start |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, b in benchmarks.items():
        load = b.get("load_average")
        lines.append(
            f"| {name} | `{' '.join(b.get('command', []))}` | {b.get('status', '?')} "
            f"| {b.get('date', '?')} | `{b.get('commit', '?')}` | {b.get('cpu_model', '?')} "
            f"| {b.get('seconds', 0):.0f} | {'?' if load is None else f'{load:.1f}'} |"
        )
    lines += ["", "## Peer versions", ""]
    lines += [f"- {name}: {version}" for name, version in sorted(results.get("peers", {}).items())]
    return "\n".join(lines) + "\n"


def _cpus(results: dict[str, Any]) -> str:
    """The CPU of every benchmark run, or each CPU with its benchmarks when they differ."""
    runs: dict[str, list[str]] = {}
    fallback = results.get("machine", {}).get("cpu_model", "?")
    for name, record in results.get("benchmarks", {}).items():
        runs.setdefault(record.get("cpu_model", fallback), []).append(name)
    if len(runs) <= 1:
        return next(iter(runs), fallback)
    return "; ".join(f"{cpu}: {', '.join(names)}" for cpu, names in runs.items()) + (
        " — figures measured on different CPUs are not comparable with each other"
    )


def machine() -> dict[str, Any]:
    """Cores and CPU model of this machine."""
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu_model": model, "system": platform.platform()}


def peer_versions() -> dict[str, str]:
    """The peers' versions: Python distributions from their metadata, programs from ``-v``."""
    versions: dict[str, str] = {}
    for name in PEER_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    for name, command in PEER_PROGRAMS.items():
        if shutil.which(command[0]) is None:
            versions[name] = "not installed"
            continue
        done = subprocess.run(  # noqa: S603 - fixed arguments from PEER_PROGRAMS
            command, capture_output=True, text=True, check=False, timeout=30
        )
        text = (done.stdout.strip() or done.stderr.strip()).splitlines()
        # `wrk -v` prints its version and exits 1: the text counts, not the status.
        versions[name] = text[0] if text else "unknown"
    return versions


def commit() -> str:
    """HEAD, marked when the work tree differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(  # noqa: S603 - fixed arguments
        [*git, "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    )
    dirty = subprocess.run(  # noqa: S603 - fixed arguments
        [*git, "status", "--porcelain", "--", "src", "benchmarks"],
        check=False,
        capture_output=True,
        text=True,
    )
    text = head.stdout.strip() or "unknown"
    return text + ("+uncommitted" if dirty.stdout.strip() else "")


def run_one(name: str, head: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run one benchmark script; its record and its figures."""
    script = SCRIPTS.get(name, f"benchmarks/{name}/run.py")
    command = [sys.executable, script, *BENCHMARKS[name]]
    print(f"\n=== make bench: {name}: {' '.join(command[1:])}", flush=True)
    record: dict[str, Any] = {
        "command": ["python", *command[1:]],
        "commit": head,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average": os.getloadavg()[0],
        "cpu_model": machine()["cpu_model"],
    }
    started = time.monotonic()
    tail: list[str] = []
    with tempfile.TemporaryDirectory(prefix="interlock-bench-") as work:
        jsonl = Path(work) / "figures.jsonl"
        env = {**os.environ, RESULTS_ENV: str(jsonl)}
        with subprocess.Popen(  # noqa: S603 - our interpreter, a script of BENCHMARKS
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        ) as process:
            try:
                for line in process.stdout or ():
                    sys.stdout.write(line)
                    if line.strip():
                        tail = [*tail, line.strip()][-TAIL_LINES:]
                returncode = process.wait(timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                returncode = process.wait()
                tail.append(f"timed out after {TIMEOUT_SECONDS} s")
        lines = jsonl.read_text().splitlines() if jsonl.exists() else []
    figures, skips = read_figures(lines)
    record["status"], record["reason"] = outcome(returncode, figures, skips, tail)
    record["seconds"] = time.monotonic() - started
    print(f"=== make bench: {name}: {record['status']} {record['reason']}", flush=True)
    return record, figures


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmarks, merge their figures, write the results and the page."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--only", default="all", help="comma-separated benchmarks, or all")
    parser.add_argument("--render-only", action="store_true", help="regenerate the page only")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--doc", type=Path, default=DOC)
    args = parser.parse_args(argv)
    existing = json.loads(args.results.read_text()) if args.results.exists() else None
    if args.render_only:
        if existing is None:
            print(f"{args.results}: no results file; run `make bench`", file=sys.stderr)
            return 1
        args.doc.write_text(render(existing))
        return 0
    chosen = list(BENCHMARKS) if args.only == "all" else [n for n in args.only.split(",") if n]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        print(
            f"unknown benchmark {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}",
            file=sys.stderr,
        )
        return 2
    head = commit()
    run: dict[str, Any] = {
        "commit": head,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "python": platform.python_version(),
        "peers": peer_versions(),
        "benchmarks": {},
        "figures": [],
    }
    for name in chosen:
        record, figures = run_one(name, head)
        run["benchmarks"][name] = record
        run["figures"] += [{**f, "verdict": verdict(f)} for f in figures]
    results = merge(existing, run, chosen)
    args.results.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    args.doc.write_text(render(results))
    print(f"\nwrote {args.results.relative_to(ROOT)} and {args.doc.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
