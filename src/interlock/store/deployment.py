"""Create and open a deployment: data directory, keyring and store together.

``initialise`` is what ``interlock init`` does; ``open_deployment`` is what every
command and server does at start. Both apply migrations. Opening checks that
the keyring and the database belong together (see ``tables.DeploymentRow``),
and fails closed when they do not.
"""

from __future__ import annotations

import contextlib
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.errors import (
    AlreadyInitialisedError,
    ConfigError,
    DecryptionError,
    NotInitialisedError,
    StoreError,
    StoreMismatchError,
)
from interlock.store.base import table_of
from interlock.store.engine import create_store_engine
from interlock.store.migrate import upgrade
from interlock.store.tables import DeploymentRow

__all__ = ["Deployment", "initialise", "open_deployment"]

_CANARY: Final = b"interlock deployment canary v1"
_TABLE: Final = table_of(DeploymentRow)


@dataclass(frozen=True)
class Deployment:
    """An opened deployment: settings, its keyring and a migrated store."""

    settings: Settings
    keyring: Keyring = field(repr=False)
    engine: Engine = field(repr=False)
    deployment_id: str

    def close(self) -> None:
        """Release the store's connections."""
        self.engine.dispose()


def initialise(settings: Settings) -> Deployment:
    """Create the data directory (0700), the keyring (0600) and the store.

    Refuses to overwrite an existing keyring. If any later step fails, the
    keyring file and directory this call created are removed again, so a
    failed ``init`` leaves nothing half-written behind.
    """
    data_dir = settings.data_dir
    created_dir = _make_private_dir(data_dir)
    keyring_path = settings.keyring_path
    if keyring_path.exists() or keyring_path.is_symlink():
        raise AlreadyInitialisedError(
            f"{keyring_path} already exists; refusing to overwrite a keyring "
            "(data sealed with it would become unreadable)"
        )
    keyring = Keyring.create(keyring_path)
    try:
        engine = create_store_engine(settings.store_url)
        try:
            upgrade(engine)
            deployment_id = _bind(engine, keyring, claim=True)
        except BaseException:
            engine.dispose()
            raise
    except BaseException:
        keyring_path.unlink(missing_ok=True)
        if created_dir:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only if nothing else was put there
        raise
    return Deployment(settings, keyring, engine, deployment_id)


def open_deployment(settings: Settings) -> Deployment:
    """Load the keyring, migrate the store and check that they belong together."""
    if not settings.keyring_path.exists():
        raise NotInitialisedError(
            f"no keyring at {settings.keyring_path}; run `interlock init` first "
            "(or set INTERLOCK_DATA_DIR)"
        )
    keyring = Keyring.load(settings.keyring_path)
    engine = create_store_engine(settings.store_url)
    try:
        upgrade(engine)
        deployment_id = _bind(engine, keyring, claim=False)
    except BaseException:
        engine.dispose()
        raise
    return Deployment(settings, keyring, engine, deployment_id)


def _make_private_dir(path: Path) -> bool:
    """Create ``path`` with mode 0700; an existing one must not be open to others."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        info = path.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise ConfigError(f"data directory {path} exists and is not a directory") from None
        if info.st_mode & 0o077:
            raise ConfigError(
                f"data directory {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 700 {path}`"
            ) from None
        return False
    path.chmod(0o700)  # mkdir's mode is filtered by the umask; be exact
    return True


def _bind(engine: Engine, keyring: Keyring, *, claim: bool) -> str:
    """Check (or, on a fresh database, record) which keyring owns this store."""
    try:
        with engine.begin() as connection:
            row = connection.execute(select(_TABLE)).first()
            if row is None:
                deployment_id = str(uuid.uuid4())
                connection.execute(
                    _TABLE.insert().values(
                        id=1,
                        deployment_id=deployment_id,
                        keyring_id=keyring.keyring_id,
                        created_at=datetime.now(UTC),
                        canary=keyring.seal(_CANARY, _canary_aad(deployment_id)),
                    )
                )
                return deployment_id
    except IntegrityError:
        # Another process bound the store between our read and our insert.
        return _bind(engine, keyring, claim=False)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the deployment record: {type(exc).__name__}") from exc
    if claim:
        raise StoreMismatchError(
            "the database already belongs to a deployment; point INTERLOCK_DATABASE_URL "
            "at an empty database or open the existing deployment's data directory"
        )
    _check_canary(keyring, row.deployment_id, row.canary)
    return str(row.deployment_id)


def _check_canary(keyring: Keyring, deployment_id: str, canary: bytes) -> None:
    try:
        opened = keyring.open(canary, _canary_aad(deployment_id))
    except DecryptionError:
        opened = None
    if opened != _CANARY:
        raise StoreMismatchError(
            "the keyring does not belong to this database (wrong data directory, or a "
            "keyring file from another deployment); refusing to start"
        )


def _canary_aad(deployment_id: str) -> bytes:
    return f"interlock:deployment:{deployment_id}".encode()
