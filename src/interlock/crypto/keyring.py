"""The deployment's root key-encryption key (KEK): in a local file or in an HSM.

A :class:`Keyring` is a handle in the style of Tink's ``KeysetHandle``: it is
built only by its constructors (:meth:`Keyring.create` and :meth:`Keyring.load`
for the key file, :meth:`Keyring.create_pkcs11` and :meth:`Keyring.open_pkcs11`
for a PKCS#11 token), shows no key material in ``repr``, and refuses pickling
and copying, so keys cannot leave the process by accident. The KEK is
versioned: :meth:`Keyring.rotate` adds a version and makes it current; old
versions stay so that existing records still open until they are re-wrapped
(:func:`interlock.crypto.envelope.rewrap`).

Callers see one type whichever backend holds the KEK: the backend
(:class:`~interlock.crypto.file_kek.FileKek` or
:class:`~interlock.crypto.pkcs11_kek.Pkcs11Kek`) is chosen at deploy time by
``INTERLOCK_KEK_BACKEND``; blobs have the same format under both.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

from interlock.crypto import envelope
from interlock.crypto.file_kek import FileKek
from interlock.crypto.kek import KekBackend, Unexportable
from interlock.errors import KeyringError

if TYPE_CHECKING:
    from interlock.crypto.pkcs11_kek import Pkcs11Config

__all__ = ["Keyring"]

_INTERNAL: Final = object()  # proof that a constructor call comes from this module


class Keyring(Unexportable):
    """A handle on the versioned root KEK of one deployment; implements ``KeyEncryptionKey``."""

    __slots__ = ("_backend",)

    def __init__(self, token: object, backend: KekBackend) -> None:
        """Not public: use :meth:`create`, :meth:`load` or their PKCS#11 counterparts."""
        if token is not _INTERNAL:
            raise TypeError("use Keyring.create() or Keyring.load(); a Keyring is not built")
        self._backend = backend

    # -- construction --------------------------------------------------------

    @classmethod
    def create(cls, path: Path) -> Keyring:
        """Create a new keyring file (mode 0600) at ``path`` with KEK version 1.

        The keyring id is 128 random bits. Raises :class:`AlreadyInitialisedError`
        if anything exists at ``path``, :class:`KeyringError` if it cannot be written.
        """
        return cls(_INTERNAL, FileKek.create(path))

    @classmethod
    def load(cls, path: Path) -> Keyring:
        """Load the keyring at ``path``.

        Raises :class:`KeyFileError` if it is missing, a symlink, not a regular
        file, accessible by group or others, or malformed.
        """
        return cls(_INTERNAL, FileKek.load(path))

    @classmethod
    def create_pkcs11(cls, config: Pkcs11Config) -> Keyring:
        """A new keyring whose KEK version 1 is generated inside the PKCS#11 token.

        Raises :class:`KeyringError` (one line) if the module, token or PIN fails.
        """
        from interlock.crypto.pkcs11_kek import Pkcs11Kek

        return cls(_INTERNAL, Pkcs11Kek.create(config))

    @classmethod
    def open_pkcs11(cls, config: Pkcs11Config, keyring_id: str) -> Keyring:
        """The keyring ``keyring_id`` whose KEK versions live in the PKCS#11 token.

        Raises :class:`KeyringError` (one line) if the module, token or PIN fails,
        or if the token holds no KEK of this keyring.
        """
        from interlock.crypto.pkcs11_kek import Pkcs11Kek

        return cls(_INTERNAL, Pkcs11Kek.open(config, keyring_id))

    # -- public, non-secret properties --------------------------------------

    @property
    def backend(self) -> Literal["file", "pkcs11"]:
        """Which backend holds the KEK."""
        return self._backend.kind

    def describe(self) -> str:
        """Where the KEK lives (file path, or PKCS#11 module and token); never secrets."""
        return self._backend.describe()

    @property
    def path(self) -> Path:
        """Where the key file lives; :class:`KeyringError` for a keyring in an HSM."""
        if isinstance(self._backend, FileKek):
            return self._backend.path
        raise KeyringError("this keyring's KEK is in an HSM, not in a file")

    @property
    def keyring_id(self) -> str:
        """32 lowercase hex digits naming this keyring; the same across rotations."""
        return self._backend.keyring_id

    @property
    def current_version(self) -> int:
        """The KEK version new records are sealed with."""
        return self._backend.current_version

    @property
    def versions(self) -> tuple[int, ...]:
        """Every KEK version held, oldest first."""
        return self._backend.versions

    @property
    def wrapped_size(self) -> int:
        """Length of a wrapped data key (60 bytes for both backends: nonce, key, tag)."""
        return self._backend.wrapped_size

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

        File: concurrent rotations (several processes or handles) are serialised
        by a lock file, and each re-reads the file under the lock, so no version
        is lost; the handle changes only once the new file is durably in place.
        PKCS#11: the new key is generated inside the token (see
        :mod:`interlock.crypto.pkcs11_kek` for how rotations are serialised).
        """
        return self._backend.rotate()

    def export_version_sealed(self, version: int, passphrase: str) -> str:
        """KEK ``version`` sealed for transport under ``passphrase`` (file keyrings only).

        The one way a KEK leaves a file keyring, and never in clear: a compact
        JWE (:mod:`interlock.crypto.kek_transport`) for ``import_version_sealed``
        on another host of the same deployment.
        """
        return self._file_backend().export_version(version, passphrase)

    def import_version_sealed(
        self, token: str, passphrase: str, *, make_current: bool
    ) -> tuple[int, bool]:
        """Add the KEK version sealed in ``token``; returns (version, whether it was new).

        ``make_current``: whether a version newer than the current one becomes current
        (new data keys wrapped under it), a choice every caller makes explicitly.
        """
        return self._file_backend().import_version(token, passphrase, make_current=make_current)

    def _file_backend(self) -> FileKek:
        if isinstance(self._backend, FileKek):
            return self._backend
        raise KeyringError(
            "this keyring's KEKs are in an HSM: every host using the token sees every "
            "version, so there is nothing to export or import"
        )

    def close(self) -> None:
        """Release the backend's sessions (an HSM session); a later use reopens them."""
        self._backend.close()

    # -- KeyEncryptionKey protocol ------------------------------------------

    def has_version(self, version: int) -> bool:
        """Whether ``version`` is held; re-reads the backend once for a newer version.

        Another process may have rotated the keyring since this one loaded it.
        """
        return self._backend.has_version(version)

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        """``nonce || AES-256-GCM(KEK_version, dek)`` authenticating ``aad``."""
        return self._backend.wrap(dek, aad, version)

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """Reverse of :meth:`wrap`; :class:`DecryptionError` on any failure."""
        return self._backend.unwrap(wrapped, aad, version)

    # -- no accidental export (pickling and copying: see Unexportable) -------

    def __repr__(self) -> str:
        versions, current = list(self.versions), self.current_version
        return (
            f"Keyring(id={self.keyring_id}, backend={self.backend}, versions={versions}, "
            f"current={current})"
        )
