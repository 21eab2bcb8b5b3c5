"""The Redis connection factory: one client per process for everything replicas share.

Rate limits, replay nonces, idempotency records and token revocations all use
the client this returns (``INTERLOCK_REDIS_URL``; none: each falls back to the
store or to process memory). Its timeouts are short on purpose: an unreachable
Redis must fail a decision quickly — rate limits then fail closed or open by
policy — and never hold a worker thread for the operating system's connect
timeout. Every command goes through one method, so a caller that wants its
latency (the gateway's metrics) passes ``observe`` and is told of each one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from interlock.config.settings import Settings

__all__ = [
    "REDIS_CONNECT_SECONDS",
    "REDIS_RETRIES",
    "REDIS_SOCKET_SECONDS",
    "CommandObserver",
    "connect_redis",
]

REDIS_CONNECT_SECONDS: Final = 1.0
REDIS_SOCKET_SECONDS: Final = 2.0
#: One immediate retry (a pooled connection from before a Redis restart fails once), not
#: redis-py 8's default of ten with backoff, which holds a failing call for about 3 s.
REDIS_RETRIES: Final = 1


#: Told of each command: its name (``EVALSHA``, ``SET`` ...) and the seconds it took.
CommandObserver = Callable[[str, float], None]


class _TimedRedis(redis.Redis):
    """A client that tells its observer how long each command took (failed ones too)."""

    observer: CommandObserver | None = None

    def execute_command(self, *args: Any, **options: Any) -> Any:
        observer = self.observer
        if observer is None:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        try:
            return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            observer(str(args[0]), time.perf_counter() - started)


def connect_redis(settings: Settings, observe: CommandObserver | None = None) -> redis.Redis | None:
    """The process's Redis client when ``settings.redis_url`` is set, else ``None``.

    Connecting is lazy: the first command opens the connection. ``observe`` is
    told of every command and how long it took.
    """
    if not settings.redis_url:
        return None
    client = cast(
        "_TimedRedis",
        _TimedRedis.from_url(
            settings.redis_url,
            socket_connect_timeout=REDIS_CONNECT_SECONDS,
            socket_timeout=REDIS_SOCKET_SECONDS,
            retry=Retry(NoBackoff(), REDIS_RETRIES),
        ),
    )
    client.observer = observe
    return client
