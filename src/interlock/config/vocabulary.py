"""The manifest's vocabulary: names, scopes, countries, categories, field paths, trust and TLS.

Shared by every part of the manifest (:mod:`interlock.config.manifest` and the
integration types' own sections, e.g. :mod:`interlock.config.messaging`), so
that a name or a trust anchor means the same thing wherever it is written.
"""

from __future__ import annotations

import re
from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from interlock.gdpr.taxonomy import unknown_category, unknown_subject

__all__ = [
    "CATEGORY_PATTERN",
    "COUNTRY_PATTERN",
    "FIELD_PATTERN",
    "FILE_REF_PATTERN",
    "HTTPS_URL_PATTERN",
    "NAME_PATTERN",
    "OPERATOR_NAME_PATTERN",
    "PATTERN_HELP",
    "RULE_NAME_PATTERN",
    "SCOPE_PATTERN",
    "SECRET_REF_PATTERN",
    "SSH_KEY_PATTERN",
    "SUBJECT_PATTERN",
    "TRUST_ANCHOR_PATTERN",
    "Country",
    "DataCategory",
    "DataSubject",
    "FieldPath",
    "HttpsUrl",
    "MediaType",
    "Name",
    "QueryName",
    "RuleName",
    "Scope",
    "SecretRef",
    "Text",
    "TlsPolicy",
    "TrustAnchor",
    "check_secret_reference",
    "check_trust_anchor",
]

NAME_PATTERN: Final = r"^[a-z][a-z0-9-]{0,62}$"
# Business rules are named like Python entry points: order_total_matches_lines.
RULE_NAME_PATTERN: Final = r"^[a-z][a-z0-9_-]{0,62}$"
SCOPE_PATTERN: Final = r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$"
COUNTRY_PATTERN: Final = r"^[A-Z]{2}$"
# fideslang-style taxonomy keys: user.contact.email, system.operations ...
CATEGORY_PATTERN: Final = r"^(user|system)(\.[a-z][a-z0-9_]*)*$"
SUBJECT_PATTERN: Final = r"^[a-z][a-z0-9_]*$"
# A response field: a dotted path; "[]" after a name descends into each array item.
_MEDIA_TYPE: Final = r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$"
FIELD_PATTERN: Final = r"^[A-Za-z_][A-Za-z0-9_-]*(\[\])?(\.[A-Za-z_][A-Za-z0-9_-]*(\[\])?)*$"
# An operator is named by the operating-system user who runs the command (getpass).
OPERATOR_NAME_PATTERN: Final = r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$"
# An OpenSSH public-key line (a pinned host key, a partner's key), comment allowed.
SSH_KEY_PATTERN: Final = (
    r"^(ssh-ed25519|ecdsa-sha2-nistp(256|384|521)|rsa-sha2-(256|512)|ssh-rsa) "
    r"[A-Za-z0-9+/]+={0,3}( [^\n]{0,200})?$"
)
PATTERN_HELP: Final[dict[str, str]] = {
    NAME_PATTERN: "a name is 1-63 lower-case letters, digits and '-', starting with a letter",
    SCOPE_PATTERN: "a scope is dot-separated lower-case words, e.g. orders.read",
    COUNTRY_PATTERN: "a country is an ISO 3166-1 alpha-2 code in capitals, e.g. DE",
    CATEGORY_PATTERN: "a data category is a fideslang key under user. or system., "
    "e.g. user.contact.email",
    SUBJECT_PATTERN: "a data subject is a lower-case word, e.g. customer",
    SSH_KEY_PATTERN: "an SSH public key is one OpenSSH line, as in known_hosts or "
    "authorized_keys: 'ssh-ed25519 AAAA... comment'",
    OPERATOR_NAME_PATTERN: "an operator is named by an operating-system "
    "user name: letters, digits, '_', '.', '@' and '-'",
    RULE_NAME_PATTERN: "a rule name is 1-63 lower-case letters, digits, '_' and '-', "
    "starting with a letter",
    FIELD_PATTERN: "a response field is a dotted path where 'name[]' descends into each "
    "item of an array, e.g. customer.email or items[].sku",
}
"""What each pattern allows, in words, for error messages."""

Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
RuleName = Annotated[str, StringConstraints(pattern=RULE_NAME_PATTERN)]
Scope = Annotated[str, StringConstraints(pattern=SCOPE_PATTERN)]
Country = Annotated[str, StringConstraints(pattern=COUNTRY_PATTERN)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
DataCategory = Annotated[
    str, StringConstraints(pattern=CATEGORY_PATTERN), AfterValidator(lambda k: _known(k, "c"))
]
DataSubject = Annotated[
    str, StringConstraints(pattern=SUBJECT_PATTERN), AfterValidator(lambda k: _known(k, "s"))
]
FieldPath = Annotated[str, StringConstraints(pattern=FIELD_PATTERN)]
MediaType = Annotated[str, StringConstraints(pattern=_MEDIA_TYPE, max_length=127)]
QueryName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")]
#: ``file:PATH``: a path without spaces or control characters (a NUL or a line break in a
#: path would reach OpenSSL and the logs).
FILE_REF_PATTERN: Final = r"file:[^\s\x00-\x1f\x7f-\x9f]+"
_CA: Final = re.compile(rf"^(system|pki:[a-z][a-z0-9-]*|{FILE_REF_PATTERN})$")
_NO_TRUST: Final = frozenset({"none", "no", "off", "false", "insecure", "any", "skip", ""})
_SECRET_REF: Final = re.compile(r"^secret://[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*$")

SECRET_REF_PATTERN: Final = _SECRET_REF.pattern
TRUST_ANCHOR_PATTERN: Final = _CA.pattern
HTTPS_URL_PATTERN: Final = "^[Hh][Tt][Tt][Pp][Ss]://"

# Plain text to pydantic: the fields' own validators check these (check_secret_reference,
# check_trust_anchor, the https:// checks) and say why; the pattern is for the published
# JSON Schema, so that an editor flags the value while it is typed.
SecretRef = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": SECRET_REF_PATTERN, "examples": ["secret://erp/api-key"]}
    ),
]
"""A ``secret://`` reference into the vault; secrets are never written into the manifest."""
TrustAnchor = Annotated[
    str,
    WithJsonSchema(
        {"type": "string", "pattern": TRUST_ANCHOR_PATTERN, "examples": ["system", "pki:internal"]}
    ),
]
"""``system``, ``pki:NAME`` or ``file:PATH``: what a peer's certificate must chain to."""
HttpsUrl = Annotated[
    str,
    WithJsonSchema({"type": "string", "format": "uri", "pattern": HTTPS_URL_PATTERN}),
]
"""An ``https://`` URL (the field's validator says what else it must not carry)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=False)


class TlsPolicy(_Model):
    """Minimum TLS version for connections Interlock makes or accepts."""

    min_version: Literal["1.2", "1.3"] = Field(
        default="1.2",
        description="The lowest TLS version accepted: 1.2 (the floor, RFC 8996) or 1.3.",
    )

    @field_validator("min_version", mode="before")
    @classmethod
    def _tls_12_or_newer(cls, value: object) -> str:
        # Accepts 1.2, "1.2", "TLS1.2" and "TLSv1.2" (an unquoted 1.2 is a YAML float).
        text = str(value).strip().removeprefix("TLSv").removeprefix("TLS").strip()
        if text in {"1.2", "1.3"}:
            return text
        if text in {"1", "1.0", "1.1", "SSLv2", "SSLv3", "2", "3"}:
            raise ValueError(
                f"TLS {text} is refused: versions below 1.2 are deprecated (RFC 8996, "
                "BSI TR-02102-2, PCI DSS 4.0) and broken by known attacks; use 1.2 or 1.3"
            )
        raise ValueError(f"unknown TLS version {value!r}; use '1.2' or '1.3'")


def check_trust_anchor(value: object) -> object:
    """``system``, ``pki:NAME`` or ``file:PATH``; never a value that switches verification off."""
    if value is False or (isinstance(value, str) and value.strip().lower() in _NO_TRUST):
        raise ValueError(
            "ca cannot switch certificate verification off: without it anyone on the "
            "network path can impersonate the system (CWE-295); name the CA that "
            "issued its certificate with 'pki:NAME' or 'file:PATH'"
        )
    if not isinstance(value, str) or not _CA.fullmatch(value):
        raise ValueError("ca must be 'system', 'pki:NAME' or 'file:PATH'")
    return value


def check_secret_reference(value: str | None) -> str | None:
    """A ``secret://`` reference (or None): secrets are never written into the manifest."""
    if value is not None and not _SECRET_REF.match(value):
        raise ValueError(
            "credentials must be a reference like secret://erp/api-key; secrets are "
            "never written into the manifest"
        )
    return value


def _known(key: str, kind: Literal["c", "s"]) -> str:
    problem = unknown_category(key) if kind == "c" else unknown_subject(key)
    if problem is not None:
        raise ValueError(problem)
    return key
