"""Revoked token ids, in the store so every replica sees them.

Each replica keeps a mirror of the (small) set of revoked ``jti`` values and
reloads it from the store at most ``sync_seconds`` after the last load, so a
revocation made on any replica takes effect everywhere within that interval,
and at once on the replica that recorded it. The set stays small: an entry is
purged once the token it names has expired anyway.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from interlock.oauth.tables import RevokedTokenRow
from interlock.store.base import table_of

__all__ = ["RevokedTokens"]

_TABLE = table_of(RevokedTokenRow)


class RevokedTokens:
    """``jti`` values of revoked access tokens, kept until the tokens would have expired."""

    def __init__(self, engine: Engine, sync_seconds: float = 1.0) -> None:
        """Bind to the store; reload the mirror at most ``sync_seconds`` after the last load."""
        self._engine = engine
        self._sync_seconds = sync_seconds
        self._mirror: frozenset[str] = frozenset()
        self._loaded = float("-inf")
        self._lock = threading.Lock()

    def add(self, jti: str, client: str, expires_at: datetime) -> None:
        """Record a revocation (idempotent); visible to this replica at once."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _TABLE.insert().values(
                        jti=jti, client=client, expires_at=expires_at, revoked_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            pass  # already revoked
        with self._lock:
            self._mirror = self._mirror | {jti}

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
                select(_TABLE.c.jti).where(_TABLE.c.expires_at > datetime.now(UTC))
            ).all()
        with self._lock:
            self._mirror = frozenset(row.jti for row in rows)
            self._loaded = started

    def purge(self, now: datetime) -> int:
        """Forget revocations of tokens that have expired anyway."""
        with self._engine.begin() as connection:
            result = connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= now))
        return int(result.rowcount or 0)
