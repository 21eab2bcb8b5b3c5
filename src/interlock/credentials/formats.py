"""The registry: every credential format the project recognises, in one table.

One entry per format: its stable id (the scanner's rule id), family, title,
SARIF ``security-severity``, the substrings that must occur for it to be
worth a regex run, the pattern (its ``secret`` group is the credential), the
check that tells a live credential from a look-alike, and the published
documentation examples that are never findings (as SHA-256 digests, so this
file holds no token). Every consumer reads this table: the scanner
(``interlock.scan``), log redaction (``interlock.logs.redaction``), the CLI
argument guard and the audit writer's last line of defence. Adding a provider
is one entry here plus its sample in ``tests/credentials/samples.py``.

Redaction masks every *shape* match (a mistyped or revoked token is still
mostly a secret: fail closed); the scanner reports only matches that pass
the check, so a scan stays precise.

Why each check (the rationale docs/scan.md summarises):

- Fixed-prefix provider tokens (GitHub, GitLab, Slack, Stripe, npm, PyPI,
  Hugging Face, SendGrid, OpenAI, Anthropic): the prefix makes the shape
  unambiguous; the check rejects fillers and docs words, and verifies the
  CRC32 checksum where the format has one (GitHub, npm, Interlock).
- Context formats (AWS secret keys, Azure storage keys, HTTP ``Authorization``
  values, ``user:password`` on a command line, passwords in URLs and XML
  configuration): the surrounding syntax names the value a credential, so the
  check only asks that the value is set and is not a placeholder, a variable
  or a reference.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from interlock.credentials import checks
from interlock.credentials.keyformat import CLIENT_SECRET_PREFIX, PREFIX, parse_key
from interlock.credentials.values import is_random_looking

__all__ = ["FORMATS", "CredentialFormat", "format_by_id"]


@dataclass(frozen=True)
class CredentialFormat:
    """One credential format: how to find it, check it and say what it is."""

    id: str  # stable: scan rule id, SARIF ruleId, baseline key
    family: str  # the provider or class, for per-family reports
    title: str
    severity: float  # SARIF security-severity (0.0-10.0; >= 9 critical, >= 7 high)
    hints: tuple[str, ...]  # one must occur in a text before the pattern runs
    pattern: re.Pattern[str]  # the first "secret..." group that took part is the credential
    check: Callable[[str], bool]  # the secret is plausibly live (not a look-alike)
    examples: frozenset[str] = field(default=frozenset())  # SHA-256 of published examples

    def is_example(self, secret: str) -> bool:
        """Whether ``secret`` is a documentation example this format publishes."""
        return bool(self.examples) and hashlib.sha256(secret.encode()).hexdigest() in self.examples

    def accepts(self, secret: str) -> bool:
        """Whether the scanner should report ``secret`` as this format."""
        return not self.is_example(secret) and self.check(secret)


_B = r"(?<![A-Za-z0-9_])"  # a token starts here: not inside a longer word
_E = r"(?![A-Za-z0-9_])"
_Q = r"""["']?"""  # an optional quote around a value
# A value on a command line or in a header: up to whitespace or a quote.
_ARG = r"""(?P<secret>[^\s"'`;|&<>(),]+)"""


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    return re.compile(pattern, flags)


def _digests(*hexes: str) -> frozenset[str]:
    return frozenset(hexes)


def _interlock(prefix: str) -> Callable[[str], bool]:
    # The CRC32 checksum (keyformat.py) tells a real key from a look-alike.
    return lambda token: parse_key(token, (prefix,)) is not None


def _github(token: str) -> bool:
    if len(token) == 40:
        return checks.github_checksum(token) and checks.random_tail(4)(token)
    return checks.random_tail(4)(token)


def _slack_token(token: str) -> bool:
    # xoxb-<team>-<bot>-<secret>, xoxp-<team>-<user>-<team>-<secret>, xoxe.xoxp-1-<secret>,
    # xoxe-1-<secret>, xapp-1-<app>-<n>-<secret>: numeric ids, then a long random part.
    # A placeholder (xoxb-Slack_BOT_TOKEN, xoxb-your-token) has neither.
    parts = token.replace("xoxe.", "", 1).split("-")[1:]
    if not any(part.isdigit() for part in parts[:-1]):
        return False
    return len(parts[-1]) >= 16 and checks.random_tail(0, 2.8)(parts[-1])


def _slack_webhook(url: str) -> bool:
    last = url.rstrip("/").rsplit("/", 1)[-1]
    return len(last) >= 16 and checks.random_tail(0, 2.8)(last)


def _aws_secret(token: str) -> bool:
    return is_random_looking(token, min_length=40, min_entropy=4.0) and "EXAMPLE" not in token


def _hex_token(token: str) -> bool:
    return checks.random_tail(0)(token) and len(set(token)) >= 8


def _xml_value(value: str) -> bool:
    return checks.user_password(value) and not value.startswith(("${", "{{", "#{"))


_AWS_EXAMPLES: Final = _digests(
    "1a5d44a2dca19669d72edf4c4f1c27c4c1ca4b4408fbb17f6ce4ad452d78ddb3",  # AWS docs access key id
    "78314b11be2e581549ac1c4f616563fad3fdf0c3b71678f6e2299182080e0598",  # its secret key
)
_GOOGLE_EXAMPLES: Final = _digests(
    # The Maps SDK samples' "this is not a valid key", copied into countless configs.
    # (Firebase's reference example, AIzaSyDOC..., is two characters short of the
    # shape and never matches; its filler runs "123", "456" would fail the check too.)
    "43678fe10ddfc0bac013d630878caaf83336430b6e661a2fd8b2a4a26c9a9e94",
)

FORMATS: Final[tuple[CredentialFormat, ...]] = (
    CredentialFormat(
        "interlock-api-key",
        "interlock",
        "Interlock API key (checksum verified)",
        9.0,
        ("ilk_",),
        _re(rf"{_B}(?P<secret>ilk_[A-Za-z0-9_]{{8,}})"),
        _interlock(PREFIX),
    ),
    CredentialFormat(
        "interlock-client-secret",
        "interlock",
        "Interlock OAuth client secret (checksum verified)",
        9.0,
        ("ilcs_",),
        _re(rf"{_B}(?P<secret>ilcs_[A-Za-z0-9_]{{8,}})"),
        _interlock(CLIENT_SECRET_PREFIX),
    ),
    CredentialFormat(
        "aws-access-key-id",
        "aws",
        "AWS access key id",
        7.5,
        ("AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA"),
        _re(
            r"(?<![A-Za-z0-9])(?P<secret>(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[A-Z0-9]{16})"
            r"(?![A-Za-z0-9])"
        ),
        lambda t: (
            re.fullmatch(r"[A-Z]{4}[A-Z2-7]{16}", t) is not None and checks.random_tail(4, 2.5)(t)
        ),
        _AWS_EXAMPLES,
    ),
    CredentialFormat(
        "aws-secret-access-key",
        "aws",
        "AWS secret access key",
        9.0,
        ("aws", "AWS", "Aws", "amazon", "AMAZON"),
        _re(
            r"(?i:aws|amazon)[\w.-]{0,30}?(?i:secret|private|sk)[\w.-]{0,20}[\"']?\s*(?::|=|=>|:=)\s*"
            r"[\"']?(?P<secret>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        _aws_secret,
        _AWS_EXAMPLES,
    ),
    CredentialFormat(
        "azure-storage-key",
        "azure",
        "Azure storage account key or SAS signature",
        9.0,
        ("AccountKey", "accountkey", "ACCOUNTKEY", "sig="),
        _re(
            r"(?i:AccountKey)\s*=\s*(?P<secret>[A-Za-z0-9+/]{86}==)"
            r"|[?&]sig=(?P<secret_sas>[A-Za-z0-9%+/]{40,}(?:%3D|=))"
        ),
        checks.random_tail(0, 4.0),
    ),
    CredentialFormat(
        "azure-ad-client-secret",
        "azure",
        "Microsoft Entra (Azure AD) client secret",
        8.5,
        ("Q~",),
        # Client secrets issued since 2021: 3 chars, a digit, "Q~", 31-34 more.
        _re(rf"{_B}(?P<secret>[A-Za-z0-9_~.-]{{3}}[0-9]Q~[A-Za-z0-9_~.-]{{31,34}}){_E}"),
        checks.random_tail(0, 3.5),
    ),
    CredentialFormat(
        "github-token",
        "github",
        "GitHub token",
        8.5,
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        _re(
            rf"{_B}(?P<secret>gh[pousr]_[A-Za-z0-9]{{30,251}}|github_pat_[A-Za-z0-9_]{{30,251}})"
            rf"{_E}"
        ),
        lambda t: checks.random_tail(11)(t) if t.startswith("github_pat_") else _github(t),
    ),
    CredentialFormat(
        "gitlab-token",
        "gitlab",
        "GitLab access token",
        8.5,
        ("glpat-", "glrt-", "gldt-", "glptt-", "glsoat-"),
        _re(rf"{_B}(?P<secret>gl(?:pat|rt|dt|ptt|soat)-[A-Za-z0-9_-]{{20,}}){_E}"),
        lambda t: checks.random_tail(t.index("-") + 1)(t),
    ),
    CredentialFormat(
        "slack-token",
        "slack",
        "Slack token",
        8.0,
        ("xox", "xapp-"),
        _re(rf"{_B}(?P<secret>(?:xox[a-z](?:\.xox[a-z])?|xapp)-[A-Za-z0-9-]{{10,}}){_E}"),
        _slack_token,
    ),
    CredentialFormat(
        "slack-webhook",
        "slack",
        "Slack incoming webhook or workflow URL",
        7.0,
        ("hooks.slack.com",),
        _re(
            r"(?P<secret>https://hooks\.slack\.com/(?:services|workflows|triggers)/"
            r"[A-Za-z0-9]+/[A-Za-z0-9/_-]{8,})"
        ),
        _slack_webhook,
    ),
    CredentialFormat(
        "stripe-live-key",
        "stripe",
        "Stripe live secret or restricted key",
        9.0,
        ("sk_live_", "rk_live_"),
        _re(rf"{_B}(?P<secret>(?:sk|rk)_live_[0-9A-Za-z]{{20,247}}){_E}"),
        checks.random_tail(8),
    ),
    CredentialFormat(
        "google-api-key",
        "google",
        "Google API key",
        6.5,
        ("AIza",),
        _re(rf"{_B}(?P<secret>AIza[0-9A-Za-z_-]{{35}})(?![A-Za-z0-9_-])"),
        checks.random_tail(4),
        _GOOGLE_EXAMPLES,
    ),
    CredentialFormat(
        "sendgrid-api-key",
        "sendgrid",
        "SendGrid API key",
        7.5,
        ("SG.",),
        _re(rf"{_B}(?P<secret>SG\.[0-9A-Za-z_-]{{22}}\.[0-9A-Za-z_-]{{43}})(?![A-Za-z0-9_-])"),
        checks.random_tail(3),
    ),
    CredentialFormat(
        "twilio-api-key",
        "twilio",
        "Twilio API key or auth token",
        7.5,
        ("SK", "twilio", "TWILIO", "Twilio"),
        _re(
            rf"{_B}(?P<secret>SK[0-9a-f]{{32}}){_E}"
            r"|(?i:twilio)[\w.-]{0,30}?(?i:token|secret)[\w.-]{0,10}[\"']?\s*(?::|=|=>)\s*[\"']?"
            r"(?P<secret_hex>[0-9a-f]{32})(?![0-9A-Za-z])"
        ),
        _hex_token,
    ),
    CredentialFormat(
        "npm-token",
        "npm",
        "npm access token",
        8.0,
        ("npm_",),
        _re(rf"{_B}(?P<secret>npm_[A-Za-z0-9]{{36}}){_E}"),
        lambda t: checks.github_checksum(t) and checks.random_tail(4)(t),
    ),
    CredentialFormat(
        "pypi-token",
        "pypi",
        "PyPI upload token",
        8.0,
        ("pypi-AgE",),
        # A macaroon whose first bytes say "pypi.org" (or test.pypi.org).
        _re(rf"{_B}(?P<secret>pypi-AgE[A-Za-z0-9_-]{{50,}}){_E}"),
        checks.random_tail(20),
    ),
    CredentialFormat(
        "huggingface-token",
        "huggingface",
        "Hugging Face access token",
        7.0,
        ("hf_", "api_org_"),
        _re(rf"{_B}(?P<secret>(?:hf_|api_org_)[A-Za-z]{{34}}){_E}"),
        lambda t: checks.random_tail(t.index("_", 1) + 1, 3.5)(t),
    ),
    CredentialFormat(
        "openai-api-key",
        "openai",
        "OpenAI or Anthropic API key",
        8.0,
        ("T3BlbkFJ", "sk-ant-"),
        # "T3BlbkFJ" is base64 of "OpenAI", inside every OpenAI key; Anthropic keys say so.
        _re(
            rf"{_B}(?P<secret>sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{{16,}}T3BlbkFJ"
            rf"[A-Za-z0-9_-]{{16,}}|sk-ant-(?:api|admin)\d{{2}}-[A-Za-z0-9_-]{{80,}}){_E}"
        ),
        checks.random_tail(3, 3.5),
    ),
    CredentialFormat(
        "jwt",
        "jwt",
        "Signed JSON Web Token",
        7.0,
        ("eyJ",),
        # RFC 7515 §7.1 compact form; the protected header is JSON, so base64url "eyJ".
        _re(rf"{_B}(?P<secret>eyJ[A-Za-z0-9_-]{{4,}}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*)"),
        checks.jwt,
    ),
    CredentialFormat(
        "jwt-base64",
        "jwt",
        "Base64-wrapped JSON Web Token",
        7.0,
        ("ZXlK",),  # base64 of "eyJ"
        _re(rf"{_B}(?P<secret>ZXlK[A-Za-z0-9+/]{{60,}}={{0,2}})"),
        checks.wrapped_jwt,
    ),
    CredentialFormat(
        "private-key",
        "private-key",
        "PEM private key block",
        9.5,
        ("-----BEGIN",),
        # Every PEM private key label (PKCS#8, RSA, EC, DSA, OpenSSH, encrypted, PGP); to the
        # end of the text when the END line was cut off.
        _re(
            r"-----BEGIN (?P<label>[A-Z0-9 ]*)PRIVATE KEY(?: BLOCK)?-----(?P<secret>.*?)"
            r"(?:-----END (?P=label)PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        checks.pem_body,
    ),
    CredentialFormat(
        "http-authorization",
        "http-authorization",
        "HTTP Authorization credential (Bearer, Basic, token)",
        7.5,
        (
            "Bearer",
            "bearer",
            "BEARER",
            "Basic",
            "basic",
            "BASIC",
            "Digest",
            "digest",
            "DPoP",
            "dpop",
            "Negotiate",
            "negotiate",
            "Token ",
            "token ",
        ),
        # RFC 9110 §11.6.2: scheme, then the credential. Plain words ("Basic
        # authentication") are not credentials; "token" counts only as a header value.
        _re(
            r"(?:\b(?i:bearer|basic|digest|dpop|negotiate)|(?i:authorization)[\"']?\s*[:=]\s*"
            r"[\"']?(?i:token))[ \t]+(?![A-Z]?[a-z]+(?![A-Za-z0-9._~+/=-]))"
            r"(?P<secret>[A-Za-z0-9._~+/=-]{8,})"
        ),
        checks.authorization,
    ),
    CredentialFormat(
        "command-line-credential",
        "command-line",
        "Credential passed on a command line (curl -u, --password, --token)",
        7.5,
        (
            "-u",
            "--user",
            "--pass",
            "--token",
            "--api-key",
            "--apikey",
            "--access-token",
            "--auth-token",
            "--secret",
        ),
        _re(
            # curl/wget -u user:pass, --user user:pass, --proxy-user user:pass
            r"(?:\s-u|--(?:proxy-)?user)(?:\s+|=)[\"']?[^\s:\"'$]+:"
            + _ARG
            # --password X, --token X (huggingface-cli login --token, docker login), --api-key X
            + r"|--(?:password|passwd|token|api-key|apikey|access-token|auth-token|secret)"
            r"(?:\s+|=)[\"']?(?P<secret_opt>[^\s\"'`;|&<>()]+)"
        ),
        checks.user_password,
    ),
    CredentialFormat(
        "xml-password",
        "xml-config",
        "Password or key in XML configuration (NuGet, Maven settings.xml)",
        7.5,
        ("assword", "ecret", "oken", "piKey", "apikey", "ApiKey", "passphrase"),
        _re(
            # NuGet.Config: <add key="ClearTextPassword" value="..."/>
            r"<add\s+key=\"(?i:cleartextpassword|password|apikey|token)\"\s+value=\""
            r"(?P<secret>[^\"]+)\""
            # Maven settings.xml and similar: <password>...</password>, <passphrase>, <token>
            r"|<(?P<tag>(?i:password|passphrase|privateKeyPassphrase|secret|token|apiKey))>"
            r"(?P<secret_element>[^<\s]+)</(?P=tag)>"
        ),
        _xml_value,
    ),
    CredentialFormat(
        "url-password",
        "url-password",
        "Password in a URL",
        8.0,
        ("://",),
        # postgresql://user:pass@host, redis://:pass@host, https://user:pass@host/
        _re(
            r"(?<![\w+.-])[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@\"'`]*:"
            r"(?P<secret>[^\s@/\"'`<>{}]{3,})@[\w.-]+"
        ),
        checks.url_password,
    ),
)

_BY_ID: Final = {f.id: f for f in FORMATS}


def format_by_id(format_id: str) -> CredentialFormat:
    """The format with this id."""
    return _BY_ID[format_id]
