"""Create and open a deployment: data directory, keyring and store together.

``initialise`` is what ``interlock init`` does; ``open_deployment`` is what every
command and server does at start. Both apply migrations. Opening checks that
the keyring and the database belong together (see ``tables.DeploymentRow``),
and fails closed when they do not.

The keyring's backend is ``INTERLOCK_KEK_BACKEND``: ``file`` keeps the KEKs in
``keyring.json``; ``pkcs11`` keeps them in an HSM token and the data directory
only records the keyring's id (``keyring.pkcs11.json``, see
:mod:`interlock.crypto.keyring_ref`). :func:`open_keyring` is the one way to
load the configured keyring.
"""

from __future__ import annotations

import contextlib
import stat
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from interlock.config.settings import Settings
from interlock.crypto import Keyring, inspect_unverified
from interlock.crypto.keyring_ref import read_reference, write_reference
from interlock.errors import (
    AlreadyInitialisedError,
    ConfigError,
    DecryptionError,
    KeyringError,
    MissingExtraError,
    NotInitialisedError,
    StoreError,
    StoreMismatchError,
    UnknownKeyVersionError,
)
from interlock.store.base import table_of
from interlock.store.engine import create_store_engine
from interlock.store.migrate import upgrade
from interlock.store.tables import DeploymentRow

if TYPE_CHECKING:
    from interlock.crypto.pkcs11_kek import Pkcs11Config

__all__ = [
    "Deployment",
    "initialise",
    "missing_version_message",
    "open_deployment",
    "open_keyring",
    "reseal_canary",
    "verify_binding",
]

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
        """Release the store's connections and the keyring's HSM session, if any."""
        self.engine.dispose()
        self.keyring.close()


def initialise(settings: Settings) -> Deployment:
    """Create the data directory (0700), the keyring and the store.

    The keyring is a new key file (0600), or with ``kek_backend=pkcs11`` KEK
    version 1 generated in the token and the reference file naming it.
    Refuses to overwrite an existing keyring. If any later step fails, the
    keyring file and directory this call created are removed again, so a
    failed ``init`` leaves nothing half-written behind (an HSM key made by a
    failed init stays on the token, unused, under its own keyring id).
    """
    data_dir = settings.data_dir
    created_dir = _make_private_dir(data_dir)
    for existing in (settings.keyring_path, settings.keyring_ref_path):
        if existing.exists() or existing.is_symlink():
            raise AlreadyInitialisedError(
                f"{existing} already exists; refusing to overwrite a keyring "
                "(data sealed with it would become unreadable)"
            )
    keyring_path = settings.keyring_path
    if settings.kek_backend == "pkcs11":
        keyring_path = settings.keyring_ref_path
        keyring = Keyring.create_pkcs11(_pkcs11_config(settings))
        try:
            write_reference(keyring_path, keyring.keyring_id)
        except BaseException:
            keyring.close()
            raise
    else:
        keyring = Keyring.create(keyring_path)
    try:
        engine, deployment_id = _migrated_store(settings, keyring, claim=True)
    except BaseException:
        keyring.close()
        keyring_path.unlink(missing_ok=True)
        if created_dir:
            with contextlib.suppress(OSError):
                data_dir.rmdir()  # only if nothing else was put there
        raise
    return Deployment(settings, keyring, engine, deployment_id)


def open_deployment(settings: Settings) -> Deployment:
    """Load the keyring, migrate the store and check that they belong together."""
    keyring = open_keyring(settings)
    try:
        engine, deployment_id = _migrated_store(settings, keyring, claim=False)
    except BaseException:
        keyring.close()
        raise
    return Deployment(settings, keyring, engine, deployment_id)


def _migrated_store(settings: Settings, keyring: Keyring, *, claim: bool) -> tuple[Engine, str]:
    """The store's engine, migrated and bound to ``keyring`` (disposed again on failure)."""
    engine = create_store_engine(settings.store_url)
    try:
        upgrade(engine)
        return engine, _bind(engine, keyring, claim=claim)
    except BaseException:
        engine.dispose()
        raise


def open_keyring(settings: Settings) -> Keyring:
    """The deployment's keyring from the configured backend; fails closed if it is not there.

    A data directory initialised with the other backend is refused with the
    setting to change, never silently replaced by a new keyring.
    """
    file_path, ref_path = settings.keyring_path, settings.keyring_ref_path
    if settings.kek_backend == "pkcs11":
        if not ref_path.exists() and file_path.exists():
            raise ConfigError(
                f"this deployment's KEK is in a file ({file_path}), but "
                "INTERLOCK_KEK_BACKEND=pkcs11; set it to file"
            )
        if not ref_path.exists() and not ref_path.is_symlink():
            raise _not_initialised(ref_path)
        return Keyring.open_pkcs11(_pkcs11_config(settings), read_reference(ref_path))
    if not file_path.exists() and ref_path.exists():
        raise ConfigError(
            f"this deployment's KEK is in an HSM ({ref_path}), but INTERLOCK_KEK_BACKEND is "
            "file; set INTERLOCK_KEK_BACKEND=pkcs11 and the INTERLOCK_PKCS11_* settings"
        )
    if not file_path.exists() and not file_path.is_symlink():
        raise _not_initialised(file_path)
    return Keyring.load(file_path)


def _not_initialised(path: Path) -> NotInitialisedError:
    return NotInitialisedError(
        f"no keyring at {path}; run `interlock init` first (or set INTERLOCK_DATA_DIR)"
    )


def _pkcs11_config(settings: Settings) -> Pkcs11Config:
    try:
        from interlock.crypto.pkcs11_kek import Pkcs11Config
    except ModuleNotFoundError as missing:  # python-pkcs11, the hsm extra
        raise MissingExtraError("INTERLOCK_KEK_BACKEND=pkcs11", "hsm", missing) from None

    module, label, pin_file = (
        settings.pkcs11_module,
        settings.pkcs11_token_label,
        settings.pkcs11_pin_file,
    )
    if module is None or label is None or pin_file is None:  # settings validate this
        raise ConfigError(
            "kek_backend=pkcs11 needs INTERLOCK_PKCS11_MODULE, _TOKEN_LABEL, _PIN_FILE"
        )
    return Pkcs11Config(module, label, pin_file, lock_file=settings.keyring_ref_path)


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


def verify_binding(engine: Engine, keyring: Keyring) -> str:
    """The deployment id, if ``keyring`` is the one this store was created with.

    What opening checks, without migrating or claiming anything (``interlock
    doctor``): :class:`StoreMismatchError` for another deployment's keyring,
    :class:`StoreError` for a store without a deployment record.
    """
    try:
        with engine.connect() as connection:
            row = connection.execute(select(_TABLE)).first()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the deployment record: {type(exc).__name__}") from exc
    if row is None:
        raise StoreError("the store has no deployment record; run `interlock init`")
    _check_canary(keyring, row.deployment_id, row.canary)
    return str(row.deployment_id)


def _check_canary(keyring: Keyring, deployment_id: str, canary: bytes) -> None:
    try:
        opened = keyring.open(canary, _canary_aad(deployment_id))
    except UnknownKeyVersionError:
        header = inspect_unverified(canary)
        if header.keyring_id != keyring.keyring_id:
            opened = None
        else:  # the same deployment, rotated on another host: say which version, and the fix
            raise KeyringError(missing_version_message(keyring, header.kek_version)) from None
    except DecryptionError:
        opened = None
    if opened != _CANARY:
        raise StoreMismatchError(
            "the keyring does not belong to this database (wrong data directory, or a "
            "keyring file from another deployment); refusing to start"
        )


def missing_version_message(keyring: Keyring, version: int) -> str:
    """What to do when the store holds records under KEK ``version`` this host lacks."""
    where = keyring.describe()
    return (
        f"the store holds records sealed under KEK version {version}, which this host's "
        f"keyring ({where}) does not hold: it was rotated on another host. There run "
        f"`interlock keyring export-version {version} --out kek-v{version}.jwe`, copy the "
        f"file here and run `interlock keyring import-version kek-v{version}.jwe` "
        "(docs/scale.md)"
    )


def reseal_canary(engine: Engine, keyring: Keyring) -> None:
    """Seal the deployment's canary under the current KEK version (after a rotation).

    Every host checks the canary at start, so one whose keyring lacks the
    newest version refuses to start, naming it, instead of failing on the
    first record sealed under it.
    """
    with engine.begin() as connection:
        row = connection.execute(select(_TABLE)).first()
        if row is None:
            raise StoreError("the store has no deployment record")
        sealed = keyring.seal(_CANARY, _canary_aad(row.deployment_id))
        connection.execute(_TABLE.update().where(_TABLE.c.id == 1).values(canary=sealed))


def _canary_aad(deployment_id: str) -> bytes:
    return f"interlock:deployment:{deployment_id}".encode()
