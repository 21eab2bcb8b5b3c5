"""Gateway throughput: Interlock (embedded and edge mode) against nginx as a plain reverse proxy.

**Primary comparison — a fast upstream.** Everything on loopback: an nginx
serving a small JSON body over TLS (the upstream; measured alone first, it
must be much faster than every proxy in front of it, or it caps both sides),
and in front of it, one at a time and with one worker (process) each:

* ``nginx proxy`` — the peer: nginx 1 worker, ``proxy_pass`` to the upstream
  over TLS with ``proxy_ssl_verify on``, keep-alive pool, an
  ``Authorization`` header set — the least a reverse proxy does;
* ``edge api-key`` / ``edge bearer-jwt`` — the configuration ``interlock edge
  nginx`` generates (nginx 1 worker) asking ``interlock edge serve``'s
  decision endpoint (one Python process, unix socket) for every request: the
  gateway's header-only stages, one audit entry per decision, the upstream
  credential from the vault;
* ``edge personal-data`` — the same on a route whose integration carries
  personal data: each decision waits until its audit entry is durable (fail
  closed) before nginx may forward (issue 30);
* ``edge api-key, 2 deciders`` — the API-key route with two decision
  processes (``edge serve --worker 1/2``, ``edge nginx --decision-workers 2``,
  budgets divided between them), for information: the targets compare one;
* ``interlock api-key`` / ``interlock personal-data`` — the embedded gateway
  (the same process's own listener): Python carries every byte, and the
  personal-data answer is released only once its audit entry is durable;
* ``interlock pass-through`` — the embedded gateway with its stages stripped
  (``passthrough_server.py``): forwarding alone, for information.

**Secondary — the Python sample ERP as upstream** (kept from the first
version of this benchmark): nginx proxy and the embedded API-key route in
front of ``interlock.testing.sample_erp``, which caps both.

Every target is driven by ``wrk`` (1 thread, keep-alive, TLS) with the same
concurrency; the median of ``--repeat`` runs is kept. Ratios go through
``benchmarks/results.py``'s ``report()`` with the peer's configuration named.

Run:  .venv/bin/python benchmarks/gateway/run.py  [--duration 8] [--repeat 3] [--connections 32]

nginx (nginx-light) and wrk come from Debian's packages and are installed if
missing (root). wrk does not verify server certificates; it only talks to the
processes this script starts on 127.0.0.1. Every proxy verifies its upstream.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pwd
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

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
    wait_ready,
)
from benchmarks.results import report
from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.gateway.edge.protocol import worker_socket
from interlock.identity.apikeys import ApiKeys
from interlock.identity.client_secrets import ClientSecrets
from interlock.secrets.vault import Vault

BENCHMARK = "gateway"
EDGE_TARGET = 0.5
EDGE_TWO_WORKERS = "edge api-key, 2 deciders"
EMBEDDED_TARGET = 0.30  # the first version of this benchmark's, with the sample ERP

MANIFEST = """\
version: 1
organisation:
  controller: {{name: Benchmark, contact: privacy@bench.test, country: DE}}
systems:
  erp: {{url: "https://localhost:{port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
roles:
  reader: {{scopes: [orders.read]}}
clients:
  bench: {{auth: [api_key, oauth2], roles: [reader]}}
integrations:
  bench:
    source: erp
    target: erp
    client: bench
    purpose: Benchmark
    legal_basis: contract
    retention: 1d
    routes:
      - {{method: GET, path: "/orders/{{id}}", upstream: erp, upstream_path: "{orders}/{{id}}", scope: orders.read}}
  personal:
    source: erp
    target: erp
    client: bench
    purpose: Benchmark of a route that carries personal data
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: 1d
    routes:
      - {{method: GET, path: "/customers/{{id}}", upstream: erp, upstream_path: "{orders}/{{id}}", scope: orders.read}}
"""

STATIC_UPSTREAM = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port} ssl reuseport;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    keepalive_requests 1000000;
    location / {{
      default_type application/json;
      return 200 '{{"id":"1001","status":"confirmed","total":"1299.00","customer":{{"email":"ada@example.com"}}}}';
    }}
  }}
}}
"""

NGINX_PROXY = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  upstream erp {{ server 127.0.0.1:{upstream}; keepalive 64; }}
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
    """One target's median wrk run."""

    table: str
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def wrk(table: str, name: str, url: str, args: argparse.Namespace, headers: list[str]) -> Result:
    """Warm up, then run wrk ``--repeat`` times; the run with the median rate is kept."""
    run_wrk(url, connections=args.connections, seconds=2, headers=headers)
    runs = sorted(
        (
            run_wrk(url, connections=args.connections, seconds=args.duration, headers=headers)
            for _ in range(args.repeat)
        ),
        key=lambda r: r.rps,
    )
    run = runs[len(runs) // 2]
    result = Result(table, name, run.rps, run.p50_ms, run.p99_ms, run.errors)
    print(f"  {table:<10}{name:<28}{run.rps:>10.0f} req/s  errors {run.errors}", flush=True)
    return result


def nginx_version() -> str:
    """``nginx/1.22.1`` as nginx -v prints it."""
    printed = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False).stderr
    return printed.strip().rpartition(" ")[2] or "nginx"


@contextmanager
def nginx(prefix: Path, text: str, port: int) -> Iterator[None]:
    """Run nginx on ``text`` (its files under ``prefix``) until the block ends."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(text)
    with processes() as started:
        started.append(
            subprocess.Popen(["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"])
        )
        wait_port(port)
        yield


@contextmanager
def nginx_proxy(box: Sandbox, name: str, upstream: int, token: str) -> Iterator[int]:
    """nginx as the plain reverse proxy (NGINX_PROXY) to ``upstream``, files under ``name``; its port."""
    port = free_port()
    text = NGINX_PROXY.format(
        user=_user(),
        prefix=box.work / name,
        upstream=upstream,
        port=port,
        cert=box.server_cert,
        key=box.server_key,
        token=token,
        ca=box.ca_file,
    )
    with nginx(box.work / name, text, port):
        yield port


def _user() -> str:
    return "user root;" if os.geteuid() == 0 else ""


def main() -> None:
    """Set up, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=int, default=8, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target (median kept)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--skip-sample-erp", action="store_true", help="primary table only")
    args = parser.parse_args()
    ensure_tools("nginx", "wrk")
    with sandbox() as box:
        results = measure(box, args)
    show(results, args)


def measure(box: Sandbox, args: argparse.Namespace) -> list[Result]:
    """The fast-upstream table, then the sample-ERP table."""
    results: list[Result] = []
    token = os.urandom(24).hex()
    # Set-up, not evidence: the benchmark's own writes go to a sink of their own.
    Vault(box.deployment.engine, box.deployment.keyring, audit=MemorySink()).write(
        "erp/api-key", token.encode(), actor=Operator("admin:benchmark")
    )
    upstream = free_port()
    static = STATIC_UPSTREAM.format(
        user=_user(),
        prefix=box.work / "upstream",
        port=upstream,
        cert=box.server_cert,
        key=box.server_key,
    )
    print("fast upstream (nginx static JSON over TLS):", flush=True)
    with nginx(box.work / "upstream", static, upstream):
        results.append(
            wrk("fast", "upstream direct", f"https://127.0.0.1:{upstream}/orders/1001", args, [])
        )
        results += fast_upstream(box, args, upstream, token)
    if not args.skip_sample_erp:
        print("Python sample ERP upstream:", flush=True)
        results += sample_erp(box, args)
    return results


def fast_upstream(
    box: Sandbox, args: argparse.Namespace, upstream: int, token: str
) -> list[Result]:
    """nginx proxy, edge mode and the embedded gateway in front of the static upstream."""
    out: list[Result] = []
    with nginx_proxy(box, "proxy", upstream, token) as proxy_port:
        out.append(
            wrk("fast", "nginx proxy", f"https://127.0.0.1:{proxy_port}/orders/1001", args, [])
        )
    manifest_path = box.work / "fast.yaml"
    manifest_path.write_text(MANIFEST.format(port=upstream, orders="/orders"))
    edge_port, gateway_port = free_port(), free_port()
    socket = box.work / "edge" / "authz.sock"
    env = {
        **box.env,
        "INTERLOCK_PUBLIC_URL": f"https://127.0.0.1:{edge_port}",
        "INTERLOCK_OAUTH_TOKEN_LIFETIME_SECONDS": "3600",
    }
    manifest = load_manifest(manifest_path)
    key = ApiKeys(box.deployment.engine, box.deployment.keyring, manifest).create("bench").token
    _, secret = ClientSecrets(box.deployment.engine, box.deployment.keyring, manifest).create(
        "bench"
    )
    api_key = [f"X-API-Key: {key}"]
    with edge_mode(box, manifest_path, env, socket, edge_port, gateway_port, workers=1):
        edge = f"https://127.0.0.1:{edge_port}"
        out.append(wrk("fast", "edge api-key", f"{edge}/orders/1001", args, api_key))
        bearer = [f"Authorization: Bearer {_token(edge_port, secret, box)}"]
        out.append(wrk("fast", "edge bearer-jwt", f"{edge}/orders/1001", args, bearer))
        out.append(wrk("fast", "edge personal-data", f"{edge}/customers/1001", args, api_key))
        gateway = f"https://127.0.0.1:{gateway_port}"
        out.append(wrk("fast", "interlock api-key", f"{gateway}/orders/1001", args, api_key))
        out.append(
            wrk("fast", "interlock personal-data", f"{gateway}/customers/1001", args, api_key)
        )
    # For information: the decisions spread over two processes (the same nginx, 1 worker).
    edge_port, gateway_port = free_port(), free_port()
    two = {**env, "INTERLOCK_PUBLIC_URL": f"https://127.0.0.1:{edge_port}"}
    with edge_mode(box, manifest_path, two, socket, edge_port, gateway_port, workers=2):
        edge = f"https://127.0.0.1:{edge_port}"
        out.append(wrk("fast", EDGE_TWO_WORKERS, f"{edge}/orders/1001", args, api_key))
    passthrough = free_port()
    with processes() as started:
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    str(Path(__file__).with_name("passthrough_server.py")),
                    str(manifest_path),
                    str(passthrough),
                ],
                env=box.env,
                stdout=subprocess.DEVNULL,
            )
        )
        wait_port(passthrough, timeout=90)
        time.sleep(1.0)
        out.append(
            wrk(
                "fast",
                "interlock pass-through",
                f"https://127.0.0.1:{passthrough}/orders/1001",
                args,
                [],
            )
        )
    return out


@contextmanager
def edge_mode(  # noqa: PLR0917  (two call sites; each value is used)
    box: Sandbox,
    manifest_path: Path,
    env: dict[str, str],
    socket: Path,
    edge_port: int,
    gateway_port: int,
    *,
    workers: int,
) -> Iterator[None]:
    """``interlock edge serve`` (``workers`` processes) and the nginx ``edge nginx`` generates.

    Several workers share the gateway's port and each answers decisions on its
    own socket; with no Redis here their in-process budgets are divided
    (``INTERLOCK_LOCAL_LIMITS=divide``, docs/scale.md) and each has its metrics
    listener off (one port each otherwise).
    """
    if workers > 1:
        env = {
            **env,
            "INTERLOCK_WORKERS": str(workers),
            "INTERLOCK_LOCAL_LIMITS": "divide",
            "INTERLOCK_METRICS_LISTEN": "off",
        }
    with processes() as started:
        for worker in range(1, workers + 1):
            started.append(
                subprocess.Popen(
                    [
                        *_interlock(),
                        "edge",
                        "serve",
                        "--manifest",
                        str(manifest_path),
                        "--listen",
                        f"127.0.0.1:{gateway_port}",
                        "--socket",
                        str(socket),
                        "--proxy-user",
                        _user_name(),
                        "--worker",
                        str(worker),
                    ],
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
            _wait_socket(worker_socket(socket, worker))
        wait_port(gateway_port, timeout=90)
        wait_ready(gateway_port, box.ca_file)  # 503 while starting
        generated = box.work / f"edge-nginx-{workers}"
        command = [
            *_interlock(),
            "edge",
            "nginx",
            "--manifest",
            str(manifest_path),
            "-o",
            str(generated),
            "--listen",
            f"127.0.0.1:{edge_port}",
            "--interlock",
            f"127.0.0.1:{gateway_port}",
            "--socket",
            str(socket),
            "--no-client-certificates",
            "--workers",
            "1",
            "--decision-workers",
            str(workers),
        ]
        if os.geteuid() == 0:
            command += ["--user", "root"]
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        with nginx(generated, (generated / "nginx.conf").read_text(), edge_port):
            yield


def sample_erp(box: Sandbox, args: argparse.Namespace) -> list[Result]:
    """The first version's comparison: nginx and Interlock in front of the Python sample ERP."""
    out: list[Result] = []
    with processes() as started:
        erp_port, erp_token = start_sample_erp(box, started)
        out.append(
            wrk(
                "erp",
                "upstream direct",
                f"https://127.0.0.1:{erp_port}/sap/opu/odata/orders/1001",
                args,
                [f"Authorization: Bearer {erp_token}"],
            )
        )
        with nginx_proxy(box, "erp-proxy", erp_port, erp_token) as proxy_port:
            out.append(
                wrk(
                    "erp",
                    "nginx proxy",
                    f"https://127.0.0.1:{proxy_port}/sap/opu/odata/orders/1001",
                    args,
                    [],
                )
            )
        manifest_path = box.work / "erp.yaml"
        manifest_path.write_text(MANIFEST.format(port=erp_port, orders="/sap/opu/odata/orders"))
        manifest = load_manifest(manifest_path)
        key = ApiKeys(box.deployment.engine, box.deployment.keyring, manifest).create("bench")
        gateway_port = free_port()
        with processes() as gateways:
            gateways.append(
                subprocess.Popen(
                    [
                        *_interlock(),
                        "serve",
                        "--manifest",
                        str(manifest_path),
                        "--listen",
                        f"127.0.0.1:{gateway_port}",
                    ],
                    env=box.env,
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_port(gateway_port, timeout=90)
            wait_ready(gateway_port, box.ca_file)  # 503 while starting
            out.append(
                wrk(
                    "erp",
                    "interlock api-key",
                    f"https://127.0.0.1:{gateway_port}/orders/1001",
                    args,
                    [f"X-API-Key: {key.token}"],
                )
            )
    return out


def _interlock() -> list[str]:
    return [sys.executable, "-m", "interlock"]


def _user_name() -> str:
    return pwd.getpwuid(os.geteuid()).pw_name


def _wait_socket(path: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.is_socket():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no decision socket at {path}")
        time.sleep(0.1)


def _token(port: int, secret: str, box: Sandbox) -> str:
    """An access token for ``bench`` from the token endpoint (through the edge nginx)."""
    context = ssl.create_default_context(cafile=str(box.ca_file))
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request(
            "POST",
            "/oauth2/token",
            body=urlencode({"grant_type": "client_credentials", "client_id": "bench"}),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": "Basic " + base64.b64encode(f"bench:{secret}".encode()).decode(),
            },
        )
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"no token: {body}")
    return str(body["access_token"])


def show(results: list[Result], args: argparse.Namespace) -> None:
    """The tables, then the ratio lines (all from this one run)."""
    print(
        f"\nwrk: 1 thread, {args.connections} connections, median of {args.repeat} runs of "
        f"{args.duration}s after a 2s warm-up, loopback, TLS; 1 worker (process) per proxy"
    )
    for table, title in (
        ("fast", "primary: fast upstream (nginx static JSON over TLS)"),
        ("erp", "secondary: Python sample ERP upstream"),
    ):
        rows = [r for r in results if r.table == table]
        if not rows:
            continue
        print(f"\n{title}")
        print(f"{'target':<28}{'req/s':>11}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
        for r in rows:
            print(f"{r.name:<28}{r.rps:>11.0f}{r.p50_ms:>10.2f}{r.p99_ms:>10.2f}{r.errors:>8}")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=2))
    by = {(r.table, r.name): r for r in results}
    version = nginx_version()
    peer = f"{version} proxy_pass to a TLS upstream (verify on, keepalive), 1 worker"
    print()
    fast_nginx = by[("fast", "nginx proxy")].rps
    upstream = by[("fast", "upstream direct")].rps
    print(
        f"upstream alone / nginx proxy: {upstream / fast_nginx:.2f}x (>1: the upstream does not cap)"
    )
    for name, figure, target in (
        ("edge api-key", "edge-api-key-vs-nginx", EDGE_TARGET),
        ("edge bearer-jwt", "edge-bearer-jwt-vs-nginx", EDGE_TARGET),
        ("edge personal-data", "edge-personal-data-vs-nginx", None),
        (EDGE_TWO_WORKERS, "edge-api-key-2-decision-processes-vs-nginx", None),
        ("interlock api-key", "gateway-api-key-vs-nginx", None),
        ("interlock personal-data", "gateway-personal-data-vs-nginx", None),
        ("interlock pass-through", "gateway-passthrough-vs-nginx", None),
    ):
        ours = by.get(("fast", name))
        if ours is not None:
            report(
                BENCHMARK,
                figure,
                ours.rps / fast_nginx,
                target=target,
                peer=peer,
                note="fast upstream: nginx static JSON over TLS",
                digits=3,
            )
    erp_nginx, erp_ours = by.get(("erp", "nginx proxy")), by.get(("erp", "interlock api-key"))
    if erp_nginx is not None and erp_ours is not None:
        report(
            BENCHMARK,
            "gateway-api-key-vs-nginx-sample-erp",
            erp_ours.rps / erp_nginx.rps,
            target=EMBEDDED_TARGET,  # the first version's target, on its upstream
            peer=f"{peer}; both capped by the Python sample ERP",
            digits=3,
        )


if __name__ == "__main__":
    main()
