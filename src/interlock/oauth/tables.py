"""Tables of the OAuth package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["RevokedClientRow", "RevokedTokenRow", "SigningKeyRow"]


class SigningKeyRow(Base):
    """A token-signing key: public JWK in clear, private JWK sealed by the keyring.

    Life cycle by time: published from ``created_at``; signs from
    ``activates_at`` until a successor activates; published until
    ``retires_at``, after which the row is deleted.
    """

    __tablename__ = "oauth_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16), nullable=False)
    public_jwk: Mapped[str] = mapped_column(Text, nullable=False)
    private_jwk: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    activates_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    retires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


register_sealed_column(table_of(SigningKeyRow), "private_jwk")


class RevokedTokenRow(Base):
    """A revoked access token's ``jti``, kept until the token would have expired."""

    __tablename__ = "oauth_revoked_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    client: Mapped[str] = mapped_column(String(63), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    revoked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class RevokedClientRow(Base):
    """Every access token issued to ``client`` at or before ``revoked_before`` is revoked.

    Written by ``interlock clients revoke``; kept while such a token could still be
    unexpired (tokens live at most an hour).
    """

    __tablename__ = "oauth_revoked_clients"

    client: Mapped[str] = mapped_column(String(63), primary_key=True)
    revoked_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
