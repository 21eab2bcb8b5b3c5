"""The Redis limiter: same decisions as in process, one round trip, keys that expire."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from interlock.config.units import Rate
from interlock.limits import Limit, MemoryLimiter, Quota, RedisLimiter, bucket_key
from interlock.testing.services import REDIS
from tests.conftest import need

# Every test runs on the real Redis.
pytestmark = pytest.mark.redis


class CountingConnection(redis.Connection):
    """Counts every write to the socket: one per round trip."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        """Count, then send."""
        CountingConnection.sent += 1
        # redis-py 8 ships py.typed but leaves this method unannotated.
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    """A client to the test Redis whose round trips are counted."""
    url = need(REDIS)
    pool = redis.ConnectionPool.from_url(url, connection_class=CountingConnection)
    connection = redis.Redis(connection_pool=pool)
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    """A key prefix of this test's own, removed afterwards."""
    value = f"test:rl:{uuid.uuid4().hex}:"
    yield value
    for key in client.scan_iter(match=value + "*"):
        client.delete(key)


FIVE = Quota("per_client", Rate(5, timedelta(hours=1)))
THREE = Quota("per_ip", Rate(3, timedelta(hours=1)))


def test_redis_and_memory_decide_alike(client: redis.Redis, prefix: str) -> None:
    """The same sequence of decisions gives the same verdicts and remaining quotas."""
    shared = RedisLimiter(client, prefix)
    local = MemoryLimiter()
    sequences = [
        (Limit(FIVE, bucket_key("i", "c", "a")), Limit(THREE, bucket_key("i", "ip", "1"))),
        (Limit(FIVE, bucket_key("i", "c", "a")),),
        (Limit(FIVE, bucket_key("i", "c", "b")), Limit(THREE, bucket_key("i", "ip", "1"))),
    ] * 3
    for limits in sequences:
        ours, theirs = shared.decide(limits), local.decide(limits)
        assert (ours.allowed, ours.retry_after_seconds) == (
            theirs.allowed,
            theirs.retry_after_seconds,
        )
        assert [s.remaining for s in ours.states] == [s.remaining for s in theirs.states]
        assert ours.policy == theirs.policy


def test_one_round_trip_per_decision(client: redis.Redis, prefix: str) -> None:
    """Every decision, of one or four limits, admitted or refused, is one EVALSHA."""
    limiter = RedisLimiter(client, prefix)
    keys = [bucket_key("i", name) for name in ("a", "b", "c", "d")]
    limiter.decide((Limit(FIVE, keys[0]),))  # connect and load the script first
    before = CountingConnection.sent
    for _ in range(20):
        limiter.decide(tuple(Limit(FIVE, key) for key in keys))
    assert CountingConnection.sent - before == 20


def test_a_flushed_script_is_sent_again(client: redis.Redis, prefix: str) -> None:
    """NOSCRIPT (after a restart or SCRIPT FLUSH) falls back to EVAL once."""
    limiter = RedisLimiter(client, prefix)
    limits = (Limit(FIVE, bucket_key("i", "a")),)
    limiter.decide(limits)
    client.script_flush()
    assert limiter.decide(limits).remaining == 3
    before = CountingConnection.sent
    limiter.decide(limits)
    assert CountingConnection.sent - before == 1


def test_keys_share_a_hash_tag_and_expire(client: redis.Redis, prefix: str) -> None:
    """A bucket's key expires when it would be full again; one slot per decision."""
    limiter = RedisLimiter(client, prefix)
    quota = Quota("per_route", Rate(10, timedelta(seconds=10)))  # one per second
    keys = (bucket_key("orders", "route"), bucket_key("orders", "client", "x"))
    limiter.decide(tuple(Limit(quota, key) for key in keys))
    for key in keys:
        ttl = client.pttl(prefix + key)
        assert 0 < ttl <= 1000
    assert len({key_slot((prefix + key).encode()) for key in keys}) == 1
