"""Single-use values: each backend admits a value once, also under concurrent callers."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import create_engine, select

from interlock.replay.seen import MemorySeen, RedisSeen, SeenOnce, SqlSeen, seen_store
from interlock.replay.tables import SeenValueRow
from interlock.store import Deployment
from interlock.store.base import table_of
from interlock.testing.clock import ManualClock
from interlock.testing.services import REDIS
from tests.conftest import need
from tests.replay.conftest import Backend

#: Years after any real "now" these tests run at: a decision by the real clock comes out otherwise.
FAR = datetime(2040, 1, 1, tzinfo=UTC)


@pytest.fixture
def seen(backend: Backend) -> SeenOnce:
    """The seen on each backend."""
    if backend.engine is not None:
        return SqlSeen(backend.engine)
    if backend.client is not None:
        return RedisSeen(backend.client, prefix=backend.prefix)
    return MemorySeen()


def _later(seconds: float = 60) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def test_a_value_is_admitted_once(seen: SeenOnce) -> None:
    """The first use wins; the second is a replay; another purpose is independent."""
    assert seen.first_use("dpop", "jti-1", _later())
    assert not seen.first_use("dpop", "jti-1", _later())
    assert seen.first_use("client-assertion", "jti-1", _later())
    assert seen.first_use("dpop", "jti-2", _later())


def test_an_expired_entry_can_be_used_again(seen: SeenOnce) -> None:
    """After its window closes a value is forgotten (its own expiry refuses it anyway)."""
    assert seen.first_use("dpop", "old", datetime.now(UTC) - timedelta(seconds=1))
    assert seen.first_use("dpop", "old", _later())


def test_racing_callers_admit_exactly_one(seen: SeenOnce) -> None:
    """Sixteen threads present the same value at once: one wins."""
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(lambda _: seen.first_use("dpop", "race", _later()), range(16)))
    assert results.count(True) == 1


def test_two_replicas_share_the_store(deployment: Deployment) -> None:
    """Two engines on the same database (two replicas) cannot both admit a value."""
    url = deployment.engine.url.render_as_string(hide_password=False)
    other = create_engine(url)
    try:
        first, second = SqlSeen(deployment.engine), SqlSeen(other)
        assert first.first_use("dpop", "shared", _later())
        assert not second.first_use("dpop", "shared", _later())
    finally:
        other.dispose()


def test_only_a_hash_is_stored(deployment: Deployment) -> None:
    """The raw value never reaches the table."""
    SqlSeen(deployment.engine).first_use("nonce", "very-distinctive-value", _later())
    with deployment.engine.connect() as connection:
        keys = [row.key for row in connection.execute(select(table_of(SeenValueRow)))]
    assert len(keys) == 1
    assert "very-distinctive-value" not in keys[0]
    assert keys[0].startswith("nonce:")


def test_purge_forgets_closed_windows(deployment: Deployment) -> None:
    """Purging deletes expired values only."""
    seen = SqlSeen(deployment.engine)
    seen.first_use("dpop", "past", datetime.now(UTC) - timedelta(seconds=5))
    seen.first_use("dpop", "future", _later())
    assert seen.purge(datetime.now(UTC)) == 1
    assert not seen.first_use("dpop", "future", _later())


@pytest.mark.redis
def test_backend_follows_configuration(deployment: Deployment) -> None:
    """Redis when a URL is configured, the store otherwise."""
    assert isinstance(seen_store(deployment.engine, None), SqlSeen)
    client = redis.Redis.from_url(need(REDIS))
    assert isinstance(seen_store(deployment.engine, client), RedisSeen)
    client.close()


# Redis expires its keys by its own clock (PXAT), as replicas need: see the next test.
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "memory"], indirect=True)
def test_a_seen_value_expires_by_the_injected_clock(backend: Backend) -> None:
    """The store and memory forget a value when the injected clock passes ``until``.

    By the real clock, a value kept until 2040 would still be remembered.
    """
    clock = ManualClock(FAR)
    seen: SeenOnce = (
        SqlSeen(backend.engine, now=clock) if backend.engine is not None else MemorySeen(now=clock)
    )
    assert seen.first_use("dpop", "v", clock.now + timedelta(seconds=60))
    clock.advance(59)
    assert not seen.first_use("dpop", "v", clock.now + timedelta(seconds=60))
    clock.advance(2)
    assert seen.first_use("dpop", "v", clock.now + timedelta(seconds=60))


def test_redis_decides_a_closed_window_by_the_injected_clock(redis_client: redis.Redis) -> None:
    """A window closed on the injected clock (though open by the real one) is not remembered."""
    clock = ManualClock(FAR)
    prefix = f"test:{uuid.uuid4().hex}:"
    seen = RedisSeen(redis_client, prefix=prefix, now=clock)
    closed = clock.now - timedelta(seconds=1)  # in the real clock's future
    assert seen.first_use("dpop", "v", closed)
    assert seen.first_use("dpop", "v", closed)
    assert redis_client.keys(prefix + "*") == []


def test_seen_store_passes_its_clock_on(deployment: Deployment) -> None:
    """The configured backend gets the clock it was built with."""
    clock = ManualClock(FAR)
    seen = seen_store(deployment.engine, None, now=clock)
    assert seen.first_use("dpop", "v", clock.now + timedelta(seconds=1))
    clock.advance(2)
    assert seen.first_use("dpop", "v", clock.now + timedelta(seconds=1))
