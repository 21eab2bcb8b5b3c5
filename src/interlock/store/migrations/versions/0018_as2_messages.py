"""files: AS2 messages sent and the MDNs that settled them (issue 24)

Revision ID: 0018_as2_messages
Revises: 0017_manifest_versions
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_as2_messages"
down_revision: str | Sequence[str] | None = "0017_manifest_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the AS2 message table."""
    op.create_table(
        "as2_messages",
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("integration", sa.String(length=100), nullable=False),
        sa.Column("partner", sa.String(length=100), nullable=False),
        sa.Column("file", sa.String(length=255), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mic", sa.String(length=200), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_as2_messages")),
    )
    op.create_index(op.f("ix_as2_messages_integration"), "as2_messages", ["integration"])


def downgrade() -> None:
    """Drop the AS2 message table."""
    op.drop_index(op.f("ix_as2_messages_integration"), table_name="as2_messages")
    op.drop_table("as2_messages")
