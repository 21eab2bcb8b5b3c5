"""The deployment's root key-encryption key (KEK), kept in one local file.

The key file is JSON::

    {"format": "interlock-keyring/1", "keyring_id": "<32 hex>", "current": 2,
     "versions": [{"version": 1, "created": "<ISO 8601>", "key": "<base64>"}, ...]}

It is created with mode 0600 and never briefly readable by others (the
temporary file is opened 0600 with O_EXCL, then hard-linked into place, which
also refuses to overwrite). Loading refuses a file that group or others can
access, a symlink, or anything malformed. Rotation adds a version under an
exclusive lock and replaces the file atomically; old versions stay so that
existing records still open until they are re-wrapped.

A :class:`Keyring` is a handle in the style of Tink's ``KeysetHandle``: it
shows no key material in ``repr`` and refuses pickling and copying.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, NoReturn

from interlock.crypto import aead, envelope
from interlock.errors import AlreadyInitialisedError, DecryptionError, KeyFileError, KeyringError

__all__ = ["Keyring"]

_FORMAT: Final = "interlock-keyring/1"
_MAX_FILE: Final = 1024 * 1024
_WRAPPED_SIZE: Final = aead.NONCE_SIZE + aead.KEY_SIZE + aead.TAG_SIZE


class Keyring:
    """A handle on the versioned root KEK of one deployment."""

    __slots__ = ("_created", "_current", "_id", "_keys", "_path")

    def __init__(
        self,
        path: Path,
        keyring_id: str,
        current: int,
        keys: dict[int, bytes],
        created: dict[int, str],
    ) -> None:
        """Internal: use :meth:`create` or :meth:`load`."""
        self._path = path
        self._id = keyring_id
        self._current = current
        self._keys = dict(keys)
        self._created = dict(created)

    # -- construction --------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """Create a new keyring file (mode 0600) at ``path`` with KEK version 1.

        Raises :class:`AlreadyInitialisedError` if anything exists at ``path``.
        """
        keyring = cls(path, secrets.token_hex(16), 1, {1: aead.new_key()}, {1: _now()})
        try:
            _write_private(path, keyring._document(), replace=False)
        except FileExistsError:
            raise AlreadyInitialisedError(
                f"{path} already exists; refusing to overwrite a keyring"
            ) from None
        return keyring

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Load the keyring at ``path``; :class:`KeyFileError` if it is unsafe or malformed."""
        return cls(path, *_parse(path, _read_private(path)))

    # -- public, non-secret properties --------------------------------------

    @property
    def path(self) -> Path:
        """Where the key file lives."""
        return self._path

    @property
    def keyring_id(self) -> str:
        """32 hex digits naming this keyring; the same across rotations."""
        return self._id

    @property
    def current_version(self) -> int:
        """The KEK version new records are sealed with."""
        return self._current

    @property
    def versions(self) -> tuple[int, ...]:
        """Every KEK version held, oldest first."""
        return tuple(sorted(self._keys))

    @property
    def wrapped_size(self) -> int:
        """Length of a wrapped data key: nonce, key and tag."""
        return _WRAPPED_SIZE

    # -- sealing (the everyday API) ------------------------------------------

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext``, bound to ``aad`` (see :mod:`interlock.crypto.envelope`)."""
        return envelope.seal(self, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`seal` given the same ``aad``."""
        return envelope.open_sealed(self, blob, aad)

    # -- rotation ------------------------------------------------------------

    def rotate(self) -> int:
        """Add a new KEK version, make it current and persist; returns the version.

        Concurrent rotations (two processes) are serialised by a lock file;
        each re-reads the file under the lock, so no version is ever lost.
        """
        with _locked(self._path):
            _, _, keys, created = _parse(self._path, _read_private(self._path))
            version = max(keys) + 1
            keys[version], created[version] = aead.new_key(), _now()
            self._keys, self._created, self._current = keys, created, version
            _write_private(self._path, self._document(), replace=True)
        return version

    # -- KeyEncryptionKey protocol ------------------------------------------

    def has_version(self, version: int) -> bool:
        """Whether ``version`` is held; re-reads the file once if it is not.

        Another process may have rotated the keyring since this one loaded it.
        """
        if version not in self._keys and version > self._current:
            with contextlib.suppress(KeyFileError):
                _, current, keys, created = _parse(self._path, _read_private(self._path))
                self._keys, self._created, self._current = keys, created, current
        return version in self._keys

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        """``nonce || AES-256-GCM(KEK_version, dek)`` authenticating ``aad``."""
        nonce = aead.new_nonce()
        return nonce + aead.encrypt(self._key(version), nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Reverse of :meth:`wrap`; :class:`DecryptionError` on any failure."""
        if len(wrapped) != _WRAPPED_SIZE:
            raise DecryptionError("decryption failed: malformed wrapped key")
        nonce, body = wrapped[: aead.NONCE_SIZE], wrapped[aead.NONCE_SIZE :]
        return aead.decrypt(self._key(version), nonce, body, aad)

    # -- no accidental export ------------------------------------------------

    def __repr__(self) -> str:
        return f"Keyring(id={self._id}, versions={list(self.versions)}, current={self._current})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled: key material never leaves the handle")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("a Keyring cannot be copied")

    def _key(self, version: int) -> bytes:
        key = self._keys.get(version)
        if key is None:
            raise KeyringError(f"KEK version {version} is not in this keyring")
        return key

    def _document(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "keyring_id": self._id,
            "current": self._current,
            "versions": [
                {"version": v, "created": self._created[v], "key": base64.b64encode(k).decode()}
                for v, k in sorted(self._keys.items())
            ],
        }


def _read_private(path: Path) -> bytes:
    """Read a key file, refusing symlinks and files open to group or others."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no keyring file; run `interlock init` first") from None
    except OSError as exc:
        # ELOOP: a symlink could point the key file anywhere an attacker chose.
        raise KeyFileError(f"{path}: cannot open key file ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: key file is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run `chmod 600 {path}`"
            )
        data = handle.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise KeyFileError(f"{path}: key file is larger than {_MAX_FILE} bytes")
    return data


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _parse(path: Path, data: bytes) -> tuple[str, int, dict[int, bytes], dict[int, str]]:
    """Validate a key file's content; messages name the field, never key bytes."""

    def bad(what: str) -> NoReturn:
        raise KeyFileError(f"{path}: malformed keyring: {what}")

    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        bad("not JSON")
    if not isinstance(document, dict) or document.get("format") != _FORMAT:
        bad(f"format is not {_FORMAT!r}")
    keyring_id = document.get("keyring_id")
    if not isinstance(keyring_id, str) or len(keyring_id) != 32:
        bad("keyring_id must be 32 hex digits")
    try:
        bytes.fromhex(keyring_id)
    except ValueError:
        bad("keyring_id must be 32 hex digits")
    keys: dict[int, bytes] = {}
    created: dict[int, str] = {}
    versions = document.get("versions")
    if not isinstance(versions, list) or not versions:
        bad("versions must be a non-empty list")
    for entry in versions:
        version = entry.get("version") if isinstance(entry, dict) else None
        if type(version) is not int or version < 1 or version in keys:
            bad("each version needs a unique positive integer 'version'")
        try:
            key = base64.b64decode(entry.get("key", ""), validate=True)
        except (binascii.Error, TypeError, ValueError):
            bad(f"version {version}: key is not base64")
        if len(key) != aead.KEY_SIZE:
            bad(f"version {version}: key is not 256 bits")
        keys[version] = key
        created[version] = str(entry.get("created", ""))
    current = document.get("current")
    if type(current) is not int or current not in keys:
        bad("current must name one of the versions")
    return keyring_id, current, keys, created


def _write_private(path: Path, document: dict[str, Any], *, replace: bool) -> None:
    """Write ``document`` to ``path`` durably, 0600 from the first byte."""
    payload = json.dumps(document, indent=2).encode() + b"\n"
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            tmp.replace(path)
        else:
            os.link(tmp, path)  # atomic, and fails if ``path`` exists
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name(f".{path.name}.lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
