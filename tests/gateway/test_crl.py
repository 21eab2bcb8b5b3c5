"""Revocation through the deployment's own PKI: the CRL is published, and enforced without a restart."""

from __future__ import annotations

import asyncio
import http.client
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from interlock.crypto.keyfile import write_private_file
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
