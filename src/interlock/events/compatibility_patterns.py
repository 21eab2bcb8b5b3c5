"""patternProperties for the compatibility checker: which names a pattern governs.

Names are matched as the event validator matches them — jsonschema-rs, with
its ECMA 262 translation — but with the linear-time engine, since the
pattern comes from the schema under check (CWE-1333). Whether two patterns
can match one name is undecidable in general; :func:`disjoint` proves it
only for two distinct literal prefixes, and callers fail closed otherwise.
"""

from __future__ import annotations

import string
from functools import lru_cache
from typing import Final

import jsonschema_rs

from interlock.events.compatibility_refs import UnsupportedSchemaError

__all__ = ["disjoint", "matches"]


@lru_cache(maxsize=256)
def _name_matcher(pattern: str) -> jsonschema_rs.Validator:
    """A validator refusing any property ``pattern`` matches, in the validator's dialect.

    jsonschema-rs translates the pattern as the event validator does (ECMA 262:
    ``\\d`` is ASCII, ``\\W`` is not ``[^\\w]`` in Python's sense), and
    :class:`jsonschema_rs.RegexOptions` selects the linear-time engine: a
    schema-supplied pattern such as ``^(a+)+$`` cannot make the check backtrack
    exponentially (CWE-1333). Those two engines agree on every pattern the
    linear one accepts; a pattern needing lookaround or backreferences is
    refused, never guessed.
    """
    try:
        return jsonschema_rs.Draft202012Validator(
            {"patternProperties": {pattern: False}},
            offline=True,
            pattern_options=jsonschema_rs.RegexOptions(),
        )
    except (ValueError, TypeError) as exc:
        raise UnsupportedSchemaError(
            f"patternProperties pattern {pattern!r} cannot be compared "
            "(lookaround and backreferences are not supported by the check)"
        ) from exc


def matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` matches the property name ``name``, as the validator decides."""
    try:
        return not _name_matcher(pattern).is_valid({name: None})
    except UnicodeEncodeError as exc:  # a lone surrogate cannot become Rust text
        raise UnsupportedSchemaError("a property name is not valid Unicode") from exc


_LITERAL: Final = frozenset(string.ascii_letters + string.digits + "_-:@ ")


def _literal_prefix(pattern: str) -> str | None:
    """What every name ``pattern`` matches starts with, when the pattern says so plainly."""
    if not pattern.startswith("^") or "|" in pattern:
        return None
    prefix = pattern[1:]
    for i, char in enumerate(prefix):
        if char not in _LITERAL:
            # a quantifier makes the character before it optional
            return prefix[: max(i - 1, 0) if char in "*+?{" else i]
    return prefix


def disjoint(a: str, b: str) -> bool:
    """True only when no name can match both patterns (two distinct literal prefixes)."""
    first, second = _literal_prefix(a), _literal_prefix(b)
    if first is None or second is None:
        return False
    return not (first.startswith(second) or second.startswith(first))
