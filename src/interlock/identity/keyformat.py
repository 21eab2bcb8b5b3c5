"""The API key format: ``ilk_<key id>_<secret><checksum>``.

Modelled on GitHub's tokens: a fixed, greppable prefix lets secret scanners
(and Interlock's own log redaction) recognise a key; a CRC32 checksum lets
them — and the gateway, before any database look-up — tell a real key from a
random string. The secret has 43 base62 characters (256 bits of entropy).
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Final

__all__ = ["PREFIX", "ParsedKey", "new_key", "parse_key"]

PREFIX: Final = "ilk_"
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LEN: Final = 12
_SECRET_LEN: Final = 43  # 43 * log2(62) = 256.1 bits
_CHECK_LEN: Final = 6  # 62**6 > 2**32
_SHAPE: Final = re.compile(
    rf"^{PREFIX}([0-9A-Za-z]{{{_ID_LEN}}})_([0-9A-Za-z]{{{_SECRET_LEN}}})([0-9A-Za-z]{{{_CHECK_LEN}}})$"
)
MAX_LENGTH: Final = len(PREFIX) + _ID_LEN + 1 + _SECRET_LEN + _CHECK_LEN


@dataclass(frozen=True)
class ParsedKey:
    """A well-formed key split into its public id and its secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ParsedKey(key_id={self.key_id!r}, secret='***')"


def new_key() -> tuple[str, ParsedKey]:
    """A fresh key: the full token (show once) and its parts."""
    key_id = _random(_ID_LEN)
    secret = _random(_SECRET_LEN)
    body = f"{PREFIX}{key_id}_{secret}"
    return body + _checksum(body), ParsedKey(key_id, secret)


def parse_key(token: str) -> ParsedKey | None:
    """The parts of ``token``, or ``None`` if it is not a well-formed key."""
    if len(token) != MAX_LENGTH:
        return None
    match = _SHAPE.match(token)
    if match is None:
        return None
    key_id, secret, check = match.groups()
    if not secrets.compare_digest(check, _checksum(f"{PREFIX}{key_id}_{secret}")):
        return None
    return ParsedKey(key_id, secret)


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _checksum(body: str) -> str:
    value = zlib.crc32(body.encode())
    digits = []
    for _ in range(_CHECK_LEN):
        value, digit = divmod(value, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))
