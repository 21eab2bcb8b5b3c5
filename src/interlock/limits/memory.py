"""In-process limits: one lock, one dict of TATs, bounded and self-expiring.

The default backend on one machine, and the fallback when Redis is down
under ``rate_limit_failure: open``. Limits held here are per process: N
replicas each admit the full rate, unless each is told it holds ``1/shares``
of every budget (``INTERLOCK_WORKERS`` with ``INTERLOCK_LOCAL_LIMITS=divide``:
:mod:`interlock.limits.scope`, docs/scale.md).
"""

from __future__ import annotations

import threading
from typing import Final

from interlock.clock import MonotonicMicros, monotonic_us
from interlock.config.units import Rate
from interlock.limits.gcra import evaluate
from interlock.limits.limiter import Decision, Limit, Quota

__all__ = ["MAX_KEYS", "MemoryLimiter", "monotonic_us"]

MAX_KEYS: Final = 100_000


class MemoryLimiter:
    """GCRA buckets in this process; thread-safe; at most about ``max_keys`` buckets.

    A bucket whose TAT has passed is full again, the same as one never seen,
    so it is dropped without changing any decision. Only when more than
    ``max_keys`` buckets are live at once (someone spraying keys) are the
    earliest created dropped: memory stays bounded, and those callers
    start over with a full budget — the price of the bound.
    """

    blocking = False

    def __init__(
        self, *, clock: MonotonicMicros = monotonic_us, max_keys: int = MAX_KEYS, shares: int = 1
    ) -> None:
        """``clock`` is monotonic microseconds (a ManualClock's ``monotonic_us`` in tests).

        Buckets measure intervals, so they run on monotonic time, never on the
        wall clock a date change could move (:mod:`interlock.clock`);
        ``max_keys`` bounds memory. ``shares``: this process enforces
        ``limit // shares`` of every quota (at least 1), so that ``shares``
        processes together admit no more than the limit.
        """
        if shares < 1:
            raise ValueError("shares must be at least 1")
        self._clock = clock
        self._max = max_keys
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()
        self.shares = shares
        self._divided: dict[Quota, Quota] = {}

    def __len__(self) -> int:
        """How many buckets are held (live or not yet swept)."""
        return len(self._tats)

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """Decide and, if admitted and ``consume``, take one unit from every limit."""
        if self.shares > 1:
            limits = tuple(Limit(self._share(quota), key) for quota, key in limits)
        with self._lock:
            tats = self._tats
            now = self._clock()
            decision, new = evaluate(limits, tats, now, consume=consume)
            if new is not None:
                for limit, tat in zip(limits, new, strict=False):  # one TAT per limit
                    tats[limit[1]] = tat
                if len(tats) > self._max:
                    self._sweep(now)
        return decision

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """:meth:`decide`: no I/O, so the same call serves the event loop."""
        return self.decide(limits, consume=consume)

    def _share(self, quota: Quota) -> Quota:
        """This process's share of ``quota`` (cached: quotas are fixed per manifest)."""
        divided = self._divided.get(quota)
        if divided is None:
            if len(self._divided) > self._max:
                self._divided.clear()
            rate = Rate(max(1, quota.rate.limit // self.shares), quota.rate.period)
            divided = self._divided[quota] = Quota(quota.policy, rate)
        return divided

    def _sweep(self, now: int) -> None:
        live = {key: tat for key, tat in self._tats.items() if tat > now}
        keep = self._max * 3 // 4
        if len(live) > keep:
            live = dict(list(live.items())[len(live) - keep :])
        self._tats = live
