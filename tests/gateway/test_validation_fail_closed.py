"""Validation that used to fail open, through the real gateway (issue 18 items 7, 8 and 9).

Each hostile request is refused with a problem document, leaves exactly one
audit entry (a failure, nothing forwarded), and never reaches the echo
upstream; the same request made harmless is served.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.testing.gateway import Env


@pytest.fixture(scope="module")
def writer(env: Env) -> dict[str, str]:
    """An API key for order-sync that may write."""
    token, _ = env.key(["orders.read", "orders.write"])
    return {"X-API-Key": token}


def _post(
    env: Env, path: str, key: dict[str, str], body: bytes, content_type: str = "application/json"
) -> tuple[int, dict[str, str], Any]:
    return env.request("POST", path, {**key, "Content-Type": content_type}, body)


def _entries(env: Env, correlation_id: str) -> list[dict[str, Any]]:
    """The audit entries of one request (best-effort entries land within moments)."""
    engine = create_engine(env.deployment.settings.audit_url)
    deadline = time.monotonic() + 5
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(select(BODIES.c.body)).all()
            entries = [json.loads(row.body) for row in rows]
            found = [e for e in entries if e.get("correlation_id") == correlation_id]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
    finally:
        engine.dispose()


def _refused(
    env: Env, answer: tuple[int, dict[str, str], Any], status: int, code: str
) -> dict[str, Any]:
    """Assert a refusal with ``status`` and ``code``, audited once, nothing forwarded."""
    got, headers, problem = answer
    assert got == status, problem
    assert headers["content-type"].startswith("application/problem+json")
    assert problem["type"] == f"urn:interlock:problem:{code}"
    (entry,) = _entries(env, headers["x-request-id"])
    assert entry["outcome"] == {"result": "failure", "status": status}
    assert entry["volume"]["records"] == 0  # nothing was forwarded
    return dict(problem)


# --- item 7: business rules fail closed ---


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b'{"sku": ["EVIL"]}', "not an array"),
        (b'{"sku": null}', "not null"),
        (b'{"sku": {"id": "SKU-1"}}', "not an object"),
        (b"{}", "is required"),
        (b'{"skU": "SKU-1"}', "is required"),
    ],
    ids=["list", "null", "object", "missing", "misspelt"],
)
def test_a_rule_input_that_is_not_one_value_is_refused_with_422(
    env: Env, writer: dict[str, str], body: bytes, detail: str
) -> None:
    """A SQL rule on ``body:sku`` refuses what it cannot look up, naming the field only."""
    problem = _refused(env, _post(env, "/v/rule", writer, body), 422, "rule-violation")
    (error,) = problem["errors"]
    assert error["pointer"] == "#/sku"
    assert error["rule"] == "sku_sellable"
    assert detail in error["detail"]
    text = json.dumps(problem)
    for internal in ("sellable_products", "catalogue", "sqlite", "SELECT"):
        assert internal not in text


def test_a_rule_with_a_usable_input_still_decides(env: Env, writer: dict[str, str]) -> None:
    """One sellable SKU passes (the optional note_sku may be absent); an unknown one does not."""
    status, _, echoed = _post(env, "/v/rule", writer, b'{"sku": "SKU-1"}')
    assert status == 200, echoed
    assert json.loads(echoed["body"]) == {"sku": "SKU-1"}
    problem = _refused(
        env, _post(env, "/v/rule", writer, b'{"sku": "SKU-666"}'), 422, "rule-violation"
    )
    assert problem["errors"] == [
        {"detail": "the product is not sellable (SKU-666)", "rule": "sku_sellable"}
    ]


def test_an_optional_rule_input_may_be_absent_but_not_a_list(
    env: Env, writer: dict[str, str]
) -> None:
    """``optional: true`` on note_sku_sellable: absent passes, present is checked, a list refused."""
    assert _post(env, "/v/rule", writer, b'{"sku": "SKU-1", "note_sku": "SKU-2"}')[0] == 200
    problem = _refused(
        env,
        _post(env, "/v/rule", writer, b'{"sku": "SKU-1", "note_sku": ["SKU-666"]}'),
        422,
        "rule-violation",
    )
    assert [(e["pointer"], e["rule"]) for e in problem["errors"]] == [
        ("#/note_sku", "note_sku_sellable")
    ]
