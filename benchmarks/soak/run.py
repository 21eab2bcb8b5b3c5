"""Soak: a running gateway at 80 % of its measured capacity, for minutes, under a mixed load.

Starts, on loopback only: the sample ERP upstream (HTTPS, local-CA certificate)
and ``interlock serve`` with two routes of one integration (``GET /orders/{id}``
for readers, ``POST /orders`` with a JSON Schema for writers). Then:

1. **capacity**: the request mix below, closed loop at ``--connections``
   concurrent requests for ``--capacity-seconds``; the rate reached is the
   capacity;
2. **warm-up** (``--warmup`` seconds) at 80 % of it, then the gateway's resident
   memory (VmRSS) is read;
3. **soak** (``--duration`` seconds, default 10 minutes) at 80 % of capacity,
   open loop: requests start on a fixed schedule whatever the answers take, and
   latency is measured from the scheduled start (no coordinated omission);
4. the resident memory is read again.

The mix, each with the answers it must get (anything else is an unexpected error):

* allowed, 70 %: ``GET /orders/{id}`` with a reader's key (200) and valid
  ``POST /orders`` with a writer's key (200);
* refused, 15 %: ``POST /orders`` with the reader's key (403) and requests with
  a key nobody issued (401);
* malformed, 10 %: ``POST /orders`` bodies that are not JSON (400) or break the
  schema (422);
* slow, 5 %: a valid ``POST /orders`` whose body trickles in over half a second
  (200).

Alongside, ``--slowloris`` connections (default 4) trickle header bytes one per
second and never finish; each must be closed by the gateway within
``--header-timeout`` plus 5 s (its complete-headers timeout), else it counts as
an unexpected error. A closed one is replaced at once.

The client is aiohttp, verifying the gateway's certificate against the
sandbox's CA. Client, gateway and upstream share the machine's cores: the
capacity is this machine's, not the gateway's alone.

Run:  .venv/bin/python benchmarks/soak/run.py  [--duration 600] [--connections 32]

The last lines are the figures: ``soak-memory-growth: R (target <= 1.10)`` and
``soak-unexpected-errors: N (target = 0)``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import ssl
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

if __package__ in {None, ""}:  # run as a file: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import Sandbox, free_port, processes, sandbox, wait_port, wait_ready
from benchmarks.results import report as report_figure
from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.crypto.keyfile import write_private_file
from interlock.identity.apikeys import ApiKeys
from interlock.secrets.vault import Vault
from interlock.testing.sample_erp import ORDERS

MEMORY_TARGET = 1.10
ORDER_IDS = sorted(ORDERS)  # the sample ERP's orders: a read answers 200

MANIFEST = """\
version: 1
systems:
  erp: {{url: "https://localhost:{erp_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
roles:
  reader: {{scopes: [orders.read]}}
  writer: {{scopes: [orders.write]}}
clients:
  soak-reader: {{auth: [api_key], roles: [reader]}}
  soak-writer: {{auth: [api_key], roles: [reader, writer]}}
integrations:
  soak:
    source: erp
    target: erp
    client: soak-writer
    callers: [soak-reader]
    purpose: Soak test
    legal_basis: contract
    retention: 1d
    routes:
      - method: GET
        path: "/orders/{{id}}"
        upstream: erp
        upstream_path: "/sap/opu/odata/orders/{{id}}"
        scope: orders.read
        rate_limit: {{per_client: 10000000/min}}
        params:
          id: {{pattern: "[0-9]{{1,8}}"}}
      - method: POST
        path: /orders
        upstream: erp
        upstream_path: /echo/orders
        scope: orders.write
        rate_limit: {{per_client: 10000000/min}}
        max_body: 16KiB
        request_schema:
          type: object
          required: [order_id, total]
          additionalProperties: false
          properties:
            order_id: {{type: string, pattern: "^[0-9]{{4,10}}$"}}
            total: {{type: number, minimum: 0, maximum: 1000000}}
"""

# (class, kind, weight in percent)
MIX: tuple[tuple[str, str, int], ...] = (
    ("allowed", "read", 55),
    ("allowed", "write", 15),
    ("refused", "reader-writes", 8),
    ("refused", "unknown-key", 7),
    ("malformed", "not-json", 5),
    ("malformed", "schema", 5),
    ("slow", "trickled-body", 5),
)
EXPECTED: dict[str, int] = {
    "read": 200,
    "write": 200,
    "reader-writes": 403,
    "unknown-key": 401,
    "not-json": 400,
    "schema": 422,
    "trickled-body": 200,
}


@dataclass
class Keys:
    """The credentials the mix uses."""

    reader: str
    writer: str
    unknown: str


@dataclass
class Tally:
    """Answers and latencies of one phase."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    unexpected: Counter[str] = field(default_factory=Counter)
    done: int = 0
    slowloris_closed: int = 0
    slowloris_unexpected: int = 0

    def record(self, kind: str, seconds: float, outcome: int | str) -> None:
        """One finished request."""
        self.done += 1
        self.latencies.setdefault(kind, []).append(seconds)
        if outcome != EXPECTED[kind]:
            self.unexpected[f"{kind}: {outcome}"] += 1

    def errors(self) -> int:
        """Every unexpected outcome, slowloris connections included."""
        return sum(self.unexpected.values()) + self.slowloris_unexpected


def _pick(rng: random.Random) -> str:
    kinds = [kind for _, kind, _ in MIX]
    weights = [weight for _, _, weight in MIX]
    return rng.choices(kinds, weights)[0]


async def _trickle(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), max(1, len(body) // 5)):
        await asyncio.sleep(0.1)
        yield body[start : start + max(1, len(body) // 5)]


async def one_request(
    session: aiohttp.ClientSession, base: str, keys: Keys, kind: str, rng: random.Random
) -> int | str:
    """Send one request of ``kind``; its status, or the exception's name."""
    order = f'{{"order_id": "{rng.randint(1000, 99999)}", "total": {rng.randint(0, 5000)}.5}}'
    writer = {"Authorization": f"Bearer {keys.writer}", "Content-Type": "application/json"}
    try:
        if kind == "read":
            response = await session.get(
                f"{base}/orders/{rng.choice(ORDER_IDS)}",
                headers={"Authorization": f"Bearer {keys.reader}"},
            )
        elif kind == "write":
            response = await session.post(f"{base}/orders", data=order, headers=writer)
        elif kind == "reader-writes":
            headers = {**writer, "Authorization": f"Bearer {keys.reader}"}
            response = await session.post(f"{base}/orders", data=order, headers=headers)
        elif kind == "unknown-key":
            response = await session.get(
                f"{base}/orders/1", headers={"Authorization": f"Bearer {keys.unknown}"}
            )
        elif kind == "not-json":
            response = await session.post(f"{base}/orders", data="{order_id: 1", headers=writer)
        elif kind == "schema":
            bad = '{"order_id": "x", "total": -1, "extra": true}'
            response = await session.post(f"{base}/orders", data=bad, headers=writer)
        else:  # trickled-body
            response = await session.post(
                f"{base}/orders", data=_trickle(order.encode()), headers=writer
            )
        async with response:
            await response.read()
            return response.status
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        return type(exc).__name__


async def capacity(
    session: aiohttp.ClientSession, base: str, keys: Keys, args: argparse.Namespace
) -> float:
    """Requests/s of the mix, closed loop at ``--connections`` concurrent requests."""
    rng = random.Random(1)  # noqa: S311  (choosing a load mix, not a secret)
    done = 0
    deadline = time.monotonic() + args.capacity_seconds

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            kind = _pick(rng)
            if kind == "trickled-body":  # a sleep, not work: it would understate capacity
                continue
            await one_request(session, base, keys, kind, rng)
            done += 1

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.connections)))
    return done / (time.monotonic() - started)


async def open_loop(  # noqa: PLR0917  (one call site)
    session: aiohttp.ClientSession,
    base: str,
    keys: Keys,
    rate: float,
    seconds: float,
    tally: Tally,
    max_in_flight: int,
) -> None:
    """Start requests at ``rate`` per second for ``seconds``; latency from the scheduled start."""
    rng = random.Random(2)  # noqa: S311  (choosing a load mix, not a secret)
    interval = 1.0 / rate
    start = time.monotonic()
    in_flight: set[asyncio.Task[None]] = set()

    async def run(kind: str, scheduled: float) -> None:
        outcome = await one_request(session, base, keys, kind, rng)
        tally.record(kind, time.monotonic() - scheduled, outcome)

    for n in itertools.count():
        scheduled = start + n * interval
        if scheduled - start >= seconds:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(in_flight) >= max_in_flight:
            # Seconds of answers outstanding: the gateway has fallen behind.
            tally.unexpected["not sent: over --max-in-flight"] += 1
            continue
        task = asyncio.create_task(run(_pick(rng), scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


async def slowloris(
    port: int, context: ssl.SSLContext, header_timeout: float, stop: asyncio.Event, tally: Tally
) -> None:
    """One attacker at a time: header bytes one per second; the gateway must hang up."""
    while not stop.is_set():
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        opened = time.monotonic()
        closed = False
        try:
            writer.write(b"GET /orders/1 HTTP/1.1\r\nHost: localhost\r\n")
            await writer.drain()
            while time.monotonic() - opened < header_timeout + 5 and not stop.is_set():
                try:
                    if await asyncio.wait_for(reader.read(1024), timeout=1.0) == b"":
                        closed = True
                        break
                    # An answer (408, 400) also ends the attack; wait for the close.
                    continue
                except TimeoutError:
                    writer.write(b"X-a: b\r\n")
                    await writer.drain()
        except (ConnectionError, ssl.SSLError):
            closed = True
        finally:
            writer.close()
        if closed:
            tally.slowloris_closed += 1
        elif not stop.is_set():
            tally.slowloris_unexpected += 1


def rss_kib(pid: int) -> int:
    """The process's resident set size in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def percentile(values: list[float], p: float) -> float:
    """The ``p`` percentile (nearest rank) of ``values``, 0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def drive(box: Sandbox, port: int, pid: int, keys: Keys, args: argparse.Namespace) -> None:
    """Capacity, warm-up, soak; print the figures."""
    context = ssl.create_default_context(cafile=str(box.ca_file))
    connector = aiohttp.TCPConnector(ssl=context, limit=args.connections * 8)
    base = f"https://localhost:{port}"
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        rate = await capacity(session, base, keys, args)
        target = rate * 0.8
        print(
            f"capacity: {rate:.0f} req/s (mix, {args.connections} concurrent); soak at {target:.0f} req/s"
        )
        await open_loop(session, base, keys, target, args.warmup, Tally(), args.max_in_flight)
        rss_start = rss_kib(pid)
        tally = Tally()
        stop = asyncio.Event()
        attackers = [
            asyncio.create_task(slowloris(port, context, args.header_timeout, stop, tally))
            for _ in range(args.slowloris)
        ]
        started = time.monotonic()
        await open_loop(session, base, keys, target, args.duration, tally, args.max_in_flight)
        elapsed = time.monotonic() - started
        stop.set()
        await asyncio.gather(*attackers, return_exceptions=True)
        rss_end = rss_kib(pid)
    report(tally, elapsed, rss_start, rss_end)


def report(tally: Tally, elapsed: float, rss_start: int, rss_end: int) -> None:
    """The table, then the figures."""
    print(f"\nsoak: {tally.done} requests in {elapsed:.0f} s ({tally.done / elapsed:.0f} req/s)")
    print(f"{'kind':<16}{'count':>9}{'p50 ms':>10}{'p99 ms':>10}")
    everything: list[float] = []
    for kind, values in sorted(tally.latencies.items()):
        if kind != "trickled-body":  # its half-second trickle is the client's own doing
            everything.extend(values)
        print(
            f"{kind:<16}{len(values):>9}{percentile(values, 50) * 1000:>10.1f}"
            f"{percentile(values, 99) * 1000:>10.1f}"
        )
    print(f"slowloris connections closed by the gateway: {tally.slowloris_closed}")
    if tally.slowloris_unexpected:
        print(f"slowloris connections still open after the bound: {tally.slowloris_unexpected}")
    for what, count in tally.unexpected.most_common():
        print(f"unexpected: {what} x{count}")
    print(f"gateway resident memory: {rss_start / 1024:.1f} MiB -> {rss_end / 1024:.1f} MiB")
    report_figure(
        "soak",
        "soak-p99-ms",
        percentile(everything, 99) * 1000,
        target=None,
        peer="",
        digits=1,
        note=f"{elapsed:.0f} s at 80 % of measured capacity, open loop; absolute, no peer",
    )
    report_figure(
        "soak",
        "soak-memory-growth",
        rss_end / rss_start,
        target=MEMORY_TARGET,
        direction="<=",
        peer="",
        kind="property",
        note="gateway VmRSS after the soak over after the warm-up",
    )
    report_figure(
        "soak",
        "soak-unexpected-errors",
        tally.errors(),
        target=0,
        direction="<=",
        peer="",
        kind="property",
        digits=0,
        note="answers outside each request kind's expected statuses, slowloris left open",
    )


def main() -> None:
    """Set up, drive, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=600, help="soak seconds")
    parser.add_argument("--warmup", type=float, default=30, help="seconds before memory is read")
    parser.add_argument("--capacity-seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=32, help="capacity concurrency")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=4096,
        help="requests started and not answered; one more is counted as unexpected, not sent",
    )
    parser.add_argument("--slowloris", type=int, default=4, help="concurrent attackers")
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="the gateway's complete-headers timeout (its default)",
    )
    args = parser.parse_args()
    with sandbox("interlock-soak-") as box:
        run(box, args)


def run(box: Sandbox, args: argparse.Namespace) -> None:
    """Start the upstream and the gateway, then drive them."""
    work, deployment = box.work, box.deployment
    erp_token = os.urandom(24).hex()
    write_private_file(work / "erp-token", erp_token.encode())
    Vault(deployment.engine, deployment.keyring, audit=MemorySink()).write(
        "erp/api-key", erp_token.encode(), actor=Operator("admin:soak")
    )
    with processes() as started:
        erp_port = free_port()
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "interlock.testing.sample_erp",
                    *("--cert", str(box.server_cert), "--key", str(box.server_key)),
                    *("--token-file", str(work / "erp-token"), "--port", str(erp_port)),
                ],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_port(erp_port)
        manifest_path = work / "interlock.yaml"
        manifest_path.write_text(MANIFEST.format(erp_port=erp_port))
        api_keys = ApiKeys(deployment.engine, deployment.keyring, load_manifest(manifest_path))
        keys = Keys(
            reader=api_keys.create("soak-reader").token,
            writer=api_keys.create("soak-writer").token,
            unknown="ilk_" + os.urandom(24).hex(),
        )
        port = free_port()
        # The unknown-key share would exhaust one address's failure budget at once:
        # the soak measures the pipeline, not the budget.
        # Likewise every connection comes from 127.0.0.1: the client pool, the slowloris
        # attackers and room to spare must fit under the per-address connection cap.
        env = {
            **box.env,
            "INTERLOCK_AUTH_FAILURES_PER_IP": "100000000/min",
            "INTERLOCK_LISTENER_MAX_CONNECTIONS_PER_ADDRESS": str(
                args.connections * 8 + args.slowloris + 64
            ),
        }
        gateway = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock",
                "serve",
                *("--manifest", str(manifest_path), "--listen", f"127.0.0.1:{port}"),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        started.append(gateway)
        wait_port(port, timeout=120)  # one loaded machine: `interlock serve` starts slowly
        wait_ready(port, box.ca_file)
        time.sleep(1.0)
        asyncio.run(drive(box, port, gateway.pid, keys, args))


if __name__ == "__main__":
    main()
