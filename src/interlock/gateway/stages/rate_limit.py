"""Rate limits of a route: every declared dimension decided at once, after authorisation.

Buckets (all under the route's integration as hash tag, so one decision
touches one Redis cluster slot):

* ``per_client`` — the authenticated client, on this route;
* ``per_ip`` — the caller's address: the TCP peer, or the address a trusted
  proxy reports (:mod:`interlock.gateway.client_address`; never a header
  from anyone else, who could write it themselves), on this route;
* ``per_route`` — everyone together, on this route;
* ``per_integration`` — everyone, on every route of the integration that
  declares the same ``per_integration`` rate.

A refusal is 429 with ``Retry-After`` and the RateLimit fields; an admitted
request's response carries the RateLimit fields too. When the shared backend
is down and the policy is closed: 503 with ``Retry-After: 1``.
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from interlock.config.manifest import RateLimits
from interlock.errors import Refusal
from interlock.gateway.client_address import client_address
from interlock.gateway.context import RequestContext
from interlock.gateway.routing import CompiledRoute
from interlock.limits import (
    Decision,
    Limit,
    Limiter,
    LimitsUnavailableError,
    Quota,
    bucket_key,
    policy_field,
    ratelimit_field,
)
from interlock.limits.headers import POLICY, RATELIMIT

__all__ = ["RateLimit", "rate_limit_stage"]

_DECISION: Final = web.RequestKey("interlock.rate_limit", Decision)
_DIMENSIONS: Final = ("per_client", "per_ip", "per_route", "per_integration")


class RateLimit:
    """Decides a request against its route's limits; 429 when any is exhausted."""

    def __init__(self, route: CompiledRoute, limits: RateLimits, limiter: Limiter) -> None:
        """Prepare the route's quotas and bucket names once."""
        self._limiter = limiter
        self._tag = route.integration_name
        self._label = route.label
        self._quotas = tuple(
            (dimension, Quota(dimension, rate))
            for dimension in _DIMENSIONS
            if (rate := getattr(limits, dimension)) is not None
        )
        self.policy = policy_field(quota for _, quota in self._quotas)

    async def __call__(self, ctx: RequestContext) -> None:
        """Take one unit from every limit, or refuse with 429 (503 if limits are down)."""
        limits = self._limits(ctx)
        try:
            # Redis through redis.asyncio: awaited on the loop, no pool thread per decision.
            decision = await self._limiter.decide_async(limits)
        except LimitsUnavailableError:
            # A fresh refusal each time: a shared one would keep every request's frames.
            raise Refusal(
                "rate-limits-unavailable",
                "rate limits cannot be checked at the moment; retry shortly",
                log_reason="rate-limit backend unavailable (fail closed)",
            ) from None
        if not decision.allowed:
            raise self._refusal(decision)
        ctx.request[_DECISION] = decision

    def annotate(self, ctx: RequestContext, response: web.StreamResponse) -> None:
        """Add the RateLimit fields to an admitted request's response."""
        decision = ctx.request.get(_DECISION)
        if decision is not None:
            response.headers[POLICY] = self.policy
            response.headers[RATELIMIT] = ratelimit_field(decision.states)

    def _limits(self, ctx: RequestContext) -> tuple[Limit, ...]:
        tag, label = self._tag, self._label
        limits = []
        for dimension, quota in self._quotas:
            if dimension == "per_client":
                client = ctx.principal.client if ctx.principal is not None else "-"
                key = bucket_key(tag, label, "client", client)
            elif dimension == "per_ip":
                key = bucket_key(tag, label, "ip", client_address(ctx.request) or "-")
            elif dimension == "per_route":
                key = bucket_key(tag, label, "route")
            else:
                key = bucket_key(tag, "integration", str(quota.rate))
            limits.append(Limit(quota, key))
        return tuple(limits)

    def _refusal(self, decision: Decision) -> Refusal:
        states = decision.states
        violated = [state.policy for state in states if state.remaining == 0]
        wait = decision.retry_after_seconds
        return Refusal(
            "rate-limited",
            f"the rate limit ({', '.join(violated)}) is exhausted; retry in {wait} s",
            headers={
                "Retry-After": str(wait),
                POLICY: self.policy,
                RATELIMIT: ratelimit_field(states),
            },
            extra={"violated-policies": violated},
            log_reason=f"rate limited: {', '.join(violated)}",
        )


def rate_limit_stage(route: CompiledRoute, limiter: Limiter | None) -> RateLimit | None:
    """The route's stage, or ``None`` when it declares no limits (or there is no limiter)."""
    limits = route.route.rate_limit
    if limiter is None or limits is None or not any(getattr(limits, d) for d in _DIMENSIONS):
        return None
    return RateLimit(route, limits, limiter)
