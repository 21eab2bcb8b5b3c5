"""The minimal secret store: sealed, versioned, bound to names, briefly cached."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.config.settings import Settings
from interlock.errors import DecryptionError, InvalidRequestError, NotFoundError
from interlock.secrets.store import SecretStore
from interlock.store import initialise


def test_put_resolve_and_versions(tmp_path: Path, store_url: str) -> None:
    """Values round-trip, versions count up, nothing is stored in clear."""
    deployment = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    store = SecretStore(deployment.engine, deployment.keyring, cache_seconds=0)
    assert store.put("erp/api-key", b"first-value") == 1
    assert store.put("erp/api-key", b"second-value") == 2
    secret = store.resolve("secret://erp/api-key")
    assert secret.reveal() == b"second-value"
    assert "second" not in repr(secret) + str(secret)
    with deployment.engine.connect() as connection:
        assert (
            b"second-value" not in connection.execute(sa.text("SELECT value FROM secrets")).scalar()
        )
    assert [(n, v) for n, v, _ in store.names()] == [("erp/api-key", 2)]
    deployment.close()


def test_a_sealed_value_moved_to_another_name_does_not_open(tmp_path: Path) -> None:
    """The name is the associated data: copying rows between names fails closed."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    store = SecretStore(deployment.engine, deployment.keyring, cache_seconds=0)
    store.put("a/one", b"x")
    store.put("b/two", b"y")
    with deployment.engine.begin() as connection:
        value = connection.execute(sa.text("SELECT value FROM secrets WHERE name='a/one'")).scalar()
        connection.execute(sa.text("UPDATE secrets SET value=:v WHERE name='b/two'"), {"v": value})
    with pytest.raises(DecryptionError):
        store.resolve("secret://b/two")
    deployment.close()


@pytest.mark.parametrize(
    "reference", ["erp/api-key", "secret://../x", "secret://UPPER", "secret://"]
)
def test_bad_references_are_refused(tmp_path: Path, reference: str) -> None:
    """Only secret://lower/case/paths."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    with pytest.raises(InvalidRequestError):
        SecretStore(deployment.engine, deployment.keyring).resolve(reference)
    deployment.close()


def test_missing_secret_names_the_fix(tmp_path: Path) -> None:
    """An unknown secret says how to store it."""
    deployment = initialise(
        Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path}/s.db")
    )
    with pytest.raises(NotFoundError, match="secrets put"):
        SecretStore(deployment.engine, deployment.keyring).resolve("secret://nope")
    deployment.close()
