"""Rate-limit decisions per second: ours (GCRA) vs the ``limits`` library, in process and Redis.

Same rates (1000/min per client, 5000/min per IP: the manifest example), same
keys (10,000 clients, 1,000 addresses, so nearly every decision is admitted),
one thread. A decision checks both limits; for ``limits`` that is two
``hit`` calls. The target peer in process is ``limits``' MovingWindow: like
GCRA it has no window-edge burst (FixedWindow admits 2N around an edge);
FixedWindow and SlidingWindowCounter are printed for reference.

Redis round trips of our limiter are counted by a connection that counts
every write to its socket. Run: ``.venv/bin/python benchmarks/limits/run.py``
(Redis at INTERLOCK_TEST_REDIS_URL or 127.0.0.1:6379).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import limits
import redis
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import (
    FixedWindowRateLimiter,
    MovingWindowRateLimiter,
    RateLimiter,
    SlidingWindowCounterRateLimiter,
)

from interlock.config.units import Rate
from interlock.limits import Limit, MemoryLimiter, Quota, RedisLimiter, bucket_key
from interlock.testing.services import REDIS

CLIENTS = [f"client-{i}" for i in range(10_000)]
ADDRESSES = [f"10.0.{i // 256}.{i % 256}" for i in range(1_000)]
PER_CLIENT = Quota("per_client", Rate(1000, timedelta(minutes=1)))
PER_IP = Quota("per_ip", Rate(5000, timedelta(minutes=1)))
THEIR_CLIENT, THEIR_IP = limits.parse("1000/minute"), limits.parse("5000/minute")


class CountingConnection(redis.Connection):
    """Counts writes to the socket: one per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count, then send."""
        CountingConnection.sent += 1
        super().send_packed_command(command, check_health)


def rate(decide: Callable[[str, str], object], count: int) -> float:
    """Decisions per second over ``count`` decisions."""
    started = time.perf_counter()
    for i in range(count):
        decide(CLIENTS[i % 10_000], ADDRESSES[i % 1_000])
    return count / (time.perf_counter() - started)


def ours(limiter: MemoryLimiter | RedisLimiter, tag: str) -> Callable[[str, str], object]:
    """One decision of both limits."""

    def decide(client: str, address: str) -> object:
        return limiter.decide(
            (
                Limit(PER_CLIENT, bucket_key(tag, "client", client)),
                Limit(PER_IP, bucket_key(tag, "ip", address)),
            )
        )

    return decide


def theirs(strategy: RateLimiter) -> Callable[[str, str], object]:
    """Two hits, as ``limits`` has no multi-limit decision."""

    def decide(client: str, address: str) -> object:
        return strategy.hit(THEIR_CLIENT, "client", client) and strategy.hit(
            THEIR_IP, "ip", address
        )

    return decide


def main() -> None:
    """Run everything; end with one ratio line per target."""
    count = 200_000
    results: dict[str, float] = {}
    results["ours-memory"] = rate(ours(MemoryLimiter(), "bench"), count)
    for name, cls in (
        ("limits-memory-moving-window", MovingWindowRateLimiter),
        ("limits-memory-fixed-window", FixedWindowRateLimiter),
        ("limits-memory-sliding-window-counter", SlidingWindowCounterRateLimiter),
    ):
        results[name] = rate(theirs(cls(MemoryStorage())), count)

    url = REDIS.url
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    tag = f"bench-{uuid.uuid4().hex[:8]}"
    limiter = RedisLimiter(client, "bench:rl:")
    redis_count = 20_000
    ours(limiter, tag)("warm", "up")  # connect, load the script
    before = CountingConnection.sent
    results["ours-redis"] = rate(ours(limiter, tag), redis_count)
    trips = (CountingConnection.sent - before) / redis_count
    storage = RedisStorage(url, key_prefix=f"bench-limits-{tag}")
    results["limits-redis-moving-window"] = rate(
        theirs(MovingWindowRateLimiter(storage)), redis_count
    )
    for key in client.scan_iter(match=f"*{tag}*"):
        client.delete(key)
    client.close()

    for name, value in results.items():
        print(f"{name:40s} {value:12,.0f} decisions/s")
    print(f"our redis round trips per decision: {trips:.2f}")
    print(
        "ratio inprocess-vs-limits: "
        f"{results['ours-memory'] / results['limits-memory-moving-window']:.2f} (target >= 3)"
    )
    print(
        "ratio redis-vs-limits: "
        f"{results['ours-redis'] / results['limits-redis-moving-window']:.2f} (no target)"
    )
    print(f"ratio redis-round-trips-per-decision: {trips:.2f} (target <= 1)")


if __name__ == "__main__":
    main()
