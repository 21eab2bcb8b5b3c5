"""MDN fields (RFC 8098, RFC 4130 §7.4): what is asked for, what an MDN says, what confirms."""

from __future__ import annotations

import pytest

from interlock.files.as2_mdn import Mdn, build_report, read_report, requested
from interlock.files.as2_mime import mic

MIC = mic(b"Content-Type: text/plain\r\n\r\nhello", "sha256")


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (None, (False, "sha256")),
        ("signed-receipt-protocol=optional, pkcs7-signature; "
         "signed-receipt-micalg=optional, sha-512, sha-256", (True, "sha512")),
        ("signed-receipt-protocol=required, pkcs7-signature; "
         "signed-receipt-micalg=required, sha1, md5", (True, "sha256")),
    ],
)  # fmt: skip
def test_what_the_sender_asks_for(options: str | None, expected: tuple[bool, str]) -> None:
    """A signed receipt when pkcs7-signature is named; never a weak MIC algorithm."""
    assert requested(options) == expected


@pytest.mark.parametrize(
    ("disposition", "error"),
    [
        ("automatic-action/MDN-sent-automatically; processed", None),
        ("automatic-action/MDN-sent-automatically; processed/error: decryption-failed",
         "decryption-failed"),
        ("automatic-action/MDN-sent-automatically; processed/warning: duplicate-document",
         "duplicate-document"),
        ("automatic-action/MDN-sent-automatically; failed/Failure: \x1bunsupported",
         "?unsupported"),
    ],
)  # fmt: skip
def test_only_processed_confirms(disposition: str, error: str | None) -> None:
    """Errors, warnings and failures do not confirm a send; the partner's words are tamed."""
    mdn = Mdn("<1@x>", MIC, disposition)
    assert mdn.error == error
    assert mdn.confirms("<1@x>", MIC) is (error is None)


def test_a_report_round_trips_and_is_matched_exactly() -> None:
    """What build_report writes, read_report reads; another id or MIC does not confirm."""
    report = build_report(original_message_id="<1@x>", our_id="EXAMPLE", mic=MIC, error=None)
    mdn = read_report(report)
    assert mdn == Mdn("<1@x>", MIC, "automatic-action/MDN-sent-automatically; processed")
    assert mdn.confirms("<1@x>", MIC.replace("sha-256", "SHA-256"))
    assert not mdn.confirms("<2@x>", MIC)
    assert not mdn.confirms("<1@x>", mic(b"other", "sha256"))


def test_an_error_report_has_no_mic_when_none_was_computed() -> None:
    """A message that could not be opened is answered without Received-Content-MIC."""
    report = build_report(
        original_message_id="<1@x>", our_id="EXAMPLE", mic=None, error="decryption-failed"
    )
    mdn = read_report(report)
    assert mdn.mic is None
    assert mdn.error == "decryption-failed"
    assert not mdn.confirms("<1@x>", MIC)


def test_something_else_is_not_an_mdn() -> None:
    """A plain text part is refused as an MDN."""
    with pytest.raises(ValueError, match="multipart/report"):
        read_report(b"Content-Type: text/plain\r\n\r\nprocessed\r\n")
