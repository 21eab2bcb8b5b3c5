"""Mask credentials wherever they appear in a log event.

Two nets, because secrets reach logs in two ways:

* **by field name** — an event field (or nested dict key) called
  ``authorization``, ``cookie``, ``password``, ``client_secret`` ... has its
  whole value replaced;
* **by shape** — any string, including free-text messages and rendered
  tracebacks, is scanned for things that look like credentials: Interlock API
  keys (``ilk_...``) and client secrets (``ilcs_...``), JWTs, PEM private keys,
  ``Bearer``/``Basic`` credentials, passwords in URLs and ``password=...`` pairs.

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

# Credential formats: these are credentials wherever they appear.
_SHAPES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # PEM private keys of every kind (PKCS#8, RSA, EC, encrypted, OpenSSH),
    # also when the END line was cut off.
    (
        re.compile(
            r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
            re.DOTALL,
        ),
        "-----BEGIN PRIVATE KEY-----" + REDACTED + "-----END PRIVATE KEY-----",
    ),
    # Authorization header values: the scheme stays readable, the credential goes.
    (
        # Plain words ("Basic authentication") are not credentials and stay.
        re.compile(
            r"\b((?i:bearer|basic|digest|dpop|negotiate))(\s+)"
            r"(?![A-Z]?[a-z]+\b)[A-Za-z0-9._~+/=-]{8,}"
        ),
        r"\1\2" + REDACTED,
    ),
    # JWS/JWE compact serialisations: the protected header is base64url JSON,
    # so it always starts with "eyJ" ('{"').
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"), REDACTED),
    # Interlock API keys (ilk_) and client secrets (ilcs_; older ones are ilk_ too):
    # prefix, key id, secret, checksum (identity/keyformat.py).
    (re.compile(r"\bil(?:k|cs)_[A-Za-z0-9_]{8,}"), REDACTED),
    # Other well-known token formats secret scanners recognise.
    (re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    # user:password@ in URLs (database URLs, proxies).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
)
# Where a shape can start. Plain substring tests decide whether the patterns need to
# run at all: about 1 µs for a typical audit reason, a quarter of one regex search
# over the same alternatives (the audit trail runs this for every request).
_HINTS: Final = (
    "-----BEGIN",
    "eyJ",
    "ilk_",
    "ilcs_",
    "gh",
    "xox",
    "AKIA",
    "ASIA",
    "://",
)
_SCHEMES: Final = ("bearer", "basic", "digest", "dpop", "negotiate")
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
_PATTERNS: Final = _SHAPES + _PAIRS

_MAX_DEPTH: Final = 16


def is_sensitive_key(name: str) -> bool:
    """Whether a field or header called ``name`` holds a credential."""
    key = name.strip().lower().replace("-", "_")
    return key in _SENSITIVE_NAMES or key.endswith(_SENSITIVE_SUFFIXES)


def redact_text(text: str) -> str:
    """Mask every credential-shaped substring of ``text``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_credentials(text: str) -> str:
    """Mask each substring of ``text`` in a credential format (keys, tokens, PEM, URL passwords)."""
    if not _may_hold_credential(text):
        return text
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


def _may_hold_credential(text: str) -> bool:
    for hint in _HINTS:
        if hint in text:
            return True
    lowered = text.lower()
    return any(scheme in lowered for scheme in _SCHEMES)


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
