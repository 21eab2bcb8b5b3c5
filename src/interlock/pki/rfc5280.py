"""Rules from RFC 5280 the PKI applies: revocation reasons and serial numbers."""

from __future__ import annotations

import re
from typing import Final

from interlock.errors import InvalidRequestError

__all__ = ["REVOCATION_REASONS", "check_reason", "serial_hex"]

# RFC 5280 §5.3.1 CRLReason names that make sense for an end-entity certificate.
# Not offered: cACompromise and aACompromise (about CAs), certificateHold (a
# revocation here is final) and removeFromCRL (delta CRLs only).
REVOCATION_REASONS: Final = (
    "unspecified",
    "keyCompromise",
    "affiliationChanged",
    "superseded",
    "cessationOfOperation",
    "privilegeWithdrawn",
)
# RFC 5280 §4.1.2.2: a serial is a positive integer of at most 20 octets.
_SERIAL: Final = re.compile(r"^(0x)?[0-9a-f]{1,40}$")


def check_reason(reason: str) -> str:
    """``reason`` if it is an allowed CRLReason name; a clear error listing them otherwise."""
    if reason not in REVOCATION_REASONS:
        raise InvalidRequestError(
            f"unknown revocation reason {reason!r}; use one of {', '.join(REVOCATION_REASONS)}"
        )
    return reason


def serial_hex(serial: str | int) -> str:
    """A serial as stored: lowercase hex without leading zeros (``7a:3F`` -> ``7a3f``)."""
    if isinstance(serial, int):
        value = serial
    else:
        text = serial.strip().lower().replace(":", "")
        if not _SERIAL.fullmatch(text):
            raise InvalidRequestError(f"{serial!r} is not a certificate serial (hexadecimal)")
        value = int(text, 16)
    if not 0 < value < 2**160:
        raise InvalidRequestError("a certificate serial is a positive number of at most 20 bytes")
    return format(value, "x")
