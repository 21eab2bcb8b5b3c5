"""oauth client public keys (private_key_jwt), replay: values used once

Revision ID: 0004_client_keys_replay
Revises: 0003_oauth_signing_keys
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_client_keys_replay"
down_revision: str | Sequence[str] | None = "0003_oauth_signing_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the client key and seen-value tables."""
    op.create_table(
        "oauth_client_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("alg", sa.String(length=16), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_oauth_client_keys")),
    )
    op.create_index("ix_oauth_client_keys_client", "oauth_client_keys", ["client"])
    op.create_table(
        "replay_seen",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_replay_seen")),
    )
    op.create_index("ix_replay_seen_expires_at", "replay_seen", ["expires_at"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_index("ix_replay_seen_expires_at", table_name="replay_seen")
    op.drop_table("replay_seen")
    op.drop_index("ix_oauth_client_keys_client", table_name="oauth_client_keys")
    op.drop_table("oauth_client_keys")
