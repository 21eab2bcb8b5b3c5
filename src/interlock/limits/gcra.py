"""The generic cell rate algorithm (GCRA, ITU-T I.371), on integer microseconds.

Why GCRA: it keeps **one number per key** (the theoretical arrival time,
TAT), so a decision is a read, a comparison and a write — cheap in process
and a tiny atomic script in Redis, with no per-request log (unlike a moving
window) and no boundary burst (unlike a fixed window, which admits 2N around
a window edge). It behaves as a token bucket of capacity N refilled at
N/period: a quiet caller may send N at once, then one every period/N.

For N per period P: emission interval T = P/N. A request at ``now`` with
stored TAT is admitted iff ``max(TAT, now) + T - P <= now``; then TAT becomes
``max(TAT, now) + T``. A key whose TAT has passed is indistinguishable from a
key never seen, so it may be forgotten (that is its expiry).

The in-process limiter decides with :func:`evaluate`; the Redis script is the
same arithmetic in Lua (``redis_limiter.py``), and its answer is turned into a
:class:`Decision` here, so both backends report alike.
"""

from __future__ import annotations

from collections.abc import Mapping

from interlock.limits.limiter import Decision, Limit

__all__ = ["evaluate"]

_US = 1_000_000


def evaluate(
    limits: tuple[Limit, ...], stored: Mapping[str, int], now: int, *, consume: bool = True
) -> tuple[Decision, list[int] | None]:
    """Decide at ``now`` (µs) given the stored TATs by bucket key (a key absent: unseen).

    ``stored`` is the in-process limiter's own table (read under its lock) or
    the Redis script's answer by key. Returns the decision and, when admitted
    and ``consume``, each limit's new TAT to store (else ``None``: a refused
    request changes nothing). One pass, no intermediate lists beyond the
    answer: this runs for every request (benchmarks/limits).
    """
    before: list[int | None] = []
    after: list[int] = []
    over = 0
    for limit in limits:
        quota = limit[0]
        tat = stored.get(limit[1])
        before.append(tat)
        new = (now if tat is None or tat < now else tat) + quota.emission_us
        excess = new - quota.period_us - now
        if excess > over:  # noqa: PLR1730  (a branch costs less than a call to max())
            over = excess
        after.append(new)
    if over > 0:
        return Decision(False, max(1, -(-over // _US)), limits, tuple(before), now), None
    if not consume:
        return Decision(True, 0, limits, tuple(before), now), None
    return Decision(True, 0, limits, tuple(after), now), after
