"""The registry of credential formats: one entry per format, one sample each, no second list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from interlock.credentials import FORMATS, find_credentials, mask_credentials, may_hold_credential
from interlock.credentials.names import is_secret_name, secret_field
from interlock.scan.rules import RULES
from tests.credentials.samples import SAMPLES

SRC = Path(__file__).resolve().parents[2] / "src" / "interlock"
REGISTRY = SRC / "credentials"


def _prefix(format_id: str, secret: str) -> str | None:
    fmt = next(f for f in FORMATS if f.id == format_id)
    return next((h for h in fmt.hints if secret.startswith(h)), None)


# Formats whose tokens start with a fixed prefix (ghp_, xoxb-, AKIA, eyJ ...): a regex for
# one of these prefixes anywhere but the registry would be a second list.
PREFIXES = {
    fid: prefix
    for fid in SAMPLES
    if (prefix := _prefix(fid, SAMPLES[fid]()[1])) is not None and len(prefix) >= 3
}
_REGEX_SYNTAX = re.compile(r"[\[\\{]|\(\?")  # a class, an escape, a quantifier, a group


def test_every_format_has_a_sample_and_a_scan_rule() -> None:
    """Adding a provider is one registry entry plus its sample; the scanner gets its rule."""
    ids = [f.id for f in FORMATS]
    assert len(ids) == len(set(ids))
    assert set(SAMPLES) == set(ids)
    for fmt in FORMATS:
        assert RULES[fmt.id].kind == "secret"
        assert 0.0 < RULES[fmt.id].severity <= 10.0


@pytest.mark.parametrize("format_id", sorted(SAMPLES))
def test_each_sample_is_found_by_its_own_format(format_id: str) -> None:
    """A generated credential of each format passes its check and is named by its id."""
    text, secret = SAMPLES[format_id]()
    found = [f for f in find_credentials(f"config: {text} end") if f.format.id == format_id]
    assert found, f"{format_id} not found in its sample"
    assert any(secret in f.value for f in found)


@pytest.mark.parametrize("format_id", sorted(SAMPLES))
def test_each_sample_is_masked(format_id: str) -> None:
    """Masking removes the credential of every format from a text."""
    text, secret = SAMPLES[format_id]()
    masked = mask_credentials(f"got {text} from peer", "[X]")
    assert secret not in masked
    assert "[X]" in masked


@pytest.mark.parametrize(
    "text",
    [
        "xoxb-Slack_BOT_TOKEN",
        "token: s.THISSTRINGISALLUPPERCASE",
        "curl -u user:pass https://example.org",
        "curl -u admin:$PASSWORD https://example.org",
        "huggingface-cli login --token $HF_TOKEN",
        '<add key="ClearTextPassword" value="%NUGET_PASSWORD%" />',
        "<password>${env.MAVEN_PASSWORD}</password>",
        "Authorization: Bearer ${TOKEN}",
        "Basic authentication failed",
        "password: ENC[AES256_GCM,data:q2vJ7w==,iv:Zm9v,tag:YmFy,type:str]",
        "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    ],
)
def test_placeholders_references_and_ciphertext_are_not_credentials(text: str) -> None:
    """Docs stand-ins, variables and SOPS ciphertext pass no format's check."""
    assert list(find_credentials(text)) == []


def test_published_documentation_examples_are_not_findings() -> None:
    """The registry's examples are kept as digests and never reported (but still masked)."""
    # The Maps SDK samples' "this is not a valid key", assembled so no file holds it whole.
    example = "AI" + "zaSyBdVl-cTICSwYKrZ95SuvNw7dbMuDt1KG0"
    assert list(find_credentials(f"apiKey: '{example}'")) == []
    assert example not in mask_credentials(example, "[X]")


def _constants(tree: ast.AST) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def _twins() -> list[tuple[str, str, str]]:
    """(format id, a sample, the sample with its prefix replaced by a neutral one)."""
    twins = []
    for format_id, prefix in PREFIXES.items():
        _, secret = SAMPLES[format_id]()
        neutral = re.sub(r"[A-Za-z0-9]", "q", prefix)  # punctuation kept: ghp_ -> qqq_
        twins.append((format_id, secret, neutral + secret[len(prefix) :]))
    return twins


def _recognises(pattern: re.Pattern[str], sample: str, twin: str, prefix_len: int) -> bool:
    """The pattern matches the token from its prefix on (8+ characters past it), not the twin."""
    covers = any(m.start() == 0 and m.end() >= prefix_len + 8 for m in pattern.finditer(sample))
    return covers and not any(m.start() == 0 for m in pattern.finditer(twin))


def test_no_token_prefix_regex_outside_the_registry() -> None:
    """No module but the registry holds a pattern that recognises a registered token prefix.

    Two nets: a string constant that names a prefix in regex syntax, and a string
    constant that, compiled, matches a sample of a format but not the same sample
    with the prefix swapped out.
    """
    twins = _twins()
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if REGISTRY in path.parents:
            continue
        for lineno, text in _constants(ast.parse(path.read_text(), str(path))):
            where = f"{path.relative_to(SRC.parent)}:{lineno}"
            if _REGEX_SYNTAX.search(text) and any(p in text for p in PREFIXES.values()):
                offenders.append(f"{where}: {text[:60]!r}")
                continue
            if len(text) < 4 or not _REGEX_SYNTAX.search(text):
                continue
            try:
                pattern = re.compile(text)
            except (re.error, OverflowError, RecursionError):
                continue
            for format_id, sample, twin in twins:
                if _recognises(pattern, sample, twin, len(PREFIXES[format_id])):
                    offenders.append(f"{where}: recognises {format_id}: {text[:60]!r}")
    assert offenders == []


# Names the registry reads as secret fields: a regex outside it that recognises one of
# these (and not the same name with its last word blanked) is a second list.
SECRET_NAMES = (
    "db_password",
    "passwd",
    "passphrase",
    "client_secret",
    "api_key",
    "x-api-key",
    "access_token",
    "signing_key",
    "master_key",
    "encryption_key",
    "private_key",
    "credentials",
)
# A secret word next to regex syntax: (?:password|pwd)$, api[_-]?key, (secret|token) ...
_WORD = r"(?:pass(?:word|wd|phrase)?|pwd|secret|token|api.{0,6}key|credentials?)"
_SECRET_WORD_IN_REGEX = re.compile(rf"[|(]\s*\w*{_WORD}|{_WORD}\w*\s*(?:[|)$]|\\b)")
_IDENTIFIER = re.compile(r"[A-Za-z_][\w.-]*")
# Registry and rule ids (interlock-api-key, generic-password) name formats, not fields.
_IDS = {f.id for f in FORMATS} | set(RULES)


def _blanked(name: str) -> str:
    """``db_password`` -> ``db_pqqqqqqq``: the same shape, no secret word."""

    word = re.split(r"[_-]", name)[-1]
    return name[: -len(word)] + word[0] + "q" * (len(word) - 1)


def _secret_name_lists(tree: ast.AST) -> list[tuple[int, list[str]]]:
    """Literal sets, lists and tuples of names mostly (two or more) read as secret."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Set | ast.List | ast.Tuple):
            continue
        names = [
            e.value
            for e in node.elts
            if isinstance(e, ast.Constant)
            and isinstance(e.value, str)
            and _IDENTIFIER.fullmatch(e.value)
            and e.value not in _IDS
        ]
        secret = [n for n in names if is_secret_name(n)]
        if len(secret) >= 2 and 2 * len(secret) > len(names):
            found.append((node.lineno, secret))
    return found


def test_no_secret_field_name_list_or_regex_outside_the_registry() -> None:
    """Which field names hold a secret is decided in credentials/names.py only.

    Three nets: a literal collection of names mostly read as secret, a string
    constant naming a secret word inside regex syntax, and a string constant
    that, compiled, recognises a secret field name but not the name with its
    last word blanked. interlock/testing plants secrets under such names and is
    spared the first net only.
    """
    assert all(secret_field(n) for n in SECRET_NAMES)
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if REGISTRY in path.parents:
            continue
        tree = ast.parse(path.read_text(), str(path))
        where = f"{path.relative_to(SRC.parent)}"
        if SRC / "testing" not in path.parents:
            for lineno, names in _secret_name_lists(tree):
                offenders.append(f"{where}:{lineno}: a list of secret field names {names[:4]}")
        for lineno, text in _constants(tree):
            if len(text) < 4 or not _REGEX_SYNTAX.search(text):
                continue
            try:
                pattern = re.compile(text)
            except (re.error, OverflowError, RecursionError):
                continue
            if _SECRET_WORD_IN_REGEX.search(text.lower().replace("secret:", "")):
                offenders.append(f"{where}:{lineno}: {text[:60]!r}")
                continue
            for name in SECRET_NAMES:
                word = re.split(r"[_-]", name)[-1]
                covers = any(m.end() - m.start() >= len(word) for m in pattern.finditer(name))
                if covers and not pattern.search(_blanked(name)):
                    offenders.append(f"{where}:{lineno}: recognises {name}: {text[:60]!r}")
                    break
    assert offenders == []


def test_every_hint_is_seen_by_the_prefilter() -> None:
    """The factored hint search finds each format's every hint (no format is skipped)."""
    for fmt in FORMATS:
        for hint in fmt.hints:
            assert may_hold_credential(f"before {hint} after"), hint
    assert not may_hold_credential("upstream answered 503 for GET /orders/1001")
