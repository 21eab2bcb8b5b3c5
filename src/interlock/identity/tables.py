"""Tables of the identity package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base

__all__ = ["ApiKeyRow"]


class ApiKeyRow(Base):
    """An API key: its id, owner, scopes and *hash* — never the key itself."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_client", "client"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(63), nullable=False)
    scopes: Mapped[str] = mapped_column(Text, nullable=False)  # space-separated, sorted
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    successor_id: Mapped[str | None] = mapped_column(String(16))
