"""Revoked token ids, in the store so every replica sees them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError

from interlock.oauth.tables import RevokedTokenRow
from interlock.store.base import as_utc, table_of

__all__ = ["RevokedTokens"]

_TABLE = table_of(RevokedTokenRow)


class RevokedTokens:
    """``jti`` values of revoked access tokens, kept until the tokens would have expired."""

    def __init__(self, engine: Engine) -> None:
        """Bind to the store."""
        self._engine = engine

    def add(self, jti: str, client: str, expires_at: datetime) -> None:
        """Record a revocation (idempotent)."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _TABLE.insert().values(
                        jti=jti, client=client, expires_at=expires_at, revoked_at=datetime.now(UTC)
                    )
                )
        except IntegrityError:
            return  # already revoked

    def contains(self, jti: str) -> bool:
        """Whether the token ``jti`` is revoked."""
        with self._engine.connect() as connection:
            found = connection.execute(select(_TABLE.c.jti).where(_TABLE.c.jti == jti)).first()
        return found is not None

    def purge(self, now: datetime) -> int:
        """Forget revocations of tokens that have expired anyway."""
        with self._engine.connect() as connection:
            rows = connection.execute(select(_TABLE.c.jti, _TABLE.c.expires_at)).all()
        gone = [r.jti for r in rows if as_utc(r.expires_at) <= now]
        if gone:
            with self._engine.begin() as connection:
                connection.execute(delete(_TABLE).where(_TABLE.c.jti.in_(gone)))
        return len(gone)
