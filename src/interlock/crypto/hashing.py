"""Keyed hashes of random secrets (API keys, client secrets) and their check.

A random 256-bit secret cannot be guessed, so a slow password hash (bcrypt,
Argon2) would buy nothing and would cap the verification rate; HMAC-SHA256
keyed with a per-deployment pepper is the right tool. The pepper lives sealed
in the store, so a stolen database alone does not allow offline checks of
leaked candidate keys. Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from interlock.errors import CryptoError

__all__ = ["PEPPER_SIZE", "check_secret", "hash_secret", "new_pepper"]

PEPPER_SIZE: Final = 32


def new_pepper() -> bytes:
    """A fresh random pepper."""
    return secrets.token_bytes(PEPPER_SIZE)


def hash_secret(pepper: bytes, secret: str | bytes) -> bytes:
    """HMAC-SHA256 of ``secret`` under ``pepper`` (32 bytes)."""
    if len(pepper) < PEPPER_SIZE:
        raise CryptoError("the pepper must be at least 256 bits")
    data = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(pepper, data, hashlib.sha256).digest()


def check_secret(pepper: bytes, secret: str | bytes, expected: bytes) -> bool:
    """Whether ``secret`` hashes to ``expected``, compared in constant time."""
    return hmac.compare_digest(hash_secret(pepper, secret), expected)
