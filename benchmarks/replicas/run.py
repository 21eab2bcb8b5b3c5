"""Replicas behind a balancer: throughput of 3 vs 1, and what chaos costs (issue 28).

Run: ``.venv/bin/python benchmarks/replicas/run.py`` (root: it installs
nginx-light and wrk from Debian if missing). Needs the machine's PostgreSQL
(``INTERLOCK_TEST_POSTGRES_URL``, default the local ``test`` database; a schema
of its own is created and dropped) and redis-server (a Redis of its own is
started on a free port).

1. **Throughput.** The same fleet (benchmarks/replicas/fleet.py) with one
   replica, then with three, behind the same nginx; wrk sends the bulk
   client's ``GET /orders/1001`` (API key, rate limit in Redis, upstream call,
   audit entry) for ``SECONDS`` through nginx. The peer is the one-replica
   fleet: the ratio is what adding two replicas buys *on this machine*. On a
   2-core machine shared with other work, three replicas, nginx, the sample
   ERP, PostgreSQL, Redis and wrk all compete for the same two cores, so the
   ratio measures the machine, not the design: expect about 1, and read
   docs/scale.md for what it means.
2. **Chaos** (benchmarks/replicas/chaos.py) on the three-replica fleet over a
   PostgreSQL of the benchmark's own (``initdb`` on a free port, restarted in
   the middle; :mod:`interlock.testing.postgres_node`): requests lost, 500s,
   limit over-admission, PostgreSQL's recovery, the time a manifest change and
   a revocation take to reach every replica, and whether the audit log
   verifies. Without initdb it runs on the machine's PostgreSQL and skips the restart.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Final

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import ensure_tools, postgres_schema, run_wrk
from benchmarks.replicas.chaos import Chaos, run_chaos
from benchmarks.replicas.fleet import fleet
from benchmarks.results import report
from interlock.testing import postgres_node

SECONDS: Final = int(os.environ.get("INTERLOCK_BENCH_SECONDS", "10"))
CONNECTIONS: Final = 32


def _throughput(replicas: int) -> float:
    with (
        postgres_schema() as url,
        tempfile.TemporaryDirectory(prefix="bench-replicas-") as work,
        fleet(Path(work), url, replicas) as running,
    ):
        run = run_wrk(
            f"https://localhost:{running.nginx_port}/orders/1001",
            connections=CONNECTIONS,
            seconds=SECONDS,
            headers=[f"X-API-Key: {running.keys['bulk']}"],
        )
        print(
            f"{replicas} replica(s): {run.rps:.0f} req/s, p50 {run.p50_ms:.1f} ms, "
            f"p99 {run.p99_ms:.1f} ms, errors {run.errors} of {run.requests}",
            flush=True,
        )
        return run.rps


def _chaos() -> Chaos:
    """The chaos scenario, over a PostgreSQL of its own when initdb is installed."""
    reason = postgres_node.unavailable()
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as work:
        if reason is not None:
            print(f"PostgreSQL is not restarted: {reason}", flush=True)
            with postgres_schema() as url, fleet(Path(work), url, 3) as running:
                return run_chaos(running)
        with (
            postgres_node.started() as postgres,
            fleet(Path(work), postgres.url, 3, postgres=postgres) as running,
        ):
            return run_chaos(running)


def main() -> None:
    """Measure and report."""
    ensure_tools("nginx", "wrk")
    print(f"cores: {os.cpu_count()}; wrk {CONNECTIONS} connections, {SECONDS} s", flush=True)
    one = _throughput(1)
    three = _throughput(3)
    report(
        "replicas",
        "replicas-3-vs-1-throughput",
        three / one,
        target=2.4,
        peer="the same fleet with 1 replica (nginx-light 1 worker, PostgreSQL, Redis)",
        note=f"{os.cpu_count()} cores shared by every process of both fleets and wrk",
    )
    result = _chaos()
    for line in result.lines():
        print(line, flush=True)
    report(
        "replicas",
        "replicas-requests-lost",
        result.lost,
        target=0,
        direction="<=",
        kind="property",
        peer="",
        digits=0,
        note="no answer, 502 or 504 through nginx during Redis and PostgreSQL restarts, "
        "a SIGKILL, a manifest",
    )
    report(
        "replicas",
        "replicas-limit-over-admission",
        result.over_admission,
        target=0.01,
        direction="<=",
        kind="property",
        peer="",
        digits=3,
    )
    report(
        "replicas",
        "replicas-manifest-seconds",
        result.manifest_seconds,
        target=None,
        peer="",
        note="publish to every live replica's /readyz; poll 0.5 s",
    )
    report(
        "replicas",
        "replicas-revocation-seconds",
        result.revocation_seconds,
        target=None,
        peer="",
        note="API key revoked to 401 on every live replica (1 s key cache)",
    )
    report(
        "replicas",
        "replicas-server-errors",
        result.server_errors,
        target=0,
        direction="<=",
        kind="property",
        peer="",
        digits=0,
        note="500 answers through nginx in every phase (Redis and PostgreSQL restarts included)",
    )
    if result.postgres_restarted:
        report(
            "replicas",
            "replicas-postgres-recovery-seconds",
            result.postgres_recovery_seconds,
            target=None,
            peer="",
            note="PostgreSQL accepting again to every live replica answering 200 (none restarted)",
        )
    if not result.audit_clean or result.audit_duplicates:
        print(result.audit_output, file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
