"""What envelope encryption needs from a key-encryption key (KEK) backend.

The file keyring implements this; a PKCS#11 HSM backend will too (for example
with ``CKM_AES_GCM`` or ``CKM_AES_KEY_WRAP_KWP``), so that the envelope format
and everything sealed with it stay the same whichever backend holds the root
key. A backend never exports a KEK: data keys go in and out, KEKs stay put.
"""

from __future__ import annotations

from typing import Literal, NoReturn, Protocol

__all__ = ["KekBackend", "KeyEncryptionKey", "Unexportable"]


class KeyEncryptionKey(Protocol):
    """A versioned KEK that wraps and unwraps data keys; it never exports itself."""

    @property
    def keyring_id(self) -> str:
        """32 lowercase hex digits identifying the keyring (stable across rotations)."""
        ...

    @property
    def current_version(self) -> int:
        """The version new data keys are wrapped with."""
        ...

    @property
    def wrapped_size(self) -> int:
        """Length in bytes of every wrapped data key this backend produces (at most 1024)."""
        ...

    def has_version(self, version: int) -> bool:
        """Whether ``version`` can unwrap (possibly after re-reading its source)."""
        ...

    def wrap(self, dek: bytes, aad: bytes, version: int) -> bytes:
        """``dek`` encrypted under KEK ``version``, authenticating ``aad``.

        ``aad`` is the blob header, so the keyring id and version are bound to
        the wrapped key; the result must be exactly :attr:`wrapped_size` bytes.
        """
        ...

    def unwrap(self, wrapped: bytes, aad: bytes, version: int) -> bytes:
        """The data key from :meth:`wrap`; ``DecryptionError`` on any failure."""
        ...


class KekBackend(KeyEncryptionKey, Protocol):
    """What :class:`~interlock.crypto.Keyring` needs beyond wrapping: versions and rotation."""

    @property
    def kind(self) -> Literal["file", "pkcs11"]:
        """Which backend this is (shown by ``interlock keyring status``)."""
        ...

    @property
    def versions(self) -> tuple[int, ...]:
        """Every KEK version held, oldest first."""
        ...

    def describe(self) -> str:
        """Where the KEK lives, for operators; never key material or a PIN."""
        ...

    def rotate(self) -> int:
        """Add a KEK version, make it current and return it."""
        ...

    def close(self) -> None:
        """Release sessions or handles; the backend may reopen them when used again."""
        ...


class Unexportable:
    """Refuses pickling and copying: a handle on key material stays in its process."""

    __slots__ = ()

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled: keys never leave the handle")

    def __reduce__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled: keys never leave the handle")

    def __getstate__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be pickled: keys never leave the handle")

    def __copy__(self) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError(f"a {type(self).__name__} cannot be copied")
