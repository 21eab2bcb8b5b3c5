"""Signed requests through the real gateway: a route with a replay policy (RFC 9421, RFC 9530)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from interlock.testing.gateway import Env, Signer

BODY = b'{"note": "deliver before noon", "order": 1001}'


@pytest.fixture
def api_key(env: Env) -> dict[str, str]:
    """An API key header for order-sync."""
    token, _ = env.key()
    return {"X-API-Key": token}


@pytest.fixture(params=["ed25519", "hmac-sha256"])
def signer(request: pytest.FixtureRequest, env: Env) -> Iterator[Signer]:
    """An Ed25519 key and an HMAC secret, in turn (revoked afterwards)."""
    signer = Signer(env, hmac=request.param == "hmac-sha256")
    yield signer
    signer.revoke()


def _post(env: Env, headers: dict[str, str], body: bytes = BODY) -> tuple[int, dict[str, str], Any]:
    return env.request("POST", "/signed/orders/1001", headers, body)


def test_a_signed_request_is_forwarded(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    headers = {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY)}
    status, _, payload = _post(env, headers)
    assert status == 200, payload
    assert payload["body_bytes"] == len(BODY)
    assert payload["path"] == "/echo/signed/1001"


def test_an_unsigned_request_is_refused_with_what_to_sign(
    env: Env, api_key: dict[str, str]
) -> None:
    status, headers, problem = _post(env, {**api_key, "Content-Type": "application/json"})
    assert status == 403
    assert problem["type"].endswith("invalid-signature")
    assert headers["accept-signature"] == (
        'sig1=("@method" "@target-uri" "content-digest");created;nonce;keyid'
    )


def test_a_reused_nonce_is_refused(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    headers = {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY)}
    assert _post(env, headers)[0] == 200
    status, _, problem = _post(env, headers)
    assert status == 403
    assert problem["type"].endswith("replayed-request")
    assert "nonce was used before" in problem["detail"]


def test_a_stale_timestamp_is_refused(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    old = datetime.now(UTC) - timedelta(seconds=90)
    status, _, problem = _post(
        env, {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY, created=old)}
    )
    assert status == 403
    assert "older than this route's 60 s window" in problem["detail"]


def test_a_future_timestamp_is_refused(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    ahead = datetime.now(UTC) + timedelta(minutes=2)
    status, _, problem = _post(
        env, {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY, created=ahead)}
    )
    assert status == 403
    assert "in the future" in problem["detail"]


def test_a_bad_signature_is_refused(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    headers = {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY)}
    value = headers["Signature"]
    flipped = "A" if value[10] != "A" else "B"
    headers["Signature"] = value[:10] + flipped + value[11:]
    status, _, problem = _post(env, headers)
    assert status == 403
    assert problem["detail"] == "the signature does not verify"


def test_a_signature_for_another_path_is_refused(
    env: Env, api_key: dict[str, str], signer: Signer
) -> None:
    headers = {**api_key, **signer.headers("POST", "/signed/orders/1002", BODY)}
    status, _, problem = _post(env, headers)
    assert status == 403
    assert problem["detail"] == "the signature does not verify"


def test_a_wrong_digest_is_refused(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    headers = {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY)}
    status, _, problem = _post(env, headers, BODY.replace(b"noon", b"dawn"))
    assert status == 400
    assert problem["type"].endswith("content-digest-mismatch")


def test_a_key_of_another_client_is_refused(env: Env, api_key: dict[str, str]) -> None:
    other = Signer(env, client="oauth-only")
    status, _, problem = _post(
        env, {**api_key, **other.headers("POST", "/signed/orders/1001", BODY)}
    )
    other.revoke()
    assert status == 403
    assert "another client" in problem["detail"]


def test_a_revoked_key_is_refused(env: Env, api_key: dict[str, str]) -> None:
    signer = Signer(env)
    signer.revoke()
    # The gateway's cache holds a lookup for at most a second; this key was never looked up.
    status, _, problem = _post(
        env, {**api_key, **signer.headers("POST", "/signed/orders/1001", BODY)}
    )
    assert status == 403
    assert "not an active signature key" in problem["detail"]


def test_the_signature_does_not_replace_authentication(env: Env, signer: Signer) -> None:
    status, _, _ = _post(env, signer.headers("POST", "/signed/orders/1001", BODY))
    assert status == 401


def test_a_route_with_an_optional_nonce(env: Env, api_key: dict[str, str], signer: Signer) -> None:
    headers = {**api_key, **signer.headers("GET", "/signed/orders/1001", nonce=None)}
    status, _, payload = env.request("GET", "/signed/orders/1001", headers)
    assert status == 200, payload
    status, _, _ = env.request("GET", "/signed/orders/1001", headers)
    assert status == 200  # no nonce: replayable within the window, as that route chose
    nonced = {**api_key, **signer.headers("GET", "/signed/orders/1001", nonce="once")}
    assert env.request("GET", "/signed/orders/1001", nonced)[0] == 200
    assert env.request("GET", "/signed/orders/1001", nonced)[0] == 403


def test_routes_without_a_replay_policy_ignore_signatures(
    env: Env, api_key: dict[str, str]
) -> None:
    status, _, _ = env.request("GET", "/orders/1001", {**api_key, "Signature": "junk"})
    assert status == 200
