"""Edge mode for real: nginx (from Debian) in front, the decision endpoint on a unix socket.

One set-up for the package: the harness deployment with the sample ERP
(:func:`interlock.testing.gateway.running_gateway`, its public URL nginx's),
a second gateway on the same deployment asking for client certificates (the
embedded side of every comparison), its decision endpoint, and nginx running
the configuration :func:`~interlock.gateway.edge.nginx.render_nginx` generates.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.crypto.keyfile import write_private_file
from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import DecisionListener, start_decisions
from interlock.gateway.edge.nginx import NginxOptions, render_nginx
from interlock.gateway.edge.protocol import CONVENTIONS
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki.authority import Pki
from interlock.secrets.vault import Vault
from interlock.testing.gateway import HARNESS, Env, running_gateway


@dataclass
class Edge:
    """The harness, the embedded gateway with client certificates, and nginx in front of it."""

    env: Env
    gateway: RunningGateway  # embedded: requests straight to its port
    nginx_port: int
    pki: Pki
    work: Path

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        *,
        edge: bool = True,
        certificate: tuple[Path, Path] | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        """One request through nginx (``edge``) or straight to the embedded gateway."""
        port = self.nginx_port if edge else self.gateway.port
        return self.env.request(method, path, headers, port=port, certificate=certificate)

    def raw(self, data: bytes) -> tuple[bytes, bytes]:
        """``data`` sent to nginx as it is; the answer's head and body, bytes as nginx sent them."""
        context = self.env.context()
        with (
            socket.create_connection(("127.0.0.1", self.nginx_port), timeout=10) as plain,
            context.wrap_socket(plain, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(data)
            chunks = []
            while chunk := tls.recv(65536):
                chunks.append(chunk)
        head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return head, body


def nginx_or_skip() -> str:
    """The nginx binary; skip without it (fail under INTERLOCK_REQUIRE_SERVICES=1)."""
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if found is None:
        message = "nginx is not installed (make nginx, or apt-get install nginx-light)"
        if os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def assert_nginx_accepts(binary: str, prefix: Path, conf: Path) -> None:
    """Assert that ``nginx -t`` accepts ``conf`` (run with ``prefix``); its message if not."""
    checked = subprocess.run(  # noqa: S603  (fixed arguments)
        [binary, "-t", "-p", str(prefix), "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_nginx(binary: str, conf: Path, port: int) -> subprocess.Popen[bytes]:
    """Run nginx on ``conf`` in the foreground until ``port`` answers."""
    process = subprocess.Popen(  # noqa: S603  (fixed arguments)
        [binary, "-p", str(conf.parent), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"nginx did not start: {error}")
        time.sleep(0.05)
    stop_nginx(process)
    raise RuntimeError("nginx did not listen in time")


def stop_nginx(process: subprocess.Popen[bytes]) -> None:
    """Stop nginx (SIGTERM: fast shutdown) and close its pipe."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)
    if process.stderr is not None:
        process.stderr.close()


def nginx_options(edge_dir: Path, env: Env, gateway: RunningGateway, port: int) -> NginxOptions:
    """The generated configuration's options: everything on loopback, files in ``edge_dir``."""
    pki = Pki(
        env.deployment.engine,
        env.deployment.keyring,
        env.deployment.deployment_id,
        env.deployment.settings.trust_domain,
    )
    issued = pki.issue_server(["localhost", "127.0.0.1"], ephemeral=True)
    cert, key = edge_dir / "server.pem", edge_dir / "server.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    for kind in ("client_body", "proxy"):
        (edge_dir / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    return NginxOptions(
        listen=f"127.0.0.1:{port}",
        certificate=cert,
        private_key=key,
        decision_socket=edge_dir / "authz.sock",
        interlock=f"127.0.0.1:{gateway.port}",
        interlock_ca=env.ca_file,
        prefix=edge_dir,
        anchors={"pki:internal": env.ca_file},
        client_ca=env.ca_file,
        workers="1",
        user="root" if os.geteuid() == 0 else None,
    )


@pytest.fixture(scope="package")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    """nginx generated from the harness manifest, deciding through the embedded gateway."""
    binary = nginx_or_skip()
    work = tmp_path_factory.mktemp("edge")
    port = free_port()
    with running_gateway(work / "harness", public_url=f"https://127.0.0.1:{port}") as env:
        manifest = env.gateway.gateway.manifest
        listener = ListenerConfig(port=0, client_auth="optional")
        gateway = asyncio.run_coroutine_threadsafe(
            start_gateway(env.deployment, manifest, listener), env.loop
        ).result(timeout=30)
        edge_dir = work / "nginx"
        edge_dir.mkdir()
        decisions = EdgeDecisions(
            lambda: gateway.front.current, CONVENTIONS["nginx"], gateway.services.proxies
        )
        options = nginx_options(edge_dir, env, gateway, port)
        decision: DecisionListener = asyncio.run_coroutine_threadsafe(
            start_decisions(decisions, options.decision_socket, {os.getuid()}), env.loop
        ).result(timeout=30)
        conf = edge_dir / "nginx.conf"
        conf.write_text(render_nginx(manifest, options))
        process = start_nginx(binary, conf, port)
        pki = Pki(
            env.deployment.engine,
            env.deployment.keyring,
            env.deployment.deployment_id,
            env.deployment.settings.trust_domain,
        )
        try:
            yield Edge(env, gateway, port, pki, work)
        finally:
            stop_nginx(process)
            asyncio.run_coroutine_threadsafe(decision.stop(), env.loop).result(timeout=30)
            asyncio.run_coroutine_threadsafe(gateway.stop(), env.loop).result(timeout=30)


@dataclass
class Seen:
    """One request a :class:`Recorder` received."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class Recorder:
    """A second TLS upstream ("other", trusted as ``pki:internal``) that records every request."""

    port: int
    server: http.server.ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)


class _Recording(http.server.BaseHTTPRequestHandler):
    recorder: ClassVar[Recorder | None] = None

    def _any(self) -> None:
        if self.recorder is not None:
            headers = {name.lower(): value for name, value in self.headers.items()}
            self.recorder.seen.append(Seen(self.command, self.path, headers))
        body = json.dumps({"system": "other", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_DELETE = _any  # noqa: N815  (http.server's names)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base's name)
        """Quiet."""


@contextmanager
def recording_upstream(edge: Edge, name: str) -> Iterator[Recorder]:
    """A TLS upstream with a certificate from the deployment's CA, recording what reaches it."""
    issued = edge.pki.issue_server(["localhost", "127.0.0.1"], ephemeral=True)
    cert, key = edge.work / f"{name}.pem", edge.work / f"{name}.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recording)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    recorder = Recorder(int(server.server_address[1]), server)
    # A handler class of this upstream's own, so two upstreams record apart.
    server.RequestHandlerClass = type("Handler", (_Recording,), {"recorder": recorder})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def with_other_system(
    text: str, other: Recorder, integrations: str, *, credentials: bool = True
) -> str:
    """The harness manifest ``text`` with system ``other`` (``other``'s port) and more integrations.

    ``credentials``: the system has one in the vault (``secret://other/api-key``), else none.
    """
    secret = ', credentials: "secret://other/api-key"' if credentials else ""
    system = (
        f'  other: {{url: "https://localhost:{other.port}", location: DE, ca: "pki:internal"'
        f"{secret}}}\n"
    )
    return text.replace("roles:\n", system + "roles:\n", 1) + integrations


@dataclass
class Stack:
    """nginx and a decision endpoint on a manifest of a test's own (see :func:`edge_stack`)."""

    env: Env
    nginx_port: int
    gateway_port: int

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, *, edge: bool = True
    ) -> tuple[int, dict[str, str], Any]:
        """One request through nginx (``edge``) or straight to this stack's embedded gateway."""
        port = self.nginx_port if edge else self.gateway_port
        return self.env.request(method, path, headers, port=port)


@contextmanager
def gateway_on(edge: Edge, path: Path, text: str) -> Iterator[RunningGateway]:
    """An embedded gateway on manifest ``text`` (written to ``path``), the harness deployment.

    The vault holds a credential for ``other`` (:func:`with_other_system`).
    """
    env = edge.env
    vault = Vault(env.deployment.engine, env.deployment.keyring, audit=MemorySink())
    vault.write("other/api-key", ("other-outbound-" + os.urandom(8).hex()).encode(), actor=HARNESS)
    path.write_text(text)
    gateway = asyncio.run_coroutine_threadsafe(
        start_gateway(
            env.deployment, load_manifest(path), ListenerConfig(port=0, client_auth="optional")
        ),
        env.loop,
    ).result(timeout=30)
    try:
        yield gateway
    finally:
        asyncio.run_coroutine_threadsafe(gateway.stop(), env.loop).result(timeout=30)


@contextmanager
def edge_stack(
    edge: Edge, name: str, decided: str, generated: str | None = None
) -> Iterator[Stack]:
    """A gateway and its decision endpoint on manifest text ``decided``, nginx in front.

    nginx's configuration is generated from ``generated`` (default: the same
    text): a different one is nginx regenerated while the decision process
    still enforces the manifest it started with.
    """
    binary = nginx_or_skip()
    env = edge.env
    work = edge.work / name
    work.mkdir()
    generated_path = work / "generated.yaml"
    generated_path.write_text(generated or decided)
    port = free_port()
    with gateway_on(edge, work / "decided.yaml", decided) as gateway:
        options = nginx_options(work, env, gateway, port)
        decisions = EdgeDecisions(
            lambda: gateway.front.current, CONVENTIONS["nginx"], gateway.services.proxies
        )
        decision = asyncio.run_coroutine_threadsafe(
            start_decisions(decisions, options.decision_socket, {os.getuid()}), env.loop
        ).result(timeout=30)
        conf = work / "nginx.conf"
        conf.write_text(render_nginx(load_manifest(generated_path), options))
        process = start_nginx(binary, conf, port)
        try:
            yield Stack(env, port, gateway.port)
        finally:
            stop_nginx(process)
            asyncio.run_coroutine_threadsafe(decision.stop(), env.loop).result(timeout=30)
