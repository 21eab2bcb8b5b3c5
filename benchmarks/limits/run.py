"""Rate-limit decisions per second: ours (GCRA) vs the ``limits`` library, in process and Redis.

Same rates (1000/min per client, 5000/min per IP: the manifest example), same
keys (10,000 clients, 1,000 addresses, so nearly every decision is admitted),
one thread. A decision checks both limits; for ``limits`` that is two
``hit`` calls.

The peer is ``limits`` in its fastest reasonable configurations, each named in
its ratio: the sliding-window counter (like GCRA it smooths the window edge,
approximately) and the fixed window (the cheapest strategy; it admits up to
2N around a window edge, which GCRA does not), both against the target. The
moving window (exact, like GCRA, and the slowest) is reported without a
target, for reference only.

Redis round trips of our limiter are counted by a connection that counts
every write to its socket. Run: ``.venv/bin/python benchmarks/limits/run.py``
(Redis at INTERLOCK_TEST_REDIS_URL or 127.0.0.1:6379).
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from importlib import metadata
from pathlib import Path
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

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.results import report, skip
from interlock.config.units import Rate
from interlock.limits import Limit, MemoryLimiter, Quota, RedisLimiter, bucket_key
from interlock.testing.services import REDIS, unreachable

TARGET = 3.0
VERSION = f"limits {metadata.version('limits')}"
STRATEGIES: dict[str, type[RateLimiter]] = {
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "fixed-window": FixedWindowRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}
#: The strategies reported against the target; the moving window is the slowest.
TARGETED = ("sliding-window-counter", "fixed-window")

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
    """Run everything; end with one ratio line per figure."""
    count = 200_000
    results: dict[str, float] = {}
    results["ours-memory"] = rate(ours(MemoryLimiter(), "bench"), count)
    for name, cls in STRATEGIES.items():
        results[f"limits-memory-{name}"] = rate(theirs(cls(MemoryStorage())), count)

    redis_reason = unreachable(REDIS)
    trips = math.nan
    if redis_reason is None:
        trips = measure_redis(results)

    for name, value in results.items():
        print(f"{name:40s} {value:12,.0f} decisions/s")
    for where in ("memory", "redis"):
        if f"ours-{where}" not in results:
            continue
        for name in STRATEGIES:
            report(
                "limits",
                f"{'inprocess' if where == 'memory' else 'redis'}-vs-limits-{name}",
                results[f"ours-{where}"] / results[f"limits-{where}-{name}"],
                # Redis: no target; the round trips below are what the design fixes.
                target=TARGET if where == "memory" and name in TARGETED else None,
                peer=f"{VERSION} {name} strategy, {'MemoryStorage' if where == 'memory' else 'RedisStorage'}",
                note="GCRA, both limits per decision; the peer: two hit() calls",
            )
    if redis_reason is not None:
        skip("limits", f"the Redis half: {redis_reason}")
    print(f"our redis round trips per decision: {trips:.2f}")
    report(
        "limits",
        "redis-round-trips-per-decision",
        trips,
        target=1.0,
        direction="<=",
        peer="",
        kind="property",
        note="writes to the Redis socket per decision of both limits (one Lua script call)",
    )


def measure_redis(results: dict[str, float]) -> float:
    """Decisions per second through Redis, ours and each strategy; returns our round trips."""
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
    for name, cls in STRATEGIES.items():
        storage = RedisStorage(url, key_prefix=f"bench-limits-{tag}-{name}")
        results[f"limits-redis-{name}"] = rate(theirs(cls(storage)), redis_count)
    for key in client.scan_iter(match=f"*{tag}*"):
        client.delete(key)
    client.close()
    pool.disconnect()
    return trips


if __name__ == "__main__":
    main()
