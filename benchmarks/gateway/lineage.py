"""What the lineage index costs: the same route with and without ``subjects`` locators.

Starts, on loopback only, the sample ERP (HTTPS, local-CA certificate) and one
``interlock serve`` process on a manifest with two integrations that differ in
one thing: ``traced`` declares where the customer's email is in the answer
(``subjects: [{kind: email, in: response, json: /customer/email}]``), ``plain``
does not. Both carry personal data (``user.contact.email``), so both wait for a
durable audit entry; the difference is the extraction of the identifier, its
keyed hash and the lineage row (written off the event loop, in batches).

The two routes are driven alternately (plain, traced, plain, traced, ...) by
``wrk`` against the same process, so they share warm pools, caches and the
machine's state; the median run of each is reported with the gateway's CPU
time per request (from /proc, the lineage writer thread included), then the
added CPU time per request and the ratio traced/plain of requests/s.

Run:  .venv/bin/python benchmarks/gateway/lineage.py  [--duration 8] [--repeat 3] [--connections 32]
or    make bench BENCH=gateway-lineage

Both figures, the ratio traced/plain of requests/s and the added CPU time per
request, are reported through ``benchmarks/results.py``, so ``make bench``
records them in benchmarks/results.json and docs/performance.md.

The lineage rows written are counted at the end: none means the build has no
subject extraction (the ``subjects`` stage), and the difference is noise.
wrk comes from Debian's package and is installed if missing (root); it does
not verify server certificates and only talks to the processes started here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in {None, ""}:  # run as a file: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from sqlalchemy import func, select

from benchmarks.common import (
    Sandbox,
    cpu_seconds,
    ensure_tools,
    free_port,
    processes,
    run_wrk,
    sandbox,
    start_sample_erp,
    wait_port,
)
from benchmarks.results import report as report_figure
from interlock.config.loader import load_manifest
from interlock.identity.apikeys import ApiKeys
from interlock.privacy.tables import LineageRow
from interlock.store.base import table_of

_INTEGRATION = """\
  {name}:
    source: erp
    target: crm
    client: bench
    purpose: Benchmark
    legal_basis: contract
    data_categories: [user.contact.email]
    retention: 1d
{subjects}    routes:
      - {{method: GET, path: "/{name}/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
"""

MANIFEST = """\
version: 1
organisation:
  controller: {{name: Benchmark, contact: bench@example.com, country: DE}}
systems:
  erp: {{url: "https://localhost:{erp_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
  crm: {{url: "https://crm.invalid", location: DE}}
roles:
  reader: {{scopes: [orders.read]}}
clients:
  bench: {{auth: [api_key], roles: [reader]}}
integrations:
{plain}{traced}"""

SUBJECTS = "    subjects:\n      - {kind: email, in: response, json: /customer/email}\n"

BENCHMARK = "gateway-lineage"  # its name in make bench (tools/bench_report.py)
PEER = (
    "the same route without a subjects locator (no subject extraction), same gateway "
    "process, runs alternating"
)


@dataclass
class Result:
    """One wrk run against one route, with the gateway's CPU time over it."""

    route: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    cpu_us_per_request: float


def manifest_text(erp_port: int) -> str:
    """Two integrations, identical but for the ``subjects`` locator."""
    return MANIFEST.format(
        erp_port=erp_port,
        plain=_INTEGRATION.format(name="plain", subjects=""),
        traced=_INTEGRATION.format(name="traced", subjects=SUBJECTS),
    )


def run_once(route: str, url: str, pid: int, args: argparse.Namespace, auth: list[str]) -> Result:
    """One wrk run of ``args.duration`` seconds; CPU time of the gateway process ``pid``."""
    before = cpu_seconds(pid)
    run = run_wrk(url, connections=args.connections, seconds=args.duration, headers=auth)
    used = cpu_seconds(pid) - before
    per_request = used / run.requests * 1e6 if run.requests else 0.0
    return Result(route, run.rps, run.p50_ms, run.p99_ms, run.requests, run.errors, per_request)


def measure(box: Sandbox, args: argparse.Namespace) -> tuple[list[Result], int]:
    """Alternate the two routes ``--repeat`` times; the lineage rows written."""
    work, deployment = box.work, box.deployment
    results: list[Result] = []
    with processes() as started:
        erp_port, _ = start_sample_erp(box, started)
        manifest_path = work / "interlock.yaml"
        manifest_path.write_text(manifest_text(erp_port))
        keys = ApiKeys(deployment.engine, deployment.keyring, load_manifest(manifest_path))
        auth = [f"Authorization: Bearer {keys.create('bench').token}"]
        port = free_port()
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock",
                "serve",
                "--manifest",
                str(manifest_path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env=box.env,
            stdout=subprocess.DEVNULL,
        )
        started.append(gateway)
        # `interlock serve` issues certificates and opens the store first: half a minute
        # and more on a loaded machine.
        wait_port(port, timeout=120, process=gateway)
        urls = {r: f"https://127.0.0.1:{port}/{r}/orders/1001" for r in ("plain", "traced")}
        # Warm pools, TLS sessions and the lineage writer (its requests count for the rows).
        run_wrk(urls["plain"], connections=args.connections, seconds=2, headers=auth)
        warm = run_wrk(urls["traced"], connections=args.connections, seconds=2, headers=auth)
        results.append(Result("traced warm-up", warm.rps, 0, 0, warm.requests, warm.errors, 0))
        for _ in range(args.repeat):
            for route, url in urls.items():
                results.append(run_once(route, url, gateway.pid, args, auth))
    # Counted once the gateway stopped: closing it wrote the lineage writer's last batch.
    lineage = table_of(LineageRow)
    with deployment.engine.connect() as connection:
        rows = int(connection.execute(select(func.count()).select_from(lineage)).scalar_one())
    return results, rows


def _median(results: list[Result], route: str) -> Result:
    mine = sorted((r for r in results if r.route == route), key=lambda r: r.rps)
    return mine[len(mine) // 2]


def report(results: list[Result], rows: int, args: argparse.Namespace) -> None:
    """The table, the added cost per request and the ratio."""
    print(
        f"\nwrk: 1 thread, {args.connections} connections, {args.repeat} alternating runs of "
        f"{args.duration}s per route after a 2s warm-up, loopback, TLS, one gateway process"
    )
    print(f"{'route':<10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'errors':>8}")
    plain, traced = _median(results, "plain"), _median(results, "traced")
    for r in (plain, traced):
        print(
            f"{r.route:<10}{r.rps:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.cpu_us_per_request:>12.1f}{r.errors:>8}"
        )
    cpu = [r.cpu_us_per_request for r in results if r.route == "traced"]
    base = [r.cpu_us_per_request for r in results if r.route == "plain"]
    added = statistics.median(cpu) - statistics.median(base)
    print(f"\nlineage rows written: {rows}")
    print(f"added per request (median CPU time): {added:.1f} us")
    print(f"added per request (p50 latency): {(traced.p50_ms - plain.p50_ms) * 1000:.0f} us")
    note = f"{rows} lineage rows written; medians of {args.repeat} runs of {args.duration}s"
    if plain.rps:
        report_figure(
            BENCHMARK,
            "lineage-traced-vs-plain-rps",
            traced.rps / plain.rps,
            target=None,
            peer=PEER,
            digits=3,
            note=note,
        )
    report_figure(
        BENCHMARK,
        "lineage-added-cpu-us-per-request",
        added,
        target=None,
        peer="",
        direction="<=",
        digits=1,
        note="gateway CPU time per request, lineage writer thread included: traced - plain",
    )
    traced_requests = sum(r.requests - r.errors for r in results if r.route != "plain")
    if rows == 0:
        print(
            "warning: the traced route recorded no lineage rows; this build has no subject "
            "extraction (the subjects stage), so the difference above is noise"
        )
    # wrk does not count the requests in flight when a run ends: up to one per connection.
    elif not traced_requests <= rows <= traced_requests + args.connections * (args.repeat + 1):
        print(f"note: {rows} lineage rows for {traced_requests} traced requests (dropped?)")
    if args.json:
        args.json.write_text(
            json.dumps({"results": [r.__dict__ for r in results], "lineage_rows": rows}, indent=2)
        )


def main() -> None:
    """Set up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    ensure_tools("wrk")
    with sandbox() as box:
        results, rows = measure(box, args)
    report(results, rows, args)


if __name__ == "__main__":
    main()
