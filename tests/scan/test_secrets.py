"""Secret rules: every provider family is found; look-alikes, placeholders and references are not."""

from __future__ import annotations

import pytest

from interlock.credentials.checks import with_github_checksum
from interlock.credentials.keyformat import CLIENT_SECRET_PREFIX, new_key
from interlock.testing.scan_corpus import lookalike_secrets, planted_secrets
from tests.scan.helpers import findings, rand, rules_in

FORMATS = {
    "app.py": '{key} = "{value}"\n',
    "app.yaml": "service:\n  {key}: {value}\n",
    "app.json": '{{\n  "{key}": "{value}"\n}}\n',
    ".env": "{key}={value}\n",
    "app.ini": "[main]\n{key} = {value}\n",
    "app.toml": '[main]\n{key} = "{value}"\n',
}


@pytest.mark.parametrize("planted", planted_secrets(seed=21), ids=lambda p: p[0])
@pytest.mark.parametrize("path", list(FORMATS))
def test_each_secret_family_is_found_in_each_format(
    planted: tuple[str, str, str, str], path: str
) -> None:
    """A planted secret of each family is reported by its own rule in Python, YAML, JSON, .env, INI, TOML."""
    _, rule_id, key, value = planted
    if path == "app.yaml" and ":" in value:
        value = f'"{value}"'
    assert rule_id in rules_in(path, FORMATS[path].format(key=key, value=value))


@pytest.mark.parametrize("lookalike", lookalike_secrets(seed=21), ids=lambda p: p[0])
@pytest.mark.parametrize("path", list(FORMATS))
def test_lookalikes_are_not_reported(lookalike: tuple[str, str, str], path: str) -> None:
    """Wrong checksums, docs examples, placeholders, references and identifiers give no finding."""
    _, key, value = lookalike
    if path == "app.yaml" and ":" in value:
        value = f'"{value}"'
    assert findings(path, FORMATS[path].format(key=key, value=value)) == []


def test_interlock_key_is_recognised_only_with_a_valid_checksum() -> None:
    """A real ilk_ key is found anywhere in text; flipping one checksum character hides it."""
    key = new_key()[0]
    assert rules_in("notes.md", f"call it with {key} please") == {"interlock-api-key"}
    wrong = key[:-1] + ("b" if key[-1] != "b" else "c")
    assert rules_in("notes.md", f"call it with {wrong} please") == set()
    assert rules_in("a.py", f'API_KEY = "{wrong}"\n') == set()


def test_interlock_client_secret_is_told_apart_from_an_api_key() -> None:
    """ilcs_ secrets have a rule of their own; the checksum covers the prefix, too."""
    secret = new_key(CLIENT_SECRET_PREFIX)[0]
    assert rules_in("notes.md", f"client secret {secret}") == {"interlock-client-secret"}
    assert rules_in("notes.md", "ilk_" + secret.removeprefix("ilcs_")) == set()


def test_private_key_blocks_are_found_in_pem_and_json_string_form() -> None:
    """A PEM private key is found as a file and inside a JSON string with escaped newlines."""
    body = [
        rand(64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        for _ in range(6)
    ]
    begin, end = "-----BEGIN " + "PRIVATE KEY-----", "-----END " + "PRIVATE KEY-----"
    pem = "\n".join([begin, *body, end])
    assert rules_in("key.pem", pem) == {"private-key"}
    assert rules_in("key.json", '{"k": "' + pem.replace("\n", "\\n") + '"}') == {"private-key"}
    assert rules_in("doc.md", f"{begin}\n...\n{end}\n") == set()


def test_url_password_is_found_and_placeholders_are_not() -> None:
    """Passwords in connection URLs are reported; ${VAR}, {name} and user-only URLs are not."""
    password = rand(6) + "!" + rand(5)
    assert rules_in("cfg.yaml", f"dsn: postgresql://app:{password}@db:5432/x\n") == {"url-password"}
    assert rules_in("cfg.yaml", "dsn: postgresql://app:${PGPASSWORD}@db/x\n") == set()
    assert rules_in("a.py", 'DSN = "postgresql://app:{password}@db/x"\n') == set()
    assert rules_in("cfg.yaml", "dsn: postgresql://app@db/x\n") == set()


def test_python_secrets_are_found_in_their_common_forms() -> None:
    """Keyword arguments, dict keys, attributes, subscripts and defaults; env lookups are fine."""
    value = rand(32)
    forms = [
        f'connect(password="{value}!")',
        f'CONFIG = {{"api_key": "{value}"}}',
        f'self.client_secret = "{value}"',
        f'settings["auth_token"] = "{value}"',
        f'def login(user, password="{value}!"): ...',
    ]
    for form in forms:
        assert rules_in("a.py", form + "\n") == {"generic-secret"}, form
    assert rules_in("a.py", 'import os\npassword = os.environ["DB_PASSWORD"]\n') == set()
    assert rules_in("a.py", f'"""password = "{value}" in a docstring."""\n') == set()
    assert rules_in("a.py", f'# password = "{value}"\n') == set()


def test_field_names_that_only_mention_a_secret_word_are_not_secret_fields() -> None:
    """token_url, password_file, secret_ref and max_tokens hold no secret."""
    value = rand(32)
    for key in ("token_url", "password_file", "secret_ref", "max_tokens", "tokenizer"):
        assert rules_in("cfg.yaml", f"{key}: {value}\n") == set(), key


def test_masked_value_never_shows_the_secret() -> None:
    """The finding shows at most four characters and the length; the message likewise."""
    value = with_github_checksum("gh" + "p_", rand(30))
    (finding,) = findings("a.yaml", f"token: {value}\n")
    assert value not in finding.shown
    assert value[4:] not in finding.message
    assert finding.shown.startswith(value[:4])
    assert "(40 chars)" in finding.shown
    assert value not in repr(finding)


def test_bare_config_value_keeps_a_hash_sign_and_stops_at_a_comment() -> None:
    """'#' inside an unquoted password is part of it; '  # comment' after it is not."""
    password = "Blue" + rand(3, "0123456789") + "#" + rand(4)
    (finding,) = findings("app.ini", f"[db]\ndb_password = {password}  # rotated quarterly\n")
    assert finding.fingerprint == findings("a.py", f'db_password = "{password}"\n')[0].fingerprint


def test_a_token_with_a_wrong_checksum_is_no_generic_secret_either() -> None:
    """A value in a registered shape is judged by the registry alone: a look-alike stays quiet."""
    value = with_github_checksum("gh" + "p_", rand(30))
    wrong = value[:-1] + ("b" if value[-1] != "b" else "c")
    assert rules_in("a.yaml", f"token: {value}\n") == {"github-token"}
    assert rules_in("a.yaml", f"token: {wrong}\n") == set()
