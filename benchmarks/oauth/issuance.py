"""Part (a): tokens per second through ``POST /oauth2/token``, Interlock against Authlib.

Both servers run at once, each pinned to CPU 0 (one process, one core); wrk
is pinned to CPU 1 and drives them in turn (interleaved, so drift on a shared
machine hits both alike) with the same connections and duration, posting
``grant_type=client_credentials`` with HTTP Basic client authentication over
HTTPS keep-alive. Before any load, a verifying HTTPS client checks that each
answers 200 with an ES256 ``at+jwt`` access token whose signature and claims
verify against the server's published key, so the benchmark never measures an
error path; a run with any non-2xx answer or socket error fails.

With a ``baseline`` (another source tree of Interlock, e.g. ``git archive`` of
an earlier commit) a third server, ``interlock serve`` from that tree with its
own deployment, is measured in the same interleaved rounds: before and after
a change under the same load.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from secrets import token_urlsafe
from typing import Any
from urllib.parse import quote

import jwt

from benchmarks.common import (
    Sandbox,
    WrkRun,
    cpu_seconds,
    free_port,
    processes,
    run_wrk,
    wait_port,
    wait_ready,
)
from interlock.config.loader import load_manifest
from interlock.gateway.tls import client_context
from interlock.identity.client_secrets import ClientSecrets

__all__ = ["CLIENT", "MANIFEST", "Baseline", "IssuanceResult", "measure_issuance"]

CLIENT = "bench"
SERVER_CPU = "0"
WRK_CPU = "1"
WARM_UP_SECONDS = 2
SOURCE = Path(__file__).resolve().parents[2] / "src"  # the tree this benchmark belongs to
_JWKS = "/.well-known/jwks.json"

MANIFEST = f"""\
version: 1
roles:
  reader: {{scopes: [orders.read]}}
clients:
  {CLIENT}: {{auth: [oauth2], roles: [reader]}}
"""

_WRK_SCRIPT = """\
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic {basic}"
"""


@dataclass(frozen=True)
class Server:
    """A started token endpoint and how to authenticate to it."""

    name: str
    port: int
    secret: str
    jwks_path: str

    @property
    def issuer(self) -> str:
        """The issuer its tokens carry (and their audience)."""
        return f"https://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Baseline:
    """An earlier Interlock to measure beside the current one: its source tree, its deployment."""

    source: Path  # holds src/interlock
    box: Sandbox


@dataclass(frozen=True)
class IssuanceResult:
    """The median wrk run of one server, every run for the record, and its CPU per token."""

    name: str
    median: WrkRun
    runs: tuple[WrkRun, ...]
    cpu_us: float  # the server's CPU µs per token (all its threads), least of the runs


def measure_issuance(
    box: Sandbox,
    manifest_path: Path,
    *,
    connections: int,
    duration: int,
    repeat: int,
    profile: Path | None = None,
    baseline: Baseline | None = None,
) -> list[IssuanceResult]:
    """Start the servers, check each once, then measure them in turn ``repeat`` times."""
    ours = Server("interlock", free_port(), _client_secret(box, manifest_path), _JWKS)
    reference_secret = token_urlsafe(32)
    (box.work / "reference-secret").write_text(reference_secret)
    reference = Server("authlib", free_port(), reference_secret, _JWKS)
    servers = [ours, reference]
    with processes() as started:
        started.append(_start_interlock(box, manifest_path, ours.port, profile=profile))
        started.append(_start_reference(box, reference))
        ca_files = {ours.name: box.ca_file, reference.name: box.ca_file}
        if baseline is not None:
            earlier = baseline.box.work / "interlock.yaml"
            earlier.write_text(manifest_path.read_text())
            before = Server("baseline", free_port(), _client_secret(baseline.box, earlier), _JWKS)
            source = Path(baseline.source).resolve() / "src"
            started.append(_start_interlock(baseline.box, earlier, before.port, source=source))
            servers.insert(0, before)
            ca_files[before.name] = baseline.box.ca_file
        for server in servers:
            # Pinned to one core of a loaded machine, `interlock serve` took over 20 s to listen.
            wait_port(server.port, timeout=120)
            if server is not reference:
                wait_ready(server.port, ca_files[server.name])  # 503 until it is ready
        for server in servers:
            check_endpoint(server, ca_files[server.name])
        runs: dict[str, list[WrkRun]] = {s.name: [] for s in servers}
        cpu: dict[str, list[float]] = {s.name: [] for s in servers}
        scripts = {s.name: _script(box.work, s) for s in servers}
        urls = {s.name: f"https://127.0.0.1:{s.port}/oauth2/token" for s in servers}
        pids = {ours.name: started[0].pid, reference.name: started[1].pid}
        if baseline is not None:
            pids["baseline"] = started[2].pid

        def once(name: str, seconds: int) -> WrkRun:
            spent = cpu_seconds(pids[name])
            run = run_wrk(
                urls[name],
                connections=connections,
                seconds=seconds,
                script=scripts[name],
                cpus=WRK_CPU,
            )
            if run.errors:
                raise SystemExit(
                    f"{name}: {run.non_2xx} non-2xx answers and {run.socket_errors} socket "
                    f"errors in {run.requests} requests; refusing to report an error path"
                )
            # The server's CPU per token: what wall-clock rates on a shared machine blur.
            cpu[name].append((cpu_seconds(pids[name]) - spent) / max(run.requests, 1) * 1e6)
            return run

        for name in runs:
            once(name, WARM_UP_SECONDS)  # TLS sessions, key caches, the interpreter's own
            cpu[name].clear()
        for index in range(repeat):
            for name, measured in runs.items():
                with _profiled(profile if index == 0 and name == ours.name else None, started[0]):
                    measured.append(once(name, duration))
    return [_result(name, measured, cpu[name]) for name, measured in runs.items()]


def check_endpoint(server: Server, ca_file: Path) -> dict[str, Any]:
    """One token request by a certificate-verifying client; returns the verified claims.

    Refuses anything but 200 with an ES256 ``at+jwt`` token that verifies
    against the server's JWKS, with ``iss`` and ``aud`` of that server.
    """
    connection = http.client.HTTPSConnection(
        "127.0.0.1", server.port, context=client_context(ca_file)
    )
    try:
        connection.request(
            "POST",
            "/oauth2/token",
            body="grant_type=client_credentials",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "Authorization": f"Basic {_basic(CLIENT, server.secret)}",
            },
        )
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            raise SystemExit(f"{server.name}: token endpoint answered {answer.status}: {body!r}")
        token = json.loads(body)["access_token"]
        connection.request("GET", server.jwks_path)
        jwks = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    header = jwt.get_unverified_header(token)
    if header.get("alg") != "ES256" or header.get("typ") != "at+jwt":
        raise SystemExit(f"{server.name}: token header is {header}, not ES256 at+jwt")
    keys = {jwk.get("kid"): jwt.PyJWK(jwk).key for jwk in jwks["keys"]}
    kid = header.get("kid", next(iter(keys)))  # Authlib's tokens name no kid; its JWKS has one key
    if kid not in keys:
        raise SystemExit(f"{server.name}: token kid {kid!r} is not in the server's JWKS")
    key = keys[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=server.issuer,
        issuer=server.issuer,
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    return claims


def _client_secret(box: Sandbox, manifest_path: Path) -> str:
    secrets = ClientSecrets(
        box.deployment.engine, box.deployment.keyring, load_manifest(manifest_path)
    )
    return secrets.create(CLIENT)[1]


def _start_interlock(
    box: Sandbox, manifest: Path, port: int, *, source: Path = SOURCE, profile: Path | None = None
) -> subprocess.Popen[bytes]:
    """``interlock serve`` from the tree ``source`` (holds ``interlock``), pinned to CPU 0.

    ``source`` goes first on PYTHONPATH: the editable install in the virtual
    environment may point at another checkout, whose code would be measured
    instead. With ``profile`` and no py-spy, under cProfile (``profiled_serve.py``).
    """
    path = os.pathsep.join(p for p in (str(source), box.env.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "interlock"]
    if profile is not None and _py_spy() is None:
        command = [sys.executable, str(Path(__file__).with_name("profiled_serve.py")), str(profile)]
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CPU,
            *command,
            "serve",
            "--manifest",
            str(manifest),
            "--listen",
            f"127.0.0.1:{port}",
        ],
        env={**box.env, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
    )


def _start_reference(box: Sandbox, server: Server) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            SERVER_CPU,
            sys.executable,
            str(Path(__file__).with_name("authlib_server.py")),
            "--port",
            str(server.port),
            "--cert",
            str(box.server_cert),
            "--key",
            str(box.server_key),
            "--secret-file",
            str(box.work / "reference-secret"),
            "--issuer",
            server.issuer,
        ],
        env=box.env,
        stdout=subprocess.DEVNULL,
    )


def _basic(client_id: str, secret: str) -> str:
    # RFC 6749 §2.3.1: each part form-urlencoded, then joined and base64-encoded.
    return base64.b64encode(
        f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    ).decode()


def _script(work: Path, server: Server) -> Path:
    path = work / f"wrk-{server.name}.lua"
    path.write_text(_WRK_SCRIPT.format(basic=_basic(CLIENT, server.secret)))
    return path


@contextmanager
def _profiled(output: Path | None, process: subprocess.Popen[bytes]) -> Iterator[None]:
    """Profile ``process`` while the block runs, to ``output``.

    With py-spy: raw collapsed stacks. Without: the process runs under
    ``profiled_serve.py``; SIGUSR1 starts cProfile, SIGUSR2 writes pstats.
    """
    if output is None:
        yield
        return
    spy = _py_spy()
    if spy is None:
        output.unlink(missing_ok=True)
        process.send_signal(signal.SIGUSR1)
        try:
            yield
        finally:
            process.send_signal(signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not output.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        return
    recorder = subprocess.Popen(
        [spy, "record", "--format", "raw", "-o", str(output), "-p", str(process.pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes the profile and exits
        recorder.wait(timeout=60)


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def _result(name: str, runs: list[WrkRun], cpu_us: list[float]) -> IssuanceResult:
    ordered = sorted(runs, key=lambda r: r.rps)
    return IssuanceResult(name, ordered[len(ordered) // 2], tuple(runs), min(cpu_us))
