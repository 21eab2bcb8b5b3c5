"""events: the schema registry's schemas, subjects' versions and mode overrides (issue 23)

Revision ID: 0015_event_schemas
Revises: 0014_messaging_keys
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_event_schemas"
down_revision: str | Sequence[str] | None = "0014_messaging_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the schema registry's tables."""
    op.create_table(
        "event_schemas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("schema_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_schemas")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_event_schemas_fingerprint")),
    )
    op.create_table(
        "event_subject_versions",
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("schema_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["schema_id"],
            ["event_schemas.id"],
            name=op.f("fk_event_subject_versions_schema_id_event_schemas"),
        ),
        sa.PrimaryKeyConstraint("subject", "version", name=op.f("pk_event_subject_versions")),
    )
    op.create_index(
        op.f("ix_event_subject_versions_schema_id"), "event_subject_versions", ["schema_id"]
    )
    op.create_table(
        "event_subject_modes",
        sa.Column("subject", sa.String(length=100), nullable=False),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("subject", name=op.f("pk_event_subject_modes")),
    )


def downgrade() -> None:
    """Drop the schema registry's tables."""
    op.drop_table("event_subject_modes")
    op.drop_index(op.f("ix_event_subject_versions_schema_id"), table_name="event_subject_versions")
    op.drop_table("event_subject_versions")
    op.drop_table("event_schemas")
