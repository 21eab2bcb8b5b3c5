"""CPU per edge decision, in process: the decision endpoint against a minimal aiohttp probe.

``run.py`` measures edge mode end to end (wrk → nginx → decision → upstream)
on a machine shared with everything else; this measures the one thing Python
does per edge request — answer ``/_interlock/authz`` — as CPU time, so that a
change to the decision's code shows as microseconds, not as noise.

Both sides are aiohttp ``web.Server`` protocols fed the exact bytes nginx's
generated ``location = /_interlock/authz`` sends (keep-alive, one request at
a time, ``Host``, ``X-Original-*``, ``X-Interlock-Client-Verify: NONE`` and
the caller's ``X-API-Key``) through an in-memory transport whose ``socket``
is a real unix socket pair (the listener's ``SO_PEERCRED`` check reads it).
What is measured is everything the event loop does for a decision: HTTP
parsing, the handler, the response's serialisation; not the socket's
``recv``/``send`` (the same two syscalls on both sides).

* ``edge api-key``: ``interlock edge serve``'s decision — the listener's
  peer check, then :class:`~interlock.gateway.edge.decision.EdgeDecisions`
  on a gateway started from ``run.py``'s manifest (the deployment's SQLite
  audit log, its group-commit writer thread, the vault's credential for the
  upstream): Host check, route match, credential guard, API key (cache hit),
  scope and ownership, content encoding, parameter validation, one
  ``gateway.request`` audit entry, the metrics;
* ``edge personal-data``: the same on the route whose entry must be durable
  before the answer (each decision waits for its group commit);
* ``probe``: the issue's probe — an aiohttp handler that reads ``X-API-Key``,
  hashes it (SHA-256) and looks the hash up in a dict, answering 200 with the
  client's name or 401. No route, no scope, no audit, no metrics.

Figures: CPU µs per decision, ``time.thread_time`` of the event loop's
thread (what caps one decision process) and ``time.process_time`` (also the
audit writer's thread, which competes for the interpreter lock; waited for
at the end so its work for these decisions is in). Median of ``--repeat``
repeats of ``--n`` decisions each, after a warm-up. uvloop, as
``interlock edge serve`` runs.

Run:  .venv/bin/python benchmarks/gateway/decision_cpu.py [--n 20000] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import hashlib
import os
import pstats
import socket
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in {None, ""}:  # run as a file: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import uvloop
from aiohttp import web

from benchmarks.common import Sandbox, sandbox
from benchmarks.gateway.run import MANIFEST
from benchmarks.results import report
from interlock.actors import Operator
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.protocol import CONVENTIONS, route_key
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.identity.apikeys import ApiKeys
from interlock.logs import configure_logging
from interlock.secrets.vault import Vault

try:
    from interlock.gateway.edge.listener import decision_handler
except ImportError:  # the code before it existed (PYTHONPATH=OLD/src, to compare)
    from interlock.gateway.edge.listener import _Handler

    def decision_handler(decisions: EdgeDecisions, proxy_uids: Iterable[int]) -> _Handler:  # type: ignore[misc]
        """The listener's handler, as the older code built it."""
        return _Handler(decisions, frozenset(proxy_uids))


BENCHMARK = "gateway"
HOST = "127.0.0.1:8443"
DONE = Outcome(result="success")


class _Transport(asyncio.Transport):
    """An in-memory connection: counts the responses written, wakes the waiter on each."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self._sock = sock
        self.written = 0
        self.last = b""
        self.waiter: asyncio.Future[None] | None = None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name in {"peername", "sockname"}:
            return ""
        return default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        chunk = bytes(data)
        if chunk.startswith(b"HTTP/1.1 "):
            self.written += 1
            self.last = chunk
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(None)

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_reading(self) -> bool:
        return True


@dataclass(frozen=True)
class Timing:
    """CPU µs per decision: the loop's thread and the whole process (median of repeats)."""

    name: str
    thread_us: float
    process_us: float
    status: bytes


def nginx_request(path: str, key: str, route: str = "") -> bytes:
    """What nginx's generated auth location sends for ``GET path`` with ``X-API-Key: key``.

    ``route``: the route key the location names (:func:`route_for`).
    """
    return (
        "GET /_interlock/authz HTTP/1.1\r\n"
        f"Host: {HOST}\r\n"
        "X-Original-Method: GET\r\n"
        f"X-Original-URI: {path}\r\n"
        "X-Original-Remote-Addr: 127.0.0.1\r\n"
        "X-Interlock-Client-Verify: NONE\r\n"
        f"X-Interlock-Route: {route}\r\n"
        f"X-API-Key: {key}\r\n"
        "\r\n"
    ).encode()


def route_for(running: RunningGateway, path: str) -> str:
    """The route key nginx's location for ``GET path`` names (the route the router picks)."""
    routes = running.gateway.routes
    route = routes.match("GET", tuple(path.strip("/").split("/"))).route
    return route_key(route)


class _Connection:
    """One kept-alive connection into an aiohttp ``web.Server``."""

    def __init__(self, server: web.Server, sock: socket.socket) -> None:
        self.transport = _Transport(sock)
        self.protocol = server()
        self.protocol.connection_made(self.transport)

    async def ask(self, data: bytes) -> None:
        """Send one request; return once its response is written."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self.transport.waiter = waiter
        self.protocol.data_received(data)
        await waiter


async def _time(
    connection: _Connection, data: bytes, n: int, drain: Callable[[], Any] | None
) -> tuple[float, float]:
    thread0, process0 = time.thread_time(), time.process_time()
    for _ in range(n):
        await connection.ask(data)
    thread1 = time.thread_time()
    if drain is not None:
        await drain()
    process1 = time.process_time()
    return (thread1 - thread0) / n * 1e6, (process1 - process0) / n * 1e6


async def measure(  # noqa: PLR0917  (one call per target)
    name: str,
    server: web.Server,
    data: bytes,
    n: int,
    repeat: int,
    drain: Callable[[], Any] | None = None,
) -> Timing:
    """Median CPU per decision of ``server`` answering ``data`` ``n`` times, after a warm-up."""
    left, right = socket.socketpair(socket.AF_UNIX)
    try:
        connection = _Connection(server, left)
        await _time(connection, data, min(2000, n), drain)  # caches filled, code paths warm
        runs = [await _time(connection, data, n, drain) for _ in range(repeat)]
        status = connection.transport.last.split(b"\r\n", 1)[0]
    finally:
        left.close()
        right.close()
    return Timing(
        name,
        statistics.median(r[0] for r in runs),
        statistics.median(r[1] for r in runs),
        status,
    )


def probe_server(keys: dict[bytes, str]) -> web.Server:
    """The issue's probe: an API key hashed and looked up, nothing else."""

    async def decide(request: web.BaseRequest) -> web.StreamResponse:
        key = request.headers.get("X-API-Key", "")
        client = keys.get(hashlib.sha256(key.encode()).digest())
        if client is None:
            return web.Response(status=401)
        return web.Response(status=200, headers={"X-Interlock-Client": client})

    return web.Server(decide, access_log=None)


async def _gateway(box: Sandbox) -> tuple[RunningGateway, str]:
    manifest_path = box.work / "fast.yaml"
    manifest_path.write_text(MANIFEST.format(port=9, orders="/orders"))
    manifest = load_manifest(manifest_path)
    key = ApiKeys(box.deployment.engine, box.deployment.keyring, manifest).create("bench").token
    Vault(box.deployment.engine, box.deployment.keyring, audit=MemorySink()).write(
        "erp/api-key", os.urandom(24).hex().encode(), actor=Operator("admin:benchmark")
    )
    listener = ListenerConfig(port=0, client_auth="optional")
    running = await start_gateway(box.deployment, manifest, listener)
    return running, key


async def run(box: Sandbox, args: argparse.Namespace) -> list[Timing]:
    """Both decision routes and the probe."""
    running, key = await _gateway(box)
    try:
        decisions = EdgeDecisions(
            lambda: running.front.current, CONVENTIONS["nginx"], running.services.proxies
        )
        server = web.Server(decision_handler(decisions, {os.getuid()}), access_log=None)
        sink = running.gateway.audit.sink

        async def drain() -> None:  # the writer's work for these entries, counted
            await sink.record_async(
                AuditEntry(actor="system:benchmark", action="benchmark.flush", outcome=DONE)
            )

        n, repeat = args.n, args.repeat
        timings = []
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        timings.append(
            await measure(
                "edge api-key",
                server,
                nginx_request("/orders/1001", key, route_for(running, "/orders/1001")),
                n,
                repeat,
                drain,
            )
        )
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.lines)
        if args.profile or args.api_key_only:
            return timings
        timings.append(
            await measure(  # each waits for a commit: a tenth as many
                "edge personal-data",
                server,
                nginx_request("/customers/1001", key, route_for(running, "/customers/1001")),
                max(1, n // 10),
                repeat,
                drain,
            )
        )
        table = {hashlib.sha256(key.encode()).digest(): "bench"}
        probe = probe_server(table)
        timings.append(await measure("probe", probe, nginx_request("/", key), n, repeat))
        return timings
    finally:
        await running.stop()


def main() -> None:
    """Set up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="decisions per repeat")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="cProfile the API-key decision")
    parser.add_argument(
        "--api-key-only", action="store_true", help="the API-key decision only (for py-spy)"
    )
    parser.add_argument("--sort", default="cumulative", help="--profile: pstats sort key")
    parser.add_argument("--lines", type=int, default=45, help="--profile: lines shown")
    args = parser.parse_args()
    configure_logging("warning", "json")  # as run.py's edge serve (INTERLOCK_LOG_LEVEL=warning)
    with sandbox() as box:
        timings = uvloop.run(run(box, args))
    print(
        f"CPU µs per decision, median of {args.repeat} x {args.n} (load {os.getloadavg()[0]:.1f})"
    )
    print(f"{'target':<22}{'loop thread':>12}{'process':>10}  answer")
    for t in timings:
        print(f"{t.name:<22}{t.thread_us:>12.1f}{t.process_us:>10.1f}  {t.status.decode()}")
    by_name = {t.name: t for t in timings}
    if "probe" in by_name:
        # The probe's CPU over ours: the share of the probe's decision rate one process reaches.
        report(
            BENCHMARK,
            "edge-decision-cpu-vs-probe",
            by_name["probe"].thread_us / by_name["edge api-key"].thread_us,
            target=None,
            peer="aiohttp probe: SHA-256 of X-API-Key looked up in a dict, 200/401",
            note="CPU per decision on the event loop's thread, in process",
            digits=3,
        )


if __name__ == "__main__":
    main()
