"""Canonical JSON: the RFC 8785 (JCS) rules our signed and hashed values need.

The audit log's entries (the Merkle leaves) and a data-subject request's
closing statement (whose digest the log records) are hashed as these bytes,
and the offline verifier (:mod:`interlock.sdk`) recomputes them, so the
encoder lives here in the foundation, once.

Values hold only strings, integers, booleans, ``null``, arrays and objects
with ASCII keys; floats are refused (JCS's number rules are the part most
implementations get wrong, and none of our values needs one). For such values
JCS is exactly: keys sorted, no whitespace, UTF-8, the short escapes
(``\\b \\t \\n \\f \\r \\" \\\\``) and ``\\u00xx`` in lower case for other
control characters, every other character as itself (RFC 8785 §3.2.2.2).
Python's ``json`` with these options produces that.

:func:`string`, :func:`scalar` and :func:`utf8` are the same rules in pieces, for
an encoder that knows its keys' order in advance (:func:`interlock.audit.entry.encode_entry`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Final

__all__ = [
    "MAX_DEPTH",
    "MAX_ENTRY_BYTES",
    "JsonValue",
    "canonical_json",
    "scalar",
    "string",
    "utf8",
]

#: The default size cap: one audit entry (a Merkle leaf).
MAX_ENTRY_BYTES: Final = 16 * 1024
MAX_DEPTH: Final = 8

JsonValue = str | int | bool | None | list["JsonValue"] | dict[str, "JsonValue"]

#: One JSON string as :func:`canonical_json` writes it: the escaper ``json.dumps``
#: (ensure_ascii=False) uses, the C version when built — the JCS escapes above. Calling
#: it directly lets a fixed-shape entry skip the generic encoder.
string: Final = json.encoder.encode_basestring


def _check(value: object, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("the value is nested too deeply")
    if value is None or isinstance(value, str | bool):
        return
    if isinstance(value, int):
        if not -(2**53) < value < 2**53:  # RFC 8785 §3.2.2.3: I-JSON's exact integers
            raise ValueError("integers must fit in 53 bits")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, depth + 1)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str) or not key.isascii():
                raise ValueError("object keys must be ASCII strings")
            _check(item, depth + 1)
        return
    raise ValueError(f"canonical JSON cannot hold a {type(value).__name__}")


def canonical_json(
    value: object, *, checked: bool = False, max_bytes: int = MAX_ENTRY_BYTES
) -> bytes:
    """The canonical UTF-8 encoding of ``value``; ``ValueError`` for what JCS-lite refuses.

    ``checked``: the caller guarantees the shape (an :class:`AuditEntry`'s fields,
    validated by its model), so the walk over every value is skipped; encoding,
    surrogate and size checks still apply. ``max_bytes``: the size cap (an
    audit entry's by default).
    """
    if not checked:
        _check(value, 0)
    return utf8(
        json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ),
        max_bytes=max_bytes,
    )


def utf8(text: str, *, max_bytes: int = MAX_ENTRY_BYTES) -> bytes:
    """The UTF-8 bytes of an encoded value; ``ValueError`` for a lone surrogate or too large."""
    try:
        encoded = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the value holds a lone surrogate, which is not UTF-8") from None
    if len(encoded) > max_bytes:
        raise ValueError(f"the encoded value is over {max_bytes} bytes")
    return encoded


def scalar(value: str | int | bool | None) -> str:
    """A string, integer (already range-checked), boolean or ``null`` as JSON text."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    return string(value)
