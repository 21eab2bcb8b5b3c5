"""store: manifest versions published by `interlock manifest apply` (issue 28)

Revision ID: 0017_manifest_versions
Revises: 0015_event_schemas
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017_manifest_versions"
down_revision: str | Sequence[str] | None = "0015_event_schemas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the table of manifest versions."""
    op.create_table(
        "manifest_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("manifest_text", sa.Text(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_manifest_versions")),
    )


def downgrade() -> None:
    """Drop the table of manifest versions."""
    op.drop_table("manifest_versions")
