"""Rate limits: GCRA decisions over all of a request's limits, in process or in Redis.

* :class:`MemoryLimiter` — in this process (default; the fallback when open);
* :class:`RedisLimiter` — shared by replicas, one script call per decision;
* :class:`FailurePolicy` — closed (503) or open (in process) when Redis fails;
* :class:`FailureGuard` — the token endpoint's guard against secret guessing;
* :mod:`interlock.limits.headers` — the IETF RateLimit header fields.
"""

from interlock.limits.guard import ADDRESS_FAILURES, CLIENT_FAILURES, FailureGuard
from interlock.limits.headers import policy_field, ratelimit_field
from interlock.limits.limiter import (
    Decision,
    Limit,
    Limiter,
    LimitState,
    LimitsUnavailableError,
    Quota,
)
from interlock.limits.memory import MemoryLimiter
from interlock.limits.policy import BackendObserver, FailureMode, FailurePolicy
from interlock.limits.redis_limiter import LimitsBackendError, RedisLimiter, bucket_key

__all__ = [
    "ADDRESS_FAILURES",
    "CLIENT_FAILURES",
    "BackendObserver",
    "Decision",
    "FailureGuard",
    "FailureMode",
    "FailurePolicy",
    "Limit",
    "LimitState",
    "Limiter",
    "LimitsBackendError",
    "LimitsUnavailableError",
    "MemoryLimiter",
    "Quota",
    "RedisLimiter",
    "bucket_key",
    "policy_field",
    "ratelimit_field",
]
