"""RateLimit header fields, draft-ietf-httpapi-ratelimit-headers-11 (May 2026).

Both fields are Structured Field Lists (RFC 9651) of items whose value is
the policy name as an sf-string (§3, §4):

* ``RateLimit-Policy: "per_client";q=1000;w=60`` — quota ``q`` per window ``w``
  seconds (§3.1), the same on every response of a route;
* ``RateLimit: "per_client";r=998;t=1`` — remaining quota ``r`` and the
  effective window ``t`` in seconds (§4.1), here: seconds until the bucket
  is full again.

No partition key (``pk``) is sent: it would echo the client id or address
(§6.1: avoid sensitive partition keys). A refused request gets 429 with
``Retry-After`` not earlier than the effective window's end (§6) and the
quota-exceeded problem's ``violated-policies`` member (§5.1).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from interlock.limits.limiter import LimitState, Quota

__all__ = ["POLICY", "RATELIMIT", "policy_field", "ratelimit_field"]

POLICY: Final = "RateLimit-Policy"
RATELIMIT: Final = "RateLimit"


def policy_field(quotas: Iterable[Quota]) -> str:
    """``RateLimit-Policy`` for a route's quotas (computed once per route)."""
    return ", ".join(
        f'"{quota.policy}";q={quota.rate.limit};w={int(quota.rate.period.total_seconds())}'
        for quota in quotas
    )


def ratelimit_field(states: Iterable[LimitState]) -> str:
    """``RateLimit`` for the limits' states after a decision."""
    return ", ".join(
        f'"{state.policy}";r={state.remaining};t={state.reset_seconds}' for state in states
    )
