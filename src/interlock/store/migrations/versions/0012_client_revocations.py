"""oauth: clients whose access tokens are revoked up to a moment (the kill switch)

``interlock clients revoke CLIENT`` ends every access token already issued
to the client: one row per client says "tokens issued at or before this
moment are revoked", which every replica's verifier checks.

Revision ID: 0012_client_revocations
Revises: 0011_identity_credentials
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_client_revocations"
down_revision: str | Sequence[str] | None = "0011_identity_credentials"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create ``oauth_revoked_clients``."""
    op.create_table(
        "oauth_revoked_clients",
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("revoked_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client", name=op.f("pk_oauth_revoked_clients")),
    )


def downgrade() -> None:
    """Drop ``oauth_revoked_clients`` (revoked tokens live at most an hour anyway)."""
    op.drop_table("oauth_revoked_clients")
