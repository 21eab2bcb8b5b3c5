"""The Redis connection factory: one client per process for everything replicas share.

Rate limits, replay nonces, idempotency records and token revocations all use
the client this returns (``INTERLOCK_REDIS_URL``; none: each falls back to the
store or to process memory). Its timeouts are short on purpose: an unreachable
Redis must fail a decision quickly — rate limits then fail closed or open by
policy — and never hold a worker thread for the operating system's connect
timeout.
"""

from __future__ import annotations

from typing import Final

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from interlock.config.settings import Settings

__all__ = ["REDIS_CONNECT_SECONDS", "REDIS_RETRIES", "REDIS_SOCKET_SECONDS", "connect_redis"]

REDIS_CONNECT_SECONDS: Final = 1.0
REDIS_SOCKET_SECONDS: Final = 2.0
#: One immediate retry (a pooled connection from before a Redis restart fails once), not
#: redis-py 8's default of ten with backoff, which holds a failing call for about 3 s.
REDIS_RETRIES: Final = 1


def connect_redis(settings: Settings) -> redis.Redis | None:
    """The process's Redis client when ``settings.redis_url`` is set, else ``None``.

    Connecting is lazy: the first command opens the connection.
    """
    if not settings.redis_url:
        return None
    return redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_SECONDS,
        socket_timeout=REDIS_SOCKET_SECONDS,
        retry=Retry(NoBackoff(), REDIS_RETRIES),
    )
