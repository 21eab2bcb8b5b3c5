"""secrets: the vault (versions, metadata, access policy, rotations)

The first store kept one sealed value per name in ``secrets``. Its rows move
into the vault as version ``n`` (their last version number), current, marked
``legacy_binding`` because they were sealed bound to the name alone; the old
table is dropped. Nothing is decrypted: the sealed bytes move as they are.

Revision ID: 0008_vault
Revises: 0007_signature_keys
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_vault"
down_revision: str | Sequence[str] | None = "0007_signature_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MIGRATED_OVERLAP = 86_400


def upgrade() -> None:
    """Create the vault's tables and move the first store's secrets into them."""
    op.create_table(
        "vault_secrets",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("rotate_every", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("overlap", sa.Integer(), nullable=False),
        sa.Column("rotator", sa.String(length=64), nullable=True),
        sa.Column("rotator_config", sa.Text(), nullable=True),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_vault_secrets")),
    )
    op.create_table(
        "vault_versions",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.Column("stage", sa.String(length=16), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("destroyed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("legacy_binding", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["name"],
            ["vault_secrets.name"],
            name=op.f("fk_vault_versions_name_vault_secrets"),
        ),
        sa.PrimaryKeyConstraint("name", "version", name=op.f("pk_vault_versions")),
    )
    op.create_table(
        "vault_grants",
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("pattern", sa.String(length=200), nullable=False),
        sa.Column("capabilities", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client", "pattern", name=op.f("pk_vault_grants")),
    )
    op.create_table(
        "vault_rotations",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("pending_version", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["name"],
            ["vault_secrets.name"],
            name=op.f("fk_vault_rotations_name_vault_secrets"),
        ),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_vault_rotations")),
    )
    op.execute(
        sa.text(
            "INSERT INTO vault_secrets (name, kind, overlap, current_version, created_at, "
            "updated_at) SELECT name, 'generic', :overlap, version, updated_at, updated_at "
            "FROM secrets"
        ).bindparams(overlap=_MIGRATED_OVERLAP)
    )
    op.execute(
        sa.text(
            "INSERT INTO vault_versions (name, version, value, stage, created_at, created_by, "
            "legacy_binding) SELECT name, version, value, 'current', updated_at, "
            "'migration', :legacy FROM secrets"
        ).bindparams(legacy=True)
    )
    op.drop_table("secrets")


def downgrade() -> None:
    """Back to one sealed value per name: each secret's current version (legacy-bound only)."""
    op.create_table(
        "secrets",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_secrets")),
    )
    # Values sealed bound to their version cannot open under the old binding;
    # only versions that came from the first store go back.
    op.execute(
        sa.text(
            "INSERT INTO secrets (name, value, version, updated_at) "
            "SELECT v.name, v.value, v.version, v.created_at FROM vault_versions v "
            "WHERE v.stage = 'current' AND v.legacy_binding = :legacy AND v.value IS NOT NULL"
        ).bindparams(legacy=True)
    )
    op.drop_table("vault_rotations")
    op.drop_table("vault_grants")
    op.drop_table("vault_versions")
    op.drop_table("vault_secrets")
