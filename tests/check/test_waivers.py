"""Waivers: valid ones waive a failure, expired ones do not, malformed files are refused."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from interlock.check.results import Waiver
from interlock.check.run import CheckInputError, blocking, run_check
from interlock.check.waivers import WaiverFileError, a_year_after, load_waivers
from tests.check.conftest import Write, by_item

NO_LIMIT = (
    "scope: orders.write\n        rate_limit: {per_client: 10/min}\n",
    "scope: orders.write\n",
)
TODAY = date(2027, 1, 1)
WAIVER = Waiver(
    "rate_limiting", "sync", "the CRM throttles itself", "ops@example.de", date(2027, 1, 31)
)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "waivers.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_valid_waiver_waives_the_failure_and_keeps_its_status(write_manifest: Write) -> None:
    """The finding stays 'fail', carries the waiver and no longer blocks."""
    card = run_check(write_manifest(NO_LIMIT), waivers=[WAIVER], today=date(2027, 1, 31))
    finding = by_item(card)["rate_limiting"]
    assert finding.status == "fail"
    assert finding.waiver == WAIVER
    assert not finding.failed
    assert not blocking(card, "low")


def test_an_expired_waiver_fails_and_says_so(write_manifest: Write) -> None:
    """The day after its expiry the failure counts again."""
    card = run_check(write_manifest(NO_LIMIT), waivers=[WAIVER], today=date(2027, 2, 1))
    finding = by_item(card)["rate_limiting"]
    assert finding.failed
    assert "waiver by ops@example.de expired on 2027-01-31" in finding.reason
    assert blocking(card, "medium") == [finding]
    assert not blocking(card, "high")  # rate limiting is a medium item


def test_a_waiver_of_an_unknown_integration_is_refused(write_manifest: Write) -> None:
    """A typo in the baseline would otherwise waive nothing, silently."""
    stray = Waiver("rate_limiting", "synk", "r", "o", date(2027, 1, 1))
    with pytest.raises(CheckInputError, match="unknown integration 'synk'"):
        run_check(write_manifest(), waivers=[stray])


def test_load_waivers_reads_every_field(tmp_path: Path) -> None:
    """Dates are read as text by the safe reader and parsed strictly."""
    path = _write(
        tmp_path,
        "waivers:\n  - item: rate_limiting\n    integration: sync\n"
        "    reason: the CRM throttles itself\n    owner: ops@example.de\n    expires: 2027-01-31\n",
    )
    assert load_waivers(path, today=TODAY) == [WAIVER]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("waivers:\n  - item: rate_limiting\n    integration: sync\n    reason: r\n"
         "    owner: o\n    expires: 31.01.2027\n", ":6:5: waivers[0].expires: expires is a date"),
        ("waivers:\n  - item: speed\n    integration: sync\n    reason: r\n"
         "    owner: o\n    expires: 2027-01-31\n", ":2:5: waivers[0].item: unknown item 'speed'"),
        ("waivers:\n  - item: rate_limiting\n    integration: sync\n    reason: r\n"
         "    expires: 2027-01-31\n", ":2:5: waivers[0]: owner is required"),
        ("waivers:\n  - item: rate_limiting\n    integration: sync\n    reason: r\n"
         "    owner: o\n    expires: 2027-01-31\n    approved: yes\n",
         ":7:5: waivers[0].approved: unknown field"),
        ("- item: rate_limiting\n", ":1:1: waivers: a waiver file is a mapping"),
        ("waivers: [\n", "invalid YAML"),
    ],
)  # fmt: skip
def test_a_malformed_waiver_file_is_one_located_line(
    tmp_path: Path, text: str, expected: str
) -> None:
    """FILE:LINE:COL: field: problem, and nothing of the file is used."""
    path = _write(tmp_path, text)
    with pytest.raises(WaiverFileError) as raised:
        load_waivers(path, today=TODAY)
    message = raised.value.message
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize("expires", ["9999-12-31", "2028-01-02"])
def test_a_waiver_expiring_more_than_a_year_ahead_is_refused(tmp_path: Path, expires: str) -> None:
    """A waiver is reviewed at least yearly: a far expiry would silence a failure for ever."""
    path = _write(
        tmp_path,
        "waivers:\n  - item: rate_limiting\n    integration: sync\n"
        f"    reason: r\n    owner: o\n    expires: {expires}\n",
    )
    with pytest.raises(WaiverFileError) as raised:
        load_waivers(path, today=TODAY)
    assert ":6:5: waivers[0].expires: expires is at most a year ahead (2028-01-01)" in (
        raised.value.message
    )


def test_a_waiver_expiring_a_year_ahead_is_accepted(tmp_path: Path) -> None:
    """The cap is inclusive: today plus one year."""
    path = _write(
        tmp_path,
        "waivers:\n  - item: rate_limiting\n    integration: sync\n"
        "    reason: r\n    owner: o\n    expires: 2028-01-01\n",
    )
    assert load_waivers(path, today=TODAY)[0].expires == date(2028, 1, 1)
    assert a_year_after(date(2028, 2, 29)) == date(2029, 3, 1)
