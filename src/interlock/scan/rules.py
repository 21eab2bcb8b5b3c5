"""The catalogue of rules: one id, kind, default level and description each.

Ids are stable (baselines and SARIF consumers key on them). Secrets are
``error``; switches that turn a check off are ``error`` too; parsing XML with
the standard library, safe only for trusted input, is a ``note``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

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


_LEAK_HELP: Final = (
    "Remove the value from the file, rotate it (it is in the history), and load it at run "
    "time: a `secret://` reference resolved by the vault, or the environment."
)
_TLS_HELP: Final = (
    "Certificate and host-name checks are what stop a machine on the network path from "
    "impersonating the server (CWE-295). Trust a private CA with a CA bundle instead."
)

_ALL: Final = (
    # -- secrets ---------------------------------------------------------------
    Rule(
        "interlock-api-key",
        "secret",
        "error",
        "Interlock API key (checksum verified)",
        _LEAK_HELP,
    ),
    Rule(
        "interlock-client-secret",
        "secret",
        "error",
        "Interlock OAuth client secret (checksum verified)",
        _LEAK_HELP,
    ),
    Rule("aws-access-key-id", "secret", "error", "AWS access key id", _LEAK_HELP),
    Rule("aws-secret-access-key", "secret", "error", "AWS secret access key", _LEAK_HELP),
    Rule("github-token", "secret", "error", "GitHub token", _LEAK_HELP),
    Rule("gitlab-token", "secret", "error", "GitLab personal access token", _LEAK_HELP),
    Rule("slack-token", "secret", "error", "Slack token", _LEAK_HELP),
    Rule("slack-webhook", "secret", "error", "Slack incoming webhook URL", _LEAK_HELP),
    Rule("stripe-live-key", "secret", "error", "Stripe live secret or restricted key", _LEAK_HELP),
    Rule("google-api-key", "secret", "error", "Google API key", _LEAK_HELP),
    Rule("sendgrid-api-key", "secret", "error", "SendGrid API key", _LEAK_HELP),
    Rule("twilio-api-key", "secret", "error", "Twilio API key or auth token", _LEAK_HELP),
    Rule("npm-token", "secret", "error", "npm access token", _LEAK_HELP),
    Rule("pypi-token", "secret", "error", "PyPI upload token", _LEAK_HELP),
    Rule("jwt", "secret", "error", "Signed JSON Web Token", _LEAK_HELP),
    Rule("private-key", "secret", "error", "PEM private key block", _LEAK_HELP),
    Rule("url-password", "secret", "error", "Password in a connection URL", _LEAK_HELP),
    Rule(
        "generic-secret",
        "secret",
        "error",
        "Secret assigned to a password/key/token field",
        _LEAK_HELP,
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

RULES: Final = {r.id: r for r in _ALL}


def rule(rule_id: str) -> Rule:
    """The rule with this id."""
    return RULES[rule_id]
