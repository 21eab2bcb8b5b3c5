"""An upstream's 5xx body never reaches the caller: a problem does, the body goes to the log."""

from __future__ import annotations

import pytest

from interlock.testing.gateway import Env, lines

LEAKS = ("Traceback", "orders.py", "SELECT", "orders_secret", "hunter2", "db.internal", "PHP")


@pytest.mark.parametrize("path", ["/fail/500", "/fail/503", "/fail-minimised/500"])
def test_upstream_error_body_is_replaced_by_a_problem(env: Env, path: str) -> None:
    """500 with a traceback and password=hunter2: the caller sees 502 upstream-error, no text."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", path, {"X-API-Key": token})
    assert status == 502
    assert headers["content-type"].startswith("application/problem+json")
    assert isinstance(body, dict)
    assert body["type"] == "urn:interlock:problem:upstream-error"
    assert body["status"] == 502
    assert body["correlation_id"] == headers["x-request-id"]
    for leak in LEAKS:
        assert leak not in str(body), leak
        assert leak not in str(headers), leak


def test_the_log_keeps_the_upstream_body_with_the_password_redacted(env: Env) -> None:
    """The operator finds the traceback by correlation id; the password is masked."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/fail/500", {"X-API-Key": token})
    assert status == 502
    correlation_id = headers["x-request-id"]
    logged = [
        line
        for line in lines(env)
        if line.get("correlation_id") == correlation_id and "upstream_body" in line
    ]
    assert len(logged) == 1
    line = logged[0]
    assert line["upstream_status"] == 500
    assert "Traceback (most recent call last)" in line["upstream_body"]
    assert "password=[REDACTED]" in line["upstream_body"]
    assert "hunter2" not in env.logs.getvalue()
    request_line = next(
        line
        for line in lines(env)
        if line.get("correlation_id") == correlation_id and line.get("event") == "request"
    )
    assert (request_line["status"], request_line["outcome"]) == (502, "forwarded")
