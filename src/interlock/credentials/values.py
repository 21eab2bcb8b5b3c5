"""Is a matched value a real secret, or a placeholder, a reference, an example?

Precision is the point of a scanner people keep enabled: every rule that
looks at a free-form value (assignments, URL passwords, context rules) asks
:func:`is_placeholder` and, where the value should be random, :func:`entropy`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

__all__ = ["entropy", "is_placeholder", "is_plausible_password", "is_random_looking"]

# Words that mark a value as a stand-in, not a credential (compared lower-case).
_PLACEHOLDER_WORDS: Final = (
    "changeme",
    "change_me",
    "change-me",
    "example",
    "placeholder",
    "dummy",
    "redacted",
    "sample",
    "your",
    "fake",
    "notreal",
    "not-a-",
    "not_a_",
    "replace",
    "insert",
    "todo",
    "fixme",
    "xxxx",
    "****",
    "....",
    "test",
    "secret",
    "password",
    "passwd",
    "token",  # xoxb-Slack_BOT_TOKEN, my-api-token: a name standing in for a value
    "mock",
    "invalid",
    "foobar",
    "lorem",
    "<",
    "{{",
    "${",
    "$(",
    "%(",
    "%s",
    "123456",
    "qwerty",
)
# s3cr3t, p4ssw0rd: the docs words in leetspeak are docs words too.
_LEET: Final = str.maketrans("3041@$57", "eoaiasst")
_LITERALS: Final = frozenset(
    {"none", "null", "nil", "true", "false", "yes", "no", "undefined", "", "pass", "pw", "pwd"}
    | {"user", "username", "token", "key", "apikey", "api_key", "bot_token", "auth"}
)
# Values that are encrypted or vaulted in place: SOPS (ENC[AES256_GCM,data:...]),
# Ansible Vault ($ANSIBLE_VAULT;1.1;AES256), sealed-secrets/Kubernetes-encrypted (AgB...)
# are ciphertext a tool decrypts with a key kept elsewhere, not credentials.
_ENCRYPTED: Final = re.compile(r"^(?:ENC\[[A-Z0-9_]+,|\$ANSIBLE_VAULT;|vault:v\d+:)")
# A docs stand-in spelled in capitals: s.THISSTRINGISALLUPPERCASE, xoxb-SLACK_BOT_TOKEN.
_SHOUTED: Final = re.compile(r"^(?:[A-Za-z]{1,4}[._-])?[A-Z][A-Z_]{11,}$")
# secret://erp/api-key, env:NAME, vault:path, file:/run/secrets/x, $NAME, {name}, os.environ[...]
_REFERENCE: Final = re.compile(
    r"^(?:[a-z][a-z0-9+.-]*://\S*|(?:env|vault|file|secret|aws-sm|gcp-sm|ssm|op|pass|keyring):\S+"
    r"|\$[A-Za-z_{(]\S*|\{[A-Za-z_][\w.]*\}|%[A-Za-z_]\w*%|[./~][\w./~-]*)$"
)
_CODE_LOOKUP: Final = re.compile(r"environ|getenv|get_secret|settings\.|config\.|\(\)?$")
_ONE_CHAR: Final = re.compile(r"^(.)\1+$")
_CLASSES: Final = (
    re.compile(r"[a-z]"),
    re.compile(r"[A-Z]"),
    re.compile(r"\d"),
    re.compile(r"\W|_"),
)
# snake_case, kebab-case, dotted.names, camelCase: letters and separators, few capitals.
_IDENTIFIER: Final = re.compile(r"^[A-Za-z][A-Za-z_.:/-]*\d{0,2}$")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def is_placeholder(value: str) -> bool:
    """A stand-in: a reference, template, env lookup, docs or test word, or one char repeated."""
    lowered = value.strip().lower()
    if lowered in _LITERALS or _ONE_CHAR.match(lowered):
        return True
    if _ENCRYPTED.match(value.strip()) or _SHOUTED.match(value.strip()):
        return True
    if _REFERENCE.match(value.strip()) or _CODE_LOOKUP.search(lowered):
        return True
    plain = lowered.translate(_LEET)
    return any(word in lowered or word in plain for word in _PLACEHOLDER_WORDS)


def is_random_looking(value: str, *, min_length: int = 16, min_entropy: float = 3.3) -> bool:
    """Long enough, varied enough and mixed enough to be a generated key, not a word."""
    if len(value) < min_length or entropy(value) < min_entropy:
        return False
    if _IDENTIFIER.match(value) and sum(c.isupper() for c in value) <= max(1, len(value) // 5):
        return False
    # Letters and digits only: punctuation alone does not make a word random.
    classes = sum(1 for pattern in _CLASSES[:3] if pattern.search(value))
    return classes >= 2


def is_plausible_password(value: str) -> bool:
    """A value a person would set as a password: 8+ characters, not a single word.

    Weaker than :func:`is_random_looking` because human passwords are weak;
    used only where the field name already says "password".
    """
    if len(value) < 8 or " " in value.strip():
        return False
    classes = sum(1 for pattern in _CLASSES if pattern.search(value))
    return classes >= 3 or (classes >= 2 and entropy(value) >= 3.0)
