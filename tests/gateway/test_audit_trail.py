"""The gateway's audit trail: every routed decision and token answer, and failing closed.

Uses a gateway of its own so the audit database can be locked (a hung sink)
without disturbing the shared one.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.audit.verify import verify_log
from interlock.testing.gateway import Env, running_gateway


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway whose audit trail is the default SQLite file in its data directory.

    With the production deadline (2 s) for a durable entry: the hung-trail test expects a
    request to fail in that time and the next to find the upstream credential still
    cached (5 s), not the 30 s tests/conftest.py gives every other test.
    """
    with running_gateway(
        tmp_path_factory.mktemp("audited"), more_settings={"audit_timeout_seconds": 2.0}
    ) as running:
        yield running


def _audit_file(env: Env) -> Path:
    return Path(env.deployment.settings.data_dir) / "audit.db"


def _entries(env: Env) -> list[dict[str, Any]]:
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    return [json.loads(row.body) for row in rows]


def _last(env: Env, action: str, **match: Any) -> dict[str, Any]:
    """The newest matching entry; best-effort entries land with the next batch, so wait a bit."""
    deadline = time.monotonic() + 5
    while True:
        for entry in _entries(env)[::-1]:
            if entry["action"] == action and all(
                entry.get(k) == v or entry["details"].get(k) == v for k, v in match.items()
            ):
                return entry
        if time.monotonic() > deadline:
            raise AssertionError(f"no {action} entry matching {match}")
        time.sleep(0.05)


def test_a_forwarded_request_with_personal_data_is_on_the_trail(env: Env) -> None:
    token, key_id = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert status == 200
    entry = _last(env, "gateway.request", correlation_id=headers["x-request-id"])
    assert entry["actor"] == "client:order-sync"
    assert (entry["integration"], entry["source"], entry["target"]) == (
        "order-sync",
        "erp",
        "rogue",
    )
    assert entry["data_categories"] == ["user.contact.email"]
    assert entry["outcome"] == {"result": "success", "status": 200}
    assert entry["volume"]["records"] == 1
    assert entry["volume"]["bytes"] > 0
    assert entry["details"]["route"] == "GET /orders/{id}"
    assert entry["details"]["credential"] == f"api-key {key_id}"
    # Where the upstream was when the data went there (the register's drift report reads it).
    upstream = env.gateway.gateway.manifest.systems["erp"]
    assert entry["details"]["upstream_country"] == upstream.location
    # The caller's address is kept only as a keyed pseudonym.
    assert entry["client_ip"] not in {None, "127.0.0.1"}
    assert "127.0.0.1" not in json.dumps(entry)


def test_the_entry_records_the_country_of_the_upstream_not_the_targets(env: Env) -> None:
    """order-sync's target moves to Switzerland; its routes to the ERP still go to Germany.

    Before, the entry recorded the target's country whichever system the route
    forwarded to, so drift missed data sent to a source outside the EEA (privacy
    review, finding 5).
    """
    original = env.manifest_path.read_text()
    head, rogue, tail = original.partition("  rogue: {")
    rogue_line, newline, rest = tail.partition("\n")
    moved = head + rogue + rogue_line.replace("location: DE", "location: CH") + newline + rest
    moved = moved.replace(
        "    target: rogue\n",
        "    target: rogue\n    transfer: {destination: CH, safeguard: adequacy}\n",
        1,
    )
    token, _ = env.key(["orders.read"])
    try:
        env.manifest_path.write_text(moved)
        assert env.gateway.reload() is True
        countries: dict[str, str | None] = {}
        for path in ("/orders/1001", "/rogue/1001"):
            _, headers, _ = env.request("GET", path, {"X-API-Key": token})
            entry = _last(env, "gateway.request", correlation_id=headers["x-request-id"])
            countries[entry["details"]["route"]] = entry["details"].get("upstream_country")
        assert countries == {"GET /orders/{id}": "DE", "GET /rogue/{id}": "CH"}
    finally:
        env.manifest_path.write_text(original)
        assert env.gateway.reload() is True


def test_a_refusal_is_on_the_trail_with_its_reason(env: Env) -> None:
    status, headers, _ = env.request("GET", "/orders/1001", {"X-API-Key": "ilk_nope"})
    assert status == 401
    entry = _last(env, "gateway.request", correlation_id=headers["x-request-id"])
    assert entry["actor"] == "anonymous"
    assert entry["outcome"] == {"result": "failure", "status": 401}
    assert entry["reason"]
    assert entry["volume"] == {"records": 0, "bytes": 0}


def test_an_upstream_server_error_is_on_the_trail_as_forwarded_and_failed(env: Env) -> None:
    """The request reached the target (volume counted); the outcome is the caller's 502."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/fail/500", {"X-API-Key": token})
    assert status == 502
    entry = _last(env, "gateway.request", correlation_id=headers["x-request-id"])
    assert entry["outcome"] == {"result": "failure", "status": 502}
    assert entry["reason"] == "upstream answered 500; its body was withheld"
    assert entry["volume"]["records"] == 1
    assert "hunter2" not in json.dumps(entry)


def test_token_answers_are_on_the_trail(env: Env) -> None:
    """One entry per token answer: the request's, as token.issue / token.refuse.

    It carries what the request's entry and the answer's used to hold apart:
    route, correlation id, address (a pseudonym), and the client, the scopes
    granted, the token's jti or why it was refused. Never the token or secret.
    """
    form = urlencode({"grant_type": "client_credentials"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with env.client_secret() as secret:
        status, answered, body = env.request(
            "POST", "/oauth2/token", {**headers, **env.basic(secret)}, form
        )
    assert status == 200
    raw = base64.b64encode(b"oauth-only:wrong").decode()
    status, refused_headers, _ = env.request(
        "POST", "/oauth2/token", {**headers, "Authorization": f"Basic {raw}"}, form
    )
    assert status == 401
    (issued,) = env.audit_entries(answered["x-request-id"])
    assert issued["action"] == "token.issue"
    assert issued["actor"] == "client:oauth-only"
    assert issued["outcome"] == {"result": "success", "status": 200}
    assert issued["details"]["route"] == "/oauth2/token"
    assert issued["details"]["method"] == "POST"
    assert issued["details"]["scope"] == body["scope"]
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert issued["details"]["jti"] == claims["jti"]
    assert issued["client_ip"].startswith("hmac-sha256:")
    assert body["access_token"] not in json.dumps(_entries(env))
    (refused,) = env.audit_entries(refused_headers["x-request-id"])
    assert refused["action"] == "token.refuse"
    assert refused["actor"] == "anonymous"
    assert refused["outcome"] == {"result": "failure", "status": 401}
    assert refused["reason"]
    assert "jti" not in refused["details"]
    assert "wrong" not in json.dumps(refused)


def test_minimisation_counts_go_into_the_entry(env: Env) -> None:
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/v/orders/1002", {"X-API-Key": token})
    assert status == 200
    entry = _last(env, "gateway.request", correlation_id=headers["x-request-id"])
    assert entry["details"]["removed_fields"] == 5


def test_a_hung_audit_trail_fails_personal_data_closed_and_the_rest_open(env: Env) -> None:
    """Lock the audit database: PII responses become 503 within the timeout; others pass."""
    token, _ = env.key(["orders.read"])
    blocker = sqlite3.connect(_audit_file(env), timeout=1)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        status, headers, problem = env.request("GET", "/orders/1001", {"X-API-Key": token})
        assert status == 503
        assert problem["type"] == "urn:interlock:problem:audit-unavailable"
        assert headers["retry-after"] == "5"
        assert "Ada" not in json.dumps(problem)  # the order was not released
        # An integration without personal data records best effort and answers.
        status, _, _ = env.request("GET", "/v/orders/1001", {"X-API-Key": token})
        assert status == 200
    finally:
        blocker.rollback()
        blocker.close()
    status, _, _ = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert status == 200


def test_the_trail_verifies(env: Env) -> None:
    env.request("GET", "/orders/1003", {"X-API-Key": env.key(["orders.read"])[0]})
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        report = verify_log(engine)
    finally:
        engine.dispose()
    assert report.size >= len(_entries(env)) > 0


def test_an_entry_its_model_refuses_never_becomes_a_500() -> None:
    """A credential id too long for an entry: logged, the request's answer unchanged."""
    import asyncio

    from aiohttp.test_utils import make_mocked_request

    from interlock.audit.sink import MemorySink
    from interlock.gateway.audit_trail import GatewayAudit
    from interlock.identity.grants import Principal

    sink = MemorySink()
    audit = GatewayAudit(sink)
    odd = Principal("order-sync", frozenset(), "x" * 600)  # details values are at most 500

    async def record() -> bool:
        return await audit.request(
            make_mocked_request("GET", "/orders/1"),
            integration_name=None,
            integration=None,
            label="GET /orders/{id}",
            status=200,
            forwarded=True,
            principal=odd,
            reason=None,
            correlation_id="c",
            response_bytes=10,
            removed_fields=0,
        )

    assert asyncio.run(record()) is True
    assert sink.entries == []
