"""Persons identified in a request: a durable audit entry that counts them, lineage rows by hash.

Most tests fill ``ctx.sightings`` with a test-only terminal (cases the sample
ERP cannot produce on demand), to test the gateway's side: the audit entry,
the lineage rows and that nothing holds the identifier in clear. The last one
runs the real ``subjects`` locators end to end, through to ``trace_subject``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.audit.storage import create_audit_engines
from interlock.config.manifest import Manifest, SubjectLocator
from interlock.gateway.context import RequestContext
from interlock.gateway.pipeline import Pipeline, Terminal
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.privacy.lineage import LineageIndex, LineageRecord
from interlock.privacy.subjects import Sighting
from interlock.privacy.trace import trace_subject
from interlock.sdk.audit import open_checkpoint, verify_entry
from interlock.testing.gateway import Env, running_gateway

ADA = "ada@example.com"  # the sample ERP's customer of order 1001
# Called before the upstream call (response None: request locators) and after it.
Identify = Callable[[RequestContext, web.Response | None], list[Sighting]]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway of its own (SQLite store and audit log, files to grep)."""
    with running_gateway(tmp_path_factory.mktemp("lineage")) as running:
        yield running


def _identifying(terminal: Terminal, identify: Identify) -> Terminal:
    async def run(ctx: RequestContext) -> web.Response:
        ctx.sightings.extend(identify(ctx, None))
        response = await terminal(ctx)
        ctx.sightings.extend(identify(ctx, response))
        return response

    return run


def _customer(ctx: RequestContext, response: web.Response | None) -> list[Sighting]:
    """The order id in the path (to the upstream), the customer's email in the answer."""
    if response is None:
        return [Sighting("customer_id", ctx.match.values["id"], "upstream", "request")]
    if isinstance(response.body, bytes) and response.status == 200:
        email = json.loads(response.body)["customer"]["email"].lower()
        return [Sighting("email", email, "caller", "response")]
    return []


def _order_only(ctx: RequestContext, response: web.Response | None) -> list[Sighting]:
    """The order id in the path (to the upstream), nothing from the answer."""
    if response is None:
        return [Sighting("customer_id", ctx.match.values["id"], "upstream", "request")]
    return []


def _before(*sightings: Sighting) -> Identify:
    return lambda ctx, response: list(sightings) if response is None else []


@pytest.fixture
def identifying(env: Env) -> Iterator[Callable[[str, Identify], None]]:
    """Make a route's pipeline report sightings; restored afterwards."""
    pipelines = env.gateway.gateway.pipelines
    saved = dict(pipelines)

    def install(label: str, identify: Identify) -> None:
        route = next(r for r in pipelines if r.label == label)
        old = pipelines[route]
        pipelines[route] = Pipeline(
            old.stages, _identifying(old.terminal, identify), old.rate_limit
        )

    yield install
    pipelines.clear()
    pipelines.update(saved)


def _lineage(env: Env) -> LineageIndex:
    lineage = env.gateway.services.lineage
    assert lineage.flush() is True
    return lineage


def _index(env: Env, correlation_id: str) -> int:
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.idx, BODIES.c.body)).all()
    finally:
        engine.dispose()
    return next(int(r.idx) for r in rows if json.loads(r.body)["correlation_id"] == correlation_id)


def _rows(env: Env, kind: str, value: str) -> list[LineageRecord]:
    lineage = _lineage(env)
    return lineage.find(lineage.hasher.digest(kind, value))


def _database_bytes(env: Env) -> bytes:
    data = Path(env.deployment.settings.data_dir)
    files = [p for p in Path(data.parent).rglob("*.db*") if p.is_file()]
    assert any(p.name == "store.db" for p in files)
    assert any(p.name == "audit.db" for p in files)
    return b"".join(p.read_bytes() for p in files)


def test_an_identified_person_is_counted_on_the_trail_and_recorded_by_hash(
    env: Env, identifying: Callable[[str, Identify], None]
) -> None:
    identifying("GET /orders/{id}", _customer)
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert status == 200
    assert body["customer"]["email"] == ADA
    correlation_id = headers["x-request-id"]
    (entry,) = env.audit_entries(correlation_id, "gateway.request")
    assert entry["details"]["subjects"] == 2  # how many persons (identifiers), never who
    assert entry["subjects"] == []  # the append-only log is no record of the person
    index = _index(env, correlation_id)
    (emailed,) = _rows(env, "email", ADA)
    assert emailed.audit_index == index
    assert emailed.correlation_id == correlation_id
    # order-sync: source erp, target rogue; the route's upstream is erp, so the caller's
    # side (the target, rogue) received the customer's email in the response.
    assert (emailed.receiver, emailed.direction, emailed.receiver_country) == (
        "rogue",
        "response",
        "DE",
    )
    assert (emailed.integration, emailed.route) == ("order-sync", "GET /orders/{id}")
    assert emailed.categories == ("user.contact.email",)
    assert (
        emailed.expires_at - emailed.time
        == env.gateway.gateway.manifest.integrations["order-sync"].retention
    )
    (asked,) = _rows(env, "customer_id", "1001")
    assert (asked.receiver, asked.direction, asked.audit_index) == ("erp", "request", index)
    # Nowhere in clear: neither database file (WAL included) holds the address.
    everything = _database_bytes(env)
    assert ADA.encode() not in everything
    assert ADA.encode("utf-16-le") not in everything


def test_a_refused_request_records_no_lineage(
    env: Env, identifying: Callable[[str, Identify], None]
) -> None:
    identifying(
        "GET /orders/{id}", _before(Sighting("email", "eve@example.com", "upstream", "request"))
    )
    status, headers, _ = env.request("GET", "/orders/1002", {"X-API-Key": "ilk_nope"})
    assert status == 401
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert "subjects" not in entry["details"]
    assert _rows(env, "email", "eve@example.com") == []


def test_an_upstream_failure_records_only_what_the_upstream_received(
    env: Env, identifying: Callable[[str, Identify], None]
) -> None:
    """The 5xx body is withheld: the caller received nothing about the person."""
    asked = Sighting("customer_id", "C-0500", "upstream", "request")
    answered = Sighting("email", "mallory@example.com", "caller", "response")

    def identify(ctx: RequestContext, response: web.Response | None) -> list[Sighting]:
        return [asked, answered] if response is None else []  # as if both were known

    identifying("GET /fail/{status}", identify)
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/fail/500", {"X-API-Key": token})
    assert status == 502
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["details"]["subjects"] == 1
    (row,) = _rows(env, "customer_id", "C-0500")
    assert row.receiver == "erp"
    assert _rows(env, "email", "mallory@example.com") == []


def test_identifying_a_person_makes_a_best_effort_entry_durable(
    env: Env, identifying: Callable[[str, Identify], None]
) -> None:
    """The "validated" integration declares no personal data (best effort), yet a request
    that identified someone is withheld (503) when its entry cannot be written."""
    identifying("GET /v/orders/{id}", _customer)
    token, _ = env.key(["orders.read"])
    audit_file = Path(env.deployment.settings.data_dir) / "audit.db"
    blocker = sqlite3.connect(audit_file, timeout=1)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        status, _, problem = env.request("GET", "/v/orders/1003", {"X-API-Key": token})
    finally:
        blocker.rollback()
        blocker.close()
    assert status == 503
    assert problem["type"] == "urn:interlock:problem:audit-unavailable"
    assert "grace" not in json.dumps(problem)
    assert _rows(env, "customer_id", "1003") == []  # no lineage for an unrecorded request
    status, headers, _ = env.request("GET", "/v/orders/1003", {"X-API-Key": token})
    assert status == 200
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["details"]["subjects"] == 2
    assert [r.audit_index for r in _rows(env, "customer_id", "1003")] == [
        _index(env, headers["x-request-id"])
    ]


def test_a_person_the_full_lineage_queue_cannot_take_is_withheld(
    env: Env, identifying: Callable[[str, Identify], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: when the lineage index has no place left, the data is not released
    (503), and the request's one audit entry says it was withheld, not what the upstream
    answered; once there is room again the same call goes through and is traced."""
    # Only the order id: the customer's e-mail stays out of the shared env's index.
    identifying("GET /v/orders/{id}", _order_only)
    token, _ = env.key(["orders.read"])
    lineage = env.gateway.services.lineage
    before = len(_rows(env, "customer_id", "1002"))  # the module's env is shared
    monkeypatch.setattr(lineage, "_max_pending", 0)  # every place taken
    status, headers, problem = env.request("GET", "/v/orders/1002", {"X-API-Key": token})
    assert status == 503
    assert problem["type"] == "urn:interlock:problem:audit-unavailable"
    assert "alan" not in json.dumps(problem).lower()
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 503}
    assert entry["reason"] == "response withheld: lineage queue full"
    assert len(_rows(env, "customer_id", "1002")) == before
    monkeypatch.undo()
    status, headers, _ = env.request("GET", "/v/orders/1002", {"X-API-Key": token})
    assert status == 200
    assert [r.audit_index for r in _rows(env, "customer_id", "1002")][before:] == [
        _index(env, headers["x-request-id"])
    ]


def _located(manifest: Manifest) -> Manifest:
    """The harness manifest with order-sync's ``GET /orders/{id}`` naming its customer."""
    flow = manifest.integrations["order-sync"]
    locator = SubjectLocator.model_validate(
        {"kind": "email", "in": "response", "json": "/customer/email"}
    )
    routes = tuple(
        r.model_copy(update={"subjects": (locator,)}) if r.path == "/orders/{id}" else r
        for r in flow.routes
    )
    integrations = {
        **manifest.integrations,
        "order-sync": flow.model_copy(update={"routes": routes}),
    }
    return manifest.model_copy(update={"integrations": integrations})


@pytest.fixture
def located(env: Env) -> Iterator[RunningGateway]:
    """A second gateway on the same deployment, serving the manifest with the locator."""
    manifest = _located(env.gateway.gateway.manifest)
    running = asyncio.run_coroutine_threadsafe(
        start_gateway(env.deployment, manifest, ListenerConfig(port=0)), env.loop
    ).result(timeout=30)
    yield running
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=30)


def test_a_real_locator_reaches_the_trace_with_provable_entries(
    env: Env, located: RunningGateway
) -> None:
    """Call -> the subjects stage -> lineage -> trace_subject, with inclusion proofs."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request(
        "GET", "/orders/1002", {"X-API-Key": token}, port=located.port
    )
    assert status == 200
    email = body["customer"]["email"]
    lineage = located.services.lineage
    assert lineage.flush() is True
    audit_engine, writer = create_audit_engines(env.deployment.settings.audit_url)
    try:
        report = trace_subject(
            located.gateway.manifest, lineage, lineage.hasher, audit_engine, "email", email
        )
    finally:
        audit_engine.dispose()
        writer.dispose()
    (rogue,) = report.systems
    assert (rogue.system, rogue.received_from, rogue.directions) == (
        "rogue",
        ("erp",),
        ("response",),
    )
    index = _index(env, headers["x-request-id"])
    assert index in rogue.audit_entries
    evidence = report.evidence
    assert evidence is not None
    checkpoint = open_checkpoint(evidence.checkpoint, [located.services.audit_log.keys.verifier])
    (record,) = [r for r in evidence.records if r["index"] == index]
    verify_entry(
        checkpoint,
        index,
        record["entry"].encode(),
        base64.b64decode(record["leaf_hash"]),
        [base64.b64decode(p) for p in record["proof"]],
    )
    assert json.loads(record["entry"])["details"]["subjects"] == 1
    assert email.encode() not in _database_bytes(env)


def test_a_caller_asking_for_a_compressed_answer_is_still_recorded(
    env: Env, located: RunningGateway
) -> None:
    """The sample ERP gzips when asked; the gateway does not ask on a route whose
    response names a person, so the subjects stage reads the answer and the caller's
    receipt of it is on the lineage (before, the gzip bytes were unparsed: no row).
    """
    token, _ = env.key(["orders.read"])
    email = "grace@example.com"  # order 1003's customer
    status, headers, body = env.request(
        "GET", "/orders/1003", {"X-API-Key": token, "Accept-Encoding": "gzip"}, port=located.port
    )
    assert status == 200
    assert "content-encoding" not in headers
    assert body["customer"]["email"] == email
    lineage = located.services.lineage
    assert lineage.flush() is True
    rows = lineage.find(lineage.hasher.digest("email", email))
    (row,) = [r for r in rows if r.correlation_id == headers["x-request-id"]]
    assert (row.receiver, row.direction) == ("rogue", "response")


def test_the_sample_erp_compresses_when_asked(env: Env) -> None:
    """The test above means something only if the upstream does gzip: a plain route shows it."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request(
        "GET", "/orders/1001", {"X-API-Key": token, "Accept-Encoding": "gzip"}
    )
    assert status == 200
    assert headers.get("content-encoding") == "gzip"
