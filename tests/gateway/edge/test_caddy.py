"""Caddy (Debian's package) with ``forward_auth`` to the decision endpoint (``--proxy caddy``).

Caddy relays a non-2xx decision as it is, so refusals arrive with their real
status and problem document; an allowed request reaches the sample ERP with
the system's credential from the vault in place of the caller's. Caddy
forwards every caller header it is not told to remove: the configurations
here (as docs/edge.md shows them) remove the caller's credentials, cookies
and identity headers, and the caller's Authorization on a system without
a credential of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from interlock.gateway.edge.decision import EdgeDecisions
from interlock.gateway.edge.listener import start_decisions
from interlock.gateway.edge.protocol import CONVENTIONS
from interlock.gateway.server import RunningGateway
from tests.gateway.edge.conftest import (
    Edge,
    Recorder,
    free_port,
    gateway_on,
    recording_upstream,
    with_other_system,
)

pytestmark = pytest.mark.processes

# The caller's headers no system may see (docs/edge.md): credentials, cookies, identity.
REMOVED = (
    "X-Api-Key",
    "DPoP",
    "Cookie",
    "Idempotency-Key",
    "X-User",
    "X-User-Id",
    "X-Remote-User",
    "Remote-User",
    "X-Real-Ip",
    "X-Client-Ip",
    "True-Client-Ip",
)
CADDYFILE = """\
{{
    admin off
    auto_https off
    storage file_system {storage}
}}
https://127.0.0.1:{port} {{
    tls {cert} {key}
    forward_auth unix/{socket} {{
        uri /_interlock/authz
        copy_headers {copied} X-Interlock-Client X-Request-Id
    }}
    reverse_proxy https://localhost:{upstream} {{
{removed}
        transport http {{
            tls_trusted_ca_certs {ca}
            tls_server_name localhost
        }}
    }}
}}
"""
OPEN = """\
  open-feed:
    source: erp
    target: other
    client: order-sync
    callers: [oauth-only, cert-sync, every-way]
    purpose: Test a system without a credential behind Caddy
    legal_basis: contract
    retention: 30d
    routes:
      - {method: GET, path: "/open/{id}", upstream: other, scope: orders.read}
"""


def _caddyfile(edge: Edge, work: Path, port: int, upstream: int, *, credential: bool) -> str:
    """The documented configuration: a system with a credential, or one without."""
    removed = [f"        header_up -{name}" for name in REMOVED]
    if not credential:  # nothing replaces the caller's: remove it
        removed.insert(0, "        header_up -Authorization")
    nginx_dir = edge.work / "nginx"
    return CADDYFILE.format(
        storage=work / "data",
        port=port,
        cert=nginx_dir / "server.pem",
        key=nginx_dir / "server.key",
        socket=work / "authz.sock",
        copied="Authorization" if credential else "",
        upstream=upstream,
        removed="\n".join(removed),
        ca=edge.env.ca_file,
    )


@contextmanager
def _caddy(
    edge: Edge, gateway: RunningGateway, name: str, upstream: int, *, credential: bool
) -> Iterator[int]:
    """Caddy in front of ``upstream``, deciding through a ``--proxy caddy`` socket."""
    binary = shutil.which("caddy")
    if binary is None:
        message = "caddy is not installed (apt-get install caddy)"
        if os.environ.get("INTERLOCK_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    work = edge.work / name
    work.mkdir()
    decisions = EdgeDecisions(
        lambda: gateway.front.current, CONVENTIONS["caddy"], gateway.services.proxies
    )
    listener = asyncio.run_coroutine_threadsafe(
        start_decisions(decisions, work / "authz.sock", {os.getuid()}), edge.env.loop
    ).result(timeout=10)
    port = free_port()
    conf = work / "Caddyfile"
    conf.write_text(_caddyfile(edge, work, port, upstream, credential=credential))
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


@pytest.fixture(scope="module")
def caddy(edge: Edge) -> Iterator[int]:
    """Caddy in front of the sample ERP (a system with a credential)."""
    erp = urlsplit(edge.env.gateway.gateway.manifest.systems["erp"].url).port
    assert erp is not None
    with _caddy(edge, edge.gateway, "caddy", erp, credential=True) as port:
        yield port


@pytest.fixture(scope="module")
def open_system(edge: Edge) -> Iterator[tuple[int, Recorder, int]]:
    """Caddy in front of ``other``, a system without a credential (it records what arrives).

    Caddy's port, the recorder, and the port of the gateway deciding (its token endpoint).
    """
    with recording_upstream(edge, "open") as other:
        text = with_other_system(edge.env.manifest_path.read_text(), other, OPEN, credentials=False)
        with (
            gateway_on(edge, edge.work / "open.yaml", text) as gateway,
            _caddy(edge, gateway, "caddy-open", other.port, credential=False) as port,
        ):
            yield port, other, gateway.port


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


def _callers_headers(token: str) -> dict[str, str]:
    """The caller's key and every header no system may see (values made at run time)."""
    value = os.urandom(6).hex()
    return {"X-API-Key": token, **{name: value for name in REMOVED if name != "X-Api-Key"}}


def test_caddy_forward_auth_allows_with_the_vaults_credential(edge: Edge, caddy: int) -> None:
    """Allowed: the ERP accepts the vault's credential; the caller's key never arrives."""
    token, _ = edge.env.key(["orders.read"])
    status, _, body = _through_caddy(edge, caddy, "/echo/abc", {"X-API-Key": token})
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["authorization_ok"] is True
    assert "x-api-key" not in {name.lower() for name in body["headers"]}


def test_caddy_removes_the_callers_credentials_cookies_and_identity(edge: Edge, caddy: int) -> None:
    """X-User, Cookie, DPoP and the caller's key never reach a system with a credential."""
    token, _ = edge.env.key(["orders.read"])
    status, _, body = _through_caddy(edge, caddy, "/echo/abc", _callers_headers(token))
    assert status == 200, body
    assert isinstance(body, dict)
    assert body["authorization_ok"] is True  # the vault's, not the caller's
    seen = {name.lower() for name in body["headers"]}
    assert not seen & {name.lower() for name in REMOVED}


def test_caddy_sends_no_authorization_to_a_system_without_a_credential(
    edge: Edge, open_system: tuple[int, Recorder, int]
) -> None:
    """The caller's Authorization (a Bearer token here), X-User and Cookie never arrive.

    Without a credential from the decision, Caddy 2.6's copy_headers writes
    its placeholder text and Caddy 2.10 keeps the caller's header: the
    configuration removes it.
    """
    port, other, gateway = open_system
    with edge.env.client_secret("every-way") as secret:
        token = _bearer(edge, gateway, secret)
    headers = {**_callers_headers(token), "Authorization": f"Bearer {token}"}
    headers.pop("X-API-Key")
    other.seen.clear()
    status, _, body = _through_caddy(edge, port, "/open/1", headers)
    assert status == 200, body
    assert len(other.seen) == 1
    arrived = other.seen[0].headers
    assert "authorization" not in arrived
    assert not set(arrived) & {name.lower() for name in REMOVED}
    assert token not in str(arrived)


def _bearer(edge: Edge, port: int, secret: str) -> str:
    """An access token for every-way from the token endpoint of the gateway on ``port``."""
    status, _, body = edge.env.request(
        "POST",
        "/oauth2/token",
        {
            "Content-Type": "application/x-www-form-urlencoded",
            **edge.env.basic(secret, "every-way"),
        },
        b"grant_type=client_credentials",
        port=port,
    )
    assert status == 200, body
    token = str(body["access_token"])
    edge.env.issued_tokens.append(token)
    return token


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
