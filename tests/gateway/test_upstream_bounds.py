"""Upstream bounds: redirects are relayed, never followed; oversized answers are refused."""

from __future__ import annotations

from interlock.testing.gateway import Env


def test_redirects_are_returned_not_followed(env: Env) -> None:
    """A 302 from the upstream reaches the caller as-is; Interlock never fetches the target."""
    token, _ = env.key(["orders.read"])
    status, headers, _ = env.request("GET", "/moved", {"Authorization": f"Bearer {token}"})
    assert status == 302
    assert headers["location"] == "https://example.com/elsewhere"


def test_response_over_the_cap_is_502(env: Env) -> None:
    """A body larger than the cap (1 MiB here) is refused, not truncated."""
    token, _ = env.key(["orders.read"])
    auth = {"Authorization": f"Bearer {token}"}
    status, _, body = env.request("GET", f"/big/{1024 * 1024}", auth)
    assert status == 200
    assert len(body) == 1024 * 1024
    status, headers, body = env.request("GET", f"/big/{1024 * 1024 + 1}", auth)
    assert status == 502
    assert headers["content-type"].startswith("application/problem+json")
