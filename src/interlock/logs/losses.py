"""Counting what a background writer could not keep, logged without flooding the log.

A writer that drops work under overload (a full queue, a closed writer) must
say so, but one error line per dropped item would turn an overload into a
flood of the process's log as well. :class:`LossCounter` counts every item
and logs at most one line per interval, with how many were dropped since the
last line and why.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from interlock.logs.configure import get_logger

__all__ = ["LossCounter"]

#: At most one log line per this many seconds (with the count since the last one).
LOG_SECONDS: Final = 10.0


class LossCounter:
    """A thread-safe count of dropped items; one error line per interval at most."""

    def __init__(self, logger: str, event: str, unit: str, *, every: float = LOG_SECONDS) -> None:
        """Log ``event`` on ``logger`` with the count as the field ``unit``."""
        self._log = get_logger(logger)
        self._event = event
        self._unit = unit
        self._every = every
        self._lock = threading.Lock()
        self._total = 0
        self._unreported = 0  # counted since the last line
        self._reported_at = -every

    @property
    def total(self) -> int:
        """Every item counted since the start."""
        return self._total

    def add(self, count: int, reason: str) -> None:
        """Count ``count`` dropped items; log them now unless a line went out recently."""
        with self._lock:
            self._total += count
            self._unreported += count
            now = time.monotonic()
            if now - self._reported_at < self._every:
                return
            dropped, self._unreported, self._reported_at = self._unreported, 0, now
        self._log.error(self._event, **{self._unit: dropped, "reason": reason})
