"""Provider token shapes: fixed prefixes and lengths, checked beyond the regex.

Each pattern has one capture group, the secret. A validator then drops the
look-alikes a regex alone cannot: documentation examples (AWS's
``...EXAMPLE`` keys), low-entropy fillers, JWTs whose parts do not decode, PEM
blocks without a body, Interlock keys whose CRC32 checksum is wrong.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from interlock.identity.keyformat import CLIENT_SECRET_PREFIX, parse_key
from interlock.scan.finding import Match
from interlock.scan.values import entropy, is_placeholder, is_random_looking

__all__ = ["PROVIDER_PATTERNS", "find_provider_secrets"]


@dataclass(frozen=True)
class _Pattern:
    rule_id: str
    regex: re.Pattern[str]
    valid: Callable[[str], bool]


def _random_tail(prefix_len: int, min_entropy: float = 3.0) -> Callable[[str], bool]:
    def valid(token: str) -> bool:
        tail = token[prefix_len:]
        return "EXAMPLE" not in token.upper() and not _filler(tail) and entropy(tail) >= min_entropy

    return valid


def _filler(value: str) -> bool:
    lowered = value.lower()
    return any(w in lowered for w in ("xxxx", "0000", "1234", "abcd", "example", "****"))


def _aws_secret(token: str) -> bool:
    return is_random_looking(token, min_length=40, min_entropy=4.0) and "EXAMPLE" not in token


def _interlock_key(token: str) -> bool:
    # The CRC32 checksum (identity/keyformat.py) tells a real key from a look-alike.
    return parse_key(token) is not None


def _interlock_client_secret(token: str) -> bool:
    return parse_key(token, (CLIENT_SECRET_PREFIX,)) is not None


def _b64url_json(part: str) -> dict[str, object] | None:
    try:
        decoded = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return decoded if isinstance(decoded, dict) else None


def _jwt(token: str) -> bool:
    header_part, payload_part, signature = token.split(".")
    header, payload = _b64url_json(header_part), _b64url_json(payload_part)
    if header is None or payload is None or not isinstance(header.get("alg"), str):
        return False
    if str(header["alg"]).lower() == "none" or len(signature) < 43:  # 43 chars = 32 bytes
        return False
    # jwt.io's sample token, in countless tutorials.
    return payload.get("sub") != "1234567890" and not _filler(signature)


def _pem(block: str) -> bool:
    body = re.sub(r"-----[A-Z ]+-----|\\n|\\r|\s|Proc-Type:.*|DEK-Info:.*", "", block)
    return len(body) >= 64 and not _filler(body) and entropy(body) >= 4.5


_B = r"(?<![A-Za-z0-9_])"  # start of a token: not inside a longer word
_E = r"(?![A-Za-z0-9_])"
PROVIDER_PATTERNS: Final = (
    _Pattern(
        "interlock-api-key",
        re.compile(rf"{_B}(ilk_[0-9A-Za-z]{{12}}_[0-9A-Za-z]{{49}}){_E}"),
        _interlock_key,
    ),
    _Pattern(
        "interlock-client-secret",
        re.compile(rf"{_B}(ilcs_[0-9A-Za-z]{{12}}_[0-9A-Za-z]{{49}}){_E}"),
        _interlock_client_secret,
    ),
    _Pattern(
        "aws-access-key-id",
        re.compile(rf"{_B}((?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA)[A-Z2-7]{{16}}){_E}"),
        _random_tail(4, 2.5),
    ),
    _Pattern(
        "aws-secret-access-key",
        re.compile(
            r"(?i:aws|amazon)[\w.-]{0,30}?(?i:secret|private|sk)[\w.-]{0,20}[\"']?\s*(?::|=|=>|:=)\s*"
            r"[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"
        ),
        _aws_secret,
    ),
    _Pattern(
        "github-token", re.compile(rf"{_B}(gh[pousr]_[A-Za-z0-9]{{36,76}}){_E}"), _random_tail(4)
    ),
    _Pattern(
        "github-token",
        re.compile(rf"{_B}(github_pat_[A-Za-z0-9]{{22}}_[A-Za-z0-9]{{59}}){_E}"),
        _random_tail(11),
    ),
    _Pattern("gitlab-token", re.compile(rf"{_B}(glpat-[A-Za-z0-9_-]{{20,}}){_E}"), _random_tail(6)),
    _Pattern(
        "slack-token",
        re.compile(rf"{_B}(xox[abposr]-(?:[0-9]{{6,}}-){{1,3}}[A-Za-z0-9]{{16,}}){_E}"),
        _random_tail(5, 2.8),
    ),
    _Pattern(
        "slack-webhook",
        re.compile(
            r"(https://hooks\.slack\.com/services/T[A-Z0-9]{6,}/B[A-Z0-9]{6,}/[A-Za-z0-9]{20,})"
        ),
        lambda t: not _filler(t.rsplit("/", 1)[1]),
    ),
    _Pattern(
        "stripe-live-key",
        re.compile(rf"{_B}((?:sk|rk)_live_[0-9A-Za-z]{{24,99}}){_E}"),
        _random_tail(8),
    ),
    _Pattern("google-api-key", re.compile(rf"{_B}(AIza[0-9A-Za-z_-]{{35}}){_E}"), _random_tail(4)),
    _Pattern(
        "sendgrid-api-key",
        re.compile(rf"{_B}(SG\.[0-9A-Za-z_-]{{22}}\.[0-9A-Za-z_-]{{43}}){_E}"),
        _random_tail(3),
    ),
    _Pattern("twilio-api-key", re.compile(rf"{_B}(SK[0-9a-f]{{32}}){_E}"), _random_tail(2)),
    _Pattern(
        "twilio-api-key",
        re.compile(
            r"(?i:twilio)[\w.-]{0,30}?(?i:token|secret)[\w.-]{0,10}[\"']?\s*(?::|=|=>)\s*[\"']?"
            r"([0-9a-f]{32})(?![0-9A-Za-z])"
        ),
        _random_tail(0),
    ),
    _Pattern("npm-token", re.compile(rf"{_B}(npm_[A-Za-z0-9]{{36}}){_E}"), _random_tail(4)),
    _Pattern(
        "pypi-token",
        re.compile(rf"{_B}(pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{{50,}}){_E}"),
        _random_tail(20),
    ),
    _Pattern(
        "jwt",
        re.compile(
            rf"{_B}(eyJ[A-Za-z0-9_-]{{10,}}\.eyJ[A-Za-z0-9_-]{{10,}}\.[A-Za-z0-9_-]{{20,}}){_E}"
        ),
        _jwt,
    ),
    _Pattern(
        "private-key",
        re.compile(
            r"(-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----"
            r"(?:\\[nr]|[\sA-Za-z0-9+/=:,-]){0,12000}?-----END [A-Z ]*PRIVATE KEY(?: BLOCK)?-----)"
        ),
        _pem,
    ),
)

# postgresql://user:pass@host, redis://:pass@host, amqps://u:p@h/vhost
_URL_PASSWORD: Final = re.compile(
    r"(?<![\w+.-])[a-zA-Z][a-zA-Z0-9+.-]{1,20}://[^\s:/@\"'`]*:([^\s@/\"'`<>{}]{3,})@[\w.-]+"
)


def find_provider_secrets(text: str) -> Iterator[Match]:
    """Every provider token, Interlock key, JWT, private key and URL password in ``text``."""
    for pattern in PROVIDER_PATTERNS:
        for found in pattern.regex.finditer(text):
            token = found.group(1)
            if pattern.valid(token):
                yield _at(text, pattern.rule_id, found.start(1), token)
    for found in _URL_PASSWORD.finditer(text):
        password = found.group(1)
        if not is_placeholder(password) and len(password) >= 6 and entropy(password) >= 2.5:
            yield _at(text, "url-password", found.start(1), password)


def _at(text: str, rule_id: str, offset: int, value: str) -> Match:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return Match(rule_id, line, column, value)
