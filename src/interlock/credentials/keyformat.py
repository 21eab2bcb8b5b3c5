"""The format of our credentials: ``<prefix><key id>_<secret><checksum>``.

API keys are ``ilk_...``, OAuth client secrets ``ilcs_...`` (secrets issued
before the client-secret prefix existed are ``ilk_...`` too and still work).
Modelled on GitHub's tokens: a fixed, greppable prefix per kind lets secret
scanners (and Interlock's own log redaction) recognise a credential and say
which kind it is; a CRC32 checksum over everything before it lets them — and
the gateway, before any database look-up — tell a real one from a random
string. The secret has 43 base62 characters (256 bits of entropy).
"""

from __future__ import annotations

import re
import secrets
import zlib
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "PREFIX",
    "PREFIXES",
    "ParsedKey",
    "new_key",
    "parse_key",
]

PREFIX: Final = "ilk_"  # API keys (and client secrets issued before CLIENT_SECRET_PREFIX)
CLIENT_SECRET_PREFIX: Final = "ilcs_"  # noqa: S105  (a prefix, not a secret)
PREFIXES: Final = (PREFIX, CLIENT_SECRET_PREFIX)
_ALPHABET: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_LEN: Final = 12
_SECRET_LEN: Final = 43  # 43 * log2(62) = 256.1 bits
_CHECK_LEN: Final = 6  # 62**6 > 2**32
_SHAPE: Final = re.compile(
    rf"([0-9A-Za-z]{{{_ID_LEN}}})_([0-9A-Za-z]{{{_SECRET_LEN}}})([0-9A-Za-z]{{{_CHECK_LEN}}})\Z"
)
_BODY_LENGTH: Final = _ID_LEN + 1 + _SECRET_LEN + _CHECK_LEN
MAX_LENGTH: Final = max(len(p) for p in PREFIXES) + _BODY_LENGTH


@dataclass(frozen=True)
class ParsedKey:
    """A well-formed key split into its public id and its secret."""

    key_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ParsedKey(key_id={self.key_id!r}, secret='***')"


def new_key(prefix: str = PREFIX) -> tuple[str, ParsedKey]:
    """A fresh key with ``prefix`` (one of :data:`PREFIXES`): the full token and its parts."""
    if prefix not in PREFIXES:
        raise ValueError("unknown credential prefix")
    key_id = _random(_ID_LEN)
    secret = _random(_SECRET_LEN)
    body = f"{prefix}{key_id}_{secret}"
    return body + _checksum(body), ParsedKey(key_id, secret)


def parse_key(token: str, prefixes: tuple[str, ...] = (PREFIX,)) -> ParsedKey | None:
    """The parts of ``token``, or ``None`` unless it is well formed with one of ``prefixes``."""
    prefix = next((p for p in prefixes if token.startswith(p)), None)
    if prefix is None or len(token) != len(prefix) + _BODY_LENGTH:
        return None
    match = _SHAPE.match(token, len(prefix))  # after the prefix, to the very end
    if match is None:
        return None
    key_id, secret, check = match.groups()
    if not secrets.compare_digest(check, _checksum(f"{prefix}{key_id}_{secret}")):
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
