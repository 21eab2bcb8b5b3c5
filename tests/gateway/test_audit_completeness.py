"""Every request that reaches the gateway gets exactly one gateway.request entry (issue 18 item 4).

Before: an unhandled error ended in a 500 that was neither recorded nor counted
by its route, and requests no route took (404, 405, 421) were never recorded;
nor, until the audit of issue 18, requests the HTTP parser refused (request
smuggling, oversized headers).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from interlock.gateway.stages.authorise import ScopeCheck
from interlock.testing.gateway import Env, lines


def test_an_unhandled_error_in_a_stage_is_a_500_problem_recorded_once(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stage that raises: 500 problem with the correlation id, one entry, the error logged."""

    async def broken(self: ScopeCheck, ctx: object) -> None:
        raise RuntimeError("a bug in a stage")

    monkeypatch.setattr(ScopeCheck, "__call__", broken)
    token, _ = env.key(["orders.read"])
    status, headers, problem = env.request("GET", "/orders/1001", {"X-API-Key": token})
    monkeypatch.undo()
    assert status == 500
    assert headers["content-type"] == "application/problem+json"
    assert problem["type"] == "urn:interlock:problem:internal-error"
    correlation_id = problem["correlation_id"]
    assert headers["x-request-id"] == correlation_id
    assert "a bug" not in json.dumps(problem)  # nothing internal reaches the caller
    (entry,) = env.audit_entries(correlation_id, "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 500}
    assert entry["details"]["route"] == "GET /orders/{id}"
    assert entry["actor"] == "client:order-sync"  # authentication ran before the error
    logged = [
        line
        for line in lines(env)
        if line.get("event") == "unhandled error" and line.get("correlation_id") == correlation_id
    ]
    assert len(logged) == 1
    assert "a bug in a stage" in logged[0]["exception"]
    assert (
        'interlock_requests_total{outcome="error",route="GET /orders/{id}",status="500"}'
        in env.metrics()
    )


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/no/such/route", 404), ("DELETE", "/orders/1001", 405)],
)
def test_a_request_no_route_takes_is_recorded_once(
    env: Env, method: str, path: str, status: int
) -> None:
    """404 and 405: one entry each, labelled unmatched, never the concrete path."""
    answer, headers, problem = env.request(method, path)
    assert answer == status
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": status}
    assert entry["details"]["route"] == "unmatched"
    assert entry["reason"] == problem["detail"]


def test_a_misdirected_request_is_recorded_once(env: Env) -> None:
    """A Host the gateway does not answer for: 421, one entry."""
    status, headers, _ = env.request("GET", "/orders/1001", {"Host": "evil.example"})
    assert status == 421
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 421}


def test_a_token_endpoint_success_is_recorded_once_as_token_issue(env: Env) -> None:
    """A token answer's one entry is token.issue, found by the answer's X-Request-Id."""
    form = urlencode({"grant_type": "client_credentials"}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    with env.client_secret() as secret:
        status, answered, _ = env.request(
            "POST", "/oauth2/token", {**headers, **env.basic(secret)}, form
        )
    assert status == 200
    (entry,) = env.audit_entries(answered["x-request-id"])  # one entry, no gateway.request
    assert entry["action"] == "token.issue"
    assert entry["outcome"] == {"result": "success", "status": 200}
    assert entry["details"]["route"] == "/oauth2/token"


def test_a_refusal_at_an_own_endpoint_is_recorded_once(env: Env) -> None:
    """The vault without a credential: 401, one entry labelled by the template."""
    status, headers, _ = env.request("GET", "/v1/secrets/some/name")
    assert status == 401
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 401}
    assert entry["details"]["route"] == "/v1/secrets/{name}"


def _sample(text: str, sample: str) -> float:
    """The value of one sample line (``name{labels}``) in the exposition ``text``, or 0."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


PARSER_REFUSED = 'interlock_requests_total{outcome="refused",route="unmatched",status="400"}'


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /orders/1001/notes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
        b"GET /orders/1001 HTTP/1.1\r\nHost: 127.0.0.1\r\nNo colon here\r\n\r\n",
    ],
    ids=["content-length-and-transfer-encoding", "header-without-colon"],
)
def test_a_request_the_http_parser_refuses_is_recorded_once(env: Env, raw: bytes) -> None:
    """Request smuggling or a broken header: the 400 problem's id names one entry, counted.

    It failed before the audit of issue 18: the parser's answer was only logged.
    """
    before = _sample(env.metrics(), PARSER_REFUSED)
    response = env.raw(raw)
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", response[:200]
    problem = json.loads(body)
    assert problem["type"] == "urn:interlock:problem:malformed-request"
    (entry,) = env.audit_entries(problem["correlation_id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 400}
    assert entry["actor"] == "anonymous"
    assert entry["details"] == {"route": "unmatched"}
    assert entry["reason"] == "refused by the HTTP parser"
    assert entry["volume"]["records"] == 0
    assert _sample(env.metrics(), PARSER_REFUSED) == before + 1


@pytest.mark.parametrize("path", ["/healthz", "/.well-known/jwks.json"])
def test_an_own_endpoint_success_is_recorded_once_as_success(env: Env, path: str) -> None:
    """An own endpoint's 200 is one gateway.request entry with the outcome success."""
    status, headers, _ = env.request("GET", path)
    assert status == 200
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "success", "status": 200}
    assert entry["details"]["route"] == path
