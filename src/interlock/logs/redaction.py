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

__all__ = [
    "REDACTED",
    "is_sensitive_key",
    "redact_credentials",
    "redact_event",
    "redact_text",
    "redact_value",
]

REDACTED: Final = "[REDACTED]"

# Field names whose values are credentials, compared after lower-casing and
# turning '-' into '_' (so HTTP header names match too).
_SENSITIVE_NAMES: Final = frozenset(
    {
        "authorization",
        "proxy_authorization",
        "cookie",
        "set_cookie",
        "x_api_key",
        "api_key",
        "apikey",
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "client_secret",
        "private_key",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "client_assertion",
        "credentials",
        "session",
        "kek",
        "dek",
    }
)
_SENSITIVE_SUFFIXES: Final = ("_password", "_passwd", "_secret", "_token", "_private_key")

# Guesses by name: password=..., "client_secret": "...", token: ... in free text.
_PAIRS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (
        re.compile(
            r"(?i)(\b[\w-]*?(?:password|passwd|pwd|passphrase|secret|client_secret|api[_-]?key"
            r"|access_token|refresh_token|token)[\"']?\s*[=:]\s*)"
            # A vault reference (secret://erp/api-key, or the "//..." after secret:)
            # names a secret, it is none: operators need it in the log.
            r"(?!secret://)(?!(?<=secret:)//)"
            r"(\"[^\"]*\"|'[^']*'|[^\s&;,\"']+)"
        ),
        r"\1" + REDACTED,
    ),
)

_MAX_DEPTH: Final = 16


def is_sensitive_key(name: str) -> bool:
    """Whether a field or header called ``name`` holds a credential."""
    key = name.strip().lower().replace("-", "_")
    return key in _SENSITIVE_NAMES or key.endswith(_SENSITIVE_SUFFIXES)


def redact_text(text: str) -> str:
    """Mask every credential-shaped substring of ``text``, and ``name=value`` secret guesses."""
    text = redact_credentials(text)
    for pattern, replacement in _PAIRS:
        text = pattern.sub(replacement, text)
    return text


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
