"""Mask credentials wherever they appear in a log event.

Two nets, because secrets reach logs in two ways:

* **by field name** — an event field (or nested dict key) called
  ``authorization``, ``cookie``, ``password``, ``client_secret`` ... has its
  whole value replaced;
* **by shape** — any string, including free-text messages and rendered
  tracebacks, is masked wherever it holds a format of the credential registry
  (:mod:`interlock.credentials`: provider tokens, Interlock keys, JWTs, PEM
  private keys, ``Authorization`` values, passwords in URLs, command lines and
  XML) — the same registry the scanner reads — and ``password=...`` pairs.

The processor is a plain structlog processor (``(logger, method, event) ->
event``), so it is also usable on audit and error payloads. It never raises:
a logging call must not fail because of what it logs.

:func:`redact_credentials` masks the credential *formats* only (not the
``name=value`` guesses, which would also mask ``auth=secret://erp/hook``): the
audit trail's last line of defence, where text must stay as written unless it
holds a credential.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping
from typing import Any, Final

from interlock.credentials import mask_credentials
from interlock.credentials.names import is_secret_name, secret_field

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_credentials",
    "redact_event",
    "redact_text",
    "redact_value",
]

REDACTED: Final = "[REDACTED]"

# Guesses by name in free text: password=..., "client_secret": "...", signing_key: ...
# The pair's shape is here; which names hold a secret is the registry's
# (interlock.credentials.names), the rule the scanner reads too. The value is
# read ahead, not consumed, so a pair inside another's value (url=...?token=...)
# is still seen.
_PAIR: Final = re.compile(
    r"""(?P<name>\b[A-Za-z_][\w.-]{0,100})["']?\s*[=:]\s*"""
    # A vault reference (secret://erp/api-key, or the "//..." after secret:)
    # names a secret, it is none: operators need it in the log.
    r"(?!secret://)(?!(?<=secret:)//)"
    r"""(?=(?P<value>"[^"]*"|'[^']*'|[^\s&;,"']+))"""
)

_MAX_DEPTH: Final = 16


def is_sensitive_key(name: str) -> bool:
    """Whether a field or header called ``name`` holds a credential (the registry's rule)."""
    return is_secret_name(name)


def redact_text(text: str) -> str:
    """Mask every credential-shaped substring of ``text``, and ``name=value`` secret guesses."""
    text = redact_credentials(text)
    pieces: list[str] = []
    position = 0
    for found in _PAIR.finditer(text):
        start, end = found.span("value")
        if start < position or secret_field(found.group("name"), live=True) is None:
            continue
        pieces += (text[position:start], REDACTED)
        position = end
    if not pieces:
        return text
    pieces.append(text[position:])
    return "".join(pieces)


def redact_credentials(text: str) -> str:
    """Mask each substring of ``text`` in a registered credential format.

    The formats are :mod:`interlock.credentials`' registry, the one the scanner
    and the CLI's argument guard read: every shape is masked, checked or not.
    """
    return mask_credentials(text, REDACTED)


def redact_value(value: Any, depth: int = 0) -> Any:
    """Redact strings, mappings and sequences recursively; other values pass."""
    if depth > _MAX_DEPTH:
        return REDACTED  # fail closed on absurd nesting rather than recurse forever
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, bytes | bytearray):
        return redact_text(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, Mapping):
        return {
            k: (
                REDACTED
                if isinstance(k, str) and is_sensitive_key(k)
                else redact_value(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, depth + 1) for v in value]
    return value


def redact_event(
    _logger: object, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask credentials in every field of ``event``."""
    for key in list(event):
        if key.startswith("_"):
            continue  # structlog's own bookkeeping (_record, _from_structlog)
        event[key] = REDACTED if is_sensitive_key(key) else redact_value(event[key])
    return event
