"""The key format: recognisable prefix, id, 256-bit secret, CRC32 checksum."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from interlock.credentials.keyformat import PREFIX, new_key, parse_key
from interlock.logs import redact_text


def test_new_keys_parse_back_and_differ() -> None:
    """A new key round-trips and never repeats."""
    tokens = set()
    for _ in range(50):
        token, parts = new_key()
        assert re.fullmatch(r"ilk_[0-9A-Za-z]{12}_[0-9A-Za-z]{49}", token)
        assert parse_key(token) == parts
        tokens.add(token)
    assert len(tokens) == 50


def test_any_single_character_change_fails_the_checksum() -> None:
    """A typo anywhere after the prefix is caught before any database look-up."""
    token, _ = new_key()
    for index in range(len(PREFIX), len(token)):
        if token[index] == "_":
            continue
        replacement = "a" if token[index] != "a" else "b"
        assert parse_key(token[:index] + replacement + token[index + 1 :]) is None


def test_keys_are_masked_by_log_redaction() -> None:
    """The prefix makes every key recognisable to the redaction step."""
    token, _ = new_key()
    assert token not in redact_text(f"got {token} from caller")


def test_repr_of_parts_hides_the_secret() -> None:
    """Parsed parts print the id only."""
    _, parts = new_key()
    assert parts.secret not in repr(parts)


@given(st.text(max_size=80))
def test_arbitrary_text_is_not_a_key(text: str) -> None:
    """Random strings essentially never pass prefix, shape and checksum."""
    if not text.startswith(PREFIX):
        assert parse_key(text) is None
