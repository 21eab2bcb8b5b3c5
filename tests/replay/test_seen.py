"""Single-use values: each backend admits a value once, also under concurrent callers."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import redis
from sqlalchemy import create_engine, select

from interlock.replay.seen import MemorySeen, RedisSeen, SeenOnce, SqlSeen, seen_store
from interlock.replay.tables import SeenValueRow
from interlock.store import Deployment
from interlock.store.base import table_of
from interlock.testing.services import REDIS
from tests.conftest import need
from tests.replay.conftest import Backend


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
