"""The backends the replay package's stores run on: the store (SQLite, PostgreSQL), Redis, memory."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from sqlalchemy import Engine

from interlock.config.settings import Settings
from interlock.store import initialise
from interlock.testing.services import REDIS
from tests.conftest import need


@dataclass(frozen=True)
class Backend:
    """One backend: a store engine, or a Redis client with a test-private prefix, or memory."""

    kind: str
    engine: Engine | None = None
    client: redis.Redis | None = None
    prefix: str = ""


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """A client of the real Redis (skipped, or failed under CI, when it is down)."""
    client = redis.Redis.from_url(need(REDIS))
    yield client
    client.close()


@pytest.fixture(params=["sqlite", "postgresql", "redis", "memory"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each backend in turn."""
    if request.param in {"sqlite", "postgresql"}:
        url = (
            f"sqlite:///{tmp_path / 'store.db'}"
            if request.param == "sqlite"
            else request.getfixturevalue("postgres_url")
        )
        deployment = initialise(Settings(data_dir=tmp_path / "data", database_url=url))
        yield Backend("sql", engine=deployment.engine)
        deployment.close()
        return
    if request.param == "redis":
        client: redis.Redis = request.getfixturevalue("redis_client")
        yield Backend("redis", client=client, prefix=f"test:{uuid.uuid4().hex}:")
        return
    yield Backend("memory")
