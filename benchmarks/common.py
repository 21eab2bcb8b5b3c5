"""Pieces the benchmarks share: a throw-away deployment, started processes, ports, wrk.

Benchmark-only. Every process is started on 127.0.0.1 and terminated on exit;
the deployment lives in a temporary directory that is removed afterwards.

Run a benchmark as a file (``.venv/bin/python benchmarks/oauth/run.py``); it
puts the repository root on ``sys.path`` so that ``benchmarks.common`` imports.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.crypto.keyfile import write_private_file
from interlock.pki import LocalCA, ensure_local_ca
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.testing.services import POSTGRES

__all__ = [
    "Sandbox",
    "WrkRun",
    "cpu_seconds",
    "ensure_tools",
    "free_port",
    "postgres_schema",
    "processes",
    "run_wrk",
    "sandbox",
    "wait_port",
]


@dataclass(frozen=True)
class Sandbox:
    """A fresh deployment in a temporary directory, with its local CA and a server certificate."""

    work: Path
    deployment: Deployment
    ca: LocalCA
    ca_file: Path
    server_cert: Path
    server_key: Path
    env: dict[str, str]  # the environment for ``interlock`` subprocesses


@contextmanager
def sandbox(prefix: str = "interlock-bench-") -> Iterator[Sandbox]:
    """Initialise a deployment; issue a ``localhost``/``127.0.0.1`` certificate from its CA."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    env = {
        **os.environ,
        "INTERLOCK_DATA_DIR": str(work / "data"),
        "INTERLOCK_LOG_LEVEL": "warning",
        # --reuse-port workers would each want the one metrics port.
        "INTERLOCK_METRICS_LISTEN": "off",
    }
    deployment = initialise(Settings(data_dir=work / "data"))
    try:
        ca = ensure_local_ca(deployment.engine, deployment.keyring, deployment.deployment_id)
        ca_file = work / "ca.pem"
        ca_file.write_bytes(ca.certificate_pem)
        issued = ca.issue_server(["localhost", "127.0.0.1"])
        (work / "server.pem").write_bytes(issued.certificate_pem)
        write_private_file(work / "server.key", issued.private_key_pem)
        yield Sandbox(work, deployment, ca, ca_file, work / "server.pem", work / "server.key", env)
    finally:
        deployment.close()
        shutil.rmtree(work, ignore_errors=True)


def ensure_tools(*tools: str) -> None:
    """Install ``tools`` (nginx, wrk) from Debian's packages when missing (needs root)."""
    missing = [tool for tool in tools if shutil.which(tool) is None]
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


def wait_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until something listens on ``port``; fail at once if ``process`` has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"the process meant to listen on {port} ended ({process.returncode})"
            )
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout:g} s")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its live descendants (Linux /proc).

    For a server measured from outside: nginx's master and workers, or one
    ``interlock serve`` process. A descendant that has exited is not counted.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            # Fields after the parenthesised command: state is [0], utime [11], stime [12].
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        pending.extend(int(child) for child in children)
    return total


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


def start_sample_erp(box: Sandbox, started: list[subprocess.Popen[bytes]]) -> tuple[int, str]:
    """Store a fresh ERP credential in the box's vault and start the sample ERP.

    Returns its port and the credential (for calling the ERP directly).

    The ERP (HTTPS, the box's server certificate) accepts the credential in
    ``erp-token``; the manifest names it ``secret://erp/api-key``.
    """
    erp_token = os.urandom(24).hex()
    write_private_file(box.work / "erp-token", erp_token.encode())
    # Set-up, not evidence: the benchmark's own writes go to a sink of their own.
    Vault(box.deployment.engine, box.deployment.keyring, audit=MemorySink()).write(
        "erp/api-key", erp_token.encode(), actor=Operator("admin:benchmark")
    )
    port = free_port()
    started.append(
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "interlock.testing.sample_erp",
                "--cert",
                str(box.server_cert),
                "--key",
                str(box.server_key),
                "--token-file",
                str(box.work / "erp-token"),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
        )
    )
    wait_port(port)
    return port, erp_token


@dataclass(frozen=True)
class WrkRun:
    """What one wrk run measured."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int  # wrk counts "Non-2xx or 3xx responses"
    socket_errors: int  # connect + read + write + timeout

    @property
    def errors(self) -> int:
        """Every failed request: non-2xx/3xx answers and socket errors."""
        return self.non_2xx + self.socket_errors


_LATENCY = re.compile(r"^\s+(50|99)(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: int,
    headers: Sequence[str] = (),
    script: Path | None = None,
    cpus: str | None = None,
) -> WrkRun:
    """One run of wrk (one thread, keep-alive) against ``url``.

    ``script`` is a wrk Lua script (method, body, headers); ``cpus`` pins wrk
    with ``taskset -c``.
    """
    command = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    for header in headers:
        command += ["-H", header]
    if script is not None:
        command += ["-s", str(script)]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    latencies = {
        m.group(1): float(m.group(2)) * _UNIT[m.group(3)] for m in _LATENCY.finditer(output)
    }
    non_2xx = 0
    if match := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output):
        non_2xx = int(match.group(1))
    socket_errors = 0
    if match := re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    ):
        socket_errors = sum(int(g) for g in match.groups())
    return WrkRun(
        rps, latencies.get("50", 0.0), latencies.get("99", 0.0), requests, non_2xx, socket_errors
    )


def wait_ready(port: int, ca_file: Path, timeout: float = 180.0) -> None:
    """Block until ``interlock serve`` on ``port`` answers ``GET /healthz`` with 200.

    It listens before it is ready (503 ``service-starting`` meanwhile); on a
    loaded machine that took minutes. The client verifies the server against
    ``ca_file``, the box's CA.
    """
    import http.client

    from interlock.gateway.tls import client_context

    context = client_context(ca_file)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
        try:
            connection.request("GET", "/healthz")
            answer = connection.getresponse()
            answer.read()
            if answer.status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    raise RuntimeError(f"interlock serve on {port} was not ready within {timeout:.0f} s")


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL (``INTERLOCK_TEST_POSTGRES_URL``): its URL.

    The URL's ``search_path`` is the schema, so the benchmark's tables land there;
    the schema is dropped on exit. Check :func:`interlock.testing.services.unreachable`
    first where PostgreSQL is optional.
    """
    base = make_url(POSTGRES.url).set(drivername="postgresql+psycopg")
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    try:
        with admin.begin() as connection:
            connection.execute(sa.schema.CreateSchema(schema))
        url = base.set(query={"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True, if_exists=True))
        admin.dispose()
