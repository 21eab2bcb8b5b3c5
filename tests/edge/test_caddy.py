"""Caddy (Debian's package) with ``forward_auth`` to the decision endpoint (``--proxy caddy``).

Caddy relays a non-2xx decision as it is, so refusals arrive with their real
status and problem document; an allowed request reaches the sample ERP with
the system's credential from the vault in place of the caller's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import start_decisions
from interlock.gateway.edge.protocol import CONVENTIONS
from tests.edge.conftest import Edge, free_port

pytestmark = pytest.mark.processes

CADDYFILE = """\
{{
    admin off
    auto_https off
    storage file_system {storage}
}}
https://127.0.0.1:{port} {{
    tls {cert} {key}
    request_header -X-Api-Key
    forward_auth unix/{socket} {{
        uri /_interlock/authz
        copy_headers Authorization X-Interlock-Client X-Request-Id
    }}
    reverse_proxy https://localhost:{erp} {{
        header_up -X-Api-Key
        transport http {{
            tls_trusted_ca_certs {ca}
            tls_server_name localhost
        }}
    }}
}}
"""


@pytest.fixture(scope="module")
def caddy(edge: Edge) -> Iterator[int]:
    """Caddy in front of the sample ERP, deciding through a ``--proxy caddy`` socket."""
    binary = shutil.which("caddy")
    if binary is None:
        message = "caddy is not installed (apt-get install caddy)"
        if os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = edge.work / "caddy"
    work.mkdir()
    path = work / "authz.sock"
    decisions = EdgeDecisions(
        lambda: edge.gateway.front.current, CONVENTIONS["caddy"], edge.gateway.services.proxies
    )
    listener = asyncio.run_coroutine_threadsafe(
        start_decisions(decisions, path, {os.getuid()}), edge.env.loop
    ).result(timeout=10)
    port = free_port()
    erp = urlsplit(edge.env.gateway.gateway.manifest.systems["erp"].url).port
    nginx_dir = edge.work / "nginx"
    conf = work / "Caddyfile"
    conf.write_text(
        CADDYFILE.format(
            storage=work / "data",
            port=port,
            cert=nginx_dir / "server.pem",
            key=nginx_dir / "server.key",
            socket=path,
            erp=erp,
            ca=edge.env.ca_file,
        )
    )
    env = {
        **os.environ,
        "HOME": str(work),
        "XDG_DATA_HOME": str(work),
        "XDG_CONFIG_HOME": str(work),
    }
    process = subprocess.Popen(  # noqa: S603  (fixed arguments)
        [binary, "run", "--config", str(conf), "--adapter", "caddyfile"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait(process, port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stderr is not None:
            process.stderr.close()
        asyncio.run_coroutine_threadsafe(listener.stop(), edge.env.loop).result(timeout=10)


def _wait(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            raise RuntimeError(f"caddy did not start: {error[-2000:]}")
        time.sleep(0.1)
    raise RuntimeError("caddy did not listen in time")


def _through_caddy(
    edge: Edge, port: int, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], object]:
    saved, edge.nginx_port = edge.nginx_port, port
    try:
        return edge.request("GET", path, headers)
    finally:
        edge.nginx_port = saved


def test_caddy_forward_auth_allows_with_the_vaults_credential(edge: Edge, caddy: int) -> None:
    """Allowed: the ERP accepts the vault's credential; the caller's key never arrives."""
    token, _ = edge.env.key(["orders.read"])
    status, _, body = _through_caddy(edge, caddy, "/echo/abc", {"X-API-Key": token})
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["authorization_ok"] is True
    assert "x-api-key" not in {name.lower() for name in body["headers"]}


def test_caddy_relays_refusals_with_their_status_and_problem(edge: Edge, caddy: int) -> None:
    """401 and 400 arrive as the gateway answers them (status, problem type)."""
    status, headers, body = _through_caddy(edge, caddy, "/echo/abc", {})
    assert status == 401
    assert isinstance(body, dict)
    assert body["type"] == "urn:interlock:problem:unauthorized"
    assert headers["www-authenticate"].startswith("Bearer")
    status, _, body = _through_caddy(edge, caddy, "/echo/abc?api_key=il_x", {})
    assert status == 400
    assert isinstance(body, dict)
    assert body["type"] == "urn:interlock:problem:credential-in-url"
