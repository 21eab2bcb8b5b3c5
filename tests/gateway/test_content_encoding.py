"""Compressed request bodies are refused before anything reads them (issue 18 item 6).

Before, aiohttp inflated a ``Content-Encoding: gzip`` body before any check (255 KB
of gzip became 256 MiB), and a route without body validation forwarded it.
Now any request coding but ``identity`` is answered 415 (RFC 7694 §3:
``Accept-Encoding: identity``), audited once, and nothing is forwarded.
"""

from __future__ import annotations

import gzip
import json
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.testing.gateway import Env


def _entries(env: Env, correlation_id: str) -> list[dict[str, Any]]:
    """The audit entries of one request (entries land within moments)."""
    engine = create_engine(env.deployment.settings.audit_url)
    deadline = time.monotonic() + 5
    try:
        while True:
            with engine.connect() as connection:
                rows = connection.execute(select(BODIES.c.body)).all()
            found = [
                entry
                for entry in (json.loads(row.body) for row in rows)
                if entry.get("correlation_id") == correlation_id
            ]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)
    finally:
        engine.dispose()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "identity, gzip"])
def test_a_compressed_body_is_refused_with_415_and_audited_once(env: Env, coding: str) -> None:
    """gzip, deflate, br (alone or listed after identity): 415, one audit entry, not forwarded."""
    token, _ = env.key(["orders.write"])
    body = gzip.compress(json.dumps({"note": "x" * 100_000}).encode())
    headers = {
        "X-API-Key": token,
        "Content-Type": "application/json",
        "Content-Encoding": coding,
    }
    status, found, problem = env.request("POST", "/orders/1001/notes", headers, body)
    assert status == 415, problem
    assert found["content-type"].startswith("application/problem+json")
    assert found["accept-encoding"] == "identity"
    assert problem["type"] == "urn:interlock:problem:unsupported-content-encoding"
    (entry,) = _entries(env, found["x-request-id"])
    assert entry["outcome"] == {"result": "failure", "status": 415}
    assert entry["actor"] == "client:order-sync"
    assert entry["volume"]["records"] == 0  # nothing was forwarded


def test_an_own_endpoint_refuses_a_compressed_body(env: Env) -> None:
    """The token endpoint too: a gzip form is refused, not inflated."""
    body = gzip.compress(b"grant_type=client_credentials")
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Content-Encoding": "gzip",
    }
    status, found, problem = env.request("POST", "/oauth2/token", headers, body)
    assert status == 415, problem
    assert found["accept-encoding"] == "identity"


def test_an_uncompressed_or_identity_body_is_forwarded(env: Env) -> None:
    """No coding, or ``identity``, is forwarded as before."""
    token, _ = env.key(["orders.write"])
    for extra in ({}, {"Content-Encoding": "identity"}):
        headers = {"X-API-Key": token, "Content-Type": "application/json", **extra}
        status, _, echoed = env.request("POST", "/orders/1001/notes", headers, b'{"note":"hi"}')
        assert status == 200, echoed
