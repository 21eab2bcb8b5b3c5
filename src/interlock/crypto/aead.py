"""The one AEAD primitive Interlock uses: AES-256-GCM with 96-bit nonces.

Policy, deliberately narrower than GCM allows (NIST SP 800-38D):

* 256-bit keys only;
* 96-bit nonces only — the length for which GCM derives its counter directly
  (§8.2.1) — always random and never reused under one key: every key here is
  a fresh data key or a KEK that wraps at most a few billion data keys, far
  below the 2^32 random-nonce bound of §8.3;
* full 128-bit tags only (truncated tags weaken forgery resistance, §5.2.1.2).

Every failure raises :class:`DecryptionError` with one opaque message.
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interlock.errors import DecryptionError

__all__ = ["KEY_SIZE", "NONCE_SIZE", "TAG_SIZE", "decrypt", "encrypt", "new_key", "new_nonce"]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
_FAILED: Final = (
    "decryption failed: the sealed data was altered or the associated data does not match"
)


def new_key() -> bytes:
    """A fresh random 256-bit key."""
    return secrets.token_bytes(KEY_SIZE)


def new_nonce() -> bytes:
    """A fresh random 96-bit nonce."""
    return secrets.token_bytes(NONCE_SIZE)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``ciphertext || tag`` of ``plaintext`` under ``key``, authenticating ``aad``."""
    _check_params(key, nonce)
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext of ``ciphertext || tag``; :class:`DecryptionError` on any failure."""
    _check_params(key, nonce)
    if len(ciphertext) < TAG_SIZE:
        raise DecryptionError(_FAILED)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(_FAILED) from None


def _check_params(key: bytes, nonce: bytes) -> None:
    if len(key) != KEY_SIZE:
        raise DecryptionError("AES-256-GCM needs a 256-bit key")
    if len(nonce) != NONCE_SIZE:
        raise DecryptionError("AES-256-GCM here takes 96-bit nonces only")
