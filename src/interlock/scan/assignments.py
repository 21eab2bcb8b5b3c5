"""Secrets assigned to a field named like one: ``password = "..."``, ``api_key: ...``.

The field name must *end* in a secret word (``db_password``, ``apiKey``,
``client_secret``), so ``password_file``, ``token_url`` and ``secret_ref``
are not read as secrets. The name rule is the credential registry's
(:func:`interlock.credentials.names.secret_field`), the one log redaction
reads. The value must then pass the placeholder filter and look like a
credential: random-looking for keys and tokens, a plausible password for
password fields. Config formats (YAML, JSON, .env, INI, TOML)
are read line by line; Python by its syntax tree (see ``python_source``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from interlock.credentials import credential_shapes
from interlock.credentials.names import secret_field
from interlock.credentials.values import is_placeholder, is_plausible_password, is_random_looking
from interlock.scan.finding import Match

__all__ = ["find_config_assignments", "secret_value"]

# key [:=] value on one line: YAML, JSON, .env, INI, TOML, properties, shell exports.
_LINE: Final = re.compile(
    r"""(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)["']?\s*(?::|=|:=|=>)\s*"""
    r"""(?:"(?P<dq>[^"\s]+)"|'(?P<sq>[^'\s]+)'|(?P<bare>[^\s"']+))"""
)


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
