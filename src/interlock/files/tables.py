"""Tables of the files package: AS2 messages sent and the MDNs that settled them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base

__all__ = ["As2MessageRow"]


class As2MessageRow(Base):
    """An AS2 message Interlock sent, and what its MDN said (``awaiting`` until one comes)."""

    __tablename__ = "as2_messages"
    __table_args__ = (Index("ix_as2_messages_integration", "integration"),)

    message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    integration: Mapped[str] = mapped_column(String(100), nullable=False)
    partner: Mapped[str] = mapped_column(String(100), nullable=False)
    file: Mapped[str] = mapped_column(String(255), nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # The MIC we computed (RFC 4130 §7.3.1): the partner's MDN must return exactly it.
    mic: Mapped[str] = mapped_column(String(200), nullable=False)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    state: Mapped[str] = mapped_column(String(16), nullable=False)  # awaiting|confirmed|refused
    settled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(300), nullable=True)
