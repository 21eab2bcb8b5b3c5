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
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.identity.apikeys import ApiKeys
from interlock.pki import ensure_local_ca
from interlock.secrets.store import SecretStore
from interlock.store import initialise

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


def ensure_tools() -> None:
    """Install nginx and wrk from Debian's packages when missing."""
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if not missing:
        return
    packages = ["nginx-light" if t == "nginx" else t for t in missing]
    print(f"installing {', '.join(packages)} ...", file=sys.stderr)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True
    )


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    """Block until something listens on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Terminate every started process on exit."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            process.send_signal(signal.SIGTERM)
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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
    command = ["wrk", "-t", "1", "-c", str(args.connections), "-d", f"{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latencies = {
        m.group(1): float(m.group(2)) * _UNIT[m.group(3)] for m in _LATENCY.finditer(output)
    }
    errors = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        errors += int(match.group(1))
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        errors += sum(int(g) for g in match.groups())
    return Result(name, workers, rps, latencies.get("50", 0.0), latencies.get("99", 0.0), errors)


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
    ensure_tools()

    work = Path(tempfile.mkdtemp(prefix="interlock-bench-"))
    env = {**os.environ, "INTERLOCK_DATA_DIR": str(work / "data"), "INTERLOCK_LOG_LEVEL": "warning"}
    settings = Settings(data_dir=work / "data")
    deployment = initialise(settings)
    ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
    ca_file = work / "ca.pem"
    ca_file.write_bytes(ca.certificate_pem)
    erp_token = os.urandom(24).hex()
    write_private_file(work / "erp-token", erp_token.encode())
    SecretStore(deployment.engine, deployment.keyring).put("erp/api-key", erp_token.encode())
    issued = ca.issue_server(["localhost", "127.0.0.1"])
    (work / "server.pem").write_bytes(issued.certificate_pem)
    write_private_file(work / "server.key", issued.private_key_pem)

    results: list[Result] = []
    try:
        with processes() as started:
            erp_port = free_port()
            started.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "interlock.testing.sample_erp",
                        "--cert",
                        str(work / "server.pem"),
                        "--key",
                        str(work / "server.key"),
                        "--token-file",
                        str(work / "erp-token"),
                        "--port",
                        str(erp_port),
                    ],
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_port(erp_port)
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
                        work, env, erp_port, erp_token, ca_file, manifest_path, workers, args, auth
                    )
                )
    finally:
        deployment.close()
        shutil.rmtree(work, ignore_errors=True)
    report(results, args)


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
