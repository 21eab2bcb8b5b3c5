"""Data subjects captured end to end: a real request over TLS to the HTTPS sample ERP.

A second gateway on the shared deployment serves the harness manifest with
``subjects`` added to two routes. An observer wrapped around each route's
terminal (outside the capture) reads ``ctx.sightings`` once the answer is
back — what the lineage index will be given — while the caller's answer must
be exactly what it is without locators.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from interlock.config.manifest import Integration, Manifest, SubjectLocator
from interlock.gateway.context import RequestContext
from interlock.gateway.pipeline import Terminal
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.gateway.stages.subjects import SubjectCapture
from interlock.privacy.subjects import Sighting
from interlock.testing.gateway import Env

_LOCATORS: dict[str, list[dict[str, Any]]] = {
    "/v/orders/{id}": [
        {"kind": "order_id", "in": "path", "param": "id"},
        {"kind": "email", "in": "response", "json": "/customer/email"},
        # Minimised away by response_fields: the caller never receives it.
        {"kind": "tax_id", "in": "response", "json": "/customer/tax_id"},
    ],
    "/v/forward": [
        {"kind": "order_id", "in": "request", "json": "/order_id"},
        # request_fields removes it before forwarding: the upstream never receives it.
        {"kind": "email", "in": "request", "json": "/email"},
    ],
}


@dataclass
class Observed:
    """The sightings each correlation id ended with."""

    by_request: dict[str, list[Sighting]] = field(default_factory=dict)
    # The paths whose terminal is a SubjectCapture (before the observer wrapped it).
    capturing: set[str] = field(default_factory=set)

    def wrap(self, inner: Terminal) -> Terminal:
        async def observe(ctx: RequestContext) -> web.Response:
            try:
                return await inner(ctx)
            finally:
                self.by_request[ctx.correlation_id] = list(ctx.sightings)

        return observe


def _with_subjects(manifest: Manifest) -> Manifest:
    flow = manifest.integrations["validated"]
    routes = tuple(
        route.model_copy(
            update={
                "subjects": tuple(
                    SubjectLocator.model_validate(spec) for spec in _LOCATORS.get(route.path, [])
                )
            }
        )
        for route in flow.routes
    )
    changed: Integration = flow.model_copy(update={"routes": routes})
    integrations = {**manifest.integrations, "validated": changed}
    return manifest.model_copy(update={"integrations": integrations})


@pytest.fixture(scope="module")
def observed(env: Env) -> Iterator[tuple[RunningGateway, Observed]]:
    """A gateway serving the harness manifest with locators, its terminals observed."""
    manifest = _with_subjects(env.gateway.gateway.manifest)
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, manifest, ListenerConfig(port=0)), env.loop
    ).result(timeout=30)
    seen = Observed()
    pipelines = running.gateway.pipelines
    for route, pipeline in list(pipelines.items()):
        if isinstance(pipeline.terminal, SubjectCapture):
            seen.capturing.add(route.route.path)
        pipelines[route] = replace(pipeline, terminal=seen.wrap(pipeline.terminal))
    yield running, seen
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


def _seen(sightings: list[Sighting]) -> set[tuple[str, str, str, str]]:
    return {(s.kind, s.value, s.receiver, s.direction) for s in sightings}


def test_only_routes_with_locators_capture(observed: tuple[RunningGateway, Observed]) -> None:
    """The capture is the terminal's outermost wrapper there, and absent elsewhere."""
    _, seen = observed
    assert seen.capturing == set(_LOCATORS)


def test_a_path_parameter_and_the_minimised_response_are_sighted(
    env: Env, observed: tuple[RunningGateway, Observed]
) -> None:
    """GET /v/orders/1001: the id went both ways, the email to the caller, the tax id nowhere."""
    running, seen = observed
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request(
        "GET", "/v/orders/1001", {"Authorization": f"Bearer {token}"}, port=running.port
    )
    assert status == 200
    assert body == {
        "id": "1001",
        "status": "confirmed",
        "customer": {"email": "ada@example.com"},
    }
    assert _seen(seen.by_request[headers["x-request-id"]]) == {
        ("order_id", "1001", "upstream", "request"),
        ("order_id", "1001", "caller", "request"),
        ("email", "ada@example.com", "caller", "response"),
    }


def test_an_upstream_404_reaches_only_the_upstream(
    env: Env, observed: tuple[RunningGateway, Observed]
) -> None:
    """An order the ERP does not have: the id was sent to it; nothing came back."""
    running, seen = observed
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request(
        "GET", "/v/orders/4242", {"Authorization": f"Bearer {token}"}, port=running.port
    )
    assert status == 404
    assert _seen(seen.by_request[headers["x-request-id"]]) == {
        ("order_id", "4242", "upstream", "request"),
    }


def test_a_json_request_body_is_sighted_as_forwarded(
    env: Env, observed: tuple[RunningGateway, Observed]
) -> None:
    """request_fields removed the email before forwarding: only the order id was received."""
    running, seen = observed
    token, _ = env.key(["orders.write"])
    sent = {"order_id": "O-77", "email": "Hidden@Example.com", "lines": [{"sku": "SKU-1"}]}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    status, answer_headers, body = env.request(
        "POST", "/v/forward", headers, json.dumps(sent).encode(), port=running.port
    )
    assert status == 200
    assert json.loads(body["body"]) == {"order_id": "O-77", "lines": [{"sku": "SKU-1"}]}
    assert _seen(seen.by_request[answer_headers["x-request-id"]]) == {
        ("order_id", "O-77", "upstream", "request"),
    }


def test_a_refused_request_captures_nothing(
    env: Env, observed: tuple[RunningGateway, Observed]
) -> None:
    """Refused before the upstream (a schema-less bad id): no terminal, no sightings."""
    running, seen = observed
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request(
        "GET", "/v/orders/12", {"Authorization": f"Bearer {token}"}, port=running.port
    )
    assert status == 400
    assert headers["x-request-id"] not in seen.by_request
