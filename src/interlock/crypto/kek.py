"""What envelope encryption needs from a key-encryption key (KEK) backend.

The file keyring implements this; a PKCS#11 HSM backend will too (for example
with ``CKM_AES_GCM`` or ``CKM_AES_KEY_WRAP_KWP``), so that the envelope format
and everything sealed with it stay the same whichever backend holds the root
key. A backend never exports a KEK: data keys go in and out, KEKs stay put.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["KeyEncryptionKey"]


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
