"""Two gateway replicas on one PostgreSQL store and one Redis share their rate limits.

Tolerance: none. Each decision is one atomic script on one Redis, timed by
Redis' own clock, so a per-client limit of N admits exactly N across both.
"""

from __future__ import annotations

from collections.abc import Iterator

import redis

from interlock.testing.gateway import Env
from interlock.testing.services import REDIS
from tests.conftest import need
from tests.gateway.test_replicas import replicas  # noqa: F401  (the two-replica fixture)

_KEYS = "interlock:rl:{order-sync}:*"


def _forget(client: redis.Redis) -> None:
    for key in client.scan_iter(match=_KEYS):
        client.delete(key)


def _clean() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(need(REDIS))
    _forget(client)
    yield client
    _forget(client)
    client.close()


def test_a_per_client_limit_of_n_admits_exactly_n_across_two_replicas(
    replicas: tuple[Env, int, str],  # noqa: F811
) -> None:
    """per_client 3/hour: twelve requests alternating between replicas, three admitted."""
    env, other, _ = replicas
    for client in _clean():
        token, _ = env.key(["orders.read"])
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            env.request("GET", "/limited/1001", headers, port=other if i % 2 else None)[0]
            for i in range(12)
        ]
        assert statuses.count(200) == 3
        assert statuses.count(429) == 9
        assert statuses[:3] == [200, 200, 200]
        assert client.exists("interlock:rl:{order-sync}:GET /limited/{id}:client:order-sync")
    # Each decision was one timed Redis command (issue 18 item 10).
    assert 'interlock_redis_command_duration_seconds_count{command="EVALSHA"}' in env.metrics()
