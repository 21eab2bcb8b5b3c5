"""Keyed HMAC-SHA256 pseudonyms for sensitive values (subject identifiers, IPs).

The log stores ``hmac-sha256:<base64url>`` instead of the value, so two
entries about the same person match, but the value cannot be read back or
brute-forced from the database alone: the key is sealed by the keyring. Each
kind of value is domain-separated, so an IP address and a subject id that
happen to be equal do not match.
"""

from __future__ import annotations

import base64
import hmac
from typing import Final, Literal, NoReturn

__all__ = ["KEY_SIZE", "PREFIX", "Pseudonymiser", "SensitiveKind"]

KEY_SIZE: Final = 32
PREFIX: Final = "hmac-sha256:"
SensitiveKind = Literal["subject", "ip"]
_MAX_IPS: Final = 4096  # addresses remembered (then forgotten at once, and relearnt)


class Pseudonymiser:
    """Turns sensitive values into keyed pseudonyms; the key never leaves the handle."""

    __slots__ = ("_ips", "_key")

    def __init__(self, key: bytes) -> None:
        """Use ``key`` (at least 256 bits), freshly unsealed from the keyring."""
        if len(key) < KEY_SIZE:
            raise ValueError("the pseudonym key must be at least 256 bits")
        self._key = key
        # IP address -> pseudonym: every audit entry of the gateway pseudonymises its
        # caller's address, and integrations' callers are few. Subjects are not kept:
        # the process would hold the persons' identifiers beyond their request.
        self._ips: dict[str, str] = {}

    def pseudonym(self, kind: SensitiveKind, value: str) -> str:
        """``hmac-sha256:`` and the base64url HMAC of ``kind`` and ``value``."""
        if kind == "ip":
            found = self._ips.get(value)
            if found is None:
                found = self._pseudonym(kind, value)
                if len(self._ips) >= _MAX_IPS:
                    self._ips.clear()
                self._ips[value] = found
            return found
        return self._pseudonym(kind, value)

    def _pseudonym(self, kind: SensitiveKind, value: str) -> str:
        message = kind.encode() + b"\x00" + value.encode("utf-8")
        digest = hmac.digest(self._key, message, "sha256")  # one-shot, OpenSSL
        return PREFIX + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def __repr__(self) -> str:
        return "Pseudonymiser(key=<sealed>)"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a Pseudonymiser cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Pseudonymiser cannot be pickled")
