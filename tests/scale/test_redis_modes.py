"""Redis Sentinel and Cluster through redis-py's own clients, selected by the URL's scheme.

Sentinel: a master, a replica and a Sentinel of the test's own; limits, nonces
and revocations keep working across a ``SENTINEL FAILOVER`` in the middle.
Cluster: a one-node cluster (every slot on one node) still enforces slots, so
it proves each script and multi-key command keeps its keys in one slot. Both
for the synchronous clients and for the ``redis.asyncio`` ones the gateway's
rate-limit decisions use (``connect_redis_async``, issue 28 point 5).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from redis.exceptions import RedisClusterException

from interlock.config.settings import load_settings
from interlock.config.units import Rate
from interlock.errors import ConfigError
from interlock.limits import FailurePolicy, Limit, Quota, RedisLimiter, bucket_key
from interlock.oauth.revoked import RevokedTokens
from interlock.replay.seen import RedisSeen
from interlock.store import create_store_engine, upgrade
from interlock.store.redis_client import connect_redis, connect_redis_async
from tests.scale.redis_nodes import Node, free_port, start_node, wait_for

pytestmark = pytest.mark.processes

LIMIT = 20
QUOTA = Quota("per_client", Rate(LIMIT, timedelta(hours=1)))
SENTINEL_CONF = """\
port {port}
sentinel monitor main 127.0.0.1 {master} 1
sentinel down-after-milliseconds main 1000
sentinel failover-timeout main 5000
"""


def _decide(limiter: FailurePolicy, key: str, times: int) -> int:
    limits = (Limit(QUOTA, bucket_key("modes", "client", key)),)
    return sum(limiter.decide(limits).allowed for _ in range(times))


def _decide_async(runner: asyncio.Runner, limiter: FailurePolicy, key: str, times: int) -> int:
    """Like :func:`_decide` through ``decide_async``, on ``runner``'s loop (the client's)."""
    limits = (Limit(QUOTA, bucket_key("modes", "client", key)),)

    async def decide() -> int:
        return sum([(await limiter.decide_async(limits)).allowed for _ in range(times)])

    return runner.run(decide())


@pytest.fixture
def sentinel_set(tmp_path: Path) -> Iterator[tuple[Node, Node, Node]]:
    """Master, replica and one Sentinel watching them, all on free ports."""
    fast = ["--repl-diskless-sync-delay", "0"]  # the first sync at once, not after 5 s
    master = start_node(tmp_path, fast)
    replica = start_node(tmp_path, [*fast, "--replicaof", "127.0.0.1", str(master.port)])
    conf = SENTINEL_CONF.replace("{master}", str(master.port))
    sentinel = start_node(tmp_path, ["--sentinel"], config=conf)
    nodes = (master, replica, sentinel)
    try:
        watcher = sentinel.client()
        try:
            wait_for(
                lambda: len(watcher.sentinel_slaves("main")) == 1,
                what="the Sentinel discovering the replica",
            )
            wait_for(lambda: _link_up(replica), what="the replica's first sync")
            # The Sentinel promotes only a replica whose last INFO (every 10 s) showed its
            # link up; failing over before that is refused with NOGOODSLAVE.
            wait_for(
                lambda: _promotable(watcher),
                what="the Sentinel seeing the replica in sync",
            )
        finally:
            watcher.close()
        yield nodes
    finally:
        for node in reversed(nodes):
            node.stop()


def _master_port(watcher: redis.Redis) -> int:
    address = watcher.sentinel_get_master_addr_by_name("main")
    if not isinstance(address, tuple):
        return 0
    return int(address[1])


def _promotable(watcher: redis.Redis) -> bool:
    replicas = watcher.sentinel_slaves("main")
    return (
        len(replicas) == 1
        and replicas[0].get("master-link-status") == "ok"
        and not replicas[0].get("is_sdown")
        and not replicas[0].get("is_disconnected")
    )


def _link_up(node: Node) -> bool:
    client = node.client()
    try:
        return client.info("replication").get("master_link_status") == "up"
    finally:
        client.close()


def _role(node: Node) -> str:
    client = node.client()
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


def test_sentinel_failover_in_the_middle_keeps_limits_nonces_and_revocations(
    sentinel_set: tuple[Node, Node, Node], tmp_path: Path
) -> None:
    master, replica, sentinel = sentinel_set
    url = f"redis+sentinel://127.0.0.1:{sentinel.port}/main"
    settings = load_settings(redis_url=url)
    first, second = connect_redis(settings), connect_redis(settings)  # two replicas
    assert first is not None
    assert second is not None
    # A third replica deciding as the gateway's routes do: redis.asyncio, on its loop.
    runner = asyncio.Runner()
    third = connect_redis_async(settings)
    assert third is not None
    engine = create_store_engine(f"sqlite:///{tmp_path / 'store.db'}")
    upgrade(engine)
    announcer = RevokedTokens(engine, 3600, first, listen=False)
    listener = RevokedTokens(engine, 3600, second)  # hears revocations only over Redis
    listener.reload()
    try:
        limiters = (FailurePolicy(RedisLimiter(first)), FailurePolicy(RedisLimiter(second)))
        on_loop = FailurePolicy(RedisLimiter(first, async_client=third))
        nonces = RedisSeen(first), RedisSeen(second)
        until = datetime.now(UTC) + timedelta(minutes=5)
        assert _decide(limiters[0], "a", 6) + _decide(limiters[1], "a", 4) == 10
        assert _decide_async(runner, on_loop, "a", 2) == 2
        assert nonces[0].first_use("nonce", "n1", until)
        # Replicated before the failover (asynchronous replication: a failover may lose
        # the last writes; WAIT makes this test about the client, not about that).
        assert first.wait(1, 1500) == 1
        watcher = sentinel.client()
        try:
            watcher.sentinel_failover("main")
            wait_for(lambda: _role(replica) == "master", what="the failover")
            wait_for(
                lambda: _master_port(watcher) == replica.port,
                what="the Sentinel naming the new master",
            )
        finally:
            watcher.close()
        # The same budget continues on the new master: 8 more, then refused (the asyncio
        # client finds the new master as the synchronous ones do).
        assert _decide_async(runner, on_loop, "a", 3) == 3
        assert _decide(limiters[1], "a", 10) + _decide(limiters[0], "a", 5) == LIMIT - 15
        assert _decide_async(runner, on_loop, "a", 2) == 0
        assert not nonces[1].first_use("nonce", "n1", until)  # still seen
        assert nonces[0].first_use("nonce", "n2", until)
        jti = uuid.uuid4().hex
        announcer.add(jti, "order-sync", until)
        wait_for(lambda: listener.known(jti), seconds=10, what="the revocation reaching B")
        wait_for(lambda: _role(master) == "slave", what="the old master following the new")
    finally:
        announcer.close()
        listener.close()
        engine.dispose()
        first.close()
        second.close()
        runner.run(third.aclose())
        runner.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Node]:
    """A one-node Redis Cluster holding all 16384 slots."""
    node = start_node(
        tmp_path,
        [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "nodes.conf"),
            # Not the default port + 10000, which may be taken or above 65535.
            "--cluster-port",
            str(free_port()),
        ],
    )
    try:
        client = node.client()
        try:
            client.cluster("ADDSLOTSRANGE", 0, 16383)
            wait_for(lambda: client.cluster("info")["cluster_state"] == "ok", what="cluster ok")
        finally:
            client.close()
        yield node
    finally:
        node.stop()


def test_cluster_limits_and_nonces_keep_each_command_in_one_slot(cluster: Node) -> None:
    client = connect_redis(load_settings(redis_url=f"redis+cluster://127.0.0.1:{cluster.port}"))
    assert client is not None
    try:
        assert type(client).__name__ == "_TimedCluster"
        limiter = FailurePolicy(RedisLimiter(client))
        # A decision over several limits: one script, several keys, one hash tag.
        limits = tuple(Limit(QUOTA, bucket_key("tag-1", "route", str(n))) for n in range(3))
        assert sum(limiter.decide(limits).allowed for _ in range(LIMIT + 5)) == LIMIT
        assert RedisSeen(client).first_use("nonce", "x", datetime.now(UTC) + timedelta(minutes=1))
        # Keys of two tags in one script: the cluster refuses (what the tags prevent).
        mixed = (
            Limit(QUOTA, bucket_key("tag-1", "client", "a")),
            Limit(QUOTA, bucket_key("tag-2", "client", "a")),
        )
        with pytest.raises(RedisClusterException, match="same key slot"):
            RedisLimiter(client).decide(mixed)
    finally:
        client.close()


def test_the_asyncio_cluster_client_keeps_each_script_in_one_slot(cluster: Node) -> None:
    settings = load_settings(redis_url=f"redis+cluster://127.0.0.1:{cluster.port}")
    sync = connect_redis(settings)
    assert sync is not None

    async def scenario() -> None:
        client = connect_redis_async(settings)
        assert client is not None
        try:
            assert type(client).__name__ == "_TimedAsyncCluster"
            limiter = FailurePolicy(RedisLimiter(sync, async_client=client))
            limits = tuple(Limit(QUOTA, bucket_key("tag-3", "route", str(n))) for n in range(3))
            admitted = [(await limiter.decide_async(limits)).allowed for _ in range(LIMIT + 5)]
            assert sum(admitted) == LIMIT
            mixed = (
                Limit(QUOTA, bucket_key("tag-3", "client", "a")),
                Limit(QUOTA, bucket_key("tag-4", "client", "a")),
            )
            with pytest.raises(RedisClusterException, match="same key slot"):
                await RedisLimiter(sync, async_client=client).decide_async(mixed)
        finally:
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        sync.close()


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://127.0.0.1:1",  # no service name
        "redis+sentinel://127.0.0.1:1/main/x",  # db not a number
        "redis+cluster://127.0.0.1:1/0",  # a cluster has one database
        "redis+cluster://127.0.0.1:x",
    ],
)
def test_malformed_topology_urls_are_one_line_errors(url: str) -> None:
    with pytest.raises(ConfigError, match="INTERLOCK_REDIS_URL"):
        connect_redis(load_settings(redis_url=url))
    with pytest.raises(ConfigError, match="INTERLOCK_REDIS_URL"):
        connect_redis_async(load_settings(redis_url=url))
