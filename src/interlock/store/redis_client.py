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
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final, cast
from urllib.parse import parse_qs, urlsplit

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry
from redis.sentinel import Sentinel

from interlock.config.settings import Settings
from interlock.errors import ConfigError

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
    scheme = urlsplit(settings.redis_url).scheme.lower()
    if scheme.endswith("+sentinel"):
        return _sentinel_master(settings.redis_url, observe)
    if scheme.endswith("+cluster"):
        return _cluster(settings.redis_url, observe)
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


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """``host:port,host:port`` (``[v6]:port``) as pairs; a ConfigError naming the bad one."""
    found = []
    for raw in netloc.rpartition("@")[2].split(","):
        item = raw.strip()
        if item.startswith("["):  # [v6] or [v6]:port
            host, _, rest = item[1:].partition("]")
            port = rest.removeprefix(":")
        else:
            host, _, port = item.partition(":")
        if not host or (port and not port.isdigit()):
            raise ConfigError(f"INTERLOCK_REDIS_URL: {item!r} is not HOST:PORT")
        found.append((host, int(port) if port else default_port))
    return found


def _tls(scheme: str, query: str) -> dict[str, Any]:
    """TLS options for ``rediss+...`` URLs (verification always on; a CA file if named)."""
    if not scheme.startswith("rediss"):
        return {}
    options: dict[str, Any] = {"ssl": True, "ssl_cert_reqs": "required"}
    ca = parse_qs(query).get("ssl_ca_certs")
    if ca:
        options["ssl_ca_certs"] = ca[0]
    return options


def _sentinel_master(url: str, observe: CommandObserver | None) -> redis.Redis:
    parts = urlsplit(url)
    path = [segment for segment in parts.path.split("/") if segment]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ConfigError(
            "INTERLOCK_REDIS_URL: a Sentinel URL is redis+sentinel://HOST:PORT[,HOST:PORT]/"
            "SERVICE[/DB]"
        )
    tls = _tls(parts.scheme.lower(), parts.query)
    timeouts: dict[str, Any] = {
        "socket_connect_timeout": REDIS_CONNECT_SECONDS,
        "socket_timeout": REDIS_SOCKET_SECONDS,
    }
    sentinel = Sentinel(_hosts(parts.netloc, SENTINEL_PORT), sentinel_kwargs={**timeouts, **tls})
    client = cast(
        "_TimedRedis",
        sentinel.master_for(
            path[0],
            redis_class=_TimedRedis,
            db=int(path[1]) if len(path) == 2 else 0,
            retry=Retry(NoBackoff(), REDIS_RETRIES),
            **timeouts,
            **tls,
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


def _cluster(url: str, observe: CommandObserver | None) -> redis.Redis:
    parts = urlsplit(url)
    if parts.path.strip("/"):
        raise ConfigError(
            "INTERLOCK_REDIS_URL: a Cluster URL names no database (a cluster has one)"
        )
    client = _TimedCluster(
        startup_nodes=[
            ClusterNode(host, port)  # type: ignore[no-untyped-call]
            for host, port in _hosts(parts.netloc, 6379)
        ],
        socket_connect_timeout=REDIS_CONNECT_SECONDS,
        socket_timeout=REDIS_SOCKET_SECONDS,
        retry=Retry(NoBackoff(), REDIS_RETRIES),
        **_tls(parts.scheme.lower(), parts.query),
    )
    client.observer = observe
    # RedisCluster offers the commands our callers send (EVALSHA, SET NX, HSET, PUBLISH,
    # SUBSCRIBE, PING) with the same signatures; it is not a redis.Redis subclass.
    return cast("redis.Redis", client)
