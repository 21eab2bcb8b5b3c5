"""Insecure switches in configuration files: ``verify: false``, ``insecure: true``.

One line at a time, for YAML, JSON, TOML, INI, .env and properties files:
a key that turns a check off when false (``verify``, ``tls_verify``,
``ssl_verify``, ``check_hostname``) set to a false word, or one that turns it
off when true (``insecure_skip_verify``, ``insecureSkipVerify``,
``tls_skip_verify``) set to a true word. PostgreSQL's ``sslmode`` set to
``disable`` (no TLS at all) is looked for in configuration files and scripts
too, as it hides in connection strings (in Python, string literals only: see
``python_switches``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from interlock.scan.finding import Match

__all__ = ["SSLMODE_DISABLE", "find_config_switches", "find_sslmode_disable"]

_VALUE: Final = r"""["']?\s*(?::|=)\s*["']?(?P<value>[A-Za-z0-9_]+)["']?\s*(?:[,#;}\]]|$)"""
_KEY: Final = re.compile(r"""(?:^|[\s{,"'\[])(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)""" + _VALUE)
_OFF_WHEN_FALSE: Final = frozenset(
    {
        "verify",
        "verifyssl",
        "sslverify",
        "tlsverify",
        "verifytls",
        "verifycerts",
        "verifycert",
        "validatecerts",
        "checkhostname",
        "sslverifypeer",
        "verifypeer",
        "sslcheckhostname",
    }
)
_OFF_WHEN_TRUE: Final = frozenset(
    {
        "insecureskipverify",
        "insecureskiptlsverify",
        "tlsskipverify",
        "skiptlsverify",
        "skipsslverify",
        "sslnoverify",
        "tlsinsecure",
        "insecure",
        "disablesslverification",
    }
)
_FALSE: Final = frozenset({"false", "no", "off", "0", "none", "cert_none"})
_TRUE: Final = frozenset({"true", "yes", "on", "1"})
SSLMODE_DISABLE: Final = re.compile(r"(?i)(?<![a-z0-9])(?:pg)?sslmode\s*[=:]\s*[\"']?(disable)\b")


def find_config_switches(text: str) -> Iterator[Match]:
    """Every TLS switch turned off in a config-like ``text``."""
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith(("#", ";", "//")):
            continue
        for found in _KEY.finditer(line):
            squashed = re.sub(r"[^a-z0-9]", "", found.group("key").lower().rsplit(".", 1)[-1])
            value = found.group("value").lower()
            off = (squashed in _OFF_WHEN_FALSE and value in _FALSE) or (
                squashed in _OFF_WHEN_TRUE and value in _TRUE
            )
            if off:
                rule_id = (
                    "tls-hostname-check-disabled"
                    if "hostname" in squashed
                    else "tls-verify-disabled"
                )
                yield Match(rule_id, number, found.start("key") + 1, stripped[:200])
                break


def find_sslmode_disable(text: str) -> Iterator[Match]:
    """PostgreSQL ``sslmode`` set to ``disable``, on any line (connection strings, env files)."""
    for number, line in enumerate(text.splitlines(), start=1):
        for found in SSLMODE_DISABLE.finditer(line):
            yield Match("postgres-sslmode-disable", number, found.start() + 1, line.strip()[:200])
