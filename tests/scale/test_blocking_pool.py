"""Blocking calls on a bounded pool: a request over capacity gets 503 + Retry-After at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from interlock.errors import Refusal
from interlock.gateway.blocking_pool import BoundedExecutor, handling_request
from interlock.testing.gateway import Env, running_gateway


def test_requests_over_capacity_are_refused_and_other_work_queues() -> None:
    release = threading.Event()
    pool = BoundedExecutor(1, 1)
    try:
        held = [pool.submit(release.wait, 10), pool.submit(release.wait, 10)]
        with handling_request(), pytest.raises(Refusal) as refused:
            pool.submit(release.wait, 10)
        assert refused.value.code == "overloaded"
        held.append(pool.submit(release.wait, 10))  # background work: queued, never refused
        assert pool.pending == 3
        release.set()
        for future in held:
            assert future.result(timeout=10) is True
        assert pool.pending == 0
        with handling_request():
            assert pool.submit(lambda: 7).result(timeout=10) == 7
    finally:
        release.set()
        pool.shutdown(wait=True)


@pytest.fixture
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """A gateway (SQLite store) of this test's own."""
    with running_gateway(tmp_path_factory.mktemp("pool")) as running:
        yield running


@pytest.mark.processes
def test_a_saturated_gateway_answers_503_with_retry_after(env: Env) -> None:
    key, _ = env.key()
    pool = BoundedExecutor(1, 0)
    release = threading.Event()
    env.loop.call_soon_threadsafe(env.loop.set_default_executor, pool)
    try:
        blocker: Future[bool] = asyncio.run_coroutine_threadsafe(_occupy(release), env.loop)
        deadline = time.monotonic() + 10
        while pool.pending < 1 and time.monotonic() < deadline:  # the only thread is taken
            time.sleep(0.01)
        status, headers, body = env.request("GET", "/orders/1001", {"X-API-Key": key})
        assert status == 503
        assert headers["retry-after"] == "1"
        assert body["type"].endswith(":overloaded")
        release.set()
        assert blocker.result(timeout=10) is True
        assert env.request("GET", "/orders/1001", {"X-API-Key": key})[0] == 200
    finally:
        release.set()
        env.loop.call_soon_threadsafe(env.loop.set_default_executor, ThreadPoolExecutor())
        pool.shutdown(wait=True)


async def _occupy(release: threading.Event) -> bool:
    """Hold the pool's only thread (background work, not a request) until released."""
    return await asyncio.to_thread(release.wait, 10)
