"""Time, injected: the one convention for reading the clock in Interlock.

Two clocks, two jobs:

* **Wall-clock time decides validity** — the expiry of a token, key, lease or
  seen nonce, when a rotation falls due, a certificate's validity, a
  revocation's lifetime. Code that makes such a decision takes a
  :data:`Clock` as ``now=`` (a callable returning an aware UTC datetime,
  default :func:`utc_now`) and reads it once per decision. Tests pass
  :class:`interlock.testing.clock.ManualClock` and move it by hand; nothing
  that decides validity reads the system clock behind the caller's back.
* **Monotonic time measures intervals** — timeouts, the age of a cache, how
  often a key set may be refetched, a rate-limit bucket's refill (GCRA). It
  does not jump when NTP or an operator sets the date, so an interval is
  never negative or suddenly huge; it is no time of day and is never stored.
  Where a test must move it, the class takes a :data:`Monotonic` (seconds) or
  :data:`MonotonicMicros` (integer microseconds); ``ManualClock`` offers both,
  advancing with every forward move of its wall-clock time.

A foundation module (standard library only), so every layer may use it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeAlias

__all__ = ["Clock", "Monotonic", "MonotonicMicros", "monotonic", "monotonic_us", "utc_now"]

Clock: TypeAlias = Callable[[], datetime]
"""Wall-clock time as an aware UTC datetime: what ``now=`` parameters take."""

Monotonic: TypeAlias = Callable[[], float]
"""Seconds on a clock that never goes back; only differences mean anything."""

MonotonicMicros: TypeAlias = Callable[[], int]
"""The same in integer microseconds (the rate limiter's unit)."""


def utc_now() -> datetime:
    """The system's wall clock, aware UTC: the default of every ``now=``."""
    return datetime.now(UTC)


def monotonic() -> float:
    """The system's monotonic clock, in seconds."""
    return time.monotonic()


def monotonic_us() -> int:
    """The system's monotonic clock, in integer microseconds."""
    return time.monotonic_ns() // 1000
