"""Malformed credentials through the real gateway: each one a clean 401, audited and counted.

A JWT whose ``kid`` is a list, a payload nested past the JSON parser's
recursion limit, bytes that are not UTF-8, a nested client assertion: each
used to end in an unhandled 500 that was neither audited nor counted against
the address's failure budget. The gateway here has a budget of exactly as many
failures as the test sends, so the valid credential that follows must get 429.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import create_engine, select

from interlock.audit.schema import BODIES
from interlock.oauth.client_assertion import ASSERTION_TYPE
from interlock.testing.gateway import Env, running_gateway

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
NESTED = b"[" * 2500 + b"]" * 2500  # past json's recursion limit, inside the 8 KiB cap


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jws(header: dict[str, Any] | bytes, payload: dict[str, Any] | bytes) -> str:
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return f"{_b64(head)}.{_b64(body)}.{_b64(b'x' * 64)}"


CLAIMS = {"iss": "oauth-only", "sub": "oauth-only", "aud": "x", "exp": 2**31, "jti": "j"}

# Route credentials (Authorization header values): each a failed authentication.
ROUTE_CASES = {
    "kid is a list": "Bearer " + _jws({"alg": "ES256", "typ": "at+jwt", "kid": ["a"]}, CLAIMS),
    "kid is an object": "Bearer " + _jws({"alg": "ES256", "typ": "at+jwt", "kid": {"a": 1}}, {}),
    "nested payload": "Bearer " + _jws({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, NESTED),
    "not UTF-8 JWS": "Bearer eyJ\xff\xfe.e30.c2ln",
    "not UTF-8 API key": "Bearer ilk_\xff\xfe\xfd",
}

# Token endpoint requests (headers, form): each an invalid_client.
TOKEN_CASES: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    "nested assertion": (
        {},
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _jws({"alg": "ES256", "kid": "k"}, NESTED),
        },
    ),
    "assertion kid is a list": (
        {},
        {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": _jws({"alg": "ES256", "kid": ["k"]}, CLAIMS),
        },
    ),
    "Basic credentials not UTF-8": (
        {"Authorization": "Basic \xff\xfe\xfd"},
        {"grant_type": "client_credentials"},
    ),
}
BUDGET = len(ROUTE_CASES) + len(TOKEN_CASES)


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway whose address may fail exactly ``BUDGET`` times in ten minutes."""
    with running_gateway(
        tmp_path_factory.mktemp("malformed"), auth_failures_per_ip=f"{BUDGET}/10min"
    ) as env:
        yield env


def _entries(env: Env) -> list[dict[str, Any]]:
    engine = create_engine(env.deployment.settings.audit_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).all()
    finally:
        engine.dispose()
    return [json.loads(row.body) for row in rows]


def _audited(env: Env, action: str, count: int) -> list[dict[str, Any]]:
    """The ``action`` entries, once there are ``count`` (best-effort entries land in batches)."""
    deadline = time.monotonic() + 5
    while True:
        found = [e for e in _entries(env) if e["action"] == action]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.mark.processes
def test_every_malformed_credential_is_a_counted_audited_401(strict: Env) -> None:
    """Routes answer 401 problems (RFC 6750), the token endpoint invalid_client (RFC 6749)."""
    good, _ = strict.key(["orders.read"])
    correlations = []
    for case, credential in ROUTE_CASES.items():
        status, headers, body = strict.request("GET", "/orders/1001", {"Authorization": credential})
        assert status == 401, (case, body)
        assert headers["content-type"].startswith("application/problem+json"), case
        assert headers["www-authenticate"].startswith('Bearer realm="interlock", error='), case
        correlations.append(headers["x-request-id"])
    for case, (extra, form) in TOKEN_CASES.items():
        status, headers, body = strict.request(
            "POST", "/oauth2/token", {**FORM, **extra}, urlencode(form).encode()
        )
        assert (status, body.get("error")) == (401, "invalid_client"), (case, body)
    # Audited: every routed refusal under its correlation id, every token refusal.
    routed = {e["correlation_id"]: e for e in _audited(strict, "gateway.request", BUDGET)}
    for correlation in correlations:
        assert routed[correlation]["outcome"]["status"] == 401
        assert routed[correlation]["reason"]
    assert len(_audited(strict, "token.refuse", len(TOKEN_CASES))) == len(TOKEN_CASES)
    # Counted: the address's budget is spent, so even the right key is slowed down now.
    assert strict.request("GET", "/orders/1001", {"X-API-Key": good})[0] == 429
