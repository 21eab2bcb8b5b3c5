"""Data-subject identifiers in one canonical form, so one person has one value.

The lineage index hashes identifiers (:mod:`interlock.privacy.lineage`), so two
spellings of one identifier would be two people: ``Alice@Example.COM`` sent by
the ERP and ``alice@example.com`` asked about by the DPO must meet. Every
identifier is therefore normalised the same way wherever it is read — in the
gateway's traffic and on the command line:

* ``email``: parsed by email-validator (RFC 5321/5322 syntax, no deliverability
  check: the gateway's hot path makes no DNS queries), the domain in its
  canonical Unicode form (``bob@xn--bcher-kva.de`` is ``bob@bücher.de``), then
  the whole address lower-cased. RFC 5321 §2.4 lets a mailbox's local part be
  case-sensitive, but nearly every provider treats it case-insensitively, and
  a person's ``Bob@`` and ``bob@`` being two subjects would hide data from a
  data-subject request — the worse error of the two;
* ``phone``: parsed by phonenumbers (libphonenumber), valid for its region,
  written in E.164 (``+4930123456``). A national number (``030 123456``) needs
  the country it is dialled in: the locator's ``region``, or a ``+CC`` prefix;
* any other kind (a customer id, an account number): the text with surrounding
  whitespace removed, 1 to 256 characters, no control characters. Ids are
  compared exactly: ``C-1`` and ``c-1`` are two customers.

Every kind is first put in Unicode normalisation form C (UAX #15): ``Müller``
with a precomposed ``ü`` and with ``u`` plus a combining diaeresis are the
same text to a reader, and two keyed hashes for one person would let a trace
or an erasure miss one of them.

Errors (:class:`IdentifierError`) never repeat the value: it is personal data
and may reach a log or a terminal.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from interlock.config.manifest import SUBJECT_KIND_PATTERN
from interlock.errors import InterlockError

__all__ = ["MAX_IDENTIFIER_LENGTH", "IdentifierError", "normalise"]

MAX_IDENTIFIER_LENGTH: Final = 256
"""The longest identifier accepted, in characters (in NFC, before the kind's own rules)."""

_KIND: Final = re.compile(SUBJECT_KIND_PATTERN)
_REGION: Final = re.compile(r"^[A-Z]{2}$")


class IdentifierError(InterlockError, ValueError):
    """An identifier that cannot be normalised; the message never contains the value."""

    code = "invalid_identifier"


def normalise(kind: str, value: str, *, region: str | None = None) -> str:
    """``value``, an identifier of ``kind``, in canonical form (see the module docstring).

    ``region`` (ISO 3166-1 alpha-2, e.g. ``DE``) is where national phone numbers
    are dialled; it applies to ``phone`` only. Raises :class:`IdentifierError`.
    """
    if _KIND.match(kind) is None:
        raise IdentifierError(
            "an identifier kind is lower-case letters, digits and '_' (email, phone, customer_id)"
        )
    text = unicodedata.normalize("NFC", value.strip())
    if not text:
        raise IdentifierError(f"the {kind} identifier is empty")
    if len(text) > MAX_IDENTIFIER_LENGTH:
        raise IdentifierError(
            f"the {kind} identifier is longer than {MAX_IDENTIFIER_LENGTH} characters"
        )
    if any(unicodedata.category(c) in {"Cc", "Cf", "Zl", "Zp"} for c in text):
        raise IdentifierError(f"the {kind} identifier contains control characters")
    if region is not None and kind != "phone":
        raise IdentifierError("a region applies to phone numbers only")
    if kind == "email":
        return _email(text)
    if kind == "phone":
        return _phone(text, region)
    return text


def _email(text: str) -> str:
    try:
        # No DNS on the hot path; the library's message may quote the address, so
        # it is not passed on.
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise IdentifierError("not a valid email address (local-part@domain, RFC 5322)") from None
    return checked.normalized.lower()


def _phone(text: str, region: str | None) -> str:
    if region is not None and _REGION.match(region) is None:
        raise IdentifierError("a phone region is an ISO 3166-1 alpha-2 code such as DE")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as error:
        if error.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            raise IdentifierError(
                "a national phone number needs its country: write it with +CC (+49 30 ...) "
                "or give the region it is dialled in (region: DE, --region DE)"
            ) from None
        raise IdentifierError("not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        where = f" in {region}" if region is not None and not text.startswith("+") else ""
        raise IdentifierError(f"not a valid phone number{where}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
