"""Request-target normalisation, done once, before routing.

We refuse rather than "clean up" anything ambiguous: a path that two parsers
could read differently is how requests reach a different upstream path than
the one authorised (path confusion, CWE-22 / CWE-436). Refused: dot segments
(also percent-encoded), empty segments (``//``), ``;`` path parameters,
encoded ``/``, ``\\`` or NUL, backslashes, control characters, and bytes
that are not valid UTF-8 after decoding.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_TARGET_LENGTH", "BadPathError", "split_target"]

MAX_TARGET_LENGTH: Final = 4096
_ALLOWED: Final = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,=:@%/]*$")  # RFC 3986 pchar + "/"
_BAD_ESCAPES: Final = re.compile(r"%(?:2[fF]|5[cC]|00)")
_BAD_ESCAPE_SHAPE: Final = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Most paths: segments of unreserved characters and sub-delimiters, none empty, none
# starting with "." (so no dot segment), no "%" (nothing to decode), no ";". Such a
# path passes every check below unchanged, so it is split without them.
_PLAIN: Final = re.compile(r"(?:/[A-Za-z0-9\-_~!$&'()*+,=:@][A-Za-z0-9\-._~!$&'()*+,=:@]*)+")


class BadPathError(ValueError):
    """The request target cannot be routed safely; the message says why (safe to show)."""


def split_target(raw_target: str) -> tuple[tuple[str, ...], str]:
    """Decoded path segments and the raw query of a request target.

    ``/orders/42?x=1`` -> ``(("orders", "42"), "x=1")``; ``/`` -> ``((), "")``.
    """
    if len(raw_target) > MAX_TARGET_LENGTH:
        raise BadPathError(f"the request target is longer than {MAX_TARGET_LENGTH} characters")
    path, _, query = raw_target.partition("?")
    path = path.partition("#")[0]
    if _PLAIN.fullmatch(path):
        return tuple(path[1:].split("/")), query
    return _checked(path), query


def _checked(path: str) -> tuple[str, ...]:
    """Every check, then the decoded segments of ``path`` (without query or fragment)."""
    if not path.startswith("/"):
        raise BadPathError("the request target must be an absolute path")
    if not _ALLOWED.match(path):
        raise BadPathError("the path contains characters that are not allowed unencoded")
    if ";" in path:
        raise BadPathError("path parameters (';') are not accepted")
    if _BAD_ESCAPE_SHAPE.search(path):
        raise BadPathError("the path contains a malformed percent-encoding")
    if _BAD_ESCAPES.search(path):
        raise BadPathError("encoded '/', '\\' or NUL are not accepted in the path")
    if path == "/":
        return ()
    segments = []
    for raw in path[1:].split("/"):
        if raw == "":
            raise BadPathError("empty path segments ('//' or a trailing '/') are not accepted")
        try:
            segment = unquote_to_bytes(raw).decode("utf-8", errors="strict")
        except UnicodeDecodeError:
            raise BadPathError("the path is not valid UTF-8 after percent-decoding") from None
        if segment in {".", ".."}:
            raise BadPathError("dot segments ('.' or '..', also encoded) are not accepted")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in segment):
            raise BadPathError("control characters are not accepted in the path")
        segments.append(segment)
    return tuple(segments)
