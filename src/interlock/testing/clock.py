"""A clock tests can move by hand, for code that takes an injectable ``now``."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["ManualClock"]


class ManualClock:
    """Returns ``now`` until a test sets or advances it (``clock.now += timedelta(...)``)."""

    def __init__(self, start: datetime | None = None) -> None:
        """Start at ``start`` (default 2026-01-01 UTC)."""
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        """The current time of this clock."""
        return self.now
