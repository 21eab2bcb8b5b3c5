"""Gateway throughput and latency: Interlock against nginx as a plain reverse proxy.

Starts, on loopback only: the sample ERP upstream (HTTPS, local-CA certificate),
nginx proxying to it (verifying the upstream certificate, keep-alive pool), and
``interlock serve`` with an API-key route to it. Drives each with ``wrk`` at the
same concurrency, with one worker (process) each, then two, and prints
requests/s and p50/p99 latency, then the ratio Interlock/nginx. "pass-through"
is Interlock with its pipeline stages stripped (``passthrough_server.py``):
forwarding alone, to show what authentication costs on top.

Run:  .venv/bin/python benchmarks/gateway/run.py  [--duration 8] [--repeat 3] [--connections 32]

nginx and wrk come from Debian's packages and are installed if missing (root).
Note: wrk has no option to verify server certificates; it only ever talks to the
processes this script starts on 127.0.0.1. Interlock and nginx both verify the
upstream's certificate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in {None, ""}:  # run as a file: make ``benchmarks.common`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import (
    Sandbox,
    ensure_tools,
    free_port,
    processes,
    run_wrk,
    sandbox,
    start_sample_erp,
    wait_port,
)
from interlock.config.loader import load_manifest
from interlock.identity.apikeys import ApiKeys

TARGET = 0.30

MANIFEST = """\
version: 1
systems:
  erp: {{url: "https://localhost:{erp_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
roles:
  reader: {{scopes: [orders.read]}}
clients:
  bench: {{auth: [api_key], roles: [reader]}}
integrations:
  bench:
    source: erp
    target: erp
    client: bench
    purpose: Benchmark
    legal_basis: contract
    retention: 1d
    routes:
      - {{method: GET, path: "/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
"""

NGINX = """\
{user}
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream erp {{ server 127.0.0.1:{erp_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} ssl reuseport;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass https://erp;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer {token}";
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }}
  }}
}}
"""


@dataclass
class Result:
    """One wrk run."""

    name: str
    workers: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(name: str, workers: int, url: str, args: argparse.Namespace, headers: list[str]) -> Result:
    """Warm up, then run wrk ``--repeat`` times; the run with the median rate is reported.

    On a small machine the load generator, the upstream and the proxy share the
    cores, so single runs swing; the median of several is the fair comparison.
    """
    _wrk_once(name, workers, url, args, headers, seconds=2)  # warm pools and TLS sessions
    runs = sorted(
        (
            _wrk_once(name, workers, url, args, headers, seconds=args.duration)
            for _ in range(args.repeat)
        ),
        key=lambda r: r.rps,
    )
    return runs[len(runs) // 2]


def _wrk_once(
    name: str,
    workers: int,
    url: str,
    args: argparse.Namespace,
    headers: list[str],
    *,
    seconds: int,
) -> Result:
    run = run_wrk(url, connections=args.connections, seconds=seconds, headers=headers)
    return Result(name, workers, run.rps, run.p50_ms, run.p99_ms, run.errors)


def main() -> None:
    """Set up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median kept)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--profile", type=Path, help="py-spy profile (collapsed stacks) of one Interlock worker"
    )
    args = parser.parse_args()
    ensure_tools("nginx", "wrk")
    with sandbox() as box:
        results = measure(box, args)
    report(results, args)


def measure(box: Sandbox, args: argparse.Namespace) -> list[Result]:
    """The upstream alone, then nginx, Interlock and pass-through per worker count."""
    work, deployment = box.work, box.deployment
    results: list[Result] = []
    with processes() as started:
        erp_port, erp_token = start_sample_erp(box, started)
        manifest_path = work / "interlock.yaml"
        manifest_path.write_text(MANIFEST.format(erp_port=erp_port))
        keys = ApiKeys(deployment.engine, deployment.keyring, load_manifest(manifest_path))
        key = keys.create("bench").token
        auth = [f"Authorization: Bearer {key}"]
        erp_auth = [f"Authorization: Bearer {erp_token}"]
        results.append(
            wrk(
                "upstream direct",
                1,
                f"https://127.0.0.1:{erp_port}/sap/opu/odata/orders/1001",
                args,
                erp_auth,
            )
        )
        for workers in args.workers:
            results.extend(
                run_proxies(
                    work,
                    box.env,
                    erp_port,
                    erp_token,
                    box.ca_file,
                    manifest_path,
                    workers,
                    args,
                    auth,
                )
            )
    return results


def run_proxies(  # noqa: PLR0917  (one call site, all of it set-up)
    work: Path,
    env: dict[str, str],
    erp_port: int,
    erp_token: str,
    ca_file: Path,
    manifest_path: Path,
    workers: int,
    args: argparse.Namespace,
    auth: list[str],
) -> list[Result]:
    """nginx and Interlock with ``workers`` processes each, measured one after the other."""
    out: list[Result] = []
    nginx_port = free_port()
    prefix = work / f"nginx-{workers}"
    prefix.mkdir()
    conf = prefix / "nginx.conf"
    conf.write_text(
        NGINX.format(
            user="user root;" if os.geteuid() == 0 else "",
            workers=workers,
            prefix=prefix,
            erp_port=erp_port,
            port=nginx_port,
            cert=work / "server.pem",
            key=work / "server.key",
            token=erp_token,
            ca=ca_file,
        )
    )
    with processes() as started:
        started.append(
            subprocess.Popen(
                ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
            )
        )
        wait_port(nginx_port)
        out.append(
            wrk(
                "nginx proxy",
                workers,
                f"https://127.0.0.1:{nginx_port}/sap/opu/odata/orders/1001",
                args,
                [],
            )
        )
    gateway_port = free_port()
    with processes() as started:
        for _ in range(workers):
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "interlock",
                        "serve",
                        "--manifest",
                        str(manifest_path),
                        "--listen",
                        f"127.0.0.1:{gateway_port}",
                        "--reuse-port",
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
        wait_port(gateway_port)
        time.sleep(1.0 * workers)  # let every worker bind
        profiler = None
        if args.profile and workers == 1 and shutil.which("py-spy"):
            profiler = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--format",
                    "raw",
                    "-o",
                    str(args.profile),
                    "-d",
                    str(args.duration),
                    "-p",
                    str(started[0].pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        out.append(
            wrk(
                "interlock api-key route",
                workers,
                f"https://127.0.0.1:{gateway_port}/orders/1001",
                args,
                auth,
            )
        )
        if profiler is not None:
            profiler.wait(timeout=60)
    passthrough_port = free_port()
    with processes() as started:
        for _ in range(workers):
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__).with_name("passthrough_server.py")),
                        str(manifest_path),
                        str(passthrough_port),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
        wait_port(passthrough_port)
        time.sleep(1.0 * workers)
        out.append(
            wrk(
                "interlock pass-through",
                workers,
                f"https://127.0.0.1:{passthrough_port}/orders/1001",
                args,
                [],
            )
        )
    return out


def report(results: list[Result], args: argparse.Namespace) -> None:
    """Print the table and the ratio lines."""
    print(
        f"\nwrk: 1 thread, {args.connections} connections, median of {args.repeat} runs of "
        f"{args.duration}s after a 2s warm-up, loopback, TLS"
    )
    print(f"{'target':<28}{'workers':>8}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for r in results:
        print(
            f"{r.name:<28}{r.workers:>8}{r.rps:>11.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>8}"
        )
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    by = {(r.name, r.workers): r for r in results}
    print()
    for workers in args.workers:
        nginx = by.get(("nginx proxy", workers))
        ours = by.get(("interlock api-key route", workers))
        if nginx and ours and nginx.rps:
            target = f" (target >= {TARGET:.2f})" if workers == 1 else ""
            print(
                f"ratio interlock_api_key_vs_nginx_{workers}w: {ours.rps / nginx.rps:.2f}{target}"
            )
        bare = by.get(("interlock pass-through", workers))
        if nginx and bare and nginx.rps:
            print(f"ratio interlock_passthrough_vs_nginx_{workers}w: {bare.rps / nginx.rps:.2f}")


if __name__ == "__main__":
    main()
