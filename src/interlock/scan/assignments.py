"""Secrets assigned to a field named like one: ``password = "..."``, ``api_key: ...``.

The field name must *end* in a secret word (``db_password``, ``apiKey``,
``client_secret``), so ``password_file``, ``token_url`` and ``secret_ref``
are not read as secrets. The value must then pass the placeholder filter and
look like a credential: random-looking for keys and tokens, a plausible
password for password fields. Config formats (YAML, JSON, .env, INI, TOML)
are read line by line; Python by its syntax tree (see ``python_source``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from interlock.credentials import credential_shapes
from interlock.credentials.values import is_placeholder, is_plausible_password, is_random_looking
from interlock.scan.finding import Match

__all__ = ["find_config_assignments", "secret_field", "secret_value"]

_PASSWORD_FIELD: Final = re.compile(r"(?:password|passwd|passphrase|pwd)$")
_SECRET_FIELD: Final = re.compile(
    r"(?:secret|secretkey|apikey|accesskey|privatekey|token|accesstoken|authtoken|"
    r"refreshtoken|bearertoken|clientsecret|signingkey|encryptionkey|masterkey|credentials?)$"
)
# Tokens that are no credential: CSRF/XSRF tokens are per-session anti-forgery values
# sent to every browser, public tokens (Mapbox, Plaid) are published by design, and
# page/next/continuation tokens are cursors; token counts are numbers.
_PUBLIC_TOKEN: Final = re.compile(
    r"(?:csrf|xsrf|public|publishable|page|next|continuation|cancellation|pagination|sync|"
    r"idempotency|max)tokens?$|tokens$"
)
_NOT_ALNUM: Final = re.compile(r"[^a-z0-9]")
# shared_secret_base64, signing_key_hex: the encoding does not change what it is.
_ENCODING: Final = re.compile(r"(?:base64|b64|hex|pem|value|str)$")
# key [:=] value on one line: YAML, JSON, .env, INI, TOML, properties, shell exports.
_LINE: Final = re.compile(
    r"""(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*(?::|=|:=|=>)\s*"""
    r"""(?:"(?P<dq>[^"\s]+)"|'(?P<sq>[^'\s]+)'|(?P<bare>[^\s"']+))"""
)


def secret_field(name: str) -> str | None:
    """``"password"`` or ``"key"`` when ``name`` names a secret, else ``None``."""
    squashed = _ENCODING.sub("", _NOT_ALNUM.sub("", name.lower()))
    if _PASSWORD_FIELD.search(squashed):
        return "password"
    if _SECRET_FIELD.search(squashed) and not _PUBLIC_TOKEN.search(squashed):
        return "key"
    return None


def secret_value(field: str, value: str) -> bool:
    """Whether ``value`` in a field of this kind is a credential rather than a stand-in."""
    if is_placeholder(value) or _in_registry_shape(value):
        return False
    if field == "password":
        return is_plausible_password(value)
    return is_random_looking(value)


def _in_registry_shape(value: str) -> bool:
    """The whole value has a registered format's shape: the registry's check judges it.

    A value that passes is reported by its own rule (``github-token``, ...); one that
    fails is a look-alike (a wrong checksum, a published example) and not a secret here
    either.
    """
    return any(f.start == 0 and f.end == len(value) for f in credential_shapes(value))


def find_config_assignments(text: str) -> Iterator[Match]:
    """Generic secret assignments in a config-like text, one per line at most."""
    for number, line in enumerate(text.splitlines(), start=1):
        if len(line) > 4000:  # minified data, not configuration
            continue
        for found in _LINE.finditer(line):
            group = "dq" if found.group("dq") else "sq" if found.group("sq") else "bare"
            # A bare value ends at whitespace (where a comment may start); a JSON or
            # TOML separator after it is not part of it. A '#' inside a value is.
            value = found.group(group).rstrip(",;")
            field = secret_field(found.group("key"))
            if field is not None and secret_value(field, value):
                yield Match("generic-secret", number, found.start(group) + 1, value)
                break
