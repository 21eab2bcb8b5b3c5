"""Tables of the secrets vault.

``vault_secrets`` holds one row of metadata per secret (never a value);
``vault_versions`` every version of it, sealed by the keyring and bound to
its name and version; ``vault_grants`` the access policy: which client may
read, list or write which paths (default deny). ``vault_rotations`` is the
state of a rotation in progress, so an interrupted one resumes where it
stopped.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["VaultGrantRow", "VaultRotationRow", "VaultSecretRow", "VaultVersionRow"]


class VaultSecretRow(Base):
    """A secret's metadata: owner, kind, rotation policy and its current version."""

    __tablename__ = "vault_secrets"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    description: Mapped[str | None] = mapped_column(String(500))
    # Rotation policy: rotate every ``rotate_every`` seconds; older than
    # ``max_age`` is overdue; the previous version stays valid ``overlap`` seconds.
    rotate_every: Mapped[int | None] = mapped_column(Integer)
    max_age: Mapped[int | None] = mapped_column(Integer)
    overlap: Mapped[int] = mapped_column(Integer, nullable=False)
    # How to rotate it: the rotator's name and its (non-secret) JSON settings.
    rotator: Mapped[str | None] = mapped_column(String(64))
    rotator_config: Mapped[str | None] = mapped_column(Text)
    current_version: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    last_rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VaultVersionRow(Base):
    """One version of a secret: its sealed value and where it stands."""

    __tablename__ = "vault_versions"

    name: Mapped[str] = mapped_column(
        String(200), ForeignKey("vault_secrets.name"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    # NULL once destroyed: the value is gone for good, the record of it stays.
    value: Mapped[bytes | None] = mapped_column(LargeBinary)
    # pending (a rotation's new value, not yet served), current, previous (the
    # one before current, valid until ``valid_until``), or NULL (superseded).
    stage: Mapped[str | None] = mapped_column(String(16))
    valid_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    destroyed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Versions carried over from the first, unversioned store were sealed bound
    # to the name only; every later version is bound to name and version.
    legacy_binding: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # When the value holds a PEM certificate: its validity, so that a rotation is due
    # well before it expires whatever the schedule says (migration 0010).
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class VaultGrantRow(Base):
    """One grant of the access policy: a client may do ``capabilities`` on ``pattern``."""

    __tablename__ = "vault_grants"

    client: Mapped[str] = mapped_column(String(63), primary_key=True)
    pattern: Mapped[str] = mapped_column(String(200), primary_key=True)
    capabilities: Mapped[str] = mapped_column(String(32), nullable=False)  # "list,read,write"
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class VaultRotationRow(Base):
    """A rotation in progress: which step it reached, for which pending version."""

    __tablename__ = "vault_rotations"

    name: Mapped[str] = mapped_column(
        String(200), ForeignKey("vault_secrets.name"), primary_key=True
    )
    pending_version: Mapped[int] = mapped_column(Integer, nullable=False)
    # created -> set -> tested -> (row deleted once promoted)
    step: Mapped[str] = mapped_column(String(16), nullable=False)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500))
    # The rotation lock, a lease: who holds it until when (migration 0009). A
    # holder that dies without releasing it loses it when the lease lapses.
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


register_sealed_column(table_of(VaultVersionRow), "value")
