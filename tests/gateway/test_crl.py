"""Revocation through the deployment's own PKI: the CRL is published, and enforced without a restart."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import load_crls_pem
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki.authority import Issued, Pki
from interlock.testing.gateway import Env


@pytest.fixture(scope="module")
def pki(env: Env) -> Pki:
    """The harness deployment's PKI."""
    settings = env.deployment.settings
    return Pki(
        env.deployment.engine,
        env.deployment.keyring,
        env.deployment.deployment_id,
        settings.trust_domain,
    )


@pytest.fixture(scope="module")
def own_ca_gateway(env: Env) -> Iterator[RunningGateway]:
    """A gateway asking for client certificates from the deployment's own PKI."""
    listener = ListenerConfig(port=0, client_auth="optional")
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, env.gateway.gateway.manifest, listener), env.loop
    ).result(timeout=30)
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


def _files(tmp_path: Path, issued: Issued) -> tuple[Path, Path]:
    cert, key = tmp_path / f"{issued.serial}.pem", tmp_path / f"{issued.serial}.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    return cert, key


def _status(env: Env, port: int, files: tuple[Path, Path]) -> int:
    context = ssl.create_default_context(cafile=str(env.ca_file))
    context.load_cert_chain(*files)
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/mtls/orders/1001")
        response = connection.getresponse()
        response.read()
    except (ssl.SSLError, ConnectionError, http.client.RemoteDisconnected):
        return 0  # refused at the handshake
    finally:
        connection.close()
    return response.status


def test_a_revoked_certificate_is_refused_without_a_restart(
    env: Env, pki: Pki, own_ca_gateway: RunningGateway, tmp_path: Path
) -> None:
    """Works, is revoked, then fails the handshake on new connections within seconds."""
    issued = pki.issue_client("cert-sync")
    files = _files(tmp_path, issued)
    assert _status(env, own_ca_gateway.port, files) == 200
    pki.revoke(issued.serial, "keyCompromise")
    deadline = time.monotonic() + 10
    status = 200
    while status != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        status = _status(env, own_ca_gateway.port, files)
    assert status == 0
    fresh = _files(tmp_path, pki.issue_client("cert-sync"))
    assert _status(env, own_ca_gateway.port, fresh) == 200  # others are unaffected


def test_the_crl_is_published_over_https(
    env: Env, pki: Pki, own_ca_gateway: RunningGateway
) -> None:
    """GET /pki/crl: a DER CRL signed by the issuing CA, listing revoked serials."""
    issued = pki.issue_client("cert-sync")
    pki.revoke(issued.serial, "superseded")
    deadline = time.monotonic() + 10
    while True:
        status, headers, _ = env.request("GET", "/pki/crl", port=own_ca_gateway.port)
        assert status == 200
        assert headers["content-type"] == "application/pkix-crl"
        context = ssl.create_default_context(cafile=str(env.ca_file))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", own_ca_gateway.port, context=context, timeout=10
        )
        connection.request("GET", "/pki/crl")
        crl = x509.load_der_x509_crl(connection.getresponse().read())
        connection.close()
        if crl.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is not None:
            break
        assert time.monotonic() < deadline, "the revocation never reached the published CRL"
        time.sleep(0.2)
    intermediate = x509.load_pem_x509_certificate(pki.chain_pem())
    assert crl.is_signature_valid(intermediate.public_key())  # type: ignore[arg-type]
    status, headers, body = env.request("GET", "/pki/crl/all.pem", port=own_ca_gateway.port)
    assert (status, headers["content-type"]) == (200, "application/x-pem-file")
    (listed,) = load_crls_pem(body.encode())  # one intermediate in use: one list
    assert listed.get_revoked_certificate_by_serial_number(int(issued.serial, 16)) is not None


class _Orders(BaseHTTPRequestHandler):
    """An upstream that answers every GET with an order, one request per connection."""

    def do_GET(self) -> None:
        body = json.dumps({"id": "1001"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # every call is a new connection
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet."""


@pytest.fixture
def upstream(pki: Pki, tmp_path: Path) -> Iterator[tuple[int, str]]:
    """An HTTPS upstream with a server certificate of the PKI: its port and serial."""
    issued = pki.issue_server(["localhost"])
    cert, key = _files(tmp_path, issued)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Orders)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], issued.serial
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_a_revoked_upstream_server_certificate_fails_the_next_connection(
    env: Env, pki: Pki, upstream: tuple[int, str], tmp_path: Path
) -> None:
    """``ca: pki:internal``: after ``pki revoke`` of the server's certificate, 502 tls_verification."""
    port, serial = upstream
    manifest = env.gateway.gateway.manifest
    erp = manifest.systems["erp"].model_copy(update={"url": f"https://localhost:{port}"})
    moved = manifest.model_copy(update={"systems": {**manifest.systems, "erp": erp}})
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, moved, ListenerConfig(port=0, client_auth="optional")),
        env.loop,
    ).result(timeout=30)
    try:
        client = _files(tmp_path, pki.issue_client("cert-sync"))
        assert _status(env, running.port, client) == 200
        pki.revoke(serial, "keyCompromise")
        deadline = time.monotonic() + 10
        status = 200
        while status == 200 and time.monotonic() < deadline:
            time.sleep(0.2)
            status = _status(env, running.port, client)
        assert status == 502
        failed = running.services.metrics.registry.get_sample_value(
            "interlock_upstream_errors_total", {"system": "erp", "kind": "tls_verification"}
        )
        assert failed is not None
        assert failed >= 1
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)
