"""Identifiers in canonical form: one person, one value, whoever wrote it how."""

from __future__ import annotations

import unicodedata

import pytest

from interlock.errors import InterlockError
from interlock.gdpr.identifiers import IdentifierError, normalise


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("alice@example.com", "alice@example.com"),
        ("Alice@Example.COM", "alice@example.com"),
        ("  alice@example.com\t", "alice@example.com"),
        # IDNA: the A-label and the U-label of one domain are one address.
        ("bob@xn--bcher-kva.de", "bob@bücher.de"),
        ("BOB@BÜCHER.DE", "bob@bücher.de"),
        ("jürgen.müller@exämple.de", "jürgen.müller@exämple.de"),
        ("first.last+tag@sub.example.org", "first.last+tag@sub.example.org"),
    ],
)
def test_emails_are_lower_cased_with_their_domain_in_unicode(written: str, canonical: str) -> None:
    """Spellings of one mailbox meet in one value."""
    assert normalise("email", written) == canonical


@pytest.mark.parametrize(
    "written",
    [
        "no-at-sign",
        "a@@example.com",
        "a@localhost",
        "a b@example.com",
        "a@example..com",
        "@example.com",
        "alice@",
        "secret-person@exa mple.com",
    ],
)
def test_invalid_emails_are_refused_without_echoing_them(written: str) -> None:
    """The message says what is wrong, never the address."""
    with pytest.raises(IdentifierError) as raised:
        normalise("email", written)
    assert "not a valid email address" in raised.value.message
    for piece in ("no-at-sign", "example", "localhost", "alice", "secret-person"):
        assert piece not in str(raised.value)


@pytest.mark.parametrize(
    ("written", "region", "canonical"),
    [
        ("+49 30 1234567", None, "+49301234567"),
        ("030 1234567", "DE", "+49301234567"),
        ("+49 (0)30 1234567", None, "+49301234567"),
        ("tel:+49-30-1234567", None, "+49301234567"),
        ("(202) 555-0123", "US", "+12025550123"),
        ("+1 202-555-0123", None, "+12025550123"),
        ("202.555.0123", "US", "+12025550123"),
        ("020 7946 0958", "GB", "+442079460958"),
        ("+44 20 7946 0958", "DE", "+442079460958"),  # the +CC wins over the region
    ],
)
def test_phones_in_several_formats_become_e164(
    written: str, region: str | None, canonical: str
) -> None:
    """National and international writings of one number give one E.164 value."""
    assert normalise("phone", written, region=region) == canonical


def test_a_national_phone_without_region_asks_for_one() -> None:
    """030 ... could be any country's: the message says how to say which."""
    with pytest.raises(IdentifierError) as raised:
        normalise("phone", "030 1234567")
    assert "+CC" in raised.value.message
    assert "region" in raised.value.message
    assert "1234567" not in str(raised.value)


@pytest.mark.parametrize(
    ("written", "region"),
    [("12", "DE"), ("+49 1", None), ("not a number", "DE"), ("555-0123", "US")],
)
def test_invalid_phones_are_refused(written: str, region: str | None) -> None:
    """Too short, not digits, or not a number of that country."""
    with pytest.raises(IdentifierError, match="phone number"):
        normalise("phone", written, region=region)


def test_a_bad_region_is_refused() -> None:
    """Regions are ISO 3166-1 alpha-2 codes."""
    with pytest.raises(IdentifierError, match="alpha-2"):
        normalise("phone", "030 1234567", region="Germany")
    with pytest.raises(IdentifierError, match="phone numbers only"):
        normalise("email", "a@example.com", region="DE")


def test_other_kinds_are_stripped_text_compared_exactly() -> None:
    """Ids keep their case: C-1 and c-1 are two customers."""
    assert normalise("customer_id", "  C-1001 ") == "C-1001"
    assert normalise("customer_id", "c-1001") == "c-1001"
    assert normalise("account", "x" * 256) == "x" * 256


@pytest.mark.parametrize("kind", ["customer_id", "email", "phone"])
def test_canonically_equivalent_spellings_are_one_identifier(kind: str) -> None:
    """NFC for every kind: a precomposed and a decomposed ü are one person, not two."""
    written = {
        "customer_id": "Müller-7",
        "email": "jürgen@bücher.de",
        "phone": "+49 30 1234567",
    }[kind]
    composed = unicodedata.normalize("NFC", written)
    decomposed = unicodedata.normalize("NFD", written)
    assert normalise(kind, decomposed) == normalise(kind, composed)
    assert unicodedata.is_normalized("NFC", normalise(kind, decomposed))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 257, "longer than 256"),
        ("C-1\x00", "control"),
        ("C-\x1b[31m1", "control"),
        ("C-1\u200b2", "control"),
        ("C-1\nC-2", "control"),
    ],
)
def test_other_kinds_refuse_empty_long_and_control_characters(value: str, fragment: str) -> None:
    """1..256 characters, nothing that could forge a log line or hide a difference."""
    with pytest.raises(IdentifierError, match=fragment):
        normalise("customer_id", value)


@pytest.mark.parametrize("kind", ["", "Email", "e-mail", "x" * 33, "1st"])
def test_unknown_kind_shapes_are_refused(kind: str) -> None:
    """A kind is a manifest name: lower-case letters, digits and '_'."""
    with pytest.raises(IdentifierError, match="kind"):
        normalise(kind, "C-1")


def test_identifier_errors_are_interlock_and_value_errors() -> None:
    """The CLI renders it with its code; callers may catch ValueError."""
    with pytest.raises(IdentifierError) as raised:
        normalise("email", "nope")
    assert isinstance(raised.value, InterlockError)
    assert isinstance(raised.value, ValueError)
    assert raised.value.code == "invalid_identifier"
