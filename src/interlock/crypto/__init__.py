"""Keys and encryption: the deployment keyring and envelope encryption.

The only package that imports ``cryptography.hazmat``; everything else seals
and opens through this face::

    keyring = Keyring.load(path)
    blob = keyring.seal(b"alice@example.com", aad=b"customers/42/email")
    keyring.open(blob, aad=b"customers/42/email")

Every record gets a fresh AES-256-GCM data key, wrapped by the current version
of the keyring's key-encryption key (KEK); the blob names the keyring and KEK
version, so :meth:`Keyring.rotate` followed by :func:`rewrap` moves records to
a new KEK without re-encrypting their data. Every failure to open is one
opaque :class:`~interlock.errors.DecryptionError` (or its subclass
:class:`~interlock.errors.UnknownKeyVersionError` when the blob names a KEK
this keyring does not hold). KEK backends implement :class:`KeyEncryptionKey`.
"""

from interlock.crypto.envelope import (
    MAX_BLOB,
    MAX_PLAINTEXT,
    SealedHeader,
    inspect_unverified,
    needs_rewrap,
    open_sealed,
    rewrap,
    seal,
)
from interlock.crypto.kek import KeyEncryptionKey
from interlock.crypto.keyring import Keyring

__all__ = [
    "MAX_BLOB",
    "MAX_PLAINTEXT",
    "KeyEncryptionKey",
    "Keyring",
    "SealedHeader",
    "inspect_unverified",
    "needs_rewrap",
    "open_sealed",
    "rewrap",
    "seal",
]
