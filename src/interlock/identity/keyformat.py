"""The format of our credentials, now in the registry of credential formats.

Kept so existing imports keep working: :mod:`interlock.credentials.keyformat`
is where the format lives, beside every other credential format the project
recognises (docs/scan.md).
"""

from __future__ import annotations

from interlock.credentials.keyformat import (
    CLIENT_SECRET_PREFIX,
    MAX_LENGTH,
    PREFIX,
    PREFIXES,
    ParsedKey,
    new_key,
    parse_key,
)

__all__ = [
    "CLIENT_SECRET_PREFIX",
    "MAX_LENGTH",
    "PREFIX",
    "PREFIXES",
    "ParsedKey",
    "new_key",
    "parse_key",
]
