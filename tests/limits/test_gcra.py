"""GCRA decisions on an injected clock: burst, steady rate, retry-after, several limits.

The clock is a :class:`ManualClock`'s monotonic scale: rate limits measure
intervals, so they run on monotonic time (:mod:`interlock.clock`).
"""

from __future__ import annotations

from datetime import timedelta

from interlock.config.units import Rate
from interlock.limits import ADDRESS_FAILURES, FailureGuard, Limit, MemoryLimiter, Quota
from interlock.testing.clock import ManualClock

PER_MIN_6 = Quota("per_client", Rate(6, timedelta(minutes=1)))  # one every 10 s
PER_MIN_3 = Quota("per_ip", Rate(3, timedelta(minutes=1)))  # one every 20 s


def test_a_quiet_caller_gets_the_full_burst_then_is_refused() -> None:
    """N at once are admitted; the N+1st is refused with the emission interval to wait."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    limits = (Limit(PER_MIN_6, "a"),)
    remaining = [limiter.decide(limits).remaining for _ in range(6)]
    assert remaining == [5, 4, 3, 2, 1, 0]
    refused = limiter.decide(limits)
    assert not refused.allowed
    assert refused.retry_after_seconds == 10
    assert refused.reset_seconds == 60


def test_after_the_burst_one_request_per_emission_interval_is_admitted() -> None:
    """Steady state: one every period/N; earlier is refused with the exact remainder."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    limits = (Limit(PER_MIN_6, "a"),)
    for _ in range(6):
        limiter.decide(limits)
    clock.advance(9.5)
    assert limiter.decide(limits).retry_after_seconds == 1  # 0.5 s, rounded up to 1
    clock.advance(0.5)
    assert limiter.decide(limits).allowed
    assert not limiter.decide(limits).allowed
    clock.advance(10)
    assert limiter.decide(limits).allowed


def test_a_full_period_of_silence_restores_the_whole_burst() -> None:
    """After one period the bucket is full again (and forgotten)."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    limits = (Limit(PER_MIN_6, "a"),)
    for _ in range(6):
        limiter.decide(limits)
    clock.advance(60)
    assert limiter.decide(limits).remaining == 5


def test_several_limits_deny_if_any_denies_and_consume_only_when_all_admit() -> None:
    """All-or-nothing: a refusal by one limit takes nothing from the others."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    both = (Limit(PER_MIN_6, "client"), Limit(PER_MIN_3, "ip"))
    for _ in range(3):
        assert limiter.decide(both).allowed
    refused = limiter.decide(both)
    assert not refused.allowed
    assert refused.policy == "per_ip"
    assert refused.retry_after_seconds == 20
    assert [s.remaining for s in refused.states] == [3, 0]
    # The client's bucket was not charged for the refused request: 3 left.
    assert limiter.decide((Limit(PER_MIN_6, "client"),)).remaining == 2


def test_retry_after_is_the_longest_wait_among_refusing_limits() -> None:
    """Two exhausted limits: wait until both admit."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    both = (Limit(PER_MIN_3, "x"), Limit(Quota("per_route", Rate(1, timedelta(hours=1))), "y"))
    limiter.decide(both)
    refused = limiter.decide(both)
    assert refused.retry_after_seconds == 3600
    assert sorted(s.policy for s in refused.states if s.remaining == 0) == ["per_route"]


def test_checking_without_consuming_changes_nothing() -> None:
    """consume=False answers the question and leaves the bucket alone."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us)
    limits = (Limit(PER_MIN_3, "a"),)
    for _ in range(5):
        assert limiter.decide(limits, consume=False).allowed
    assert limiter.decide(limits).remaining == 2


def test_memory_is_bounded_and_expired_buckets_are_dropped() -> None:
    """Past max_keys, full buckets vanish first, then the oldest live ones."""
    clock = ManualClock()
    limiter = MemoryLimiter(clock=clock.monotonic_us, max_keys=100)
    for i in range(100):
        limiter.decide((Limit(PER_MIN_6, f"k{i}"),))
    clock.advance(61)  # all of those are full again
    for i in range(10):
        limiter.decide((Limit(PER_MIN_6, f"new{i}"),))
    assert len(limiter) == 10
    for i in range(500):
        limiter.decide((Limit(PER_MIN_6, f"spray{i}"),))
    assert len(limiter) <= 101


def test_a_spent_budget_refills_only_as_the_injected_clock_moves() -> None:
    """The authentication-failure budget: spent, it waits on the clock it was given.

    The wait shrinks exactly as the manual clock moves, and one emission
    interval (1.2 s per address) later one attempt is allowed again.
    """
    clock = ManualClock()
    guard = FailureGuard(MemoryLimiter(clock=clock.monotonic_us))
    for _ in range(ADDRESS_FAILURES.limit):
        assert guard.retry_after(None, "192.0.2.7") is None
        guard.failed(None, "192.0.2.7")
    assert guard.retry_after(None, "192.0.2.7") == 2.0  # 1.2 s, in whole seconds
    clock.advance(1.1)
    assert guard.retry_after(None, "192.0.2.7") == 1.0
    clock.advance(0.1)
    assert guard.retry_after(None, "192.0.2.7") is None
