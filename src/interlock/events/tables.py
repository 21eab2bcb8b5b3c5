"""Tables of the schema registry: schemas by global id, subjects' versions, mode overrides.

A schema's text is stored once, in canonical JSON, under a global id (the same
schema in two subjects has one id, as in Confluent's registry); a subject's
versions point at ids. Nothing here is secret: schemas describe data, they
hold none, so no column is sealed.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base

__all__ = ["EventSchemaRow", "EventSubjectModeRow", "EventSubjectVersionRow"]


class EventSchemaRow(Base):
    """One schema text, under its global id; ``fingerprint`` (SHA-256 hex) finds it by text."""

    __tablename__ = "event_schemas"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    schema_text: Mapped[str] = mapped_column(Text, nullable=False)  # canonical JSON
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class EventSubjectVersionRow(Base):
    """Version ``version`` (1, 2, ...) of ``subject`` is the schema ``schema_id``."""

    __tablename__ = "event_subject_versions"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("event_schemas.id"), nullable=False, index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    created_by: Mapped[str] = mapped_column(String(200), nullable=False)  # an actor's label


class EventSubjectModeRow(Base):
    """An operator's compatibility mode for ``subject``, overriding the manifest's."""

    __tablename__ = "event_subject_modes"

    subject: Mapped[str] = mapped_column(String(100), primary_key=True)
    mode: Mapped[str] = mapped_column(String(32), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(200), nullable=False)
