"""Rate limits through the real gateway: 429 with Retry-After and the RateLimit fields."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

from interlock.testing.gateway import Env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_a_client_over_its_limit_gets_429_with_retry_after_and_ratelimit_fields(
    env: Env,
) -> None:
    """per_client 3/hour: three pass with RateLimit fields, the fourth is a 429 problem."""
    token, _ = env.key(["orders.read"])
    headers = {"Authorization": f"Bearer {token}"}
    answers = [env.request("GET", "/limited/1001", headers) for _ in range(4)]
    assert [status for status, _, _ in answers] == [200, 200, 200, 429]
    _, first, _ = answers[0]
    policy = '"per_client";q=3;w=3600, "per_ip";q=1000;w=3600'
    assert first["ratelimit-policy"] == policy
    assert first["ratelimit"].startswith('"per_client";r=2;t=1200, "per_ip";r=')
    _, refused, body = answers[3]
    assert refused["content-type"] == "application/problem+json"
    assert refused["retry-after"] == "1200"
    assert refused["ratelimit-policy"] == policy
    assert refused["ratelimit"].startswith('"per_client";r=0;t=3600')
    assert body["status"] == 429
    assert body["type"] == "urn:interlock:problem:rate-limited"
    assert body["violated-policies"] == ["per_client"]


def test_routes_without_limits_carry_no_ratelimit_fields(env: Env) -> None:
    """Only declared limits apply: an unlimited route answers without the fields."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/orders/1001", {"Authorization": f"Bearer {token}"})
    assert status == 200
    assert "ratelimit" not in headers
    assert "ratelimit-policy" not in headers


def test_repeated_bad_secrets_for_one_client_id_are_slowed_down(env: Env) -> None:
    """Ten failed authentications of one client id in a minute; the eleventh is 429 slow_down."""
    raw = base64.b64encode(b"nobody-guessing:wrong-secret").decode()
    headers = {**FORM, "Authorization": f"Basic {raw}"}
    form = urlencode({"grant_type": "client_credentials"}).encode()
    statuses = [env.request("POST", "/oauth2/token", headers, form)[0] for _ in range(10)]
    assert statuses == [401] * 10
    status, answer_headers, body = env.request("POST", "/oauth2/token", headers, form)
    assert (status, body["error"]) == (429, "slow_down")
    assert int(answer_headers["retry-after"]) >= 1
