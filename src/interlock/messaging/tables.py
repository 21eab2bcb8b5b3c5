"""Tables of the messaging package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["MessagingKeyRow"]


class MessagingKeyRow(Base):
    """A messaging integration's key: a producer's signing key or a consumer's encryption key.

    The public JWK is in clear (it is published); the private JWK is sealed by
    the keyring, bound to integration, party and kid. Life cycle by time as for
    the OAuth signing keys: published from ``created_at``; used (to sign, or by
    producers to encrypt to) from ``activates_at`` until a successor activates;
    kept for verifying and decrypting until ``retires_at``, then deleted.
    """

    __tablename__ = "messaging_keys"
    __table_args__ = (Index("ix_messaging_keys_integration", "integration", "party"),)

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    integration: Mapped[str] = mapped_column(String(63), nullable=False)
    # The producer (the integration's client) or a consumer, by client name.
    party: Mapped[str] = mapped_column(String(63), nullable=False)
    key_use: Mapped[str] = mapped_column(String(3), nullable=False)  # "sig"|"enc", RFC 7517 §4.2
    alg: Mapped[str] = mapped_column(String(16), nullable=False)
    public_jwk: Mapped[str] = mapped_column(Text, nullable=False)
    private_jwk: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    activates_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    retires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


register_sealed_column(table_of(MessagingKeyRow), "private_jwk")
