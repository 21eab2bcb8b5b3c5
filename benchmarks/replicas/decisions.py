"""The decision path across processes: what replicas share, measured where cores allow.

``run.py`` measures three whole replicas behind nginx, with the sample ERP,
PostgreSQL, Redis and wrk on the same two cores: its ratio says more about the
machine than about the design (docs/scale.md). This measures the part of a
request that replicas share — the decision — in 1 and then 2 processes (one
per core of this machine), each a replica's own gateway over the *same*
PostgreSQL store and audit log and the *same* Redis:

* each process starts a gateway (``start_gateway``, as ``interlock edge
  serve`` does) and answers ``/_interlock/authz`` for the bulk client's
  ``GET /orders/{id}`` (:mod:`benchmarks.gateway.decision_cpu`'s in-memory
  connections: the bytes nginx's generated auth location sends, parsed by
  aiohttp, no socket): API key (the store's cache), scope and ownership, the
  route's rate limit — one counter for the client in Redis, shared by every
  process — and one audit entry, appended to PostgreSQL under the log's
  advisory lock;
* ``--connections`` decisions are in flight per process, so a process waits
  on Redis for one while it computes others (as a replica under load does);
* the processes start together and the clock stops when the last is done
  and has written its audit entries.

Printed: decisions/s with 1 and 2 processes (best of ``--repeat`` rounds,
interleaved), their ratio (target 1.6: the issue's 80 % per added replica,
on this machine's two cores), and the CPU the shared services spent per
decision (redis-server's, and every ``postgres`` process's; the median over
all rounds), from which the
replicas one core of each could serve follows. On 2 cores the services'
CPU comes out of the same two cores; the ratio is therefore a floor for
a host with a core per replica.

Run: ``.venv/bin/python benchmarks/replicas/decisions.py [--decisions 20000]``
(PostgreSQL at INTERLOCK_TEST_POSTGRES_URL or 127.0.0.1:5432, a schema of its
own; a redis-server of its own on a free port).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import cpu_seconds, postgres_schema
from benchmarks.gateway.decision_cpu import _Connection, nginx_request, route_for
from benchmarks.replicas.fleet import MANIFEST, free_port, redis_server
from benchmarks.results import report, skip
from interlock.actors import Operator
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import decision_handler
from interlock.gateway.edge.protocol import CONVENTIONS
from interlock.gateway.server import ListenerConfig, start_gateway
from interlock.identity.apikeys import ApiKeys
from interlock.logs import configure_logging
from interlock.secrets.vault import Vault
from interlock.store import initialise, open_deployment
from interlock.testing.services import POSTGRES, unreachable

BENCHMARK = "replicas-decisions"
PROCESSES = (1, 2)


@dataclass(frozen=True)
class Job:
    """What one decision process needs (pickled to a spawned child)."""

    settings: dict[str, str]
    manifest: str
    key: str
    decisions: int
    connections: int
    redis_pid: int


@dataclass(frozen=True)
class Round:
    """One round of ``processes`` processes: decisions/s and the services' CPU per decision."""

    processes: int
    per_second: float
    redis_us: float
    postgres_us: float


def _worker(job: Job, ready: Any, start: Event, results: Any) -> None:
    """A child: a gateway of its own, warmed up; on ``start``, ``job.decisions`` decisions."""
    configure_logging("warning", "json")
    deployment = open_deployment(Settings(**job.settings))  # type: ignore[arg-type]
    manifest = load_manifest(Path(job.manifest))

    async def run() -> int:
        running = await start_gateway(
            deployment, manifest, ListenerConfig(port=0, client_auth="optional")
        )
        left, right = socket.socketpair(socket.AF_UNIX)  # the listener's peer check reads it
        try:
            decisions = EdgeDecisions(
                lambda: running.front.current, CONVENTIONS["nginx"], running.services.proxies
            )
            server = web.Server(decision_handler(decisions, {os.getuid()}), access_log=None)
            sink = running.gateway.audit.sink
            connections = [_Connection(server, left) for _ in range(job.connections)]
            data = nginx_request("/orders/1001", job.key, route_for(running, "/orders/1001"))

            async def ask(connection: _Connection, count: int) -> None:
                for _ in range(count):
                    await connection.ask(data)

            each = job.decisions // job.connections
            await asyncio.gather(*(ask(c, 50) for c in connections))  # warm: caches, code
            answer = connections[0].transport.last.split(b"\r\n", 1)[0]
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"the decision answered {answer!r}")
            ready.put(os.getpid())
            await asyncio.to_thread(start.wait)
            await asyncio.gather(*(ask(c, each) for c in connections))
            await sink.record_async(  # every entry of these decisions is committed
                AuditEntry(
                    actor="system:benchmark",
                    action="benchmark.flush",
                    outcome=Outcome(result="success"),
                )
            )
            return each * job.connections
        finally:
            left.close()
            right.close()
            await running.stop()

    try:
        results.put(uvloop.run(run()))
    finally:
        deployment.close()


def _stat(pid: str) -> tuple[str, list[str]] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()


def _postgres_seconds() -> float:
    """CPU of the PostgreSQL server: every process named ``postgres``, and those it reaped.

    A session that ended during the round is counted through the postmaster's
    children's time (``cutime``/``cstime``), so nothing a round's work cost
    is lost. Every session on the server counts, not only the benchmark's:
    run it on a quiet machine.
    """
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        found = _stat(entry.name)
        if found is None or found[0] != "postgres":
            continue
        fields = found[1]
        ticks += int(fields[11]) + int(fields[12])
        parent = _stat(fields[1])
        if parent is None or parent[0] != "postgres":  # the postmaster
            ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(job: Job, processes: int) -> Round:
    """Start ``processes`` decision processes, release them together, wait for all."""
    context = multiprocessing.get_context("spawn")
    ready, results, start = context.Queue(), context.Queue(), context.Event()
    children = [
        context.Process(target=_worker, args=(job, ready, start, results)) for _ in range(processes)
    ]
    for child in children:
        child.start()
    try:
        for _ in children:
            ready.get(timeout=120)
        redis0, postgres0 = cpu_seconds(job.redis_pid), _postgres_seconds()
        started = time.perf_counter()
        start.set()
        outcomes = [results.get(timeout=600) for _ in children]
        elapsed = time.perf_counter() - started
        redis1, postgres1 = cpu_seconds(job.redis_pid), _postgres_seconds()
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
    done = sum(outcomes)
    return Round(
        processes,
        done / elapsed,
        (redis1 - redis0) / done * 1e6,
        (postgres1 - postgres0) / done * 1e6,
    )


@contextmanager
def deployment_for(
    work: Path, database_url: str, decisions: int, connections: int
) -> Iterator[Job]:
    """A deployment over ``database_url`` and a redis-server of its own; the job for it."""
    port = free_port()
    redis = redis_server(port, work)
    try:
        settings = {
            "data_dir": str(work / "data"),
            "database_url": database_url,
            "audit_database_url": database_url,
            "redis_url": f"redis://127.0.0.1:{port}/0",
        }
        deployment = initialise(Settings(**settings))  # type: ignore[arg-type]
        try:
            manifest_path = work / "interlock.yaml"
            manifest_path.write_text(MANIFEST.format(erp_port=9, capped=100))
            manifest = load_manifest(manifest_path)
            key = ApiKeys(deployment.engine, deployment.keyring, manifest).create("bulk").token
            Vault(deployment.engine, deployment.keyring, audit=MemorySink()).write(
                "erp/api-key", os.urandom(24).hex().encode(), actor=Operator("admin:benchmark")
            )
        finally:
            deployment.close()
        yield Job(settings, str(manifest_path), key, decisions, connections, redis.pid)
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def main() -> None:
    """Rounds of 1 and 2 processes, interleaved; the ratio and the services' cost."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--decisions", type=int, default=20_000, help="per process and round")
    parser.add_argument("--connections", type=int, default=16, help="in flight per process")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    reason = unreachable(POSTGRES)
    if reason is not None:
        skip(BENCHMARK, f"PostgreSQL is unreachable ({reason})")
    with (
        tempfile.TemporaryDirectory(prefix="interlock-decisions-") as directory,
        postgres_schema() as url,
        deployment_for(Path(directory), url, args.decisions, args.connections) as job,
    ):
        rounds: dict[int, list[Round]] = {n: [] for n in PROCESSES}
        for _ in range(args.repeat):
            for processes in PROCESSES:
                found = measure(job, processes)
                rounds[processes].append(found)
                print(
                    f"{processes} process(es): {found.per_second:8,.0f} decisions/s   "
                    f"redis-server {found.redis_us:5.1f} µs, postgres {found.postgres_us:5.1f} µs "
                    "CPU per decision",
                    flush=True,
                )
    best = {n: max(rounds[n], key=lambda r: r.per_second) for n in PROCESSES}
    one, two = best[1], best[2]
    every = [r for rs in rounds.values() for r in rs]
    redis_us = statistics.median(r.redis_us for r in every)
    postgres_us = statistics.median(r.postgres_us for r in every)
    print(
        f"one core of Redis at {redis_us:.1f} µs per decision: "
        f"{1e6 / max(redis_us, 0.1):,.0f} decisions/s, "
        f"{1e6 / max(redis_us, 0.1) / one.per_second:.1f} replicas at one process's rate; "
        f"of PostgreSQL at {postgres_us:.1f} µs: {1e6 / max(postgres_us, 0.1):,.0f}/s, "
        f"{1e6 / max(postgres_us, 0.1) / one.per_second:.1f} replicas (load "
        f"{os.getloadavg()[0]:.1f})"
    )
    report(
        BENCHMARK,
        "decision-path-2-vs-1-processes",
        two.per_second / one.per_second,
        target=1.6,
        peer="the same decision path in one process",
        note=(
            f"{one.per_second:,.0f} vs {two.per_second:,.0f} decisions/s; one PostgreSQL store and "
            "audit log, one Redis counter, 2 cores shared with both"
        ),
    )
    report(
        BENCHMARK,
        "decision-redis-us-per-decision",
        redis_us,
        target=None,
        direction="<=",
        peer="",
        digits=1,
        note="redis-server CPU per decision (the route's rate limit)",
    )
    report(
        BENCHMARK,
        "decision-postgres-us-per-decision",
        postgres_us,
        target=None,
        direction="<=",
        peer="",
        digits=1,
        note="every postgres process's CPU per decision (audit append, key cache refresh)",
    )


if __name__ == "__main__":
    main()
