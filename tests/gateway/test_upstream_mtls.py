"""Mutual TLS towards an upstream: the gateway presents its own PKI certificate, renewed in place."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator

import pytest

from interlock.config.loader import load_manifest
from interlock.crypto.keyfile import write_private_file
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki import ensure_local_ca
from interlock.testing.gateway import Env
from interlock.testing.sample_erp import SampleErp, start_sample_erp

MANIFEST = """\
version: 1
systems:
  strict-erp: {{url: "https://localhost:{port}", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key", client_cert: "pki:auto"}}
roles:
  reader: {{scopes: [orders.read]}}
clients:
  order-sync: {{auth: [api_key], roles: [reader]}}
integrations:
  strict:
    source: strict-erp
    target: strict-erp
    client: order-sync
    purpose: Test upstream mutual TLS
    legal_basis: contract
    retention: 30d
    routes:
      - {{method: GET, path: "/orders/{{id}}", upstream: strict-erp, upstream_path: "/sap/opu/odata/orders/{{id}}", scope: orders.read}}
      - {{method: GET, path: "/whoami", upstream: strict-erp, scope: orders.read}}
"""


@pytest.fixture(scope="module")
def strict_erp(env: Env, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SampleErp]:
    """A sample ERP that requires a client certificate from the deployment's PKI."""
    folder = tmp_path_factory.mktemp("strict-erp")
    ca = ensure_local_ca(
        env.deployment.engine, env.deployment.keyring, env.deployment.deployment_id
    )
    issued = ca.issue_server(["localhost"])
    cert, key = folder / "erp.pem", folder / "erp.key"
    cert.write_bytes(issued.certificate_pem)
    write_private_file(key, issued.private_key_pem)
    erp = asyncio.run_coroutine_threadsafe(
        start_sample_erp(cert, key, env.erp_token, client_ca=env.ca_file), env.loop
    ).result(timeout=30)
    yield erp
    asyncio.run_coroutine_threadsafe(erp.stop(), env.loop).result(timeout=30)


@pytest.fixture(scope="module")
def gateway(
    env: Env, strict_erp: SampleErp, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    """A gateway whose only system requires mutual TLS."""
    path = tmp_path_factory.mktemp("strict-manifest") / "interlock.yaml"
    path.write_text(MANIFEST.format(port=strict_erp.port))
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, load_manifest(path), ListenerConfig(port=0)), env.loop
    ).result(timeout=30)
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


def _identity(env: Env, gateway: RunningGateway, token: str) -> dict[str, str]:
    status, _, body = env.request(
        "GET", "/whoami", {"Authorization": f"Bearer {token}"}, port=gateway.port
    )
    assert status == 200, body
    return dict(body)


def test_the_gateway_presents_its_pki_certificate_upstream(
    env: Env, gateway: RunningGateway
) -> None:
    """client_cert: pki:auto — the upstream sees the gateway's SPIFFE identity."""
    token, _ = env.key(["orders.read"])
    seen = _identity(env, gateway, token)
    assert seen["identity"] == f"spiffe://{env.deployment.settings.trust_domain}/gateway"
    status, _, order = env.request(
        "GET", "/orders/1001", {"Authorization": f"Bearer {token}"}, port=gateway.port
    )
    assert status == 200
    assert order["id"] == "1001"


def test_renewal_swaps_the_certificate_without_dropping_traffic(
    env: Env, gateway: RunningGateway
) -> None:
    """Requests keep flowing while the client certificate is renewed; new ones use the new one."""
    token, _ = env.key(["orders.read"])
    before = _identity(env, gateway, token)["serial"]
    failures: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            status, _, _ = env.request(
                "GET", "/orders/1001", {"Authorization": f"Bearer {token}"}, port=gateway.port
            )
            if status != 200:
                failures.append(status)

    workers = [threading.Thread(target=traffic) for _ in range(3)]
    for worker in workers:
        worker.start()
    identity = gateway.certificates["upstream-client"]
    identity._renew()
    stop.wait(1.0)
    stop.set()
    for worker in workers:
        worker.join()
    assert failures == []
    # Open connections keep the old certificate; a new connection from the very same TLS
    # context (the gateway's pool for this system) presents the new one.
    context = gateway.gateway.upstreams.context("strict-erp")
    connection = http.client.HTTPSConnection("localhost", strict_port(gateway), context=context)
    connection.request("GET", "/whoami", headers={"Authorization": f"Bearer {env.erp_token}"})
    after = json.loads(connection.getresponse().read())["serial"]
    connection.close()
    assert identity.current is not None
    assert after == identity.current.serial.lower().lstrip("0")
    assert after != before


def strict_port(gateway: RunningGateway) -> int:
    """The strict ERP's port, from the manifest the gateway serves."""
    url = gateway.gateway.manifest.systems["strict-erp"].url
    return int(url.rsplit(":", 1)[1])
