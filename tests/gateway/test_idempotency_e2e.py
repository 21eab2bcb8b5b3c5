"""Idempotency-Key through the real gateway, and across two replicas."""

from __future__ import annotations

import json
import uuid

from sqlalchemy import select

from interlock.replay.tables import IdempotencyRow
from interlock.store.base import table_of
from interlock.testing.gateway import Env


def _post(
    env: Env, token: str, key: str | None, body: dict[str, object], port: int | None = None
) -> tuple[int, dict[str, str], object]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = f'"{key}"'
    return env.request(
        "POST", "/orders/1001/payments", headers, json.dumps(body).encode(), port=port
    )


def test_a_retried_request_is_answered_from_the_stored_response(env: Env) -> None:
    """Same key, same body: the first answer again, marked as replayed."""
    token, _ = env.key(["orders.write"])
    key = str(uuid.uuid4())
    status, headers, first = _post(env, token, key, {"amount": 10})
    assert status == 200, first
    assert "idempotency-replayed" not in headers
    status, headers, again = _post(env, token, key, {"amount": 10})
    assert status == 200
    assert headers["idempotency-replayed"] == "?1"
    assert again == first


def test_the_same_key_with_another_body_is_422(env: Env) -> None:
    """A reused key with a different payload is refused."""
    token, _ = env.key(["orders.write"])
    key = str(uuid.uuid4())
    assert _post(env, token, key, {"amount": 10})[0] == 200
    status, headers, _ = _post(env, token, key, {"amount": 99})
    assert status == 422
    assert headers["content-type"].startswith("application/problem+json")


def test_a_required_key_that_is_missing_is_400(env: Env) -> None:
    """idempotency: required — no key, no processing."""
    token, _ = env.key(["orders.write"])
    status, headers, _ = _post(env, token, None, {"amount": 10})
    assert status == 400
    assert headers["content-type"].startswith("application/problem+json")


def test_the_stored_response_is_sealed_in_the_store(env: Env) -> None:
    """What the gateway keeps for replays is not readable from the database."""
    token, _ = env.key(["orders.write"])
    status, _, first = _post(env, token, str(uuid.uuid4()), {"amount": 10})
    assert status == 200, first
    table = table_of(IdempotencyRow)
    with env.deployment.engine.connect() as connection:
        rows = connection.execute(select(table.c.response)).all()
        blobs = [bytes(r.response) for r in rows if r.response is not None]
    assert blobs
    for blob in blobs:
        assert b"amount" not in blob
        assert b"payments" not in blob
        assert not blob.startswith(b"{")


def _upstream_key(env: Env, token: str, path: str, key: str, body: bytes) -> str | None:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": f'"{key}"',
    }
    status, _, echoed = env.request("POST", path, headers, body)
    assert status == 200, echoed
    assert isinstance(echoed, dict)
    seen: dict[str, str] = {k.lower(): v for k, v in echoed["headers"].items()}
    return seen.get("idempotency-key")


def test_the_upstream_gets_a_per_client_key_never_the_callers_own(env: Env) -> None:
    """Every caller shares the system's credential upstream: the key it sees is derived per
    client and route, so two clients' equal keys never meet there (was the caller's key,
    unchanged, for both); a retry by the same client carries the same derived key."""
    key = str(uuid.uuid4())
    mine, _ = env.key(["orders.write"])
    theirs = env.keys.create("every-way", None).token
    env.issued_tokens.append(theirs)
    path = "/orders/1001/payments"
    first = _upstream_key(env, mine, path, key, b'{"pay": "A"}')
    other = _upstream_key(env, theirs, path, key, b'{"pay": "B"}')
    assert first is not None
    assert other is not None
    assert key not in first
    assert key not in other
    assert first != other
    # An sf-string (draft §2.1), like the key it stands for.
    assert first.startswith('"')
    assert first.endswith('"')
    # The same client's next key is another derived key (the retry's: tests/replay).
    assert _upstream_key(env, mine, path, str(uuid.uuid4()), b'{"pay": "C"}') != first


def test_a_route_without_an_idempotency_policy_forwards_no_key(env: Env) -> None:
    """Where the gateway keeps no records it has nothing to scope a key by: none goes upstream."""
    token, _ = env.key(["orders.write"])
    assert _upstream_key(env, token, "/orders/1001/notes", str(uuid.uuid4()), b"{}") is None
