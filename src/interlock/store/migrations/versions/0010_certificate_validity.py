"""secrets: the validity of a version that holds a certificate (rotation before expiry)

Revision ID: 0010_certificate_validity
Revises: 0009_rotation_lock
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_certificate_validity"
down_revision: str | Sequence[str] | None = "0009_rotation_lock"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """notBefore and notAfter of the first certificate a version's value holds (else NULL)."""
    op.add_column("vault_versions", sa.Column("not_before", sa.DateTime(timezone=True)))
    op.add_column("vault_versions", sa.Column("not_after", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Drop the validity columns (SQLite needs a batch copy of the table)."""
    with op.batch_alter_table("vault_versions") as batch:
        batch.drop_column("not_after")
        batch.drop_column("not_before")
