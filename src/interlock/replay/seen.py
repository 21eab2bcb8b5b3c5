"""Values that may be used once: assertion and DPoP proof ``jti``, request nonces.

``first_use`` answers True the first time a value is presented and False on
every later presentation until ``until`` has passed (after which the value is
refused anyway by its own expiry check, so it can be forgotten). Only a
SHA-256 of the value is kept. Backends, behind one interface:

* :class:`SqlSeen` — the store (SQLite on one machine, PostgreSQL for
  replicas): a primary-key insert, so two replicas racing on the same value
  cannot both win;
* :class:`RedisSeen` — ``SET key NX PXAT``, atomic across replicas, expiring
  by itself;
* :class:`MemorySeen` — one process only, for tests and tools.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import Final, Protocol

import redis
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.replay.tables import SeenValueRow
from interlock.store.base import table_of

__all__ = ["MemorySeen", "RedisSeen", "SeenOnce", "SqlSeen", "seen_store"]

_TABLE: Final = table_of(SeenValueRow)
_PURGE_EVERY: Final = 1000


class SeenOnce(Protocol):
    """Single-use admission of values."""

    def first_use(self, purpose: str, value: str, until: datetime) -> bool:
        """True the first time ``value`` is seen for ``purpose``; False if seen before."""
        ...


def _key(purpose: str, value: str) -> str:
    return f"{purpose}:{hashlib.sha256(value.encode()).hexdigest()}"


class SqlSeen:
    """Seen values in the store's ``replay_seen`` table."""

    def __init__(self, engine: Engine, *, now: Clock = utc_now) -> None:
        """Bind to the store; ``now`` decides whether a remembered value has expired."""
        self._engine = engine
        self._now = now
        self._inserts = 0

    def first_use(self, purpose: str, value: str, until: datetime) -> bool:
        """Insert the value's hash; a duplicate key means it was used before."""
        now = self._now()
        key = _key(purpose, value)
        try:
            with self._engine.begin() as connection:
                connection.execute(_TABLE.insert().values(key=key, expires_at=until))
        except IntegrityError:
            # Used before — unless the old row has expired and was not purged yet.
            with self._engine.begin() as connection:
                gone = connection.execute(
                    delete(_TABLE).where(_TABLE.c.key == key, _TABLE.c.expires_at <= now)
                ).rowcount
            return bool(gone) and self.first_use(purpose, value, until)
        self._inserts += 1
        if self._inserts % _PURGE_EVERY == 0:
            self.purge(now)
        return True

    def purge(self, now: datetime) -> int:
        """Forget values whose acceptance window has closed."""
        with self._engine.begin() as connection:
            result = connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
        return int(result.rowcount or 0)


class RedisSeen:
    """Seen values as Redis keys that expire on their own."""

    def __init__(
        self, client: redis.Redis, prefix: str = "interlock:seen:", *, now: Clock = utc_now
    ) -> None:
        """Use ``client`` (shared by every replica); ``now`` decides whether a window has closed.

        Redis forgets a value at ``until`` by its own clock (``PXAT``): the
        store's expiry is Redis's, as it must be for every replica alike.
        """
        self._client = client
        self._prefix = prefix
        self._now = now

    def first_use(self, purpose: str, value: str, until: datetime) -> bool:
        """``SET NX`` wins for exactly one caller."""
        expires_ms = int(until.timestamp() * 1000)
        if expires_ms <= int(self._now().timestamp() * 1000):
            return True  # the window has closed: nothing to remember
        key = self._prefix + _key(purpose, value)
        return bool(self._client.set(key, b"1", nx=True, pxat=expires_ms))


class MemorySeen:
    """Seen values in this process (tests and single-process tools)."""

    def __init__(self, *, now: Clock = utc_now) -> None:
        """Start empty; ``now`` decides whether a remembered value has expired."""
        self._seen: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._now = now

    def first_use(self, purpose: str, value: str, until: datetime) -> bool:
        """Remember the value until ``until``."""
        now = self._now()
        key = _key(purpose, value)
        with self._lock:
            if len(self._seen) > 100_000:
                self._seen = {k: t for k, t in self._seen.items() if t > now}
            previous = self._seen.get(key)
            if previous is not None and previous > now:
                return False
            self._seen[key] = until
            return True


def seen_store(
    engine: Engine, redis_client: redis.Redis | None, *, now: Clock = utc_now
) -> SeenOnce:
    """Redis when the deployment has one, else the store; ``now`` is their clock."""
    if redis_client is not None:
        return RedisSeen(redis_client, now=now)
    return SqlSeen(engine, now=now)
