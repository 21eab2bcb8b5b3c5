"""pki: issued end-entity certificates; a root key may be kept offline

Revision ID: 0005_pki_certificates
Revises: 0004_client_keys_replay
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_pki_certificates"
down_revision: str | Sequence[str] | None = "0004_client_keys_replay"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``pki_certificates``; let ``pki_authorities.private_key`` be NULL (offline root)."""
    op.create_table(
        "pki_certificates",
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("identity", sa.String(length=512), nullable=True),
        sa.Column("hosts", sa.Text(), nullable=True),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("ephemeral", sa.Boolean(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("replaced_by", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_pki_certificates")),
    )
    op.create_index("ix_pki_certificates_not_after", "pki_certificates", ["not_after"])
    op.create_index("ix_pki_certificates_name", "pki_certificates", ["name"])
    with op.batch_alter_table("pki_authorities") as batch:
        batch.alter_column("private_key", existing_type=sa.LargeBinary(), nullable=True)


def downgrade() -> None:
    """Drop ``pki_certificates``; a root kept offline must be imported back first."""
    with op.batch_alter_table("pki_authorities") as batch:
        batch.alter_column("private_key", existing_type=sa.LargeBinary(), nullable=False)
    op.drop_index("ix_pki_certificates_name", table_name="pki_certificates")
    op.drop_index("ix_pki_certificates_not_after", table_name="pki_certificates")
    op.drop_table("pki_certificates")
