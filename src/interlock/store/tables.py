"""The foundation's own table: one row describing this deployment.

The row binds the store to the keyring: ``canary`` is a value sealed with the
keyring, so opening a store with a different keyring (a restored backup, a
copied data directory, the wrong ``INTERLOCK_DATA_DIR``) is detected at start
instead of surfacing later as undecryptable records.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["DeploymentRow", "ManifestVersionRow", "SealedSettingRow"]


class DeploymentRow(Base):
    """The single row (``id = 1``) that identifies this deployment."""

    __tablename__ = "deployment"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment_id: Mapped[str] = mapped_column(String(36), nullable=False)
    keyring_id: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    canary: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)


class SealedSettingRow(Base):
    """A per-deployment secret value (e.g. the API-key pepper), sealed by the keyring."""

    __tablename__ = "sealed_settings"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class ManifestVersionRow(Base):
    """One manifest published by ``interlock manifest apply``; the highest version is current.

    The text is kept as applied: a manifest names secrets by ``secret://``
    reference only (the loader refuses inline credentials), so nothing here is
    sealed. Versions are never updated or deleted: they are the history.
    """

    __tablename__ = "manifest_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    manifest_text: Mapped[str] = mapped_column(Text, nullable=False)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    applied_by: Mapped[str] = mapped_column(String(200), nullable=False)


register_sealed_column(table_of(DeploymentRow), "canary")
register_sealed_column(table_of(SealedSettingRow), "value")
