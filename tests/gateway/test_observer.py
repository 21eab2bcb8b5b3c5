"""The request observer: one call per request, with the ids the caller and the trail see.

The gateway answers over real HTTP (aiohttp's test server, no TLS, no
upstream): the requests are refused before anything is forwarded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import RawTestServer

from interlock.audit import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.settings import Settings
from interlock.gateway.app import Gateway
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.endpoints import Endpoints
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.observer import RequestObserver, RequestSeen
from interlock.gateway.pipeline import Backends, build_pipelines
from interlock.gateway.routing import RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.upstream import Upstreams
from interlock.identity.apikeys import ApiKeys
from interlock.identity.grants import Grants
from interlock.limits import MemoryLimiter
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  r: {scopes: [orders.read, orders.write]}
clients:
  c: {auth: [api_key], roles: [r]}
integrations:
  f:
    source: erp
    target: erp
    client: c
    purpose: test
    legal_basis: contract
    retention: 1d
    routes:
      - {method: GET, path: "/orders", upstream: erp, scope: orders.read}
      - {method: POST, path: "/orders", upstream: erp, scope: orders.write}
"""


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment on SQLite."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    yield created
    created.close()


def _gateway(
    tmp_path: Path, deployment: Deployment, observer: RequestObserver
) -> tuple[Gateway, str]:
    """A gateway of MANIFEST with ``observer``, and an API key of client c (orders.read)."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    manifest = load_manifest(path)
    keys = ApiKeys(deployment.engine, deployment.keyring, manifest)
    token = keys.create("c", ["orders.read"]).token
    metrics = GatewayMetrics()
    routes = RouteTable.compile(manifest)
    vault = Vault(deployment.engine, deployment.keyring, audit=MemorySink())
    upstreams = Upstreams(manifest, vault, {}, metrics)
    names = GatewayNames("https://127.0.0.1", ["127.0.0.1"])
    authenticate = Authentication(keys, Grants(manifest), names=names)
    pipelines = build_pipelines(routes, authenticate, upstreams, Backends(limiter=MemoryLimiter()))
    gateway = Gateway(
        manifest,
        routes,
        pipelines,
        Endpoints([]),
        upstreams,
        metrics,
        GatewayAudit(MemorySink()),
        keys=keys,
        names=names,
        observer=observer,
    )
    return gateway, token


async def _call(
    gateway: Gateway, method: str, path: str, headers: dict[str, str]
) -> tuple[int, str, dict[str, object]]:
    """Status, X-Request-Id and the problem document of one request."""
    async with (
        RawTestServer(gateway.handle) as server,
        ClientSession() as session,
        session.request(method, server.make_url(path), headers=headers) as response,
    ):
        body = json.loads(await response.text())
        return response.status, response.headers["X-Request-Id"], body


def test_the_observer_hears_each_request_with_its_correlation_id(
    tmp_path: Path, deployment: Deployment
) -> None:
    """A refused call: the client, the path without its query, the status and the same id."""
    seen: list[RequestSeen] = []
    gateway, token = _gateway(tmp_path, deployment, seen.append)
    bearer = {"Authorization": f"Bearer {token}"}
    try:
        refused = asyncio.run(_call(gateway, "POST", "/orders", bearer))
        in_url = asyncio.run(_call(gateway, "GET", f"/orders?api_key={token}", {}))
    finally:
        asyncio.run(gateway.close())
    status, request_id, problem = refused
    assert status == 403
    assert problem["correlation_id"] == request_id
    assert seen[0] == RequestSeen(
        method="POST",
        path="/orders",
        route="POST /orders",
        status=403,
        outcome="refused",
        client="c",
        correlation_id=request_id,
    )
    # The key in the URL is refused and never reaches the observer: the path only.
    assert in_url[0] == 400
    assert seen[1].path == "/orders"
    assert seen[1].client is None
    assert seen[1].correlation_id == in_url[1]
    assert token not in repr(seen)
    assert len(seen) == 2


def test_an_observer_that_fails_does_not_fail_the_request(
    tmp_path: Path, deployment: Deployment
) -> None:
    """The answer is the same whether or not the observer raises."""

    def broken(_: RequestSeen) -> None:
        raise RuntimeError("observer down")

    gateway, token = _gateway(tmp_path, deployment, broken)
    try:
        status, _, problem = asyncio.run(
            _call(gateway, "POST", "/orders", {"Authorization": f"Bearer {token}"})
        )
    finally:
        asyncio.run(gateway.close())
    assert status == 403
    assert problem["status"] == 403
