"""The file backend of the keyring: KEK versions kept in one local 0600 file.

Every version's key is held in memory as one immutable snapshot
(:class:`~interlock.crypto.keyfile.KeyFileContents`), swapped in a single
assignment, so a reader in another thread never sees a current version
without its key. The file's format and its safe reading and writing live in
:mod:`interlock.crypto.keyfile`; the face callers use is
:class:`interlock.crypto.Keyring`.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from interlock.crypto import aead, keyfile
from interlock.crypto.kek import Unexportable
from interlock.crypto.kek_transport import KekExport, open_export, seal_export
from interlock.crypto.keyfile import KeyFileContents
from interlock.errors import DecryptionError, KeyFileError, KeyringError

__all__ = ["FileKek"]

_WRAPPED_SIZE: Final = aead.NONCE_SIZE + aead.KEY_SIZE + aead.TAG_SIZE


class FileKek(Unexportable):
    """Versioned AES-256 KEKs in a key file; implements ``KekBackend``."""

    __slots__ = ("_path", "_state")

    kind: Final[Literal["file"]] = "file"

    def __init__(self, path: Path, state: KeyFileContents) -> None:
        self._path = path
        self._state = state

    @classmethod
    def create(cls, path: Path) -> FileKek:
        """A new key file (0600) at ``path`` with a random keyring id and KEK version 1."""
        state = KeyFileContents(secrets.token_hex(16), 1, {1: aead.new_key()}, {1: _now()})
        keyfile.write_new(path, state)
        return cls(path, state)

    @classmethod
    def load(cls, path: Path) -> FileKek:
        """The key file at ``path``; :class:`KeyFileError` if it is unusable."""
        return cls(path, keyfile.read(path))

    @property
    def path(self) -> Path:
        """Where the key file lives."""
        return self._path

    def describe(self) -> str:
        """Where the KEK lives, for operators (no key material)."""
        return f"file {self._path}"

    @property
    def keyring_id(self) -> str:
        """32 lowercase hex digits naming this keyring."""
        return self._state.keyring_id

    @property
    def current_version(self) -> int:
        """The version new data keys are wrapped with."""
        return self._state.current

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version held, oldest first."""
        return tuple(sorted(self._state.keys))

    @property
    def wrapped_size(self) -> int:
        """Nonce, key and tag."""
        return _WRAPPED_SIZE

    def rotate(self) -> int:
        """Add a version under the file lock (re-reading the file first); returns it."""
        with keyfile.locked(self._path):
            on_disk = self._read_same_keyring()
            version = max(on_disk.keys) + 1
            if version > keyfile.MAX_VERSION:
                raise KeyringError(f"{self._path}: no KEK version is left to rotate to")
            state = KeyFileContents(
                self.keyring_id,
                version,
                {**on_disk.keys, version: aead.new_key()},
                {**on_disk.created, version: _now()},
            )
            keyfile.write_replacing(self._path, state)
            self._state = state
        return version

    def export_version(self, version: int, passphrase: str) -> str:
        """Version ``version``'s key sealed under ``passphrase`` (kek_transport)."""
        key = self._key(version)
        export = KekExport(self.keyring_id, version, self._state.created[version], key)
        return seal_export(export, passphrase)

    def import_version(
        self, token: str, passphrase: str, *, make_current: bool
    ) -> tuple[int, bool]:
        """Add the version sealed in ``token`` (under the file lock); (version, added).

        With ``make_current`` the version becomes current if it is newer than the
        current one (it was made current where it was rotated), whether it is
        added now or was held already; without, new data keys stay wrapped under
        the current version. A caller decides: making a key current trusts it for
        everything sealed from then on. The same version with another key is
        refused: two hosts rotated separately, and records sealed under one of
        them would not open on the other.
        """
        export = open_export(token, passphrase, self.keyring_id)
        with keyfile.locked(self._path):
            on_disk = self._read_same_keyring()
            held = on_disk.keys.get(export.version)
            if held is not None and not hmac.compare_digest(held, export.key):
                raise KeyringError(
                    f"{self._path} holds another key as KEK version {export.version}: two "
                    "hosts rotated on their own; keep the store's (docs/scale.md)"
                )
            current = max(on_disk.current, export.version) if make_current else on_disk.current
            if held is not None and current == on_disk.current:
                self._state = on_disk
                return export.version, False
            state = KeyFileContents(
                self.keyring_id,
                current,
                {**on_disk.keys, export.version: export.key},
                {
                    **on_disk.created,
                    export.version: on_disk.created.get(export.version, export.created),
                },
            )
            keyfile.write_replacing(self._path, state)
            self._state = state
        return export.version, held is None

    def has_version(self, version: int) -> bool:
        """Whether ``version`` is held; re-reads the file once for a newer version."""
        if version not in self._state.keys and self._state.current < version <= keyfile.MAX_VERSION:
            with contextlib.suppress(KeyringError):
                self._state = self._read_same_keyring()
        return version in self._state.keys

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        """``nonce || AES-256-GCM(KEK_version, dek)`` authenticating ``aad``."""
        nonce = aead.new_nonce()
        return nonce + aead.encrypt(self._key(version), nonce, dek, aad)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Reverse of :meth:`wrap`; :class:`DecryptionError` on any failure."""
        if len(wrapped) != _WRAPPED_SIZE:
            raise DecryptionError(aead.DECRYPTION_FAILED)
        nonce, body = wrapped[: aead.NONCE_SIZE], wrapped[aead.NONCE_SIZE :]
        return aead.decrypt(self._key(version), nonce, body, aad)

    def close(self) -> None:
        """Nothing to release: the file is read and written whole."""

    def _key(self, version: int) -> bytes:
        key = self._state.keys.get(version)
        if key is None:
            raise KeyringError(f"KEK version {version} is not in this keyring")
        return key

    def _read_same_keyring(self) -> KeyFileContents:
        on_disk = keyfile.read(self._path)
        if on_disk.keyring_id != self.keyring_id:
            raise KeyFileError(
                f"{self._path} now holds keyring {on_disk.keyring_id}, not {self.keyring_id}; "
                "it was replaced since it was loaded"
            )
        return on_disk


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
