"""replay: clients' keys for signed requests (RFC 9421)

Revision ID: 0007_signature_keys
Revises: 0006_idempotency
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_signature_keys"
down_revision: str | Sequence[str] | None = "0006_idempotency"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``replay_signature_keys``."""
    op.create_table(
        "replay_signature_keys",
        sa.Column("keyid", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("alg", sa.String(length=32), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=True),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("keyid", name=op.f("pk_replay_signature_keys")),
    )
    op.create_index("ix_replay_signature_keys_client", "replay_signature_keys", ["client"])


def downgrade() -> None:
    """Drop ``replay_signature_keys``."""
    op.drop_index("ix_replay_signature_keys_client", table_name="replay_signature_keys")
    op.drop_table("replay_signature_keys")
