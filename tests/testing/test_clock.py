"""The manual clock: wall-clock time set by hand, a monotonic scale that only moves forward."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from interlock.clock import monotonic, monotonic_us, utc_now
from interlock.testing.clock import ManualClock


def test_the_system_clocks_are_aware_utc_and_monotonic() -> None:
    """``utc_now`` is an aware UTC datetime; the monotonic clocks never go back."""
    assert utc_now().tzinfo is UTC
    first, first_us = monotonic(), monotonic_us()
    assert monotonic() >= first
    assert monotonic_us() >= first_us


def test_the_manual_clock_returns_the_time_it_was_given() -> None:
    """Called, it answers ``now``; setting or advancing ``now`` changes the answer."""
    clock = ManualClock(datetime(2030, 5, 1, tzinfo=UTC))
    assert clock() == datetime(2030, 5, 1, tzinfo=UTC)
    clock.now += timedelta(minutes=3)
    clock.advance(2.5)
    assert clock() == datetime(2030, 5, 1, 0, 3, 2, 500_000, tzinfo=UTC)


def test_its_monotonic_scale_follows_forward_moves_only() -> None:
    """Forward moves advance the monotonic scale; setting the date back leaves it standing."""
    clock = ManualClock()
    start, start_us = clock.monotonic(), clock.monotonic_us()
    clock.advance(timedelta(seconds=6))
    assert clock.monotonic() == start + 6
    assert clock.monotonic_us() == start_us + 6_000_000
    clock.now -= timedelta(hours=1)
    assert clock.monotonic() == start + 6
    clock.now += timedelta(seconds=1)
    assert clock.monotonic() == start + 7


def test_advance_only_moves_forward() -> None:
    """Going back is done by setting ``now``, never by a negative advance."""
    with pytest.raises(ValueError, match="forward"):
        ManualClock().advance(-1)
