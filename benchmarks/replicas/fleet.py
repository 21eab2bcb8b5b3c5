"""N ``interlock serve`` replicas behind nginx, over one PostgreSQL and a Redis of their own.

Shared by ``benchmarks/replicas/run.py`` and ``tests/scale/test_replicas_bench.py``:

* one deployment, initialised in data directory 0; replicas 1..N-1 get a copy
  of its keyring file (docs/scale.md), every replica the same store and audit
  log (PostgreSQL, a schema of the caller's), the same issuer;
* manifests from the store (``INTERLOCK_MANIFEST_SOURCE=store``, polled every
  0.5 s), so ``publish`` changes what every replica enforces;
* a redis-server of the fleet's own on a free port, which :meth:`Fleet.stop_redis`
  and :meth:`Fleet.start_redis` stop and start again — never the machine's shared Redis;
* the database: a URL (the machine's PostgreSQL, never restarted), or a
  test-owned server (:mod:`interlock.testing.postgres_node`), which
  :meth:`Fleet.stop_postgres` and :meth:`Fleet.start_postgres` stop and start;
* nginx (Debian's nginx-light) terminating TLS and proxying over verified TLS
  to the replicas, retrying another replica when one refuses connections.

Everything runs on 127.0.0.1 and is terminated on exit.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.identity.apikeys import ApiKeys
from interlock.pki import ensure_local_ca
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.store.manifest_versions import publish_manifest
from interlock.testing.postgres_node import PostgresNode

__all__ = [
    "CAPPED_PER_HOUR",
    "MANIFEST",
    "Fleet",
    "Response",
    "fleet",
    "free_port",
    "redis_server",
]

#: The capped client's budget: small enough to spend in a test, per hour so it does not refill.
CAPPED_PER_HOUR: Final = 100

MANIFEST = """\
version: 1
systems:
  erp: {{url: "https://localhost:{erp_port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}}
roles:
  reader: {{scopes: [orders.read]}}
shared_scopes: [orders.read]
clients:
  bulk: {{auth: [api_key], roles: [reader]}}
  capped: {{auth: [api_key], roles: [reader]}}
integrations:
  bulk:
    source: erp
    target: erp
    client: bulk
    purpose: Replica bench traffic
    legal_basis: contract
    retention: 1d
    routes:
      - {{method: GET, path: "/orders/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read, rate_limit: {{per_client: 1000000/min}}}}
  capped:
    source: erp
    target: erp
    client: capped
    purpose: Replica bench limits
    legal_basis: contract
    retention: 1d
    routes:
      - {{method: GET, path: "/capped/{{id}}", upstream: erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read, rate_limit: {{per_client: {capped}/hour}}}}
"""

NGINX = """\
{user}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  upstream replicas {{
{servers}
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {{
      proxy_pass https://replicas;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {ca};
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
      # A replica that refuses or drops the connection: the request goes to another
      # (GET only: nginx never retries a non-idempotent request).
      proxy_next_upstream error timeout http_502;
      proxy_next_upstream_tries 3;
      proxy_connect_timeout 2s;
    }}
  }}
}}
"""


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server(port: int, directory: Path) -> subprocess.Popen[bytes]:
    """A redis-server of our own on ``port`` (keeping nothing on disk), once it listens."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process


def _wait_port(port: int, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


@dataclass(frozen=True)
class Response:
    """One request's outcome: an HTTP status, or 0 when no answer came (lost)."""

    status: int
    at: float  # monotonic, when it ended
    body: bytes = b""


@dataclass
class Fleet:
    """The running set-up; see the module docstring."""

    work: Path
    database_url: str
    deployment: Deployment
    ca_file: Path
    keys: dict[str, str]  # name -> API key (bulk, capped, probe)
    key_ids: dict[str, str]
    redis_port: int
    nginx_port: int
    replica_ports: list[int]
    manifest_text: str
    postgres: PostgresNode | None = None  # test-owned: may be stopped and started
    _redis: subprocess.Popen[bytes] | None = None
    _replicas: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    _others: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _env: dict[str, str] = field(default_factory=dict)

    # -- requests -----------------------------------------------------------

    def context(self) -> ssl.SSLContext:
        """Trust only the deployment's CA."""
        return ssl.create_default_context(cafile=str(self.ca_file))

    def connection(self, port: int | None = None) -> http.client.HTTPSConnection:
        """A keep-alive connection to nginx (or to one replica's ``port``)."""
        return http.client.HTTPSConnection(
            "localhost", port or self.nginx_port, context=self.context(), timeout=10
        )

    def get(
        self, path: str, key: str | None = None, *, port: int | None = None
    ) -> tuple[int, bytes]:
        """One request on a fresh connection: (status, body); (0, b"") when none came."""
        connection = self.connection(port)
        try:
            connection.request("GET", path, headers={"X-API-Key": key} if key else {})
            response = connection.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return 0, b""
        finally:
            connection.close()

    def ready(self, port: int) -> dict[str, Any] | None:
        """A replica's ``/readyz`` body when it answers 200, else None."""
        status, body = self.get("/readyz", port=port)
        if status != 200:
            return None
        parsed: dict[str, Any] = json.loads(body)
        return parsed

    # -- changes ------------------------------------------------------------

    def publish(self, text: str) -> int:
        """Publish ``text`` as the next manifest version; its number."""
        return publish_manifest(
            self.deployment.engine, text, actor="admin:bench", now=datetime.now(UTC)
        ).version

    def revoke(self, name: str) -> None:
        """Revoke the API key ``name``."""
        manifest = load_manifest(self.work / "interlock.yaml")
        ApiKeys(self.deployment.engine, self.deployment.keyring, manifest).revoke(
            self.key_ids[name]
        )

    def start_redis(self) -> None:
        """Start the fleet's redis-server on its port."""
        self._redis = redis_server(self.redis_port, self.work)

    def stop_redis(self) -> None:
        """Stop the fleet's redis-server (its data is lost, as after a crash without AOF)."""
        if self._redis is not None:
            self._redis.terminate()
            self._redis.wait(timeout=10)
            self._redis = None

    def stop_postgres(self) -> None:
        """Stop the fleet's own PostgreSQL (fast: every session ends, open transactions roll back)."""
        if self.postgres is None:
            raise RuntimeError("this fleet runs on a shared PostgreSQL, which is never stopped")
        self.postgres.stop("fast")

    def start_postgres(self) -> None:
        """Start the fleet's own PostgreSQL again; return once it accepts connections."""
        if self.postgres is None:
            raise RuntimeError("this fleet runs on a shared PostgreSQL")
        self.postgres.start()

    def alive(self, index: int) -> bool:
        """Whether replica ``index`` was started and not killed."""
        process = self._replicas[index]
        return process is not None and process.poll() is None

    def kill_replica(self, index: int) -> None:
        """SIGKILL replica ``index``: no drain, as a crash or an OOM kill."""
        process = self._replicas[index]
        if process is not None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            self._replicas[index] = None

    def audit_verify(self) -> subprocess.CompletedProcess[str]:
        """``interlock audit verify`` on the shared audit log."""
        return subprocess.run(
            [sys.executable, "-m", "interlock", "audit", "verify"],
            env={**self._env, "INTERLOCK_DATA_DIR": str(self.work / "data-0")},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    # -- set-up -------------------------------------------------------------

    def _start_replica(self, index: int) -> None:
        port = self.replica_ports[index]
        env = {**self._env, "INTERLOCK_DATA_DIR": str(self.work / f"data-{index}")}
        with (self.work / f"replica-{index}.log").open("ab") as log:  # the child keeps its fd
            process = subprocess.Popen(
                [sys.executable, "-m", "interlock", "serve", "--listen", f"127.0.0.1:{port}"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self._replicas.append(process)

    def _wait_ready(self, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        for index, port in enumerate(self.replica_ports):
            process = self._replicas[index]
            while self.ready(port) is None:
                if process is not None and process.poll() is not None:
                    log = (self.work / f"replica-{index}.log").read_text()[-2000:]
                    raise RuntimeError(f"replica {index} exited: {log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"replica {index} not ready after {seconds} s")
                time.sleep(0.2)

    def _start_nginx(self) -> None:
        prefix = self.work / "nginx"
        prefix.mkdir()
        servers = "\n".join(
            f"    server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
            for port in self.replica_ports
        )
        config = prefix / "nginx.conf"
        config.write_text(
            NGINX.format(
                user="user root;" if os.geteuid() == 0 else "",
                prefix=prefix,
                servers=servers,
                port=self.nginx_port,
                cert=self.work / "server.pem",
                key=self.work / "server.key",
                ca=self.ca_file,
            )
        )
        process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(config), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._others.append(process)
        _wait_port(self.nginx_port, process)

    def _start_erp(self) -> int:
        token = os.urandom(24).hex()
        write_private_file(self.work / "erp-token", token.encode())
        Vault(self.deployment.engine, self.deployment.keyring, audit=MemorySink()).write(
            "erp/api-key", token.encode(), actor=Operator("admin:bench")
        )
        port = free_port()
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock.testing.sample_erp",
                *("--cert", str(self.work / "server.pem")),
                *("--key", str(self.work / "server.key")),
                *("--token-file", str(self.work / "erp-token")),
                *("--port", str(port)),
            ],
            stdout=subprocess.DEVNULL,
        )
        self._others.append(process)
        _wait_port(port, process)
        return port

    def close(self) -> None:
        """Stop everything started (replicas first, then nginx, the ERP and Redis)."""
        for process in [*self._replicas, *self._others]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self._replicas, *self._others]:
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        self.stop_redis()
        self.deployment.close()


@contextmanager
def fleet(
    work: Path, database_url: str, replicas: int = 3, *, postgres: PostgresNode | None = None
) -> Iterator[Fleet]:
    """Start ``replicas`` replicas over ``database_url`` (an empty PostgreSQL schema).

    ``postgres`` is the test-owned server ``database_url`` names, when it is one:
    then :meth:`Fleet.stop_postgres` may stop it.
    """
    settings = Settings(
        data_dir=work / "data-0", database_url=database_url, audit_database_url=database_url
    )
    deployment = initialise(settings)
    running = Fleet(
        work,
        database_url,
        deployment,
        work / "ca.pem",
        {},
        {},
        free_port(),
        free_port(),
        [free_port() for _ in range(replicas)],
        "",
        postgres,
    )
    try:
        ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
        running.ca_file.write_bytes(ca.certificate_pem)
        issued = ca.issue_server(["localhost", "127.0.0.1"])
        (work / "server.pem").write_bytes(issued.certificate_pem)
        write_private_file(work / "server.key", issued.private_key_pem)
        for index in range(1, replicas):  # the same keyring on every host (docs/scale.md)
            target = work / f"data-{index}"
            target.mkdir(mode=0o700)
            shutil.copy2(settings.keyring_path, target / "keyring.json")
        erp_port = running._start_erp()
        text = MANIFEST.format(erp_port=erp_port, capped=CAPPED_PER_HOUR)
        (work / "interlock.yaml").write_text(text)
        running.manifest_text = text
        manifest = load_manifest(work / "interlock.yaml")
        keys = ApiKeys(deployment.engine, deployment.keyring, manifest)
        for name, client in (("bulk", "bulk"), ("capped", "capped"), ("probe", "bulk")):
            issued_key = keys.create(client)
            running.keys[name], running.key_ids[name] = issued_key.token, issued_key.info.id
        running.publish(text)
        running.start_redis()
        running._env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")},
            "INTERLOCK_DATABASE_URL": database_url,
            "INTERLOCK_AUDIT_DATABASE_URL": database_url,
            "INTERLOCK_REDIS_URL": f"redis://127.0.0.1:{running.redis_port}/0",
            "INTERLOCK_MANIFEST_SOURCE": "store",
            "INTERLOCK_MANIFEST_POLL_SECONDS": "0.5",
            "INTERLOCK_MANIFEST": str(work / "interlock.yaml"),
            "INTERLOCK_PUBLIC_URL": f"https://localhost:{running.nginx_port}",
            "INTERLOCK_TRUSTED_PROXIES": "127.0.0.1/32",
            "INTERLOCK_METRICS_LISTEN": "off",
            "INTERLOCK_LOG_LEVEL": "warning",
            "INTERLOCK_LOG_FORMAT": "json",
            "INTERLOCK_AUTH_FAILURES_PER_IP": "100000/min",
            "INTERLOCK_LISTENER_MAX_CONNECTIONS_PER_ADDRESS": "10000",
        }
        for index in range(replicas):
            running._start_replica(index)
        running._wait_ready()
        running._start_nginx()
        yield running
    finally:
        with suppress(Exception):
            running.close()
