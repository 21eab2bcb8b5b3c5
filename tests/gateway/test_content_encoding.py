"""Compressed request bodies are refused before anything reads them (issue 18 item 6).

Before, aiohttp inflated a ``Content-Encoding: gzip`` body before any check (255 KB
of gzip became 256 MiB), and a route without body validation forwarded it.
Now any request coding but ``identity`` is answered 415 (RFC 7694 §3:
``Accept-Encoding: identity``), audited once, and nothing is forwarded.
"""

from __future__ import annotations

import gzip
import json

import pytest

from interlock.testing.gateway import Env


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
    (entry,) = env.audit_entries(found["x-request-id"])
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
