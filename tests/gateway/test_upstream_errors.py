"""An upstream's 5xx body never reaches the caller: a problem does, the body goes to the log."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from multidict import CIMultiDict, CIMultiDictProxy
from structlog.testing import capture_logs

from interlock.gateway.upstream_errors import LOGGED_BODY_CHARS, withheld_server_error
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


def _logged(status: int, body: bytes, **headers: str) -> MutableMapping[str, Any]:
    relayed = CIMultiDictProxy(CIMultiDict(headers))
    with capture_logs() as captured:
        refusal = withheld_server_error("erp", status, relayed, body, "c0ffee")
    assert (refusal.code, refusal.log_reason) == (
        "upstream-error",
        f"upstream answered {status}; its body was withheld",
    )
    assert len(captured) == 1
    return captured[0]


def test_a_long_body_is_logged_redacted_and_cut_to_the_bound() -> None:
    """A key cut in two by the redaction window is left out, not logged in part.

    The private key before it shrinks to a marker when redacted, pulling what
    follows into the logged part; a key whose first characters only are in the
    window no longer looks like a key, so the window ends before it.
    """
    pem = "-----BEGIN PRIVATE KEY-----\n" + "M" * 3000 + "\n-----END PRIVATE KEY-----\n"
    window = 2 * LOGGED_BODY_CHARS
    api_key = "ilk_" + "K" * 40
    filler = "trace line\n" * ((window - len(pem) - 8) // 11)
    head = pem + filler
    body = (head + " " * (window - 8 - len(head)) + api_key + " tail").encode()
    assert body.index(b"ilk_") < window < body.index(b"ilk_") + len(api_key)
    line = _logged(500, body)
    text = str(line["upstream_body"])
    assert len(text) <= LOGGED_BODY_CHARS + 3
    assert "trace line" in text
    assert "MMMM" not in text
    assert "ilk_" not in text
    assert line["upstream_body_bytes"] == len(body)


def test_a_body_without_any_break_is_not_logged_in_part() -> None:
    """One long token (a key, say) cannot be cut safely: none of it is logged."""
    line = _logged(502, b"A" * (3 * LOGGED_BODY_CHARS))
    assert line["upstream_body"] == ""


def test_a_compressed_body_is_not_logged() -> None:
    """Bytes of a gzip stream say nothing to the operator; only the size is kept."""
    line = _logged(500, b"\x1f\x8b" + bytes(100), **{"Content-Encoding": "gzip"})
    assert line["upstream_body"] == "(gzip-encoded body not logged)"
    assert line["upstream_body_bytes"] == 102
