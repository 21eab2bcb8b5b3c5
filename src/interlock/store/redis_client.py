"""The Redis connection factory: one client per process for everything replicas share.

Rate limits, replay nonces, idempotency records and token revocations all use
the client this returns (``INTERLOCK_REDIS_URL``; none: each falls back to the
store or to process memory). Its timeouts are short on purpose: an unreachable
Redis must fail a decision quickly — rate limits then fail closed or open by
policy — and never hold a worker thread for the operating system's connect
timeout. Every command goes through one method, so a caller that wants its
latency (the gateway's metrics) passes ``observe`` and is told of each one.

The URL's scheme picks the topology, through redis-py's own clients:

* ``redis://``, ``rediss://``, ``unix://`` — one server (``Redis.from_url``);
* ``redis+sentinel://HOST:PORT[,HOST:PORT...]/SERVICE[/DB]`` (``rediss+`` for
  TLS) — the master of SERVICE as the Sentinels name it
  (``redis.sentinel.Sentinel``), found again after a failover: the form
  redis-sentinel-url, RedisVL and Prefect use;
* ``redis+cluster://HOST:PORT[,HOST:PORT...]`` (``rediss+`` for TLS) — a Redis
  Cluster from those start-up nodes (``redis.cluster.RedisCluster``). Every
  script and multi-key command we send keeps its keys in one slot: rate-limit
  keys of one decision share a hash tag (``limits.bucket_key``); idempotency
  records and nonces are one key each.

:func:`connect_redis_async` builds the same topology from the same URL through
``redis.asyncio`` for the gateway's per-request calls (the rate-limit script),
which then wait on the event loop instead of holding a pool thread each; the
synchronous client stays for everything called from threads or the CLI.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qs, urlsplit

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.asyncio.sentinel
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from interlock.config.remote_tls import redis_hosts
from interlock.config.settings import Settings
from interlock.errors import ConfigError

__all__ = [
    "REDIS_ASYNC_CONNECTIONS",
    "REDIS_CONNECT_SECONDS",
    "REDIS_RETRIES",
    "REDIS_SOCKET_SECONDS",
    "CommandObserver",
    "connect_redis",
    "connect_redis_async",
]

REDIS_CONNECT_SECONDS: Final = 1.0
REDIS_SOCKET_SECONDS: Final = 2.0
#: One immediate retry (a pooled connection from before a Redis restart fails once), not
#: redis-py 8's default of ten with backoff, which holds a failing call for about 3 s.
REDIS_RETRIES: Final = 1
#: Connections of one process's asyncio client to one server (a single server's pool
#: waits for a free one; a Sentinel master's or a cluster node's refuses beyond it, and
#: the failure policy applies): requests on the event loop are many, a decision is short.
REDIS_ASYNC_CONNECTIONS: Final = 64


#: Told of each command: its name (``EVALSHA``, ``SET`` ...) and the seconds it took.
CommandObserver = Callable[[str, float], None]


SENTINEL_PORT: Final = 26379


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
    target = _target(settings.redis_url)
    if target.kind == "sentinel":
        return _sentinel_master(target, observe)
    if target.kind == "cluster":
        return _cluster(target, observe)
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


def connect_redis_async(
    settings: Settings, observe: CommandObserver | None = None
) -> redis.asyncio.Redis | None:
    """Like :func:`connect_redis`, through ``redis.asyncio``: same URL, topology and timeouts.

    Build it on the event loop that will use it (its connections belong to that
    loop) and close it there (``await client.aclose()``).
    """
    if not settings.redis_url:
        return None
    target = _target(settings.redis_url)
    retry = redis.asyncio.retry.Retry(NoBackoff(), REDIS_RETRIES)
    if target.kind == "sentinel":
        sentinel = redis.asyncio.sentinel.Sentinel(
            target.hosts, sentinel_kwargs={**_TIMEOUTS, **target.tls}
        )
        client = cast(
            "_TimedAsyncRedis",
            sentinel.master_for(
                target.service,
                redis_class=_TimedAsyncRedis,
                db=target.db,
                retry=retry,
                max_connections=REDIS_ASYNC_CONNECTIONS,
                **_TIMEOUTS,
                **target.tls,
            ),
        )
        client.sentinels = tuple(sentinel.sentinels)
    elif target.kind == "cluster":
        cluster = _TimedAsyncCluster(
            startup_nodes=[
                redis.asyncio.cluster.ClusterNode(host, port) for host, port in target.hosts
            ],
            retry=retry,
            max_connections=REDIS_ASYNC_CONNECTIONS,
            **_TIMEOUTS,
            **target.tls,
        )
        cluster.observer = observe
        # As the synchronous cluster client: the commands we send, not a Redis subclass.
        return cast("redis.asyncio.Redis", cluster)
    else:
        # Bounded: a burst of requests waits (up to the socket timeout) for one of
        # REDIS_ASYNC_CONNECTIONS connections instead of opening one per request.
        pool = redis.asyncio.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=REDIS_ASYNC_CONNECTIONS,
            timeout=REDIS_SOCKET_SECONDS,
            retry=retry,
            **_TIMEOUTS,
        )
        client = _TimedAsyncRedis(connection_pool=pool)
        client.auto_close_connection_pool = True  # aclose() closes the pool it made
    client.observer = observe
    return client


_TIMEOUTS: Final[dict[str, Any]] = {
    "socket_connect_timeout": REDIS_CONNECT_SECONDS,
    "socket_timeout": REDIS_SOCKET_SECONDS,
}


@dataclass(frozen=True)
class _Target:
    """What ``INTERLOCK_REDIS_URL`` names: the topology, its nodes, and TLS options."""

    kind: Literal["single", "sentinel", "cluster"]
    hosts: list[tuple[str, int]] = field(default_factory=list)
    service: str = ""  # a Sentinel's master name
    db: int = 0
    tls: dict[str, Any] = field(default_factory=dict)


def _target(url: str) -> _Target:
    """Parse and check the URL once for both clients; a ConfigError naming what is wrong."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme.endswith("+sentinel"):
        path = [segment for segment in parts.path.split("/") if segment]
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ConfigError(
                "INTERLOCK_REDIS_URL: a Sentinel URL is redis+sentinel://HOST:PORT[,HOST:PORT]/"
                "SERVICE[/DB]"
            )
        return _Target(
            "sentinel",
            _hosts(parts.netloc, SENTINEL_PORT),
            path[0],
            int(path[1]) if len(path) == 2 else 0,
            _tls(scheme, parts.query),
        )
    if scheme.endswith("+cluster"):
        if parts.path.strip("/"):
            raise ConfigError(
                "INTERLOCK_REDIS_URL: a Cluster URL names no database (a cluster has one)"
            )
        return _Target("cluster", _hosts(parts.netloc, 6379), tls=_tls(scheme, parts.query))
    return _Target("single")


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    try:
        return redis_hosts(netloc, default_port)
    except ConfigError as bad:
        raise ConfigError(f"INTERLOCK_REDIS_URL: {bad.message}") from None


def _tls(scheme: str, query: str) -> dict[str, Any]:
    """TLS options for ``rediss+...`` URLs (verification always on; a CA file if named)."""
    if not scheme.startswith("rediss"):
        return {}
    options: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    ca = parse_qs(query).get("ssl_ca_certs")
    if ca:
        options["ssl_ca_certs"] = ca[0]
    return options


def _sentinel_master(target: _Target, observe: CommandObserver | None) -> redis.Redis:
    sentinel = Sentinel(target.hosts, sentinel_kwargs={**_TIMEOUTS, **target.tls})
    client = cast(
        "_TimedRedis",
        sentinel.master_for(
            target.service,
            redis_class=_TimedRedis,
            db=target.db,
            retry=Retry(NoBackoff(), REDIS_RETRIES),
            **_TIMEOUTS,
            **target.tls,
        ),
    )
    client.observer = observe
    return client


class _TimedCluster(RedisCluster):
    """A cluster client that tells its observer how long each command took."""

    observer: CommandObserver | None = None

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        observer = self.observer
        if observer is None:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        try:
            return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            observer(str(args[0]), time.perf_counter() - started)


def _cluster(target: _Target, observe: CommandObserver | None) -> redis.Redis:
    client = _TimedCluster(
        startup_nodes=[
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in target.hosts
        ],
        retry=Retry(NoBackoff(), REDIS_RETRIES),
        **_TIMEOUTS,
        **target.tls,
    )
    client.observer = observe
    # RedisCluster offers the commands our callers send (EVALSHA, SET NX, HSET, PUBLISH,
    # SUBSCRIBE, PING) with the same signatures; it is not a redis.Redis subclass.
    return cast("redis.Redis", client)


class _TimedAsyncRedis(redis.asyncio.Redis):
    """The asyncio client that tells its observer how long each command took."""

    observer: CommandObserver | None = None
    #: A Sentinel master's client closes the Sentinels' clients with its own.
    sentinels: tuple[redis.asyncio.Redis, ...] = ()

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the connections, and those to the Sentinels (redis-py leaves them open)."""
        await super().aclose(close_connection_pool)
        for sentinel in self.sentinels:
            await sentinel.aclose()

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        observer = self.observer
        if observer is None:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        finally:
            observer(str(args[0]), time.perf_counter() - started)


class _TimedAsyncCluster(redis.asyncio.cluster.RedisCluster):
    """The asyncio cluster client that tells its observer how long each command took."""

    observer: CommandObserver | None = None

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        observer = self.observer
        if observer is None:
            return await super().execute_command(*args, **kwargs)
        started = time.perf_counter()
        try:
            return await super().execute_command(*args, **kwargs)
        finally:
            observer(str(args[0]), time.perf_counter() - started)
