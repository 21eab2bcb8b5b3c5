"""Tables of the PKI package."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["AuthorityRow", "CertificateRow"]


class AuthorityRow(Base):
    """A certificate authority of this deployment; its private key is sealed.

    ``private_key`` is NULL only for a root kept offline (exported, then removed).
    ``name``: ``root``, ``issuing``, or ``retired-issuing-SERIAL`` for an
    intermediate replaced while its certificates may be valid (``created_at``:
    when it was retired).
    """

    __tablename__ = "pki_authorities"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


register_sealed_column(table_of(AuthorityRow), "private_key")


class CertificateRow(Base):
    """An end-entity certificate the issuing CA signed. Its private key is never stored."""

    __tablename__ = "pki_certificates"
    __table_args__ = (
        Index("ix_pki_certificates_not_after", "not_after"),
        Index("ix_pki_certificates_name", "name"),
    )

    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lowercase hex
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # "client" | "server"
    name: Mapped[str] = mapped_column(String(253), nullable=False)  # client name or first host
    identity: Mapped[str | None] = mapped_column(String(512))  # URI SAN of a client
    hosts: Mapped[str | None] = mapped_column(Text)  # a server's names, space-separated
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    certificate_pem: Mapped[str] = mapped_column(Text, nullable=False)
    # Held in memory only by the process that asked (the gateway's own listener
    # certificate): it issues a new one at start, so renewal and monitoring skip it.
    ephemeral: Mapped[bool] = mapped_column(Boolean, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revocation_reason: Mapped[str | None] = mapped_column(String(32))  # RFC 5280 §5.3.1 name
    replaced_by: Mapped[str | None] = mapped_column(String(40))  # serial of the renewal
