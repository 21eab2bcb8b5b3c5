"""messaging: per-integration signing and encryption keys, private JWKs sealed (issue 22)

Revision ID: 0014_messaging_keys
Revises: 0013_privacy_lineage_requests
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014_messaging_keys"
down_revision: str | Sequence[str] | None = "0013_privacy_lineage_requests"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the messaging key table."""
    op.create_table(
        "messaging_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("integration", sa.String(length=63), nullable=False),
        sa.Column("party", sa.String(length=63), nullable=False),
        sa.Column("key_use", sa.String(length=3), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("private_jwk", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activates_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_messaging_keys")),
    )
    op.create_index("ix_messaging_keys_integration", "messaging_keys", ["integration", "party"])


def downgrade() -> None:
    """Drop the messaging key table."""
    op.drop_index("ix_messaging_keys_integration", table_name="messaging_keys")
    op.drop_table("messaging_keys")
