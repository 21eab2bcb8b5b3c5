"""Tables of the privacy package: the lineage index and data-subject requests.

* ``privacy_lineage`` — one row per (request that carried personal data,
  identified person, receiving system): the person only as a keyed hash
  (HMAC-SHA256 of kind and normalised identifier, under the lineage key
  sealed by the keyring: never the audit log's pseudonym key), with the
  integration, route, direction, systems, categories, time and the index of
  the request's audit entry. Kept until ``expires_at`` (the integration's
  retention) or until the person's erasure.
* ``privacy_lineage_erased`` — how many rows erasures removed, per
  integration and receiving system, so the counts survive the rows.
* ``privacy_requests`` / ``privacy_request_systems`` — data-subject requests
  (access, export, erasure, rectification) and each system's part in one:
  status, attempts, next attempt, the audit entries of each step. The
  identifier (and a rectification's corrections) is kept sealed only while
  the request is open; an answer's data is kept sealed for the export until
  an erasure of the same person completes (its digest stays, for the receipt).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from interlock.store.base import Base, table_of
from interlock.store.sealed import register_sealed_column

__all__ = ["LineageErasedRow", "LineageRow", "RequestRow", "RequestSystemRow"]

# SQLite only auto-increments an INTEGER PRIMARY KEY; BIGINT elsewhere.
_Id = BigInteger().with_variant(Integer(), "sqlite")


class LineageRow(Base):
    """A receiving system got data about the person whose keyed hash is ``subject``."""

    __tablename__ = "privacy_lineage"
    __table_args__ = (
        Index("ix_privacy_lineage_subject", "subject", "time"),
        Index("ix_privacy_lineage_expires_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(_Id, primary_key=True, autoincrement=True)
    subject: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    integration: Mapped[str] = mapped_column(String(63), nullable=False)
    route: Mapped[str] = mapped_column(String(500), nullable=False)
    direction: Mapped[str] = mapped_column(String(8), nullable=False)  # request | response
    receiver: Mapped[str] = mapped_column(String(63), nullable=False)  # a manifest system
    source: Mapped[str] = mapped_column(String(63), nullable=False)
    target: Mapped[str] = mapped_column(String(63), nullable=False)
    categories: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of fideslang keys
    receiver_country: Mapped[str | None] = mapped_column(String(2), nullable=True)
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    audit_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    correlation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class LineageErasedRow(Base):
    """Lineage rows removed by erasures: counts only, per integration and receiver."""

    __tablename__ = "privacy_lineage_erased"

    integration: Mapped[str] = mapped_column(String(63), primary_key=True)
    receiver: Mapped[str] = mapped_column(String(63), primary_key=True)
    rows: Mapped[int] = mapped_column(BigInteger, nullable=False)


class RequestRow(Base):
    """A data-subject request (GDPR Art. 15-17, 20) and its deadline (Art. 12(3))."""

    __tablename__ = "privacy_requests"
    __table_args__ = (Index("ix_privacy_requests_status", "status", "deadline"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)  # access|export|erase|rectify
    subject_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    subject: Mapped[bytes] = mapped_column(LargeBinary(32), nullable=False)  # lineage hash
    # The identifier and any corrections, sealed (bound to ``id``); None once closed.
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # open | closed
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    actor: Mapped[str] = mapped_column(String(200), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Audit entries of the request's own steps.
    created_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    closed_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # The closing receipt (JSON; holds hashes and outcomes, never an identifier).
    receipt: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Who is working on the request now (one worker at a time, across replicas).
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RequestSystemRow(Base):
    """One system's part in a data-subject request."""

    __tablename__ = "privacy_request_systems"

    request_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("privacy_requests.id", ondelete="CASCADE"), primary_key=True
    )
    system: Mapped[str] = mapped_column(String(63), primary_key=True)
    connector: Mapped[str] = mapped_column(String(16), nullable=False)  # webhook | sql | manual
    # pending -> asked -> done | not_found | failed (after the last retry) | manual
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    # JSON: the integrations through which the system received the person's data.
    integrations: Mapped[str] = mapped_column(Text, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    records: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # The system's answer to access/export (JSON), sealed (bound to request and system).
    answer: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    answer_digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    asked_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    answered_index: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


register_sealed_column(table_of(RequestRow), "sealed")
register_sealed_column(table_of(RequestSystemRow), "answer")
