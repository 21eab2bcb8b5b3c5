"""The rate-limit stage on its own: 503 when limits are unavailable (fail closed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from unittest.mock import MagicMock

import pytest

from interlock.config.manifest import RateLimits
from interlock.config.units import Rate
from interlock.errors import Refusal
from interlock.gateway.problems import problem_response
from interlock.gateway.stages.rate_limit import RateLimit
from interlock.identity.grants import Principal
from interlock.limits import Decision, Limit, LimitsUnavailableError


class Unavailable:
    """A limiter whose backend is down, failing closed."""

    blocking = True

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        raise LimitsUnavailableError("rate limits are unavailable")

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        raise LimitsUnavailableError("rate limits are unavailable")


def test_limits_unavailable_is_a_503_problem_with_retry_after() -> None:
    """Closed policy: the request is refused with 503 and Retry-After: 1, not let through."""
    route = MagicMock(integration_name="order-sync", label="GET /x")
    stage = RateLimit(route, RateLimits(per_client=Rate(5, timedelta(minutes=1))), Unavailable())
    ctx = MagicMock()
    ctx.principal = Principal("order-sync", frozenset(), "key", method="api_key")
    with pytest.raises(Refusal) as refused:
        asyncio.run(stage(ctx))
    response = problem_response(refused.value, "corr", "/x")
    assert (response.status, refused.value.code) == (503, "rate-limits-unavailable")
    assert response.headers["Retry-After"] == "1"
