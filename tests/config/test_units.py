"""Durations and rates parse into typed values; bad input gets a clear message."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.config.units import Rate, format_duration, parse_duration, parse_rate


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P90D", timedelta(days=90)),
        ("PT10M", timedelta(minutes=10)),
        ("P1Y", timedelta(days=365)),
        ("P1M", timedelta(days=30)),
        ("p2w", timedelta(weeks=2)),
        ("90d", timedelta(days=90)),
        ("24h", timedelta(hours=24)),
        ("10m", timedelta(minutes=10)),
        ("30s", timedelta(seconds=30)),
        ("2w", timedelta(weeks=2)),
        (" 7 d ", timedelta(days=7)),
    ],
)
def test_durations_in_iso_and_short_form(text: str, expected: timedelta) -> None:
    """ISO 8601 and the short forms give the same typed timedelta."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (90, "not a bare number"),
        (1.5, "not a bare number"),
        ("90", "not a duration"),
        ("90 days", "not a duration"),
        ("P", "not an ISO 8601 duration"),
        ("PXD", "not an ISO 8601 duration"),
        ("0d", "must be positive"),
        ("PT0S", "must be positive"),
    ],
)
def test_bad_durations_are_refused(value: object, message: str) -> None:
    """A bare number would silently mean seconds, so it is refused like any malformed text."""
    with pytest.raises(ValueError, match=message):
        parse_duration(value)


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [
        ("1000/min", 1000, timedelta(minutes=1)),
        ("5/s", 5, timedelta(seconds=1)),
        ("10/second", 10, timedelta(seconds=1)),
        ("100/hour", 100, timedelta(hours=1)),
        ("50000/day", 50000, timedelta(days=1)),
        ("10/5min", 10, timedelta(minutes=5)),
        ("7 / 2 h", 7, timedelta(hours=2)),
        ("3/MIN", 3, timedelta(minutes=1)),
    ],
)
def test_rates_parse_into_limit_and_period(text: str, limit: int, period: timedelta) -> None:
    """Rates become Rate(limit, period)."""
    assert parse_rate(text) == Rate(limit, period)


@pytest.mark.parametrize(
    "text", ["1000", "/min", "0/min", "10/fortnight", "1.5/s", "10/0min", "x/s"]
)
def test_bad_rates_are_refused(text: str) -> None:
    """Anything but N/unit with N >= 1 is refused."""
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


def test_rate_reports_its_sustained_per_second_value() -> None:
    """per_second is what a token bucket refills at."""
    assert parse_rate("120/min").per_second == 2.0


@given(
    limit=st.integers(min_value=1, max_value=10**9),
    count=st.integers(min_value=1, max_value=1000),
    unit=st.sampled_from(["s", "min", "hour", "day"]),
)
def test_rate_text_round_trips(limit: int, count: int, unit: str) -> None:
    """str(rate) is canonical and parses back to the same rate."""
    rate = parse_rate(f"{limit}/{count}{unit}")
    assert parse_rate(str(rate)) == rate


@pytest.mark.parametrize("text", ["99999999999999999999d", "1000000000w", "\u0661\u0660d"])
def test_durations_out_of_range_or_with_foreign_digits_are_refused(text: str) -> None:
    """Overflow is a ValueError with a message, not an OverflowError; digits are ASCII."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize("text", ["1/99999999999999day", "\u0661/s"])
def test_rates_out_of_range_or_with_foreign_digits_are_refused(text: str) -> None:
    """A period too long for a timedelta is refused like any malformed rate."""
    with pytest.raises(ValueError, match="rate"):
        parse_rate(text)


@given(st.text(max_size=40))
def test_parsers_fail_only_with_value_error(text: str) -> None:
    """Any text parses or raises ValueError (which pydantic turns into a located error)."""
    for parse in (parse_duration, parse_rate):
        with contextlib.suppress(ValueError):
            parse(text)


def test_rate_refuses_a_zero_limit_and_a_fractional_period() -> None:
    """Rate values are checked when built directly, too."""
    with pytest.raises(ValueError, match="at least 1"):
        Rate(0, timedelta(seconds=1))
    with pytest.raises(ValueError, match="whole number of seconds"):
        Rate(1, timedelta(milliseconds=1500))


@given(st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=100_000)))
def test_duration_text_round_trips(value: timedelta) -> None:
    """format_duration gives ISO 8601 text that parses back to the same duration."""
    assert parse_duration(format_duration(value)) == value
