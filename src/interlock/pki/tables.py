"""Tables of the PKI package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["AuthorityRow"]


class AuthorityRow(Base):
    """A certificate authority of this deployment; its private key is sealed."""

    __tablename__ = "pki_authorities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    private_key: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


register_sealed_column(table_of(AuthorityRow), "private_key")
