"""secrets: the rotation lock (a lease on the secret's row in vault_rotations)

Revision ID: 0009_rotation_lock
Revises: 0008_vault
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_rotation_lock"
down_revision: str | Sequence[str] | None = "0008_vault"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Who holds a secret's rotation lock, and until when."""
    op.add_column("vault_rotations", sa.Column("locked_by", sa.String(length=64), nullable=True))
    op.add_column(
        "vault_rotations", sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    """Drop the lock columns (SQLite needs a batch copy of the table)."""
    with op.batch_alter_table("vault_rotations") as batch:
        batch.drop_column("locked_until")
        batch.drop_column("locked_by")
