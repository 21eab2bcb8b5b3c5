"""Credential formats in a text: the registry's checked matches, located by line and column.

The formats themselves (prefixes, shapes, checksums, examples, placeholders)
live in one place, :mod:`interlock.credentials`, shared with log redaction
and the CLI's argument guard; this module only turns the registry's offsets
into the scanner's 1-based lines and columns.
"""

from __future__ import annotations

from collections.abc import Iterator

from interlock.credentials import find_credentials
from interlock.scan.finding import Match

__all__ = ["find_provider_secrets"]


def find_provider_secrets(text: str) -> Iterator[Match]:
    """Every credential in ``text`` that passes its format's check."""
    for found in find_credentials(text):
        yield _at(text, found.format.id, found.start, found.value)


def _at(text: str, rule_id: str, offset: int, value: str) -> Match:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Match(rule_id, line, column, value)
