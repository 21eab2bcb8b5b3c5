"""The deployment's root key-encryption key (KEK), kept in one local file.

A :class:`Keyring` is a handle in the style of Tink's ``KeysetHandle``: it is
built only by :meth:`Keyring.create` or :meth:`Keyring.load`, shows no key
material in ``repr``, and refuses pickling and copying, so keys cannot leave
the process by accident. The KEK is versioned: :meth:`Keyring.rotate` adds a
version and makes it current; old versions stay so that existing records still
open until they are re-wrapped (:func:`interlock.crypto.envelope.rewrap`).

The file's format and its safe reading and writing live in
:mod:`interlock.crypto.keyfile`.
"""

from __future__ import annotations

import contextlib
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, NoReturn

from interlock.crypto import aead, envelope, keyfile
from interlock.crypto.keyfile import KeyFileContents
from interlock.errors import DecryptionError, KeyFileError, KeyringError

__all__ = ["Keyring"]

_WRAPPED_SIZE: Final = aead.NONCE_SIZE + aead.KEY_SIZE + aead.TAG_SIZE
_INTERNAL: Final = object()  # proof that a constructor call comes from this module


class Keyring:
    """A handle on the versioned root KEK of one deployment; implements ``KeyEncryptionKey``."""

    __slots__ = ("_path", "_state")

    def __init__(self, token: object, path: Path, state: KeyFileContents) -> None:
        """Not public: use :meth:`create` or :meth:`load`."""
        if token is not _INTERNAL:
            raise TypeError("use Keyring.create() or Keyring.load(); a Keyring is not built")
        self._path = path
        # One immutable snapshot, swapped in a single assignment, so a reader
        # in another thread never sees a current version without its key.
        self._state = state

    # -- construction --------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """Create a new keyring file (mode 0600) at ``path`` with KEK version 1.

        The keyring id is 128 random bits. Raises :class:`AlreadyInitialisedError`
        if anything exists at ``path``, :class:`KeyringError` if it cannot be written.
        """
        state = KeyFileContents(secrets.token_hex(16), 1, {1: aead.new_key()}, {1: _now()})
        keyfile.write_new(path, state)
        return cls(_INTERNAL, path, state)

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Load the keyring at ``path``.

        Raises :class:`KeyFileError` if it is missing, a symlink, not a regular
        file, accessible by group or others, or malformed.
        """
        return cls(_INTERNAL, path, keyfile.read(path))

    # -- public, non-secret properties --------------------------------------

    @property
    def path(self) -> Path:
        """Where the key file lives."""
        return self._path

    @property
    def keyring_id(self) -> str:
        """32 lowercase hex digits naming this keyring; the same across rotations."""
        return self._state.keyring_id

    @property
    def current_version(self) -> int:
        """The KEK version new records are sealed with."""
        return self._state.current

    @property
    def versions(self) -> tuple[int, ...]:
        """Every KEK version held, oldest first."""
        return tuple(sorted(self._state.keys))

    @property
    def wrapped_size(self) -> int:
        """Length of a wrapped data key: nonce, key and tag."""
        return _WRAPPED_SIZE

    # -- sealing (the everyday API) ------------------------------------------

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Encrypt ``plaintext``, bound to ``aad`` (see :func:`envelope.seal`)."""
        return envelope.seal(self, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob from :meth:`seal` given the same ``aad``.

        See :func:`envelope.open_sealed` for the errors it raises.
        """
        return envelope.open_sealed(self, blob, aad)

    # -- rotation ------------------------------------------------------------

    def rotate(self) -> int:
        """Add a new KEK version, make it current and persist it; returns the version.

        Concurrent rotations (several processes or handles) are serialised by a
        lock file, and each re-reads the file under the lock, so no version is
        lost. The handle changes only once the new file is durably in place.
        Raises :class:`KeyringError` if the file now holds another keyring.
        """
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

    # -- KeyEncryptionKey protocol ------------------------------------------

    def has_version(self, version: int) -> bool:
        """Whether ``version`` is held; re-reads the file once for a newer version.

        Another process may have rotated the keyring since this one loaded it.
        An unreadable file or another keyring's file leaves the handle as it was.
        """
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

    # -- no accidental export ------------------------------------------------

    def __repr__(self) -> str:
        versions, current = list(self.versions), self.current_version
        return f"Keyring(id={self.keyring_id}, versions={versions}, current={current})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled: key material never leaves the handle")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled: key material never leaves the handle")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be pickled: key material never leaves the handle")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Keyring cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("a Keyring cannot be copied")

    # -- private -------------------------------------------------------------

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
