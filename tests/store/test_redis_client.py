"""The Redis client factory: every command's latency reaches the observer (issue 18 item 10)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
import redis

from interlock.config.settings import Settings
from interlock.gateway.metrics import GatewayMetrics
from interlock.store.redis_client import connect_redis, connect_redis_async
from interlock.testing.services import REDIS
from tests.conftest import need

pytestmark = pytest.mark.redis


def test_every_command_is_timed_failed_ones_too(tmp_path: Path) -> None:
    """SET, GET and a refused command each reach the observer once, by name."""
    seen: list[tuple[str, float]] = []
    client = connect_redis(
        Settings(data_dir=tmp_path, redis_url=need(REDIS)),
        observe=lambda command, seconds: seen.append((command, seconds)),
    )
    assert client is not None
    key = f"interlock:test:{uuid.uuid4().hex}"
    try:
        client.set(key, b"v", ex=10)
        assert client.get(key) == b"v"
        with pytest.raises(redis.ResponseError):
            client.execute_command("NOSUCHCOMMAND")  # type: ignore[no-untyped-call]
    finally:
        client.delete(key)
        client.close()
    assert [command for command, _ in seen] == ["SET", "GET", "NOSUCHCOMMAND", "DEL"]
    assert all(seconds >= 0 for _, seconds in seen)


def test_the_asyncio_client_times_every_command_too(tmp_path: Path) -> None:
    """The gateway's per-request client (redis.asyncio): same URL, same observer, same names."""
    seen: list[tuple[str, float]] = []
    settings = Settings(data_dir=tmp_path, redis_url=need(REDIS))

    async def commands() -> None:
        client = connect_redis_async(
            settings, observe=lambda command, seconds: seen.append((command, seconds))
        )
        assert client is not None
        key = f"interlock:test:{uuid.uuid4().hex}"
        try:
            await client.set(key, b"v", ex=10)
            assert await client.get(key) == b"v"
            with pytest.raises(redis.ResponseError):
                await client.execute_command("NOSUCHCOMMAND")  # type: ignore[no-untyped-call]
        finally:
            await client.delete(key)
            await client.aclose()

    asyncio.run(commands())
    assert [command for command, _ in seen] == ["SET", "GET", "NOSUCHCOMMAND", "DEL"]


def test_the_gateway_metrics_count_redis_commands_by_a_bounded_name() -> None:
    """The command label is the command's name, or OTHER for anything that is not one."""
    metrics = GatewayMetrics()
    metrics.redis_command("evalsha", 0.001)
    metrics.redis_command("SCRIPT LOAD" + "x" * 100, 0.001)
    text = metrics.render().decode()
    assert 'interlock_redis_command_duration_seconds_count{command="EVALSHA"} 1.0' in text
    assert 'interlock_redis_command_duration_seconds_count{command="OTHER"} 1.0' in text


def test_no_url_no_client(tmp_path: Path) -> None:
    """Without INTERLOCK_REDIS_URL there is no client to time."""
    assert connect_redis(Settings(data_dir=tmp_path), observe=lambda *_: None) is None
    assert connect_redis_async(Settings(data_dir=tmp_path), observe=lambda *_: None) is None
