"""Tables of the secrets package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["SecretRow"]


class SecretRow(Base):
    """The current value of a named secret, sealed by the keyring."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


register_sealed_column(table_of(SecretRow), "value")
