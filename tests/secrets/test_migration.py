"""The first store's secrets move into the vault, sealed bytes untouched, and still open."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.secrets.vault import Vault
from interlock.store import initialise
from interlock.store.migrate import downgrade, upgrade


def test_secrets_of_the_first_store_are_current_versions_in_the_vault(
    tmp_path: Path, store_url: str
) -> None:
    """Upgrade from 0007: each secret keeps its version number and value; downgrade restores."""
    deployment = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    engine, keyring = deployment.engine, deployment.keyring
    downgrade(engine, "0007_signature_keys")
    now = datetime.now(UTC)
    sealed = keyring.seal(b"legacy-token", b"interlock:secret:erp/api-key")
    with engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO secrets (name, value, version, updated_at) VALUES (:n, :v, 3, :t)"
            ),
            {"n": "erp/api-key", "v": sealed, "t": now},
        )
    upgrade(engine)
    vault = Vault(engine, keyring, cache_seconds=0, audit=MemorySink())
    secret, info = vault.read("erp/api-key", actor=Operator("admin:test"))
    assert (secret.reveal(), info.version, info.stage) == (b"legacy-token", 3, "current")
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT value FROM vault_versions")).scalar() == sealed
    assert vault.write("erp/api-key", b"new-token", actor=Operator("admin:test")).version == 4
    assert (
        vault.read("erp/api-key", actor=Operator("admin:test"), version=3)[0].reveal()
        == b"legacy-token"
    )
    downgrade(engine, "0007_signature_keys")
    with engine.connect() as connection:
        # Only first-store values can go back (later versions are bound to their version).
        assert connection.execute(sa.text("SELECT count(*) FROM secrets")).scalar() == 0
    deployment.close()
