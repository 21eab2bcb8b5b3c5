"""The listener hands the verified client certificate to the pipeline (for mutual TLS)."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import ssl
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.serialization import Encoding

from interlock.crypto.keyfile import write_private_file
from interlock.crypto.pkix import (
    certificate_pem,
    issue_client_certificate,
    load_certificate_pem,
    private_key_pem,
    self_signed_ca,
)
from interlock.gateway.context import RequestContext
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki import ensure_local_ca
from interlock.testing.gateway import Env


class _Recorder:
    """A terminal stage that answers with the SHA-256 of the peer certificate it was handed."""

    async def __call__(self, ctx: RequestContext) -> web.Response:
        der = ctx.peer_certificate
        return web.json_response({"peer": hashlib.sha256(der).hexdigest() if der else None})

    async def close(self) -> None:
        """Nothing to close."""


@pytest.fixture
def mtls_gateway(env: Env) -> Iterator[RunningGateway]:
    """A second gateway on the same deployment that asks for client certificates."""
    listener = ListenerConfig(port=0, client_ca=env.ca_file)
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, env.gateway.gateway.manifest, listener), env.loop
    ).result(timeout=30)
    running.replace(running.gateway.manifest, _Recorder())  # type: ignore[arg-type]
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


def _call(port: int, context: ssl.SSLContext, token: str) -> dict[str, object]:
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    try:
        connection.request("GET", "/orders/1", headers={"Authorization": f"Bearer {token}"})
        body: dict[str, object] = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    return body


def _client_context(
    env: Env, tmp_path: Path, cert: bytes | None, key: bytes | None
) -> ssl.SSLContext:
    context = env.context()
    if cert is not None and key is not None:
        (tmp_path / "client.pem").write_bytes(cert)
        write_private_file(tmp_path / "client.key", key)
        context.load_cert_chain(tmp_path / "client.pem", tmp_path / "client.key")
    return context


def test_verified_client_certificate_reaches_the_pipeline(
    env: Env, mtls_gateway: RunningGateway, tmp_path: Path
) -> None:
    """A certificate from the trusted CA arrives in the request context, byte for byte."""
    ca = ensure_local_ca(
        env.deployment.engine, env.deployment.keyring, env.deployment.deployment_id
    )
    issued = ca.issue_client("spiffe://interlock.test/client/order-sync")
    token, _ = env.key(["orders.read"])
    body = _call(
        mtls_gateway.port,
        _client_context(env, tmp_path, issued.certificate_pem, issued.private_key_pem),
        token,
    )
    der = load_certificate_pem(issued.certificate_pem).public_bytes(Encoding.DER)
    assert body == {"peer": hashlib.sha256(der).hexdigest()}


def test_no_client_certificate_means_none(
    env: Env, mtls_gateway: RunningGateway, tmp_path: Path
) -> None:
    """A client that sends no certificate is still served; the context says None."""
    token, _ = env.key(["orders.read"])
    assert _call(mtls_gateway.port, _client_context(env, tmp_path, None, None), token) == {
        "peer": None
    }


def test_certificate_from_an_untrusted_ca_fails_the_handshake(
    env: Env, mtls_gateway: RunningGateway, tmp_path: Path
) -> None:
    """A presented certificate is always verified; one from an unknown CA is refused."""
    rogue_ca, rogue_key = self_signed_ca("Rogue", timedelta(days=1))
    cert, key = issue_client_certificate(
        rogue_ca, rogue_key, "spiffe://x/client/y", timedelta(days=1)
    )
    token, _ = env.key(["orders.read"])
    context = _client_context(env, tmp_path, certificate_pem(cert), private_key_pem(key))
    with pytest.raises((ssl.SSLError, ConnectionResetError, http.client.RemoteDisconnected)):
        _call(mtls_gateway.port, context, token)
