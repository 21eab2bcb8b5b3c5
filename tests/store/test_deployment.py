"""A deployment binds data directory, keyring and store, and fails closed on mismatch."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.config.settings import Settings
from interlock.errors import (
    AlreadyInitialisedError,
    ConfigError,
    NotInitialisedError,
    StoreMismatchError,
)
from interlock.store import head_revision, initialise, open_deployment
from interlock.store.migrate import current_revision


def _settings(data_dir: Path, store_url: str) -> Settings:
    return Settings(data_dir=data_dir, database_url=store_url)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_initialise_creates_private_directory_keyring_and_migrated_store(
    tmp_path: Path, store_url: str
) -> None:
    """init: data dir 0700, keyring 0600, schema at head, deployment bound."""
    settings = _settings(tmp_path / "data", store_url)
    deployment = initialise(settings)
    try:
        assert _mode(settings.data_dir) == 0o700
        assert _mode(settings.keyring_path) == 0o600
        assert current_revision(deployment.engine) == head_revision()
    finally:
        deployment.close()
    reopened = open_deployment(settings)
    assert reopened.deployment_id == deployment.deployment_id
    reopened.close()


def test_initialise_refuses_to_overwrite_a_keyring(tmp_path: Path) -> None:
    """A second init fails and leaves the existing keyring byte-for-byte as it was."""
    settings = _settings(tmp_path / "data", f"sqlite:///{tmp_path / 's.db'}")
    initialise(settings).close()
    before = settings.keyring_path.read_bytes()
    with pytest.raises(AlreadyInitialisedError, match="refusing to overwrite"):
        initialise(settings)
    assert settings.keyring_path.read_bytes() == before


def test_open_without_init_says_how_to_fix_it(tmp_path: Path) -> None:
    """Starting on an empty data directory names the missing step."""
    with pytest.raises(NotInitialisedError, match="interlock init"):
        open_deployment(_settings(tmp_path / "none", f"sqlite:///{tmp_path / 's.db'}"))


def test_a_keyring_from_another_deployment_is_refused(tmp_path: Path, store_url: str) -> None:
    """The store remembers its keyring; a different keyring cannot open it."""
    initialise(_settings(tmp_path / "a", store_url)).close()
    other = _settings(tmp_path / "b", f"sqlite:///{tmp_path / 'b.db'}")
    initialise(other).close()
    with pytest.raises(StoreMismatchError, match="does not belong"):
        open_deployment(_settings(tmp_path / "b", store_url))


def test_init_against_a_claimed_database_leaves_nothing_behind(
    tmp_path: Path, store_url: str
) -> None:
    """A failed init removes the keyring and directory it created (nothing half-written)."""
    initialise(_settings(tmp_path / "a", store_url)).close()
    second = _settings(tmp_path / "b", store_url)
    with pytest.raises(StoreMismatchError, match="already belongs"):
        initialise(second)
    assert not second.data_dir.exists()


def test_data_directory_open_to_others_is_refused(tmp_path: Path) -> None:
    """An existing data directory readable by group or others is not used for keys."""
    data_dir = tmp_path / "shared"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    with pytest.raises(ConfigError, match="chmod 700"):
        initialise(_settings(data_dir, f"sqlite:///{tmp_path / 's.db'}"))
    assert not (data_dir / "keyring.json").exists()


def test_store_can_be_opened_after_keyring_rotation(tmp_path: Path, store_url: str) -> None:
    """Rotating the KEK keeps the deployment openable (old versions still decrypt)."""
    settings = _settings(tmp_path / "data", store_url)
    deployment = initialise(settings)
    deployment.keyring.rotate()
    deployment.close()
    reopened = open_deployment(settings)
    assert reopened.keyring.current_version == 2
    reopened.close()


def test_deployment_row_is_a_singleton(tmp_path: Path, store_url: str) -> None:
    """The database refuses a second deployment row."""
    deployment = initialise(_settings(tmp_path / "data", store_url))
    with pytest.raises(sa.exc.IntegrityError), deployment.engine.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO deployment (id, deployment_id, keyring_id, created_at, canary) "
                "VALUES (2, 'x', 'y', CURRENT_TIMESTAMP, :blob)"
            ),
            {"blob": b"x"},
        )
    deployment.close()
