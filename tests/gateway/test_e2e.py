"""End to end over real TLS: every refusal path, keys, upstream failures, logs."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import pytest

from interlock.testing.gateway import Env, lines


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _is_problem(status: int, headers: dict[str, str], body: object, expected: int) -> None:
    assert status == expected, body
    assert headers["content-type"].startswith("application/problem+json")
    assert isinstance(body, dict)
    assert body["status"] == expected
    assert body["correlation_id"] == headers["x-request-id"]
    assert body["type"].startswith("urn:interlock:problem:")


def test_allowed_read_reaches_the_upstream_with_its_own_credential(env: Env) -> None:
    """A valid key with the route's scope gets the upstream's answer."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/orders/1001", _bearer(token))
    assert status == 200
    assert body["id"] == "1001"
    assert len(headers["x-request-id"]) == 32


def test_x_api_key_header_is_accepted(env: Env) -> None:
    """X-API-Key works like Authorization: Bearer."""
    token, _ = env.key(["orders.read"])
    status, _, body = env.request("GET", "/orders/1002", {"X-API-Key": token})
    assert (status, body["id"]) == (200, "1002")


def test_inbound_credentials_and_hop_by_hop_headers_are_not_forwarded(env: Env) -> None:
    """The upstream sees Forwarded and X-Request-Id, never the caller's key or cookies."""
    token, _ = env.key(["orders.read"])
    status, _, body = env.request(
        "GET",
        "/echo/hello",
        {
            **_bearer(token),
            "Cookie": "sid=1",
            "Connection": "X-Drop",
            "X-Drop": "1",
            "TE": "trailers",
            "Accept": "application/json",
        },
    )
    assert status == 200
    seen = {k.lower(): v for k, v in body["headers"].items()}
    assert body["authorization_ok"] is True  # the upstream accepted Interlock's own token
    assert "cookie" not in seen
    assert "x-drop" not in seen
    assert "te" not in seen
    assert token not in str(body)
    assert seen["accept"] == "application/json"
    assert seen["forwarded"].startswith('for="127.0.0.1";proto=https')
    assert len(seen["x-request-id"]) == 32


def test_missing_key_is_401_with_a_challenge(env: Env) -> None:
    """No credential: 401, WWW-Authenticate without an error code (RFC 6750 §3)."""
    status, headers, body = env.request("GET", "/orders/1001")
    _is_problem(status, headers, body, 401)
    assert headers["www-authenticate"] == 'Bearer realm="interlock"'


def test_wrong_scope_is_403_naming_only_the_missing_scope(env: Env) -> None:
    """A read-only key on a write route: 403 names orders.write and nothing else."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("POST", "/orders/1001/notes", _bearer(token), b"{}")
    _is_problem(status, headers, body, 403)
    assert body["detail"] == "this route requires the scope 'orders.write'"
    assert "orders.read" not in str(body)
    assert 'error="insufficient_scope"' in headers["www-authenticate"]


def test_key_with_both_scopes_may_write(env: Env) -> None:
    """The write route works for a key that holds orders.write."""
    token, _ = env.key(None)
    headers = {**_bearer(token), "Content-Type": "application/json"}
    status, _, body = env.request("POST", "/orders/1001/notes", headers, b'{"n": 1}')
    assert status == 200
    assert body["path"] == "/echo/notes/1001"
    assert body["body_bytes"] == 8


def test_unknown_route_is_404_and_wrong_method_is_405_with_allow(env: Env) -> None:
    """Routing refusals are problems; 405 lists the allowed methods."""
    token, _ = env.key(None)
    status, headers, body = env.request("GET", "/invoices/1", _bearer(token))
    _is_problem(status, headers, body, 404)
    status, headers, body = env.request("DELETE", "/orders/1001", _bearer(token))
    _is_problem(status, headers, body, 405)
    assert headers["allow"] == "GET, HEAD"


def test_revoked_key_is_refused(env: Env) -> None:
    """A revocation made by another process takes effect within the key cache's 1 s."""
    token, key_id = env.key(["orders.read"])
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 200
    env.keys.revoke(key_id)  # a different ApiKeys object: the gateway learns it from the store
    time.sleep(1.1)
    status, headers, body = env.request("GET", "/orders/1001", _bearer(token))
    _is_problem(status, headers, body, 401)
    assert 'error="invalid_token"' in headers["www-authenticate"]


def test_expired_key_is_refused(env: Env) -> None:
    """A key past its expiry is refused."""
    token, _ = env.key(["orders.read"], lifetime=timedelta(seconds=1))
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 200
    time.sleep(1.2)
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 401


def test_rotated_key_overlaps_then_expires(env: Env) -> None:
    """After rotation both keys work for the overlap; then only the successor."""
    token, key_id = env.key(["orders.read"])
    successor = env.keys.rotate(key_id, overlap=timedelta(seconds=1))
    env.issued_tokens.append(successor.token)
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 200
    assert env.request("GET", "/orders/1001", _bearer(successor.token))[0] == 200
    time.sleep(1.2)
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 401
    assert env.request("GET", "/orders/1001", _bearer(successor.token))[0] == 200


def test_forged_key_with_valid_checksum_shape_is_refused(env: Env) -> None:
    """A key id that exists with a wrong secret is refused like any other bad key."""
    token, _ = env.key(["orders.read"])
    forged = token[:20] + ("A" if token[20] != "A" else "B") + token[21:]
    assert env.request("GET", "/orders/1001", _bearer(forged))[0] == 401


def test_untrusted_upstream_certificate_is_502_and_logged(env: Env) -> None:
    """An upstream whose certificate does not chain to its trust anchor: 502, reason in the log."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/rogue/1001", _bearer(token))
    _is_problem(status, headers, body, 502)
    assert "certificate" not in body["detail"]  # no internal detail to the caller
    failures = [line for line in lines(env) if line.get("event") == "upstream call failed"]
    assert any(
        line["kind"] == "tls_verification" and "certificate verify failed" in line["reason"]
        for line in failures
    )


def test_slow_upstream_is_504(env: Env) -> None:
    """The read timeout (1 s here) turns a hung upstream into 504."""
    token, _ = env.key(["orders.read"])
    status, headers, body = env.request("GET", "/slow", _bearer(token))
    _is_problem(status, headers, body, 504)


def test_health_and_metrics(env: Env) -> None:
    """/healthz answers; the metrics listener has per-route counters and upstream errors."""
    assert env.request("GET", "/healthz")[0] == 200
    # What the counters below count, made here: xdist may run this test on a worker
    # where no other test of the module forwarded a request or met the rogue system.
    token, _ = env.key(["orders.read"])
    assert env.request("GET", "/orders/1001", _bearer(token))[0] == 200
    assert env.request("GET", "/rogue/1001", _bearer(token))[0] == 502
    text = env.metrics()
    assert (
        'interlock_requests_total{outcome="forwarded",route="GET /orders/{id}",status="200"}'
        in text
    )
    assert "interlock_request_duration_seconds_bucket" in text
    assert 'interlock_upstream_errors_total{kind="tls_verification",system="rogue"}' in text


def test_client_not_allowed_api_keys_cannot_get_one(env: Env) -> None:
    """Keys are only issued to clients whose auth includes api_key."""
    from interlock.errors import InvalidRequestError

    with pytest.raises(InvalidRequestError, match="may not use API keys"):
        env.keys.create("oauth-only")


def test_reload_keeps_the_old_manifest_when_the_new_one_is_invalid(env: Env) -> None:
    """A broken manifest on reload is refused and logged; routes keep working."""
    original = env.manifest_path.read_text()
    token, _ = env.key(["orders.read"])
    try:
        env.manifest_path.write_text(original.replace("https://localhost", "http://localhost", 1))
        assert env.gateway.reload() is False
        assert env.request("GET", "/orders/1001", _bearer(token))[0] == 200
        assert any(
            line.get("event", "").startswith("manifest reload refused") for line in lines(env)
        )
    finally:
        env.manifest_path.write_text(original)


def test_no_key_or_secret_ever_reaches_the_logs(env: Env) -> None:
    """After everything above, no issued key and not the ERP credential appear in any log line."""
    token, _ = env.key(["orders.read"])
    env.request("GET", "/orders/1001?api_key=" + token)
    env.request("GET", "/orders/1001", {"Authorization": "Basic " + token})
    log = env.logs.getvalue()
    assert log  # the test would be vacuous without logs
    for secret in [*env.issued_tokens, env.erp_token]:
        assert secret not in log
    assert Path(env.ca_file).exists()


class _Exploding:
    """An upstream stage that fails in an unplanned way."""

    async def __call__(self, ctx: object) -> None:
        raise RuntimeError("internal detail /srv/secret/path")

    async def close(self) -> None:
        """Nothing to close."""


def test_unexpected_exception_is_500_with_only_the_correlation_id(env: Env) -> None:
    """The caller gets the id; the traceback goes to the log only."""
    running = env.gateway
    manifest = running.gateway.manifest
    token, _ = env.key(["orders.read"])
    running.replace(manifest, _Exploding())  # type: ignore[arg-type]
    try:
        status, headers, body = env.request("GET", "/orders/1001", _bearer(token))
    finally:
        running.replace(manifest)
    _is_problem(status, headers, body, 500)
    assert "internal detail" not in str(body)
    logged = [line for line in lines(env) if line.get("correlation_id") == body["correlation_id"]]
    assert any("internal detail" in str(line.get("exception", "")) for line in logged)


def test_jwks_is_published_with_public_keys_only(env: Env) -> None:
    """The gateway publishes the token-signing keys (public halves) at the fixed path."""
    status, headers, body = env.request("GET", "/.well-known/jwks.json")
    assert status == 200
    assert headers["content-type"].startswith("application/jwk-set+json")
    (key,) = body["keys"]
    assert key["kty"] == "EC"
    assert key["alg"] == "ES256"
    assert "d" not in key


def test_an_own_endpoint_error_is_counted_as_refused(env: Env) -> None:
    """A token request refused 401 is a refusal in the metrics (it was counted as "ok")."""
    form = b"grant_type=client_credentials&client_id=nobody&client_secret=wrong"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, _ = env.request("POST", "/oauth2/token", headers, form, source="127.0.0.9")
    assert status == 401
    text = env.metrics()
    assert 'interlock_requests_total{outcome="refused",route="/oauth2/token",status="401"}' in text
    assert 'outcome="ok",route="/oauth2/token",status="401"' not in text
