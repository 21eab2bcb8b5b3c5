"""Redis stopped and restarted under a failure policy: closed refuses, open falls back.

Runs its own redis-server on a free port, so stopping it disturbs no one.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from interlock.config.units import Rate
from interlock.limits import (
    FailureGuard,
    FailureMode,
    FailurePolicy,
    Limit,
    LimitsUnavailableError,
    MemoryLimiter,
    Quota,
    RedisLimiter,
    bucket_key,
)
from interlock.testing.services import require_env

# Each test starts and stops a redis-server of its own.
pytestmark = pytest.mark.processes

QUOTA = Quota("per_client", Rate(2, timedelta(hours=1)))
LIMITS = (Limit(QUOTA, bucket_key("t", "client", "a")),)


class PortTakenError(RuntimeError):
    """redis-server exited at once: its port was in use."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """A redis-server process of this test's own."""

    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            # CI installs Redis: there its absence is a failure, not a skip.
            if require_env():
                pytest.fail("required program missing: redis-server is not installed")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603  (fixed arguments)
            [
                binary,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                # The port was taken meanwhile (another test's outgoing connection
                # may be given it as its local port): the caller picks another.
                self.process = None
                raise PortTakenError(self.port)
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("redis-server did not start within 30 s")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class Observer:
    """Records what the metrics would."""

    failures: list[str] = field(default_factory=list)
    states: list[bool] = field(default_factory=list)

    def backend_failed(self, mode: FailureMode) -> None:
        self.failures.append(mode)

    def backend_up(self, up: bool) -> None:
        self.states.append(up)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """A running redis-server on a free port, stopped afterwards."""
    for _ in range(5):
        running = Server(_free_port(), tmp_path)
        try:
            running.start()
            break
        except PortTakenError:
            continue
    else:
        raise RuntimeError("no free port for redis-server after 5 tries")
    yield running
    running.stop()


def _policy(
    server: Server, mode: FailureMode, observer: Observer
) -> tuple[FailurePolicy, redis.Redis]:
    client = redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 1))
    return FailurePolicy(RedisLimiter(client), mode, observer=observer), client


def test_closed_refuses_while_redis_is_down_and_recovers_when_it_is_back(server: Server) -> None:
    """Stopped: LimitsUnavailableError (the gateway's 503), a metric, one log line; restarted: Redis decides again."""
    observer = Observer()
    policy, client = _policy(server, "closed", observer)
    try:
        assert policy.decide(LIMITS).remaining == 1
        server.stop()
        with capture_logs() as logs:
            for _ in range(2):
                with pytest.raises(LimitsUnavailableError):
                    policy.decide(LIMITS)
        assert observer.failures == ["closed", "closed"]
        assert [e["event"] for e in logs] == ["rate-limit backend unreachable"]
        assert policy.down
        server.start()
        with capture_logs() as logs:
            decision = policy.decide(LIMITS)
        # A fresh server: the bucket starts full, so this is Redis deciding, not memory.
        assert decision.remaining == 1
        assert [e["event"] for e in logs] == ["rate-limit backend reachable again"]
        assert observer.states == [False, True]
        assert client.exists("interlock:rl:" + LIMITS[0].key)
    finally:
        client.close()


def test_open_falls_back_to_in_process_limits_while_redis_is_down(server: Server) -> None:
    """Stopped: decisions are made in process (still limited); restarted: by Redis again."""
    observer = Observer()
    fallback = MemoryLimiter()
    client = redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 1))
    policy = FailurePolicy(RedisLimiter(client), "open", fallback=fallback, observer=observer)
    try:
        policy.decide(LIMITS)
        server.stop()
        verdicts = [policy.decide(LIMITS).allowed for _ in range(3)]
        assert verdicts == [True, True, False]  # the in-process limit of 2 holds
        assert observer.failures == ["open"] * 3
        server.start()
        assert policy.decide(LIMITS).allowed
        assert client.exists("interlock:rl:" + LIMITS[0].key)
        assert observer.states == [False, True]
    finally:
        client.close()


def test_the_guard_slows_down_attempts_while_redis_is_down_and_closed(server: Server) -> None:
    """Failing closed, the token endpoint's guard answers 'wait' rather than unguarded."""
    policy, client = _policy(server, "closed", Observer())
    guard = FailureGuard(policy)
    try:
        assert guard.blocking
        assert guard.retry_after("order-sync", "192.0.2.1") is None
        server.stop()
        guard.failed("order-sync", "192.0.2.1")  # swallowed
        assert guard.retry_after("order-sync", "192.0.2.1") == 1.0
    finally:
        client.close()


def _async_policy(
    server: Server, mode: FailureMode, observer: Observer, fallback: MemoryLimiter | None = None
) -> tuple[FailurePolicy, redis.asyncio.Redis]:
    """A policy whose decide_async goes through redis.asyncio; its sync client reaches nothing.

    The synchronous client names a port nobody listens on: a decision that went
    through it (a thread) instead of the asyncio client would fail.
    """
    nowhere = redis.Redis(host="127.0.0.1", port=_free_port(), socket_connect_timeout=1)
    client = redis.asyncio.Redis(
        host="127.0.0.1", port=server.port, retry=redis.asyncio.retry.Retry(NoBackoff(), 1)
    )
    limiter = RedisLimiter(nowhere, async_client=client)
    return FailurePolicy(limiter, mode, fallback=fallback, observer=observer), client


def test_closed_on_the_event_loop_refuses_while_redis_is_down_and_recovers(
    server: Server,
) -> None:
    """redis.asyncio (issue 28 point 5): the same fail-closed semantics as the threaded path."""
    observer = Observer()

    async def scenario() -> None:
        policy, client = _async_policy(server, "closed", observer)
        try:
            assert (await policy.decide_async(LIMITS)).remaining == 1
            server.stop()
            with capture_logs() as logs:
                for _ in range(2):
                    with pytest.raises(LimitsUnavailableError):
                        await policy.decide_async(LIMITS)
            assert observer.failures == ["closed", "closed"]
            assert [e["event"] for e in logs] == ["rate-limit backend unreachable"]
            server.start()
            decision = await policy.decide_async(LIMITS)
            assert decision.remaining == 1  # a fresh server's full bucket: Redis decided
            assert observer.states == [False, True]
            assert await client.exists("interlock:rl:" + LIMITS[0].key)
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_open_on_the_event_loop_falls_back_to_in_process_limits(server: Server) -> None:
    """Failing open through redis.asyncio: in-process decisions (still limited), then Redis."""
    observer = Observer()

    async def scenario() -> None:
        policy, client = _async_policy(server, "open", observer, MemoryLimiter())
        try:
            await policy.decide_async(LIMITS)
            server.stop()
            verdicts = [(await policy.decide_async(LIMITS)).allowed for _ in range(3)]
            assert verdicts == [True, True, False]
            server.start()
            assert (await policy.decide_async(LIMITS)).allowed
            assert await client.exists("interlock:rl:" + LIMITS[0].key)
            assert observer.states == [False, True]
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_the_guard_on_the_event_loop_slows_down_attempts_while_redis_is_down(
    server: Server,
) -> None:
    """The gateway's guessing guard awaits the same budget; down and closed: 'wait'."""

    async def scenario() -> None:
        policy, client = _async_policy(server, "closed", Observer())
        guard = FailureGuard(policy)
        try:
            assert await guard.retry_after_async(None, "192.0.2.1") is None
            server.stop()
            await guard.failed_async(None, "192.0.2.1")  # swallowed
            assert await guard.retry_after_async(None, "192.0.2.1") == 1.0
        finally:
            await client.aclose()

    asyncio.run(scenario())
