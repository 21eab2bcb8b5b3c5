"""privacy: the lineage index of data subjects and data-subject requests (issue 20)

``privacy_lineage`` records which system received data about which person
(keyed hashes only), ``privacy_lineage_erased`` keeps the counts erasures
removed, ``privacy_requests`` and ``privacy_request_systems`` track access,
export, erasure and rectification requests per system.

Revision ID: 0013_privacy_lineage_requests
Revises: 0012_client_revocations
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013_privacy_lineage_requests"
down_revision: str | Sequence[str] | None = "0012_client_revocations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    """Create the lineage index and the request tables."""
    op.create_table(
        "privacy_lineage",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("subject", sa.LargeBinary(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("integration", sa.String(length=63), nullable=False),
        sa.Column("route", sa.String(length=500), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("receiver", sa.String(length=63), nullable=False),
        sa.Column("source", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("receiver_country", sa.String(length=2), nullable=True),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("audit_index", sa.BigInteger(), nullable=True),
        sa.Column("correlation_id", sa.String(length=200), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_lineage")),
    )
    op.create_index("ix_privacy_lineage_expires_at", "privacy_lineage", ["expires_at"])
    op.create_index("ix_privacy_lineage_subject", "privacy_lineage", ["subject", "time"])
    op.create_table(
        "privacy_lineage_erased",
        sa.Column("integration", sa.String(length=63), nullable=False),
        sa.Column("receiver", sa.String(length=63), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("integration", "receiver", name=op.f("pk_privacy_lineage_erased")),
    )
    op.create_table(
        "privacy_requests",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("subject_kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.LargeBinary(length=32), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_index", sa.BigInteger(), nullable=True),
        sa.Column("closed_index", sa.BigInteger(), nullable=True),
        sa.Column("receipt", sa.Text(), nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_requests")),
    )
    op.create_index("ix_privacy_requests_status", "privacy_requests", ["status", "deadline"])
    op.create_table(
        "privacy_request_systems",
        sa.Column("request_id", sa.String(length=40), nullable=False),
        sa.Column("system", sa.String(length=63), nullable=False),
        sa.Column("connector", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("integrations", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("records", sa.Integer(), nullable=True),
        sa.Column("answer", sa.LargeBinary(), nullable=True),
        sa.Column("answer_digest", sa.String(length=80), nullable=True),
        sa.Column("asked_index", sa.BigInteger(), nullable=True),
        sa.Column("answered_index", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["privacy_requests.id"],
            name=op.f("fk_privacy_request_systems_request_id_privacy_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", "system", name=op.f("pk_privacy_request_systems")),
    )


def downgrade() -> None:
    """Drop the request tables and the lineage index."""
    op.drop_table("privacy_request_systems")
    op.drop_index("ix_privacy_requests_status", table_name="privacy_requests")
    op.drop_table("privacy_requests")
    op.drop_table("privacy_lineage_erased")
    op.drop_index("ix_privacy_lineage_subject", table_name="privacy_lineage")
    op.drop_index("ix_privacy_lineage_expires_at", table_name="privacy_lineage")
    op.drop_table("privacy_lineage")
