"""A revoked certificate ends at once: resumed TLS sessions and open connections too.

The handshake checks the CRL, but a client that resumes a session (a TLS 1.3
ticket, a TLS 1.2 session id or ticket) or keeps a connection open does not
handshake again. Over real TLS with the deployment's own PKI: a revocation
invalidates the listener's sessions, and every request's certificate is checked
against the current revocation list and its validity period.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import ssl
import time
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs

from interlock.audit.schema import BODIES
from interlock.clock import utc_now
from interlock.crypto.keyfile import write_private_file
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki.authority import MIN_LIFETIME, Issued, Pki
from interlock.testing.gateway import Env

VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
REFUSED = 0  # the handshake (or, in TLS 1.3, the first read after it) failed


@pytest.fixture(scope="module")
def pki(env: Env) -> Pki:
    """The harness deployment's PKI."""
    deployment = env.deployment
    return Pki(
        deployment.engine,
        deployment.keyring,
        deployment.deployment_id,
        deployment.settings.trust_domain,
    )


@pytest.fixture(scope="module")
def gateway(env: Env) -> Iterator[RunningGateway]:
    """A gateway asking for client certificates of the deployment's own PKI (with its CRL)."""
    listener = ListenerConfig(port=0, client_auth="optional")
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, env.gateway.gateway.manifest, listener), env.loop
    ).result(timeout=30)
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


@dataclass
class Answer:
    """One request over a fresh TLS connection."""

    status: int
    session: ssl.SSLSession | None = None
    reused: bool = False


def _files(tmp_path: Path, issued: Issued) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{issued.serial}.pem", tmp_path / f"{issued.serial}.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    return cert, key


def _context(env: Env, files: tuple[Path, Path], version: str = "1.3") -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(env.ca_file))
    context.minimum_version = context.maximum_version = VERSIONS[version]
    context.load_cert_chain(*files)
    return context


def _get(port: int, context: ssl.SSLContext, session: ssl.SSLSession | None = None) -> Answer:
    """GET /mtls/orders/1001 on a new connection, resuming ``session`` if given."""
    request = b"GET /mtls/orders/1001 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as plain,
            context.wrap_socket(plain, server_hostname="127.0.0.1", session=session) as tls,
        ):
            tls.sendall(request)
            received = b""
            while chunk := tls.recv(65536):
                received += chunk
            reused = bool(tls.session_reused)
            # TLS 1.3 tickets arrive after the handshake: take the session once read.
            return Answer(int(received.split(b" ", 2)[1]), tls.session, reused)
    except (ssl.SSLError, ConnectionError, IndexError):
        return Answer(REFUSED)


def _until_refused(port: int, context: ssl.SSLContext) -> None:
    """Wait until a fresh handshake with the certificate fails (the CRL reached the listener)."""
    deadline = time.monotonic() + 10
    while _get(port, context).status != REFUSED:
        assert time.monotonic() < deadline, "the revocation never reached the listener"
        time.sleep(0.2)


def _open(env: Env, port: int, files: tuple[Path, Path]) -> http.client.HTTPSConnection:
    return http.client.HTTPSConnection("127.0.0.1", port, context=_context(env, files), timeout=10)


def _call(
    connection: http.client.HTTPSConnection,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, dict[str, str], Any]:
    """One request on an open (kept-alive) connection."""
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    raw = response.read()
    found = {k.lower(): v for k, v in response.getheaders()}
    return response.status, found, json.loads(raw) if raw else None


def _audit(env: Env, action: str, **details: str) -> dict[str, Any]:
    """The newest audit entry of ``action`` with ``details`` (best-effort entries land late)."""
    deadline = time.monotonic() + 5
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
            for row in reversed(rows):
                entry: dict[str, Any] = json.loads(row.body)
                found = entry["action"] == action and all(
                    entry["details"].get(k) == v for k, v in details.items()
                )
                if found:
                    return entry
            assert time.monotonic() < deadline, f"no {action} entry with {details}"
            time.sleep(0.1)
    finally:
        engine.dispose()


def _refusals_logged(logs: list[MutableMapping[str, Any]], serial: str, at: str) -> bool:
    """Whether ``logs`` hold a "client certificate refused" line for ``serial`` ``at``."""
    return any(
        (line["event"], line.get("serial"), line.get("at"))
        == ("client certificate refused", serial, at)
        for line in logs
    )


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_a_revoked_certificate_cannot_resume_its_session(
    env: Env, pki: Pki, gateway: RunningGateway, tmp_path: Path, version: str
) -> None:
    """A session resumed after the revocation is not resumed and gets no answer as the client."""
    issued = pki.issue_client("cert-sync")
    context = _context(env, _files(tmp_path, issued), version)
    first = _get(gateway.port, context)
    assert first.status == 200
    again = _get(gateway.port, context, first.session)
    assert (again.status, again.reused) == (200, True)  # resumption works, before
    pki.revoke(issued.serial, "keyCompromise")
    _until_refused(gateway.port, context)
    resumed = _get(gateway.port, context, again.session)
    assert resumed.status != 200
    assert not resumed.reused, "the listener still resumes sessions of a revoked certificate"


def test_an_open_connection_is_refused_after_its_certificate_is_revoked(
    env: Env, pki: Pki, gateway: RunningGateway, tmp_path: Path
) -> None:
    """Kept-alive connection: 401 certificate-revoked, connection closed, logged and audited."""
    issued = pki.issue_client("cert-sync")
    files = _files(tmp_path, issued)
    connection = _open(env, gateway.port, files)
    try:
        assert _call(connection, "GET", "/mtls/orders/1001")[0] == 200
        pki.revoke(issued.serial, "keyCompromise")
        _until_refused(gateway.port, _context(env, files))
        with capture_logs() as logs:
            status, headers, body = _call(connection, "GET", "/mtls/orders/1001")
    finally:
        connection.close()
    assert status == 401
    assert body["type"] == "urn:interlock:problem:certificate-revoked"
    assert headers["connection"] == "close"
    entry = _audit(env, "certificate.refuse", serial=issued.serial, at="request")
    assert entry["reason"] == "revoked"
    assert entry["actor"] == "client:cert-sync"
    assert _refusals_logged(logs, issued.serial, "request")


def test_a_certificate_bound_token_ends_with_its_revoked_certificate(
    env: Env, pki: Pki, gateway: RunningGateway, tmp_path: Path
) -> None:
    """A token bound to a certificate (RFC 8705) is refused once the certificate is revoked."""
    issued = pki.issue_client("cert-sync")
    files = _files(tmp_path, issued)
    connection = _open(env, gateway.port, files)
    try:
        form = urlencode({"grant_type": "client_credentials", "client_id": "cert-sync"})
        status, _, body = _call(connection, "POST", "/oauth2/token", FORM, form.encode())
        assert status == 200, body
        bearer = {"Authorization": f"Bearer {body['access_token']}"}
        env.issued_tokens.append(body["access_token"])
        assert _call(connection, "GET", "/mtls/orders/1001", bearer)[0] == 200
        pki.revoke(issued.serial, "keyCompromise")
        _until_refused(gateway.port, _context(env, files))
        status, _, body = _call(connection, "GET", "/mtls/orders/1001", bearer)
    finally:
        connection.close()
    assert (status, body["type"]) == (401, "urn:interlock:problem:certificate-revoked")


def test_tls_client_auth_refuses_a_revoked_certificate_on_an_open_connection(
    env: Env, pki: Pki, gateway: RunningGateway, tmp_path: Path
) -> None:
    """The token endpoint answers invalid_client (RFC 8705 §2) and audits the refusal."""
    issued = pki.issue_client("cert-sync")
    files = _files(tmp_path, issued)
    form = urlencode({"grant_type": "client_credentials", "client_id": "cert-sync"}).encode()
    connection = _open(env, gateway.port, files)
    try:
        assert _call(connection, "POST", "/oauth2/token", FORM, form)[0] == 200
        pki.revoke(issued.serial, "keyCompromise")
        _until_refused(gateway.port, _context(env, files))
        status, _, body = _call(connection, "POST", "/oauth2/token", FORM, form)
    finally:
        connection.close()
    assert (status, body["error"]) == (401, "invalid_client")
    assert "access_token" not in body
    _audit(env, "certificate.refuse", serial=issued.serial)


def test_a_certificate_that_expires_on_an_open_connection_is_refused(
    env: Env, gateway: RunningGateway, tmp_path: Path
) -> None:
    """The validity period is checked per request, not only at the handshake."""
    deployment = env.deployment
    lifetime = MIN_LIFETIME
    # Issued as if an hour ago, less three seconds: it expires three seconds from now.
    backdated = Pki(
        deployment.engine,
        deployment.keyring,
        deployment.deployment_id,
        deployment.settings.trust_domain,
        now=lambda: utc_now() - lifetime + timedelta(seconds=3),
    )
    issued = backdated.issue_client("cert-sync", lifetime)
    connection = _open(env, gateway.port, _files(tmp_path, issued))
    try:
        assert _call(connection, "GET", "/mtls/orders/1001")[0] == 200
        time.sleep(max(0.0, (issued.not_after - utc_now()).total_seconds()) + 1.1)
        status, _, body = _call(connection, "GET", "/mtls/orders/1001")
    finally:
        connection.close()
    assert (status, body["type"]) == (401, "urn:interlock:problem:certificate-expired")
    assert _audit(env, "certificate.refuse", serial=issued.serial)["reason"] == "expired"


def test_a_certificate_refused_at_the_handshake_is_logged_and_audited(
    env: Env, pki: Pki, gateway: RunningGateway, tmp_path: Path
) -> None:
    """Issue 17: a revoked certificate's refused handshake left no log line, no audit entry."""
    issued = pki.issue_client("cert-sync")
    context = _context(env, _files(tmp_path, issued))
    assert _get(gateway.port, context).status == 200
    pki.revoke(issued.serial, "keyCompromise")
    with capture_logs() as logs:
        _until_refused(gateway.port, context)
    entry = _audit(env, "certificate.refuse", serial=issued.serial, at="handshake")
    assert (entry["actor"], entry["reason"]) == ("client:cert-sync", "revoked")
    assert _refusals_logged(logs, issued.serial, "handshake")
