"""replay: Idempotency-Key records

Revision ID: 0006_idempotency
Revises: 0005_pki_certificates
Create Date: 2026-12-13
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_idempotency"
down_revision: str | Sequence[str] | None = "0005_pki_certificates"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``replay_idempotency``."""
    op.create_table(
        "replay_idempotency",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("token", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_replay_idempotency")),
    )
    op.create_index("ix_replay_idempotency_expires_at", "replay_idempotency", ["expires_at"])


def downgrade() -> None:
    """Drop ``replay_idempotency``."""
    op.drop_index("ix_replay_idempotency_expires_at", table_name="replay_idempotency")
    op.drop_table("replay_idempotency")
