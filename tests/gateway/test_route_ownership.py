"""A route belongs to its integration: holding the scope is not enough (issue 18 item 1).

In the harness, ``crm-sync`` is the client of the ``crm-feed`` integration and
holds ``orders.read`` (declared shared), the scope of ``order-sync``'s routes.
Before, its key opened ``order-sync``'s routes — and the gateway then sent the
ERP credential of ``order-sync``'s system on its behalf. Now the gateway
refuses it there (403, audited, nothing forwarded) and serves its own routes.
"""

from __future__ import annotations

import json

from interlock.testing.gateway import Env


def test_a_client_of_another_integration_is_refused_whatever_its_scopes(env: Env) -> None:
    """crm-sync's key, holding orders.read, gets 403 on order-sync's route and 200 on its own."""
    issued = env.keys.create("crm-sync", ["orders.read"])
    env.issued_tokens.append(issued.token)
    key = {"X-API-Key": issued.token}
    status, headers, body = env.request("GET", "/orders/1001", key)
    assert status == 403, body
    assert headers["content-type"].startswith("application/problem+json")
    assert body["type"] == "urn:interlock:problem:access-denied"
    assert "integration" in body["detail"]
    assert "order-sync" not in json.dumps(body)  # names no other integration or client
    (entry,) = env.audit_entries(headers["x-request-id"])
    assert entry["outcome"] == {"result": "failure", "status": 403}
    assert entry["actor"] == "client:crm-sync"
    assert "not a caller" in entry["reason"]
    assert entry["volume"]["records"] == 0  # nothing was forwarded
    status, _, order = env.request("GET", "/crm/orders/1001", key)
    assert (status, order["id"]) == (200, "1001")


def test_a_client_the_integration_names_as_caller_is_served(env: Env) -> None:
    """oauth-only is one of order-sync's callers: its token opens order-sync's routes."""
    with env.client_secret("oauth-only") as secret:
        status, _, body = env.request(
            "POST",
            "/oauth2/token",
            {**env.basic(secret), "Content-Type": "application/x-www-form-urlencoded"},
            b"grant_type=client_credentials",
        )
    assert status == 200, body
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert env.request("GET", "/orders/1001", bearer)[0] == 200
    # ... but not crm-feed's, of which it is no caller.
    status, _, refused = env.request("GET", "/crm/orders/1001", bearer)
    assert (status, refused["type"]) == (403, "urn:interlock:problem:access-denied")
