"""Keys and encryption: the keyring and envelope encryption.

The only package that imports ``cryptography.hazmat``; everything else seals
and opens through this face.
"""

from interlock.crypto.envelope import (
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
