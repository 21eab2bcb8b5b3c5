"""The catalogue of rules: one id, kind, default level and description each.

Ids are stable (baselines and SARIF consumers key on them). Secrets are
``error``; switches that turn a check off are ``error`` too; parsing XML with
the standard library, safe only for trusted input, is a ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from interlock.credentials import FORMATS
from interlock.scan.finding import Kind, Level

__all__ = ["RULES", "Rule", "rule"]


@dataclass(frozen=True)
class Rule:
    """One rule: what it finds and why it matters."""

    id: str
    kind: Kind
    level: Level
    title: str
    help: str
    # SARIF security-severity (0.0-10.0): code-scanning services rank results by it.
    severity: float = 5.0
    family: str = ""  # a secret's provider or class, for per-family reports


_LEAK_HELP: Final = (
    "Remove the value from the file, rotate it (it is in the history), and load it at run "
    "time: a `secret://` reference resolved by the vault, or the environment."
)
_TLS_HELP: Final = (
    "Certificate and host-name checks are what stop a machine on the network path from "
    "impersonating the server (CWE-295). Trust a private CA with a CA bundle instead."
)

_ALL: Final = (
    # -- secrets: one rule per registered credential format, then the name-based guess --
    *(
        Rule(fmt.id, "secret", "error", fmt.title, _LEAK_HELP, fmt.severity, fmt.family)
        for fmt in FORMATS
    ),
    Rule(
        "generic-secret",
        "secret",
        "error",
        "Secret assigned to a password/key/token field",
        _LEAK_HELP,
        7.0,
        "generic",
    ),
    # -- insecure switches ------------------------------------------------------
    Rule(
        "tls-verify-disabled",
        "switch",
        "error",
        "TLS certificate verification turned off",
        _TLS_HELP,
    ),
    Rule("tls-unverified-context", "switch", "error", "ssl unverified context", _TLS_HELP),
    Rule(
        "tls-cert-none", "switch", "error", "ssl.CERT_NONE: peer certificate not checked", _TLS_HELP
    ),
    Rule(
        "tls-hostname-check-disabled",
        "switch",
        "error",
        "TLS host-name check turned off",
        _TLS_HELP,
    ),
    Rule(
        "postgres-sslmode-disable",
        "switch",
        "error",
        "PostgreSQL connection with TLS disabled (sslmode disable)",
        _TLS_HELP,
    ),
    Rule(
        "ssh-unknown-host-accepted",
        "switch",
        "error",
        "SSH host key of an unknown server accepted (paramiko AutoAddPolicy/WarningPolicy)",
        "Without a known host key any server can impersonate the target. Load known_hosts "
        "and keep RejectPolicy (paramiko's default).",
    ),
    Rule(
        "yaml-unsafe-load",
        "switch",
        "error",
        "YAML loaded with a loader that builds arbitrary Python objects",
        "yaml.load with Loader/UnsafeLoader/FullLoader (or none) can run code from the document "
        "(CWE-502). Use yaml.safe_load or Loader=yaml.SafeLoader.",
    ),
    Rule(
        "xml-external-entities",
        "switch",
        "error",
        "XML parser that resolves entities or loads external resources",
        "Entity expansion and external entities give XXE and billion-laughs attacks (CWE-611, "
        "CWE-776). Use defusedxml, or an lxml parser with resolve_entities=False, "
        "no_network=True, load_dtd=False.",
    ),
    Rule(
        "xml-lxml-default-parser",
        "switch",
        "warning",
        "lxml parse without an explicit hardened parser",
        "lxml's default parser expands internal entities. Pass a parser built with "
        "resolve_entities=False, or parse with defusedxml.",
    ),
    Rule(
        "xml-stdlib-parse",
        "switch",
        "note",
        "Standard-library XML parse (safe only for trusted input)",
        "xml.etree, xml.dom.minidom and xml.sax expand internal entities (billion laughs). "
        "For input from another system use defusedxml.",
    ),
)

# SARIF security-severity of the switches (CVSS-like: CWE-295 and CWE-502 open the
# door to impersonation or code execution; the stdlib XML note is advice).
_SWITCH_SEVERITY: Final = {
    "tls-verify-disabled": 7.5,
    "tls-unverified-context": 7.5,
    "tls-cert-none": 7.5,
    "tls-hostname-check-disabled": 7.0,
    "postgres-sslmode-disable": 6.5,
    "ssh-unknown-host-accepted": 7.0,
    "yaml-unsafe-load": 8.0,
    "xml-external-entities": 7.5,
    "xml-lxml-default-parser": 5.0,
    "xml-stdlib-parse": 3.0,
}
RULES: Final = {
    r.id: replace(r, severity=_SWITCH_SEVERITY[r.id]) if r.id in _SWITCH_SEVERITY else r
    for r in _ALL
}


def rule(rule_id: str) -> Rule:
    """The rule with this id."""
    return RULES[rule_id]
