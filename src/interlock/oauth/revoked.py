"""Revoked token ids, in the store so every replica sees them.

Each replica keeps a mirror of the (small) set of revoked ``jti`` values and
reloads it from the store at most ``sync_seconds`` after the last load, so a
revocation made on any replica takes effect everywhere within that interval,
and at once on the replica that recorded it. With Redis configured, a
revocation is also published on a channel every replica listens to, so it
takes effect everywhere at once; the store stays the record (a replica that
missed a message still catches up at its next reload). The set stays small:
an entry is purged once the token it names has expired anyway.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime

import redis
import redis.client
from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.logs import get_logger
from interlock.oauth.tables import RevokedTokenRow
from interlock.store.base import table_of

__all__ = ["RevokedTokens"]

_TABLE = table_of(RevokedTokenRow)
CHANNEL = "interlock:oauth:revoked"
_log = get_logger("interlock.oauth.revoked")


class RevokedTokens:
    """``jti`` values of revoked access tokens, kept until the tokens would have expired."""

    def __init__(
        self,
        engine: Engine,
        sync_seconds: float = 1.0,
        redis_client: redis.Redis | None = None,
        *,
        now: Clock = utc_now,
    ) -> None:
        """Bind to the store; reload the mirror at most ``sync_seconds`` after the last load.

        With ``redis_client``, revocations are also announced to (and heard from)
        the other replicas at once. ``now`` stamps revocations and decides which
        have outlived their token; the mirror's age is monotonic time.
        """
        self._engine = engine
        self._now = now
        self._sync_seconds = sync_seconds
        self._mirror: frozenset[str] = frozenset()
        self._loaded = float("-inf")
        self._lock = threading.Lock()
        self._redis = redis_client
        self._listener: redis.client.PubSubWorkerThread | None = None
        if redis_client is not None:
            pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(**{CHANNEL: self._heard})
            self._listener = pubsub.run_in_thread(sleep_time=0.25, daemon=True)

    def close(self) -> None:
        """Stop listening for other replicas' revocations."""
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=2)  # it closes its connection on the way out
            self._listener = None

    def _heard(self, message: dict[str, object]) -> None:
        data = message.get("data")
        if isinstance(data, bytes) and 0 < len(data) <= 64:
            with self._lock:
                self._mirror = self._mirror | {data.decode("ascii", "replace")}

    def add(self, jti: str, client: str, expires_at: datetime) -> None:
        """Record a revocation (idempotent); visible to this replica at once."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _TABLE.insert().values(
                        jti=jti, client=client, expires_at=expires_at, revoked_at=self._now()
                    )
                )
        except IntegrityError:
            pass  # already revoked
        with self._lock:
            self._mirror = self._mirror | {jti}
        if self._redis is not None:
            try:
                self._redis.publish(CHANNEL, jti.encode("ascii"))
            except redis.RedisError as exc:
                # Recorded in the store all the same: other replicas see it at their next reload.
                _log.warning("revocation not announced over Redis", error=str(exc))

    def contains(self, jti: str) -> bool:
        """Whether the token ``jti`` is revoked (reloads the mirror when it is stale)."""
        known = self.known(jti)
        if known is not None:
            return known
        self.reload()
        return jti in self._mirror

    def known(self, jti: str) -> bool | None:
        """Whether ``jti`` is revoked per a fresh mirror, or ``None`` when it is stale (no I/O)."""
        if time.monotonic() - self._loaded >= self._sync_seconds:
            return None
        return jti in self._mirror

    def reload(self) -> None:
        """Load the revoked ids of tokens that have not expired yet."""
        started = time.monotonic()
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(_TABLE.c.jti).where(_TABLE.c.expires_at > self._now())
            ).all()
        with self._lock:
            self._mirror = frozenset(row.jti for row in rows)
            self._loaded = started

    def purge(self, now: datetime) -> int:
        """Forget revocations of tokens that have expired anyway."""
        with self._engine.begin() as connection:
            result = connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
        return int(result.rowcount or 0)
