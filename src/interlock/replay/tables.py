"""Tables of the replay package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["IdempotencyRow", "SeenValueRow"]


class SeenValueRow(Base):
    """A value already used once, kept until it could no longer be accepted anyway."""

    __tablename__ = "replay_seen"
    __table_args__ = (Index("ix_replay_seen_expires_at", "expires_at"),)

    # "<purpose>:<sha256 of the value>" so no raw nonce or jti is stored.
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class IdempotencyRow(Base):
    """An Idempotency-Key record: claimed while in flight, then the response to replay."""

    __tablename__ = "replay_idempotency"
    __table_args__ = (Index("ix_replay_idempotency_expires_at", "expires_at"),)

    # SHA-256 of "<scope>\0<key>": neither the client's key nor its scope is stored.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False)
    # Who holds the record: only the holder may complete or abandon it.
    token: Mapped[str] = mapped_column(String(32), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # in_flight | completed
    # Sealed with the keyring, bound to ``id`` (ResponseSeal); None while in flight.
    response: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


register_sealed_column(table_of(IdempotencyRow), "response")
