"""identity: every client credential in the identity package's tables

Client secrets move from ``oauth_client_secrets`` to ``identity_client_secrets``;
the keys for ``private_key_jwt`` (``oauth_client_keys``) and for signed requests
(``replay_signature_keys``) become one table, ``identity_client_keys``, with the
use of each key. Rows move unchanged: hashes, public JWKs and sealed HMAC
secrets (whose associated data names the key id, not the table).

Revision ID: 0011_identity_credentials
Revises: 0010_certificate_validity
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_identity_credentials"
down_revision: str | Sequence[str] | None = "0010_certificate_validity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHEN = ("created_at", "expires_at", "revoked_at")


def _secrets_table(name: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_client", name, ["client"])


def _drop(name: str) -> None:
    op.drop_index(f"ix_{name}_client", table_name=name)
    op.drop_table(name)


def _copy(source: str, target: str, columns: str, selected: str | None = None) -> None:
    # Fixed table and column names only: nothing here comes from data.
    op.execute(f"INSERT INTO {target} ({columns}) SELECT {selected or columns} FROM {source}")  # noqa: S608


def upgrade() -> None:
    """Create the identity tables, move every row, drop the old tables."""
    _secrets_table("identity_client_secrets")
    op.create_table(
        "identity_client_keys",
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("use", sa.String(length=16), nullable=False),
        sa.Column("client", sa.String(length=63), nullable=False),
        sa.Column("alg", sa.String(length=32), nullable=False),
        sa.Column("public_jwk", sa.Text(), nullable=True),
        sa.Column("sealed_secret", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kid", "use", name=op.f("pk_identity_client_keys")),
    )
    op.create_index("ix_identity_client_keys_client", "identity_client_keys", ["client"])
    secret_columns = "id, client, secret_hash, " + ", ".join(_WHEN)
    _copy("oauth_client_secrets", "identity_client_secrets", secret_columns)
    key_columns = "kid, use, client, alg, public_jwk, sealed_secret, " + ", ".join(_WHEN)
    when = ", ".join(_WHEN)
    _copy(
        "oauth_client_keys",
        "identity_client_keys",
        key_columns,
        f"kid, 'assertion', client, alg, public_jwk, NULL, {when}",
    )
    _copy(
        "replay_signature_keys",
        "identity_client_keys",
        key_columns,
        f"keyid, 'signature', client, alg, public_jwk, sealed_secret, {when}",
    )
    _drop("oauth_client_secrets")
    _drop("oauth_client_keys")
    _drop("replay_signature_keys")


def downgrade() -> None:
    """Recreate the three old tables from the identity tables, then drop those."""
    _secrets_table("oauth_client_secrets")
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
    secret_columns = "id, client, secret_hash, " + ", ".join(_WHEN)
    _copy("identity_client_secrets", "oauth_client_secrets", secret_columns)
    when = ", ".join(_WHEN)
    op.execute(
        "INSERT INTO oauth_client_keys (kid, client, alg, public_jwk, "  # noqa: S608
        f"{when}) SELECT kid, client, alg, public_jwk, {when} "
        "FROM identity_client_keys WHERE use = 'assertion'"
    )
    op.execute(
        "INSERT INTO replay_signature_keys (keyid, client, alg, public_jwk, sealed_secret, "  # noqa: S608
        f"{when}) SELECT kid, client, alg, public_jwk, sealed_secret, {when} "
        "FROM identity_client_keys WHERE use = 'signature'"
    )
    _drop("identity_client_keys")
    _drop("identity_client_secrets")
