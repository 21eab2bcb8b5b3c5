"""Tables of the replay package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base

__all__ = ["SeenValueRow"]


class SeenValueRow(Base):
    """A value already used once, kept until it could no longer be accepted anyway."""

    __tablename__ = "replay_seen"
    __table_args__ = (Index("ix_replay_seen_expires_at", "expires_at"),)

    # "<purpose>:<sha256 of the value>" so no raw nonce or jti is stored.
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
