"""A clock tests can move by hand, for code that takes an injectable ``now`` (or monotonic clock).

See :mod:`interlock.clock` for the convention: wall-clock time (``now=``)
decides validity, a monotonic clock measures intervals. One ``ManualClock``
serves as both, so a test moves them together.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

__all__ = ["ManualClock"]

_MONOTONIC_START = timedelta(seconds=1000)  # an arbitrary origin, as the system's is


class ManualClock:
    """Returns ``now`` until a test sets or advances it (``clock.now += timedelta(...)``).

    :meth:`monotonic` and :meth:`monotonic_us` advance by every forward move
    of ``now`` and stand still when ``now`` is set back, as a real monotonic
    clock does when the date is changed.
    """

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (default 2026-01-01 UTC)."""
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._elapsed = _MONOTONIC_START

    @property
    def now(self) -> datetime:
        """The current wall-clock time of this clock."""
        return self._now

    @now.setter
    def now(self, value: datetime) -> None:
        if value > self._now:
            self._elapsed += value - self._now
        self._now = value

    def __call__(self) -> datetime:
        """The current time of this clock (a :data:`interlock.clock.Clock`)."""
        return self._now

    def advance(self, seconds: float | timedelta) -> None:
        """Move forward by ``seconds`` (or a timedelta)."""
        step = seconds if isinstance(seconds, timedelta) else timedelta(seconds=seconds)
        if step < timedelta(0):
            raise ValueError("advance moves forward; set now to go back")
        self.now = self._now + step

    def monotonic(self) -> float:
        """Seconds on this clock's monotonic scale (a :data:`interlock.clock.Monotonic`)."""
        return self._elapsed.total_seconds()

    def monotonic_us(self) -> int:
        """The same in integer microseconds (a :data:`interlock.clock.MonotonicMicros`)."""
        return self._elapsed // timedelta(microseconds=1)
