"""Names of fields that hold secrets: the one definition every consumer reads.

A value is a secret by its shape (the formats in ``formats.py``) or by the name it
is given: ``db_password = ...``, ``"client_secret": ...``, ``signing_key: ...``.
The name rules live here, once:

- the secret scanner (``interlock.scan.assignments``) reports a credential-looking
  value assigned to a name :func:`secret_field` accepts;
- log redaction (``interlock.logs.redaction``) masks an event field or nested key
  that :func:`is_secret_name` accepts, and the value of every ``name=value`` pair
  in free text whose name :func:`secret_field` accepts;
- the gateway refuses, and the manifest and settings checks reject, a query
  parameter that :func:`is_credential_parameter` accepts;
- a route may not relay a header that :func:`is_credential_header` accepts.

A name is compared *squashed*: lower-cased, without separators (``api-key``,
``api_key``, ``apiKey`` and ``API.KEY`` are one name) and without a trailing
encoding word (``signing_key_hex``, ``shared_secret_base64``, ``token_value``).
It must *end* in a secret word, so ``password_file``, ``token_url`` and
``secret_ref`` name no secret.
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "is_credential_header",
    "is_credential_parameter",
    "is_secret_name",
    "secret_field",
    "squashed",
]

# Names ending in one of these hold a password.
_PASSWORD_WORDS: Final = ("password", "passwd", "passphrase", "pwd")
# Names ending in one of these hold a key, a token or another secret.
_SECRET_WORDS: Final = (
    "secret",
    "secretkey",
    "apikey",
    "accesskey",
    "privatekey",
    "token",
    "signingkey",
    "encryptionkey",
    "masterkey",
    "credential",
    "credentials",
)
_PASSWORD_FIELD: Final = re.compile(f"(?:{'|'.join(_PASSWORD_WORDS)})$")
_SECRET_FIELD: Final = re.compile(f"(?:{'|'.join(_SECRET_WORDS)})$")
# Tokens that are no credential: public tokens (Mapbox, Plaid) are published by design,
# page/next/continuation tokens are cursors; token counts are numbers.
_NOT_SECRET_TOKEN: Final = re.compile(
    r"(?:public|publishable|page|next|continuation|cancellation|pagination|sync|"
    r"idempotency|max)tokens?$|tokens$"
)
# CSRF/XSRF tokens are per-session anti-forgery values sent to every browser: one
# written into a file is a fixture or an example, never a live secret, but one in a
# log line or a request is a live session's and is masked.
_SESSION_TOKEN: Final = re.compile(r"(?:csrf|xsrf)tokens?$")
# In Interlock's own events ``credential`` names the credential a request used
# ("api-key ab12cd34ef56", identity/grants.py), never holds it: the access log
# keeps it. Written into a file, a value under that name is a secret.
_CREDENTIAL_USED: Final = "credential"
# Names that carry a credential whole on the wire or in memory: HTTP authentication
# and cookie headers, session identifiers, OAuth client assertions, wrapped data and
# key-encryption keys.
_CARRIERS: Final = frozenset(
    {
        "authorization",
        "proxyauthorization",
        "cookie",
        "setcookie",
        "session",
        "clientassertion",
        "kek",
        "dek",
    }
)
# Query parameters that carry one besides: Google's key=, short pass= and auth=,
# and signed-URL signatures (an Azure SAS sig= is a credential).
_PARAMETERS: Final = frozenset({"key", "pass", "auth", "sig", "signature"})
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")
# shared_secret_base64, signing_key_hex: the encoding does not change what it is.
_ENCODING: Final = re.compile(r"(?:base64|b64|hex|pem|value|str)$")


def squashed(name: str) -> str:
    """``name`` as the rules compare it: ``"Signing-Key_hex"`` -> ``"signingkey"``."""
    return _ENCODING.sub("", _NOT_ALNUM.sub("", name.lower()))


def secret_field(name: str, *, live: bool = False) -> Literal["password", "key"] | None:
    """``"password"`` or ``"key"`` when a value assigned to ``name`` is a secret, else ``None``.

    ``live``: the value is a running system's (a log line, a request), not one written
    into a file; then a CSRF/XSRF token is a secret too, and a field called just
    ``credential`` names the credential used, not its secret.
    """
    key = squashed(name)
    if _PASSWORD_FIELD.search(key):
        return "password"
    if not _SECRET_FIELD.search(key) or _NOT_SECRET_TOKEN.search(key):
        return None
    if live and key == _CREDENTIAL_USED:
        return None
    if not live and _SESSION_TOKEN.search(key):
        return None
    return "key"


def is_secret_name(name: str) -> bool:
    """Whether a live field, nested key or header called ``name`` holds a credential."""
    return secret_field(name, live=True) is not None or squashed(name) in _CARRIERS


def is_credential_parameter(name: str) -> bool:
    """Whether a URL query parameter called ``name`` carries a credential."""
    return is_secret_name(name) or squashed(name) in _PARAMETERS


def is_credential_header(name: str) -> bool:
    """Whether a header called ``name`` carries a credential, in whole or in part.

    Stricter than :func:`is_secret_name`, since a refused header is only a manifest
    error: a name that *contains* a secret word of five letters or more counts
    (``X-Auth-Token-Expiry``, ``X-Session-Id``, ``X-Secrets``, ``Cookie2``), and so
    does one with a word that is a secret name by itself (``X-Pwd``, ``X-Kek``).
    """
    key = _NOT_ALNUM.sub("", name.lower())
    words = (*_PASSWORD_WORDS, *_SECRET_WORDS, *_CARRIERS)
    return any(len(word) >= 5 and word in key for word in words) or any(
        is_secret_name(part) for part in re.split(r"[^A-Za-z0-9]+", name) if part
    )
