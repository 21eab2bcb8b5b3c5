"""The one AEAD primitive Interlock uses: AES-256-GCM with 96-bit nonces.

Policy, deliberately narrower than GCM allows (NIST SP 800-38D):

* 256-bit keys only;
* 96-bit nonces only — the length for which GCM derives its counter directly
  (§8.2.1); other lengths go through GHASH and are where implementations have
  leaked the authentication key (Wycheproof "LongIv", "CounterWrap"). Nonces
  are always random and never reused under one key: every key here is a fresh
  data key that encrypts once, or a KEK that wraps at most a few billion data
  keys, below the 2^32 random-nonce bound of §8.3;
* full 128-bit tags only: the last 16 bytes of a ciphertext are always the
  tag, so a truncated tag can never verify (short tags weaken forgery
  resistance, §5.2.1.2 and Appendix C).

Encrypting outside the policy raises :class:`CryptoError` (a programming
error); decrypting raises :class:`DecryptionError` for every failure, with one
opaque message, so a caller cannot learn which check failed.
"""

from __future__ import annotations

import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from interlock.errors import CryptoError, DecryptionError

__all__ = [
    "DECRYPTION_FAILED",
    "KEY_SIZE",
    "NONCE_SIZE",
    "TAG_SIZE",
    "decrypt",
    "encrypt",
    "new_key",
    "new_nonce",
]

KEY_SIZE: Final = 32
NONCE_SIZE: Final = 12
TAG_SIZE: Final = 16
#: The one message of every refused decryption, here and in the envelope.
DECRYPTION_FAILED: Final = (
    "decryption failed: the sealed data was altered or the associated data does not match"
)


def new_key() -> bytes:
    """A fresh random 256-bit key from the operating system's CSPRNG."""
    return secrets.token_bytes(KEY_SIZE)


def new_nonce() -> bytes:
    """A fresh random 96-bit nonce (NIST SP 800-38D §8.2.2, RBG-based construction)."""
    return secrets.token_bytes(NONCE_SIZE)


def encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``ciphertext || tag`` of ``plaintext`` under ``key``, authenticating ``aad``.

    Raises :class:`CryptoError` if ``key`` is not 256 bits or ``nonce`` not 96 bits.
    The caller must never pass the same ``nonce`` twice under one ``key``.
    """
    problem = _policy_problem(key, nonce)
    if problem is not None:
        raise CryptoError(problem)
    return AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """The plaintext of ``ciphertext || tag``; :class:`DecryptionError` on any failure.

    Parameters outside the policy are refused like a wrong tag, with the same
    message: a vector or blob we would never produce is simply not authentic.
    """
    if _policy_problem(key, nonce) is not None or len(ciphertext) < TAG_SIZE:
        raise DecryptionError(DECRYPTION_FAILED)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(DECRYPTION_FAILED) from None


def _policy_problem(key: bytes, nonce: bytes) -> str | None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        return "AES-256-GCM needs a 256-bit key (bytes)"
    if not isinstance(nonce, bytes) or len(nonce) != NONCE_SIZE:
        return "AES-256-GCM here takes 96-bit nonces (bytes) only"
    return None
