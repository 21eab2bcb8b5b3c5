"""Find every key, anywhere in a manifest, that would turn certificate checks off.

House rule 2: there is no switch that disables TLS verification. Such keys are
not merely unknown fields: they are refused with the reason, wherever they
appear (a system, a route, a nested options block), so that a copy-pasted
``verify: false`` or ``insecureSkipVerify: true`` cannot be mistaken for a typo.

Keys are compared case- and separator-insensitively (``tls_verify``,
``tls-verify``, ``tlsVerify``), and besides the well-known spellings any key
that pairs a verb like skip, disable or verify with tls, ssl, cert, hostname
or peer is caught.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final

from interlock.config.checks import Finding
from interlock.config.yaml_source import DocPath

__all__ = ["find_insecure_switches"]

# Directly below these sections the keys are user-chosen names, not fields:
# a client may well be called `verify`.
_NAMED_SECTIONS: Final = frozenset({"systems", "roles", "clients", "integrations"})
_TLS_WORDS: Final = r"(tls|ssl|cert|hostname|peer)"
_SUSPECT: Final = re.compile(
    r"^verify$|(no|skip|disable)verif|insecure|checkhostname|certreqs"
    rf"|(verif|check|skip|disable|ignore|trust|accept|allow).*{_TLS_WORDS}"
    rf"|{_TLS_WORDS}.*(verif|check|skip|disable|ignore|insecure)"
)
# Keys whose *true* value turns checking off (insecure: true); for the others
# (verify: false, check_hostname: false) a false value does.
_NEGATIVE: Final = re.compile(r"insecure|skip|disable|ignore|trust|accept|allow|^no")
_FALSE_WORDS: Final = frozenset({"false", "no", "off", "0", "none", "cert_none", "disabled"})
_WHY: Final = (
    "certificate verification cannot be turned off: without it anyone on the network "
    "path can impersonate the other system and read or change the data (CWE-295); "
    "trust a private CA with `ca: pki:NAME` or `ca: file:PATH` instead"
)


def find_insecure_switches(data: object, path: DocPath = ()) -> Iterator[Finding]:
    """Every key below ``path`` that touches certificate verification, located at the key."""
    if isinstance(data, Mapping):
        names = len(path) == 1 and path[0] in _NAMED_SECTIONS
        for key, value in data.items():
            child = (*path, key)
            squashed = _squash(str(key))
            if not names and _SUSPECT.search(squashed):
                yield Finding(child, _message(str(key), squashed, value), at_key=True)
            else:
                yield from find_insecure_switches(value, child)
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from find_insecure_switches(item, (*path, index))


def _message(key: str, squashed: str, value: object) -> str:
    negative = _NEGATIVE.search(squashed) is not None
    if negative != _is_false(value):
        return f"{key!r} is refused: {_WHY}"
    return (
        f"unknown field {key!r}: certificate verification is always on and cannot be "
        "configured; to trust a private CA use `ca: pki:NAME` or `ca: file:PATH`"
    )


def _squash(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _is_false(value: object) -> bool:
    if isinstance(value, bool):
        return not value
    if value is None:
        return True
    if isinstance(value, int | float):
        return value == 0
    return str(value).strip().lower() in _FALSE_WORDS
