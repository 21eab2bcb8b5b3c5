"""SubjectCapture: the data subjects a forwarded request carried, on the request context."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from interlock.config.loader import load_manifest
from interlock.config.manifest import SubjectLocator
from interlock.errors import ConfigError, Refusal
from interlock.gateway.context import RequestContext
from interlock.gateway.pipeline import build_pipelines
from interlock.gateway.routing import RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.stages.subjects import SubjectCapture
from interlock.gateway.stages.validate import MinimisedForward
from interlock.gateway.upstream_errors import UpstreamServerError
from interlock.privacy.subjects import Found, RouteSubjects

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.internal", location: DE}
roles:
  r: {scopes: [orders.write]}
clients:
  c: {auth: [api_key], roles: [r]}
integrations:
  f:
    source: erp
    target: erp
    client: c
    purpose: test
    legal_basis: contract
    data_categories: [user.contact.email]
    retention: 1d
    subjects:
      - {kind: customer_id, in: path, param: id}
    routes:
      - method: POST
        path: /customers/{id}/orders
        upstream: erp
        scope: orders.write
        response_fields: [id, email]
        subjects:
          - {kind: email, in: request, json: /email}
          - {kind: email, in: response, json: /email}
  g:
    source: erp
    target: erp
    client: c
    purpose: test without subjects
    legal_basis: contract
    retention: 1d
    routes:
      - {method: POST, path: "/plain", upstream: erp, scope: orders.write}
"""


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    """The compiled routes of the test manifest."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return RouteTable.compile(load_manifest(path))


def _ctx(table: RouteTable, body: dict[str, Any], customer: str = "C-1") -> RequestContext:
    raw = json.dumps(body).encode()
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(raw)
    reader.feed_eof()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(raw))}
    path = f"/customers/{customer}/orders"
    request = make_mocked_request("POST", path, headers=headers, payload=reader)
    match = table.match("POST", ("customers", customer, "orders"))
    ctx = RequestContext(request, "corr", match, "")
    ctx.body, ctx.parsed = raw, body
    return ctx


def _capture(table: RouteTable, forward: Any) -> SubjectCapture:
    route = table.routes[0]
    subjects = RouteSubjects.for_route(route.integration.subjects, route.route)
    return SubjectCapture(subjects, forward, route.label)


def _answer(status: int, body: dict[str, Any]) -> Any:
    async def forward(ctx: RequestContext) -> web.Response:
        return web.json_response(body, status=status)

    return forward


def _seen(ctx: RequestContext) -> set[tuple[str, str, str, str]]:
    return {(s.kind, s.value, s.receiver, s.direction) for s in ctx.sightings}


def test_a_2xx_answer_gives_request_and_response_sightings(table: RouteTable) -> None:
    """Path, request body and response: the upstream got the request, the caller the answer."""

    async def scenario() -> None:
        ctx = _ctx(table, {"email": "Req@Example.com"})
        response = await _capture(table, _answer(201, {"email": "Resp@example.com"}))(ctx)
        assert response.status == 201  # relayed untouched
        assert _seen(ctx) == {
            ("customer_id", "C-1", "upstream", "request"),
            ("customer_id", "C-1", "caller", "request"),
            ("email", "req@example.com", "upstream", "request"),
            ("email", "resp@example.com", "caller", "response"),
        }
        assert (ctx.subjects_unparsed, ctx.subjects_overflow) == (0, 0)

    asyncio.run(scenario())


def test_an_error_answer_reaches_only_the_upstream(table: RouteTable) -> None:
    """A 404: the upstream received the request; the caller received no data."""

    async def scenario() -> None:
        ctx = _ctx(table, {"email": "req@example.com"})
        await _capture(table, _answer(404, {"email": "resp@example.com"}))(ctx)
        assert {s.receiver for s in ctx.sightings} == {"upstream"}
        assert len(ctx.sightings) == 2

    asyncio.run(scenario())


def test_a_withheld_5xx_records_the_forwarded_request_and_still_raises(table: RouteTable) -> None:
    """The upstream has the data even though it failed; the caller still gets its 502."""

    async def failing(ctx: RequestContext) -> web.Response:
        raise UpstreamServerError("upstream-error", "failed")

    async def scenario() -> None:
        ctx = _ctx(table, {"email": "req@example.com"})
        with pytest.raises(UpstreamServerError):
            await _capture(table, failing)(ctx)
        assert _seen(ctx) == {
            ("customer_id", "C-1", "upstream", "request"),
            ("email", "req@example.com", "upstream", "request"),
        }

    asyncio.run(scenario())


def test_a_request_that_never_reached_the_upstream_records_nothing(table: RouteTable) -> None:
    """A timeout or a refusal: as on the audit trail, nothing was forwarded."""

    async def timing_out(ctx: RequestContext) -> web.Response:
        raise Refusal("upstream-timeout", "timed out")

    async def scenario() -> None:
        ctx = _ctx(table, {"email": "req@example.com"})
        with pytest.raises(Refusal):
            await _capture(table, timing_out)(ctx)
        assert ctx.sightings == []

    asyncio.run(scenario())


def test_large_bodies_are_read_off_the_loop_with_the_same_result(table: RouteTable) -> None:
    """Past 64 KiB the extraction runs in a thread; what it finds is the same."""

    async def scenario() -> None:
        ctx = _ctx(table, {"email": "big@example.com", "padding": "x" * 70_000})
        with mock.patch("asyncio.to_thread", wraps=asyncio.to_thread) as to_thread:
            await _capture(table, _answer(200, {"email": "big@example.com"}))(ctx)
        assert to_thread.called
        assert ("email", "big@example.com", "caller", "response") in _seen(ctx)

    asyncio.run(scenario())


def test_a_failing_extraction_never_fails_the_answered_request(table: RouteTable) -> None:
    """The upstream has acted: the caller gets its answer, the failure is counted."""

    class Broken(RouteSubjects):
        def from_response(self, body: bytes | None, media_type: str | None, status: int) -> Found:
            raise RuntimeError("secret@example.com")

    async def scenario() -> None:
        route = table.routes[0]
        subjects = Broken.for_route(route.integration.subjects, route.route)
        ctx = _ctx(table, {"email": "req@example.com"})
        answer = _answer(200, {"email": "x@example.com"})
        response = await SubjectCapture(subjects, answer, route.label)(ctx)
        assert response.status == 200
        assert ctx.sightings == []
        assert ctx.subjects_unparsed == 1

    asyncio.run(scenario())


def test_the_capture_wraps_the_minimised_terminal_only_on_routes_with_locators(
    table: RouteTable,
) -> None:
    """Outermost (it sees the response as relayed); routes without locators pay nothing."""

    async def forward(ctx: RequestContext) -> web.Response:
        return web.Response()

    pipelines = build_pipelines(table, mock.Mock(spec=Authentication), forward)
    with_subjects, plain = (pipelines[route] for route in table.routes)
    assert isinstance(with_subjects.terminal, SubjectCapture)
    assert isinstance(with_subjects.terminal._forward, MinimisedForward)
    assert plain.terminal is forward


def test_a_locator_that_does_not_compile_fails_the_build_naming_the_route(tmp_path: Path) -> None:
    """A manifest that skipped interlock validate still cannot serve a broken locator."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    manifest = load_manifest(path)
    flow = manifest.integrations["f"]
    broken = SubjectLocator.model_validate({"kind": "email", "in": "request", "json": "$.["})
    route = flow.routes[0].model_copy(update={"subjects": (broken,)})
    flows = {**manifest.integrations, "f": flow.model_copy(update={"routes": (route,)})}
    table = RouteTable.compile(manifest.model_copy(update={"integrations": flows}))

    async def forward(ctx: RequestContext) -> web.Response:
        return web.Response()

    with pytest.raises(ConfigError, match=r"POST /customers/\{id\}/orders: subjects: .*JSONPath"):
        build_pipelines(table, mock.Mock(spec=Authentication), forward)
