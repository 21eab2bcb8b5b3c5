"""Slow down API-key and token guessing at the gateway, at no cost to honest callers.

Every failed authentication on a route takes one unit from the source
address's failure budget (``INTERLOCK_AUTH_FAILURES_PER_IP``, shared with the
token endpoint and, with Redis, across replicas). While the budget is spent,
every credential from that address is answered 429 with ``Retry-After``
*before* it is checked, so a guesser learns nothing more.

Asking a Redis limiter on every request would cost a round trip per request.
So each replica remembers the addresses that failed on it recently (a
bounded in-process table) and asks the shared budget only for those: an
address that never failed here costs nothing; one that fails here is checked
from its next request on. An address that spent its budget on other replicas
gets at most one more attempt on each replica before it is stopped there too.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from interlock.errors import Refusal
from interlock.limits.guard import FailureGuard

__all__ = ["GuessingGuard"]

_REMEMBER_SECONDS: Final = 300.0  # longer than any budget's refill after a burst of failures
_MAX_TRACKED: Final = 100_000  # addresses; beyond this the oldest half is forgotten


class GuessingGuard:
    """Per-address failed-authentication budget, consulted only for recent failers."""

    def __init__(self, guard: FailureGuard, *, remember_seconds: float = _REMEMBER_SECONDS) -> None:
        """Count failures in ``guard``'s limiter (in process or Redis)."""
        self._guard = guard
        self._remember = remember_seconds
        self._suspects: dict[str, float] = {}  # address -> when it last failed (monotonic)
        self._lock = threading.Lock()

    async def check(self, remote: str | None) -> None:
        """Refuse with 429 while ``remote``'s failure budget is spent."""
        if remote is None or not self._suspected(remote):
            return
        wait = await self._guard.retry_after_async(None, remote)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            raise Refusal(
                "too-many-failed-attempts",
                f"too many failed authentication attempts from this address; retry in {seconds} s",
                headers={"Retry-After": str(seconds)},
                log_reason="failed-authentication budget of the address spent",
            )

    async def failed(self, remote: str | None) -> None:
        """Record a failed authentication by ``remote``."""
        if remote is None:
            return
        now = time.monotonic()
        with self._lock:
            if len(self._suspects) >= _MAX_TRACKED:
                newest = sorted(self._suspects.items(), key=lambda item: item[1])
                self._suspects = dict(newest[len(newest) // 2 :])
            self._suspects[remote] = now
        await self._guard.failed_async(None, remote)

    def _suspected(self, remote: str) -> bool:
        with self._lock:
            last = self._suspects.get(remote)
            if last is None:
                return False
            if time.monotonic() - last > self._remember:
                del self._suspects[remote]
                return False
            return True
