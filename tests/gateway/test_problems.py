"""One table maps every refusal code to its status and title; nothing else decides them."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from interlock.errors import Refusal
from interlock.gateway.problems import (
    REFUSALS,
    oauth_error_response,
    problem_response,
)
from interlock.replay.signatures import SignatureRefused

SRC = Path(__file__).resolve().parents[2] / "src" / "interlock"
#: Calls whose first argument is a refusal code.
_RAISERS = frozenset({"Refusal", "BodyRefused", "_refused", "_refuse"})


def _codes_in_source() -> set[str]:
    codes: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            first = node.args[0]
            if name not in _RAISERS:
                continue
            candidates = (first.body, first.orelse) if isinstance(first, ast.IfExp) else (first,)
            codes |= {
                c.value
                for c in candidates
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            }
    return codes


def test_every_code_raised_in_the_source_is_in_the_table() -> None:
    """A refusal code nobody mapped would answer 500: the table must know them all."""
    codes = _codes_in_source()
    assert len(codes) > 30
    assert codes - set(REFUSALS) == set()


def test_every_signature_refusal_maps_to_a_known_code() -> None:
    """The replay package's reasons become three problem types, all in the table."""
    for reason in ("invalid", "replayed", "digest-mismatch", "stale", "unknown-key"):
        assert SignatureRefused(reason, "x").code in REFUSALS


def test_a_refusal_renders_with_the_tables_status_title_and_headers() -> None:
    """Status, title and fixed headers come from the table; detail and headers from the raise."""
    refusal = Refusal("rate-limits-unavailable", "retry shortly", headers={"X-Extra": "1"})
    response = problem_response(refusal, "c0ffee", "/orders")
    body = json.loads(response.body)  # type: ignore[arg-type]
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-Extra"] == "1"
    assert response.content_type == "application/problem+json"
    assert body == {
        "type": "urn:interlock:problem:rate-limits-unavailable",
        "title": "Service unavailable",
        "status": 503,
        "detail": "retry shortly",
        "instance": "/orders",
        "correlation_id": "c0ffee",
    }


def test_an_unmapped_code_is_an_internal_error_that_says_nothing_more() -> None:
    """Fail closed: no guessed status, and the raise site's detail is not shown."""
    response = problem_response(Refusal("no-such-code", "internal detail"), "c", "/x")
    body = json.loads(response.body)  # type: ignore[arg-type]
    assert (response.status, body["type"]) == (500, "urn:interlock:problem:internal-error")
    assert "internal detail" not in response.body.decode()  # type: ignore[union-attr]
    oauth = oauth_error_response(Refusal("no-such-code", "internal detail"))
    assert oauth.status == 500
    assert json.loads(oauth.body)["error"] == "server_error"  # type: ignore[arg-type]


def test_oauth_refusals_render_as_rfc6749_errors() -> None:
    """The token endpoint's refusals: ``error`` and ``error_description``, never cached."""
    response = oauth_error_response(
        Refusal("slow_down", "retry later", headers={"Retry-After": "30"})
    )
    assert response.status == 429
    assert json.loads(response.body) == {  # type: ignore[arg-type]
        "error": "slow_down",
        "error_description": "retry later",
    }
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Retry-After"] == "30"
