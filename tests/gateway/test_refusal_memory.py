"""Refusing during a backend outage keeps the gateway's memory flat.

A refusal raised as one shared exception object grows that object's
``__traceback__`` by the frames of every request it is raised through, so each
refused request's frames (and the request itself) stay alive for good: during a
Redis or replay-store outage memory grows without bound. Every refusal must be
a fresh exception. The gateway answers over real HTTP (aiohttp's test server, no
TLS) so that each request is a whole request.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from unittest import mock

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import RawTestServer
from aiohttp.web import BaseRequest
from multidict import CIMultiDict
from yarl import URL

from interlock.audit import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import ReplayPolicy
from interlock.config.settings import Settings
from interlock.errors import Refusal
from interlock.gateway.app import Gateway
from interlock.gateway.audit_trail import GatewayAudit
from interlock.gateway.endpoints import Endpoints
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.pipeline import Backends, build_pipelines
from interlock.gateway.problems import REFUSALS
from interlock.gateway.routing import RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.stages.replay_guard import SignedRequestGuard
from interlock.gateway.upstream import Upstreams
from interlock.identity.apikeys import ApiKeys
from interlock.identity.grants import Grants, Principal
from interlock.limits import Decision, Limit, LimitsUnavailableError
from interlock.replay.signatures import ReplayStoreUnavailableError
from interlock.store import Deployment, initialise

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  r: {scopes: [orders.read]}
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
      - {method: GET, path: "/orders", upstream: erp, scope: orders.read,
         rate_limit: {per_client: 100000/min}}
"""
REQUESTS = 10_000
#: Allowed growth between request 1,000 and request 10,000 (a leak of one traceback per
#: refusal alone would be 9,000).
BOUND = 100
_PINNED = (TracebackType, FrameType, BaseRequest)


class RedisDown:
    """A shared limiter whose Redis is unreachable, failing closed."""

    blocking = False

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        raise LimitsUnavailableError("rate limits are unavailable")

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        raise LimitsUnavailableError("rate limits are unavailable")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """An initialised deployment on SQLite."""
    created = initialise(
        Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path / 's.db'}")
    )
    yield created
    created.close()


def _retained() -> int:
    """Live tracebacks, frames and requests: what a refusal kept alive would pin."""
    gc.collect()
    return sum(isinstance(o, _PINNED) for o in gc.get_objects())


async def _growth(count: int, refuse: Callable[[], Awaitable[None]]) -> int:
    """Tracebacks, frames and requests gained from call 1,000 to call ``count`` of ``refuse``.

    A refusal that keeps its request's frames alive adds a traceback per frame
    per call; nothing else in the process retains these, whatever other tests'
    threads allocate meanwhile.
    """
    baseline = 0
    for n in range(count):
        await refuse()
        if n == 999:
            baseline = _retained()
    return _retained() - baseline


def test_ten_thousand_refusals_in_a_redis_outage_keep_memory_flat(
    tmp_path: Path, deployment: Deployment
) -> None:
    """Every request is refused 503 (limits down, fail closed); memory stays within the bound."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    manifest = load_manifest(path)
    keys = ApiKeys(deployment.engine, deployment.keyring, manifest)
    token = keys.create("c", ["orders.read"]).token
    metrics = GatewayMetrics()
    routes = RouteTable.compile(manifest)
    upstreams = Upstreams(manifest, mock.MagicMock(), {}, metrics)
    names = GatewayNames("https://127.0.0.1", ["127.0.0.1"])
    authenticate = Authentication(keys, Grants(manifest), names=names)
    pipelines = build_pipelines(routes, authenticate, upstreams, Backends(limiter=RedisDown()))
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
    )
    statuses: set[int] = set()

    async def run() -> int:
        async with RawTestServer(gateway.handle) as server, ClientSession() as session:
            url = server.make_url("/orders")

            async def refuse() -> None:
                async with session.get(url, headers={"X-API-Key": token}) as response:
                    await response.read()
                    statuses.add(response.status)

            return await _growth(REQUESTS, refuse)

    try:
        growth = asyncio.run(run())
    finally:
        asyncio.run(gateway.close())
    assert statuses == {503}
    assert growth < BOUND, (
        f"{growth} more tracebacks, frames and requests after {REQUESTS - 1000} refusals"
    )


class StoreDown:
    """Request signatures whose nonce store (Redis or the database) is unreachable."""

    def verify(self, *_: object, **__: object) -> None:
        raise ReplayStoreUnavailableError("the replay store is down")


class Request:
    """The part of a request the replay guard reads: a fresh one per call."""

    def __init__(self) -> None:
        self.method = "GET"
        self.url = URL("https://gateway.example/orders")
        self.raw_path = "/orders"
        self.headers = CIMultiDict({"Signature-Input": 'sig1=("@method");created=1'})


class Context:
    """The part of a request's context the replay guard reads."""

    def __init__(self) -> None:
        self.request = Request()
        self.principal = Principal("c", frozenset({"orders.read"}), "key", method="api_key")

    async def read_body(self) -> bytes:
        return b""


def test_ten_thousand_refusals_in_a_replay_store_outage_keep_memory_flat() -> None:
    """The replay guard refuses 503 while its nonce store is down; memory stays within the bound."""
    guard = SignedRequestGuard(
        StoreDown(),  # type: ignore[arg-type]
        ReplayPolicy(nonce="required"),
        GatewayNames("https://gateway.example", ["gateway.example"]),
    )
    statuses: set[int] = set()

    async def refuse() -> None:
        try:
            await guard(Context())  # type: ignore[arg-type]
        except Refusal as refusal:
            statuses.add(REFUSALS[refusal.code].status)

    growth = asyncio.run(_growth(REQUESTS, refuse))
    assert statuses == {503}
    assert growth < BOUND, (
        f"{growth} more tracebacks, frames and requests after {REQUESTS - 1000} refusals"
    )
