"""The Idempotency-Key stage: first answer stored, replayed, 409, 422, 400, pass-through."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from aiohttp import web
from aiohttp.streams import StreamReader
from aiohttp.test_utils import make_mocked_request

from interlock.config.loader import load_manifest
from interlock.errors import Refusal
from interlock.gateway.context import RequestContext
from interlock.gateway.pipeline import Backends, build_pipelines
from interlock.gateway.problems import problem_response
from interlock.gateway.routing import RouteTable
from interlock.gateway.stages.idempotency import (
    DEFAULT_TTL,
    REPLAYED_HEADER,
    IdempotencyPolicy,
    IdempotentForward,
    parse_idempotency_key,
)
from interlock.identity.grants import Principal
from interlock.replay.idempotency import IdempotencyOutcome, MemoryIdempotency, Unreadable

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
    retention: 1d
    routes:
      - {method: POST, path: "/orders", upstream: erp, scope: orders.write, idempotency: required}
      - {method: GET, path: "/orders", upstream: erp, scope: orders.write}
"""
KEY = '"8e03978e-40d5-43e8-bc93-6894a57f9324"'
Terminal = Callable[[RequestContext], Awaitable[web.Response]]


@pytest.fixture
def table(tmp_path: Path) -> RouteTable:
    """The compiled routes of the test manifest."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST)
    return RouteTable.compile(load_manifest(path))


class Upstream:
    """A fake terminal: counts calls, answers 201 (or ``status``), may wait on ``gate``."""

    def __init__(self, status: int = 201) -> None:
        """Answer with ``status``."""
        self.calls = 0
        self.status = status
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def __call__(self, ctx: RequestContext) -> web.Response:
        """Echo the body, as an upstream creating a resource would."""
        self.calls += 1
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        body = await ctx.read_body()
        return web.Response(
            status=self.status,
            body=b'{"created": ' + body + b"}",
            headers={
                "Content-Type": "application/json",
                "Location": f"/orders/{self.calls}",
                "Set-Cookie": "session=upstream",
                "X-Request-Id": ctx.correlation_id,
            },
        )


def _ctx(
    table: RouteTable,
    body: bytes = b'{"n": 1}',
    *,
    method: str = "POST",
    key: str | None = KEY,
    client: str = "c",
) -> RequestContext:
    headers = {"Idempotency-Key": key} if key is not None else {}
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    reader.feed_data(body)
    reader.feed_eof()
    request = make_mocked_request(method, "/orders", headers=headers, payload=reader)
    principal = Principal(client=client, scopes=frozenset({"orders.write"}), credential="test")
    match = table.match(method, ("orders",))
    return RequestContext(request, "corr-" + method, match, "", principal)


def _forward(upstream: Terminal, mode: str = "required") -> IdempotentForward:
    policy = IdempotencyPolicy("required" if mode == "required" else "optional")
    return IdempotentForward(MemoryIdempotency(), policy, upstream)


async def _refusal(call: Awaitable[web.Response]) -> dict[str, object]:
    with pytest.raises(Refusal) as caught:
        await call
    body = json.loads(problem_response(caught.value, "corr", "/orders").body)  # type: ignore[arg-type]
    extra = {k: v for k, v in body.items() if k not in _MEMBERS}
    return {"status": body["status"], "code": caught.value.code, "extra": extra}


# RFC 9457 §3.1 and ours: every other member of a problem is an extension.
_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "correlation_id"})


def test_first_request_is_forwarded_and_a_retry_replays_it(table: RouteTable) -> None:
    """201 first; the retry gets the same status, body and safe headers, marked replayed."""

    async def scenario() -> None:
        upstream = Upstream()
        forward = _forward(upstream)
        first = await forward(_ctx(table))
        second = await forward(_ctx(table))
        assert upstream.calls == 1
        assert first.status == second.status == 201
        assert first.body == second.body == b'{"created": {"n": 1}}'
        assert second.headers[REPLAYED_HEADER] == "?1"
        assert REPLAYED_HEADER not in first.headers
        assert second.headers["Location"] == "/orders/1"
        assert second.headers["Content-Type"] == "application/json"
        assert "Set-Cookie" not in second.headers

    asyncio.run(scenario())


def test_the_same_key_with_another_body_is_refused_with_422(table: RouteTable) -> None:
    """Draft §2.7: a key reused with a different payload."""

    async def scenario() -> None:
        upstream = Upstream()
        forward = _forward(upstream)
        await forward(_ctx(table))
        refusal = await _refusal(forward(_ctx(table, b'{"n": 2}')))
        assert refusal["status"] == 422
        assert refusal["code"] == "idempotency-key-reused"
        assert upstream.calls == 1

    asyncio.run(scenario())


def test_a_retry_while_the_first_is_in_flight_is_refused_with_409(table: RouteTable) -> None:
    """Draft §2.7: a concurrent request with the same key; the first then completes."""

    async def scenario() -> None:
        upstream = Upstream()
        upstream.gate = asyncio.Event()
        forward = _forward(upstream)
        first = asyncio.create_task(forward(_ctx(table)))
        await upstream.entered.wait()
        refusal = await _refusal(forward(_ctx(table)))
        assert refusal["status"] == 409
        assert refusal["code"] == "idempotency-key-in-flight"
        upstream.gate.set()
        assert (await first).status == 201
        assert upstream.calls == 1

    asyncio.run(scenario())


def test_a_missing_key_is_refused_with_400_when_required(table: RouteTable) -> None:
    """Draft §2.7: the header is required for this route and absent."""

    async def scenario() -> None:
        upstream = Upstream()
        refusal = await _refusal(_forward(upstream)(_ctx(table, key=None)))
        assert refusal["status"] == 400
        assert refusal["code"] == "idempotency-key-missing"
        assert upstream.calls == 0

    asyncio.run(scenario())


def test_a_missing_key_passes_when_optional(table: RouteTable) -> None:
    """Optional: without a key the request is forwarded, every time."""

    async def scenario() -> None:
        upstream = Upstream()
        forward = _forward(upstream, "optional")
        await forward(_ctx(table, key=None))
        await forward(_ctx(table, key=None))
        assert upstream.calls == 2

    asyncio.run(scenario())


@pytest.mark.parametrize(
    "value", ["unquoted", '""', '"' + "x" * 256 + '"', '"tab\there"', '"a\\b"', '"a"b"']
)
def test_a_malformed_key_is_refused_with_400(value: str) -> None:
    """Draft §2.1: an sf-string of 1 to 255 printable characters."""
    with pytest.raises(Refusal) as caught:
        parse_idempotency_key([value])
    assert caught.value.code == "idempotency-key-malformed"
    assert problem_response(caught.value, "corr", "/orders").status == 400


def test_two_key_fields_are_refused() -> None:
    """Draft §2.1: clients must not send more than one field."""
    with pytest.raises(Refusal):
        parse_idempotency_key([KEY, KEY])


def test_escapes_are_decoded() -> None:
    """RFC 9651 §3.3.3: backslash escapes a quote or a backslash."""
    assert parse_idempotency_key(['"a\\"b\\\\c"']) == 'a"b\\c'
    assert parse_idempotency_key(["  " + KEY]) == KEY.strip('"')


def test_get_passes_through_untouched(table: RouteTable) -> None:
    """Safe methods are idempotent already: no record, no replay."""

    async def scenario() -> None:
        upstream = Upstream(200)
        forward = _forward(upstream)
        await forward(_ctx(table, method="GET"))
        second = await forward(_ctx(table, method="GET"))
        assert upstream.calls == 2
        assert REPLAYED_HEADER not in second.headers

    asyncio.run(scenario())


def test_two_clients_may_use_the_same_key(table: RouteTable) -> None:
    """Keys are per client (draft §5): another client's key is its own."""

    async def scenario() -> None:
        upstream = Upstream()
        forward = _forward(upstream)
        await forward(_ctx(table, client="c"))
        other = await forward(_ctx(table, client="d"))
        assert upstream.calls == 2
        assert REPLAYED_HEADER not in other.headers

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_transient_failure_is_not_stored(table: RouteTable, status: int) -> None:
    """5xx and 429 say "try again": the retry is forwarded, not answered from the record."""

    async def scenario() -> None:
        upstream = Upstream(status)
        forward = _forward(upstream)
        await forward(_ctx(table))
        upstream.status = 201
        second = await forward(_ctx(table))
        assert upstream.calls == 2
        assert second.status == 201

    asyncio.run(scenario())


def test_a_client_error_is_stored_and_replayed(table: RouteTable) -> None:
    """Draft §2.6: the result of the completed operation, success or error, is replayed."""

    async def scenario() -> None:
        upstream = Upstream(400)
        forward = _forward(upstream)
        await forward(_ctx(table))
        second = await forward(_ctx(table))
        assert upstream.calls == 1
        assert second.status == 400
        assert second.headers[REPLAYED_HEADER] == "?1"

    asyncio.run(scenario())


def test_an_upstream_refusal_abandons_the_key(table: RouteTable) -> None:
    """The gateway's own 502/504 (a Refusal from the terminal) lets a retry through."""

    async def scenario() -> None:
        upstream = Upstream()

        async def failing(ctx: RequestContext) -> web.Response:
            if upstream.calls == 0:
                upstream.calls += 1
                raise Refusal("upstream-failure", "down")
            return await upstream(ctx)

        forward = _forward(failing)
        with pytest.raises(Refusal):
            await forward(_ctx(table))
        assert (await forward(_ctx(table))).status == 201

    asyncio.run(scenario())


def test_a_response_too_large_to_keep_answers_409_on_retry(table: RouteTable) -> None:
    """Processed but not replayable: the retry is refused rather than run twice."""

    async def scenario() -> None:
        upstream = Upstream()
        policy = IdempotencyPolicy("required", max_stored_bytes=4)
        forward = IdempotentForward(MemoryIdempotency(), policy, upstream)
        assert (await forward(_ctx(table))).status == 201
        refusal = await _refusal(forward(_ctx(table)))
        assert refusal["status"] == 409
        assert refusal["code"] == "idempotency-key-completed"
        assert refusal["extra"] == {"original_status": 201}
        assert upstream.calls == 1

    asyncio.run(scenario())


def test_problems_render_as_rfc9457(table: RouteTable) -> None:
    """The refusal renders as application/problem+json with our problem type."""

    async def scenario() -> None:
        with pytest.raises(Refusal) as caught:
            await _forward(Upstream())(_ctx(table, key=None))
        response = problem_response(caught.value, "corr", "/orders")
        assert response.content_type == "application/problem+json"
        assert isinstance(response.body, bytes)
        body = json.loads(response.body)
        assert body["type"] == "urn:interlock:problem:idempotency-key-missing"
        assert body["status"] == 400

    asyncio.run(scenario())


class _Recording(MemoryIdempotency):
    """The memory store, noting the ttl of every record begun."""

    def __init__(self) -> None:
        super().__init__()
        self.ttls: list[timedelta] = []

    def begin(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        self.ttls.append(ttl)
        return super().begin(scope, key, fingerprint, ttl, lease)


@pytest.mark.parametrize(("retention", "ttl"), [("1h", timedelta(hours=1)), ("1d", DEFAULT_TTL)])
def test_records_live_no_longer_than_the_integrations_retention(
    tmp_path: Path, retention: str, ttl: timedelta
) -> None:
    """A stored response is the integration's data: kept 24 h at most, less if its retention
    is shorter."""
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST.replace("retention: 1d", f"retention: {retention}"))
    routes = RouteTable.compile(load_manifest(path))
    store = _Recording()
    pipelines = build_pipelines(routes, mock.Mock(), Upstream(), Backends(idempotency=store))
    (post,) = [p for r, p in pipelines.items() if r.route.method == "POST"]

    async def scenario() -> None:
        assert (await post.terminal(_ctx(routes))).status == 201

    asyncio.run(scenario())
    assert store.ttls == [ttl]


def test_a_stored_response_that_does_not_open_is_refused_as_processed(table: RouteTable) -> None:
    """A record whose sealed response cannot be opened is never replayed nor re-run: 409."""

    class Unopenable(MemoryIdempotency):
        def begin(
            self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
        ) -> IdempotencyOutcome:
            return Unreadable()

    async def scenario() -> None:
        upstream = Upstream()
        forward = IdempotentForward(Unopenable(), IdempotencyPolicy("required"), upstream)
        refusal = await _refusal(forward(_ctx(table)))
        assert (refusal["status"], refusal["code"]) == (409, "idempotency-key-completed")
        assert upstream.calls == 0

    asyncio.run(scenario())


def test_a_request_outliving_four_fifths_of_its_lease_is_cut_before_a_retry_takes_over(
    table: RouteTable,
) -> None:
    """The lease must outlive the forward: a slow upstream (or a queue for a pool slot) used to
    keep the first request going past its lease, and the retry that took the record over was
    forwarded too — two POSTs at once, what the key exists to prevent. Now the first is cut
    (504, record released) before the lease ends, so at no time are two in flight."""

    async def scenario() -> None:
        lease = timedelta(seconds=0.5)
        in_flight, most = 0, 0

        async def slow(ctx: RequestContext) -> web.Response:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                await asyncio.sleep(30)  # an upstream that trickles, or a saturated pool
                return web.Response(status=201)
            finally:
                in_flight -= 1

        store = MemoryIdempotency()
        forward = IdempotentForward(store, IdempotencyPolicy("required", lease=lease), slow)
        first = asyncio.create_task(forward(_ctx(table)))
        await asyncio.sleep(0.1)
        refusal = await _refusal(forward(_ctx(table)))
        assert refusal["code"] == "idempotency-key-in-flight"
        started = asyncio.get_running_loop().time()
        cut = await asyncio.wait_for(_refusal(first), timeout=2 * lease.total_seconds())
        assert cut["status"] == 504
        assert cut["code"] == "upstream-timeout"
        assert asyncio.get_running_loop().time() - started < lease.total_seconds()
        assert in_flight == 0
        # The record was released: the retry is processed now, alone.
        retry = asyncio.create_task(forward(_ctx(table)))
        await asyncio.sleep(0.1)
        assert most == 1
        retry.cancel()

    asyncio.run(scenario())
