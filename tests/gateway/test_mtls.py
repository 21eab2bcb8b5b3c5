"""Mutual TLS at the listener, over real TLS connections: identities, refusals, bound tokens.

A second gateway on the harness' deployment asks for client certificates,
verified against a CA this test makes (so it can also make the bad ones).
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.x509 import Certificate

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    PrivateKey,
    certificate_pem,
    issue_client_certificate,
    issue_server_certificate,
    private_key_pem,
    self_signed_ca,
)
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.gateway.tls import ClientAuth
from interlock.testing.gateway import Env

IDENTITY = "spiffe://interlock.local/client/{}"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class ClientCA:
    """A CA the listener trusts for client certificates, and the files it writes."""

    certificate: Certificate
    key: PrivateKey
    folder: Path
    path: Path

    def client(self, name: str, label: str, **options: Any) -> tuple[Path, Path]:
        """Certificate and key files for ``name`` (``now``/``lifetime`` vary)."""
        lifetime = options.pop("lifetime", timedelta(days=1))
        cert, key = issue_client_certificate(
            self.certificate, self.key, IDENTITY.format(name), lifetime, **options
        )
        return self.files(label, certificate_pem(cert), private_key_pem(key))

    def files(self, label: str, cert_pem: bytes, key_pem: bytes) -> tuple[Path, Path]:
        """Write a certificate and its key (0600) as ``label``."""
        cert_file, key_file = self.folder / f"{label}.pem", self.folder / f"{label}.key"
        cert_file.write_bytes(cert_pem)
        write_private_file(key_file, key_pem)
        return cert_file, key_file


def _client_context(env: Env, files: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(env.ca_file))
    if files is not None:
        context.load_cert_chain(*files)
    return context


@pytest.fixture(scope="module")
def test_ca(tmp_path_factory: pytest.TempPathFactory) -> ClientCA:
    """The client-certificate CA."""
    folder = tmp_path_factory.mktemp("client-ca")
    # Valid from five days ago to five days ahead, so it can sign expired and future certificates.
    start = datetime.now(UTC) - timedelta(days=5)
    certificate, key = self_signed_ca("Test client CA", timedelta(days=10), now=start)
    path = folder / "client-ca.pem"
    path.write_bytes(certificate_pem(certificate))
    return ClientCA(certificate, key, folder, path)


def _gateway(env: Env, test_ca: ClientCA, mode: ClientAuth) -> Iterator[RunningGateway]:
    listener = ListenerConfig(port=0, client_auth=mode, client_ca=test_ca.path)
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, env.gateway.gateway.manifest, listener), env.loop
    ).result(timeout=30)
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


@pytest.fixture(scope="module")
def optional(env: Env, test_ca: ClientCA) -> Iterator[RunningGateway]:
    """A gateway whose listener asks for, but does not require, a client certificate."""
    yield from _gateway(env, test_ca, "optional")


@pytest.fixture(scope="module")
def required(env: Env, test_ca: ClientCA) -> Iterator[RunningGateway]:
    """A gateway whose listener requires a client certificate."""
    yield from _gateway(env, test_ca, "required")


def _files(test_ca: ClientCA, name: str, label: str, **options: Any) -> tuple[Path, Path]:
    return test_ca.client(name, label, **options)


def _get(  # noqa: PLR0917  (a test helper read at a glance)
    env: Env,
    port: int,
    path: str,
    files: tuple[Path, Path] | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    method: str = "GET",
) -> tuple[int, Any]:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, context=_client_context(env, files), timeout=10
    )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
    finally:
        connection.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        return response.status, raw


def _refused_at_handshake(env: Env, port: int, files: tuple[Path, Path] | None) -> None:
    """The TLS handshake (or, in TLS 1.3, the first read after it) fails."""
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.RemoteDisconnected)):
        _get(env, port, "/mtls/orders/1001", files)


def test_a_client_certificate_alone_authenticates_its_client(
    env: Env, optional: RunningGateway, test_ca: ClientCA
) -> None:
    """No Authorization header: the certificate's SPIFFE identity is the client."""
    status, body = _get(env, optional.port, "/mtls/orders/1001", _files(test_ca, "cert-sync", "ok"))
    assert status == 200, body
    assert body["id"] == "1001"


def test_a_route_requiring_mtls_refuses_other_credentials(
    env: Env, optional: RunningGateway
) -> None:
    """An API key on an mtls-only route, over a connection without a certificate: 401."""
    token, _ = env.key(["orders.read"])
    status, body = _get(
        env, optional.port, "/mtls/orders/1001", headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401
    assert body["detail"] == "this route requires a client certificate (mutual TLS)"
    status, body = _get(env, optional.port, "/mtls/orders/1001")
    assert status == 401


def test_a_certificate_of_a_client_without_mtls_is_refused(
    env: Env, optional: RunningGateway, test_ca: ClientCA
) -> None:
    """oauth-only does not list mtls: its certificate authenticates nobody."""
    status, body = _get(
        env, optional.port, "/mtls/orders/1001", _files(test_ca, "oauth-only", "nomtls")
    )
    assert status == 401
    assert "does not name a client" in body["detail"]


def test_required_refuses_a_connection_without_a_certificate(
    env: Env, required: RunningGateway, test_ca: ClientCA
) -> None:
    """client_auth required: no certificate, no connection; with one, a normal answer."""
    _refused_at_handshake(env, required.port, None)
    assert (
        _get(env, required.port, "/mtls/orders/1001", _files(test_ca, "cert-sync", "req"))[0] == 200
    )


@pytest.mark.parametrize("mode", ["optional", "required"])
def test_bad_certificates_fail_the_handshake(
    env: Env, optional: RunningGateway, required: RunningGateway, test_ca: ClientCA, mode: str
) -> None:
    """Expired, not yet valid, wrong EKU, unknown CA: refused in both modes."""
    port = optional.port if mode == "optional" else required.port
    past = datetime.now(UTC) - timedelta(days=3)
    future = datetime.now(UTC) + timedelta(days=3)
    expired = _files(test_ca, "cert-sync", f"expired-{mode}", now=past)
    not_yet = _files(test_ca, "cert-sync", f"future-{mode}", now=future)
    server_cert, server_key = issue_server_certificate(
        test_ca.certificate, test_ca.key, ["cert-sync.example"], timedelta(days=1)
    )
    wrong_eku = test_ca.files(
        f"eku-{mode}", certificate_pem(server_cert), private_key_pem(server_key)
    )
    stranger_ca, stranger_key = self_signed_ca("Unknown CA", timedelta(days=1))
    stranger = ClientCA(stranger_ca, stranger_key, test_ca.folder, test_ca.path)
    unknown = _files(stranger, "cert-sync", f"unknown-{mode}")
    for files in (expired, not_yet, wrong_eku, unknown):
        _refused_at_handshake(env, port, files)


def _token(env: Env, port: int, files: tuple[Path, Path] | None, **form: str) -> tuple[int, Any]:
    body = urlencode({"grant_type": "client_credentials", **form}).encode()
    return _get(env, port, "/oauth2/token", files, FORM, body, method="POST")


def test_tls_client_auth_issues_a_certificate_bound_token(
    env: Env, optional: RunningGateway, test_ca: ClientCA
) -> None:
    """RFC 8705: client_id + certificate gets a token bound to it; elsewhere it is refused."""
    mine = _files(test_ca, "cert-sync", "bound")
    status, body = _token(env, optional.port, mine, client_id="cert-sync")
    assert status == 200, body
    token = body["access_token"]
    env.issued_tokens.append(token)
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert set(claims["cnf"]) == {"x5t#S256"}
    bearer = {"Authorization": f"Bearer {token}"}
    assert _get(env, optional.port, "/mtls/orders/1001", mine, bearer)[0] == 200
    assert _get(env, optional.port, "/orders/1001", mine, bearer)[0] == 200
    other = _files(test_ca, "cert-sync", "other")  # the same client, another certificate
    status, body = _get(env, optional.port, "/orders/1001", other, bearer)
    assert status == 401
    assert "bound to a client certificate" in body["detail"]
    assert _get(env, optional.port, "/orders/1001", None, bearer)[0] == 401


def test_tls_client_auth_refuses_a_certificate_of_another_client(
    env: Env, optional: RunningGateway, test_ca: ClientCA
) -> None:
    """The certificate must name the client_id asked for."""
    status, body = _token(
        env, optional.port, _files(test_ca, "cert-sync", "mismatch"), client_id="oauth-only"
    )
    assert (status, body["error"]) == (401, "invalid_client")


def test_metadata_offers_tls_client_auth_on_an_mtls_listener(
    env: Env, optional: RunningGateway
) -> None:
    """RFC 8414 / RFC 8705 §3.3: the method is offered where certificates are asked for."""
    status, document = _get(env, optional.port, "/.well-known/oauth-authorization-server")
    assert status == 200
    assert "tls_client_auth" in document["token_endpoint_auth_methods_supported"]
    status, document = _get(env, env.port, "/.well-known/oauth-authorization-server")
    assert "tls_client_auth" not in document["token_endpoint_auth_methods_supported"]
