"""Helpers for the scanner tests: planted values are built at run time, never stored."""

from __future__ import annotations

import secrets
import string

from interlock.credentials.values import is_placeholder
from interlock.scan import Finding, scan_text

B62 = string.ascii_letters + string.digits


def rand(length: int, alphabet: str = B62) -> str:
    """A random string (the body of a planted token).

    Drawn again when it happens to spell a docs word ("sgFAK3" reads as "fake"
    in leetspeak, about one draw in 3,000 at 32 characters): the scanner rightly
    takes such a value for a placeholder, which would make a test flaky.
    """
    while True:
        value = "".join(secrets.choice(alphabet) for _ in range(length))
        if not is_placeholder(value):
            return value


def rules_in(path: str, text: str) -> set[str]:
    """The rule ids reported for ``text`` as the file ``path``."""
    return {f.rule_id for f in scan_text(path, text)}


def findings(path: str, text: str) -> list[Finding]:
    """The findings for ``text`` as the file ``path``."""
    return scan_text(path, text)
