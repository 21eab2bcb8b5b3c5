"""Raw Ed25519 signatures (RFC 8032) for signed notes, behind a handle that keeps the key in.

JOSE signing lives in :mod:`interlock.crypto.jose`; this module is for formats
that sign bytes directly, such as the audit log's C2SP signed-note checkpoints.
A :class:`Ed25519Signer` shows no key material in ``repr`` and refuses
pickling and copying; its private bytes leave it only through
:meth:`Ed25519Signer.private_bytes_for_sealing`, whose name says what the
caller must do with them.
"""

from __future__ import annotations

from typing import Final, NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from interlock.errors import CryptoError

__all__ = ["PUBLIC_KEY_SIZE", "SIGNATURE_SIZE", "Ed25519Signer", "verify_ed25519"]

PUBLIC_KEY_SIZE: Final = 32
SIGNATURE_SIZE: Final = 64
_PRIVATE_KEY_SIZE: Final = 32


class Ed25519Signer:
    """An Ed25519 private key that signs; see :meth:`generate` and :meth:`from_private_bytes`."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        """Wrap a private key (use the class methods)."""
        self._key = key
        self._public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @classmethod
    def generate(cls) -> Ed25519Signer:
        """A fresh random key."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, raw: bytes) -> Ed25519Signer:
        """A key from the 32 raw private bytes of :meth:`private_bytes_for_sealing`."""
        if len(raw) != _PRIVATE_KEY_SIZE:
            raise CryptoError("an Ed25519 private key is 32 bytes")
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    @property
    def public_key(self) -> bytes:
        """The 32-byte public key."""
        return self._public

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature of ``message``."""
        return self._key.sign(message)

    def private_bytes_for_sealing(self) -> bytes:
        """The raw private key, to be sealed by the keyring at once (never stored in clear)."""
        return self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())

    def __repr__(self) -> str:
        return f"Ed25519Signer(public={self._public.hex()})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("an Ed25519Signer cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("an Ed25519Signer cannot be pickled")

    def __copy__(self) -> NoReturn:
        raise TypeError("an Ed25519Signer cannot be copied")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("an Ed25519Signer cannot be copied")


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` under ``public_key``."""
    if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True
