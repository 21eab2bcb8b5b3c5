"""Structure and checksum checks: what a regex alone cannot tell about a token.

Each check takes the matched secret and says whether it is plausibly a live
credential of its format: checksums (GitHub and npm tokens carry a CRC32 of
their random part, our own keys too), structure (a JWT's header and payload
are base64url JSON with a real algorithm; a PEM body is long, varied base64),
and the randomness a generated key has and a placeholder lacks.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import zlib
from collections.abc import Callable
from typing import Final

from interlock.credentials.values import entropy, is_placeholder, is_random_looking

__all__ = [
    "authorization",
    "basic_credentials",
    "bearer",
    "filler",
    "github_checksum",
    "jwt",
    "pem_body",
    "random_tail",
    "url_password",
    "user_password",
    "with_github_checksum",
    "wrapped_jwt",
]

_BASE62: Final = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Runs that mark a filler or a docs value, not a generated key.
_FILLERS: Final = ("xxxx", "0000", "1234", "abcd", "example", "****", "....", "____")


def filler(value: str) -> bool:
    """A value padded with a repeated or counted run (``xxxx``, ``1234``, ``abcd``)."""
    lowered = value.lower()
    return any(run in lowered for run in _FILLERS)


def random_tail(prefix_len: int, min_entropy: float = 3.0) -> Callable[[str], bool]:
    """Check that the part after a fixed prefix is random: no filler, no docs word, entropy."""

    def valid(token: str) -> bool:
        tail = token[prefix_len:]
        # No docs-word test here: a fixed prefix already says what the token is, and
        # a random tail spells "test" or "t3st" in about one token in 200.
        return "EXAMPLE" not in token.upper() and not filler(tail) and entropy(tail) >= min_entropy

    return valid


def _base62(value: int, width: int) -> str:
    digits = []
    for _ in range(width):
        value, digit = divmod(value, 62)
        digits.append(_BASE62[digit])
    return "".join(reversed(digits))


def github_checksum(token: str) -> bool:
    """GitHub's ``gh?_`` and npm's ``npm_`` tokens: 30 random base62 characters, then 6 of CRC32.

    The checksum (github.blog, "Behind GitHub's new authentication token
    formats", 2021) is the CRC32 of the random part in base62: a token that
    fails it is a look-alike, not one GitHub or npm issued.
    """
    body, check = token[4:-6], token[-6:]
    return _base62(zlib.crc32(body.encode()), 6) == check


def with_github_checksum(prefix: str, body: str) -> str:
    """``prefix + body`` with the checksum :func:`github_checksum` verifies (for tests)."""
    return f"{prefix}{body}{_base62(zlib.crc32(body.encode()), 6)}"


def _b64url_json(part: str) -> dict[str, object] | None:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def jwt(token: str) -> bool:
    """A signed JWT (RFC 7519): header and payload decode, a real ``alg``, a full signature."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    header, payload = _b64url_json(parts[0]), _b64url_json(parts[1])
    if header is None or payload is None or not isinstance(header.get("alg"), str):
        return False
    # RFC 7515 §4.1.1 / RFC 7518 §3.6: "none" is no signature at all; 43 chars = 32 bytes.
    if str(header["alg"]).lower() == "none" or len(parts[2]) < 43:
        return False
    # jwt.io's sample token, in countless tutorials.
    return payload.get("sub") != "1234567890" and not filler(parts[2])


def wrapped_jwt(value: str) -> bool:
    """A JWT that was base64-encoded once more (Kubernetes secrets, CI variables)."""
    try:
        decoded = base64.b64decode(value + "=" * (-len(value) % 4), validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return False
    return jwt(decoded.strip())


_PEM_NOISE: Final = re.compile(r"-----[A-Z ]+-----|\\n|\\r|\s|Proc-Type:.*|DEK-Info:.*")


def pem_body(body: str) -> bool:
    """A PEM private key body: long, varied base64 (not ``...``, not a filler)."""
    text = _PEM_NOISE.sub("", body)
    if _BASE64.fullmatch(text) is None:
        return False  # code or prose between the markers, not a key body
    return len(text) >= 64 and not filler(text) and entropy(text) >= 4.5


_BASE64: Final = re.compile(r"[A-Za-z0-9+/=]+")


def url_password(password: str) -> bool:
    """The password part of ``scheme://user:password@host``: set, not a placeholder."""
    return not is_placeholder(password) and len(password) >= 6 and entropy(password) >= 2.5


def _basic_pair(value: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon and decoded.isprintable() else None


def authorization(value: str) -> bool:
    """An ``Authorization`` credential: a Basic pair judged as one, else a bearer token."""
    pair = _basic_pair(value)
    if pair is not None:
        return basic_credentials(value)
    return bearer(value)


def basic_credentials(value: str) -> bool:
    """An HTTP Basic credential (RFC 7617): base64 of ``user:password``, the password real."""
    pair = _basic_pair(value)
    if pair is None:
        return False
    user, password = pair
    # Sent on every request, so a real one is a set password or an API key: 8+ characters.
    return bool(user) and len(password) >= 8 and user_password(password)


def user_password(password: str) -> bool:
    """A password given beside a user name (``-u user:pass``): not a placeholder or reference."""
    return (
        len(password) >= 4
        and not is_placeholder(password)
        and not password.startswith(("$", "%", "<"))
        and "{" not in password  # ${VAR}, {{ template }}, shell brace expansion
        and entropy(password) >= 1.5
    )


def bearer(value: str) -> bool:
    """A bearer or API token value: random-looking, not a placeholder or variable."""
    return not is_placeholder(value) and is_random_looking(value, min_length=16, min_entropy=3.0)
