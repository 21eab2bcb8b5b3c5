"""Tables of the identity package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["ApiKeyRow", "ClientKeyRow", "ClientSecretRow"]


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


class ClientSecretRow(Base):
    """An OAuth client secret: its hash only."""

    __tablename__ = "identity_client_secrets"
    __table_args__ = (Index("ix_identity_client_secrets_client", "client"),)

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    client: Mapped[str] = mapped_column(String(63), nullable=False)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ClientKeyRow(Base):
    """A client's registered key for one use: a public JWK, or a sealed HMAC secret."""

    __tablename__ = "identity_client_keys"
    __table_args__ = (Index("ix_identity_client_keys_client", "client"),)

    # An RFC 7638 thumbprint (one key belongs to one client), or a random id for an HMAC key.
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    use: Mapped[str] = mapped_column(String(16), primary_key=True)  # assertion | signature
    client: Mapped[str] = mapped_column(String(63), nullable=False)
    # The JWK alg (assertion) or the RFC 9421 §6.2 name (signature).
    alg: Mapped[str] = mapped_column(String(32), nullable=False)
    # Exactly one: the public JWK (JSON), or an HMAC key's secret sealed by the keyring.
    public_jwk: Mapped[str | None] = mapped_column(Text, nullable=True)
    sealed_secret: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


register_sealed_column(table_of(ClientKeyRow), "sealed_secret")
