"""What a rate-limit decision takes and gives, and the one interface every backend offers.

A request is checked against all its limits in **one** decision (per client,
per IP, per route, per integration). The decision is all-or-nothing: it is
refused if any limit refuses, and only when every limit admits is one unit
taken from each. A refused request therefore costs the caller nothing in the
limits that still had room, and two limits never disagree about whether a
request happened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from interlock.config.units import Rate
from interlock.errors import InterlockError

__all__ = ["Decision", "Limit", "LimitState", "Limiter", "LimitsUnavailableError", "Quota"]

_US = 1_000_000


@dataclass(frozen=True)
class Quota:
    """A named rate (``per_client: 1000/min``), prepared once: GCRA's T and P in µs.

    ``policy`` names the limit on the wire (``RateLimit-Policy: "per_client"``).
    """

    policy: str
    rate: Rate
    emission_us: int = field(init=False)  # T = period / limit
    period_us: int = field(init=False)  # P

    def __post_init__(self) -> None:
        period = int(self.rate.period.total_seconds()) * _US
        object.__setattr__(self, "period_us", period)
        object.__setattr__(self, "emission_us", max(1, period // self.rate.limit))


class Limit(NamedTuple):
    """One limit of a request: a quota and the bucket's key (sharers of a key share it)."""

    quota: Quota
    key: str


class LimitState(NamedTuple):
    """Where one limit stands after a decision (for the RateLimit header)."""

    policy: str
    rate: Rate
    remaining: int
    reset_seconds: int


class Decision(NamedTuple):
    """The outcome for all limits of a request.

    ``retry_after_seconds`` is 0 when allowed, else the whole seconds (at least
    one) until every refusing limit would admit the request again.
    :attr:`remaining`, :attr:`reset_seconds` and :attr:`policy` describe the
    tightest limit (a refusing one when refused); :attr:`states` every limit.
    They are computed on demand, so a caller that needs only the verdict
    pays only for the verdict.
    """

    allowed: bool
    retry_after_seconds: int
    limits: tuple[Limit, ...]
    tats: tuple[int | None, ...]  # each bucket's TAT after the decision (µs)
    now: int  # µs, on the backend's clock

    @property
    def states(self) -> tuple[LimitState, ...]:
        """Every limit's remaining quota and seconds until it is full again."""
        now = self.now
        states = []
        for (quota, _), tat in zip(self.limits, self.tats, strict=True):
            backlog = 0 if tat is None or tat < now else tat - now
            remaining = max(0, (quota.period_us - backlog) // quota.emission_us)
            states.append(LimitState(quota.policy, quota.rate, remaining, -(-backlog // _US)))
        return tuple(states)

    @property
    def tightest(self) -> LimitState:
        """The limit with the least remaining quota (the longest reset on a tie)."""
        return min(self.states, key=lambda s: (s.remaining, -s.reset_seconds))

    @property
    def remaining(self) -> int:
        """Remaining quota of the tightest limit."""
        return self.tightest.remaining

    @property
    def reset_seconds(self) -> int:
        """Seconds until the tightest limit is full again."""
        return self.tightest.reset_seconds

    @property
    def policy(self) -> str:
        """The tightest limit's policy name."""
        return self.tightest.policy


class LimitsUnavailableError(InterlockError):
    """The shared limits backend cannot be reached and the policy is to fail closed."""

    code = "limits_unavailable"


class Limiter(Protocol):
    """A rate-limit backend: in-process, Redis, or a failure policy around one."""

    @property
    def blocking(self) -> bool:
        """Whether :meth:`decide` may do network I/O (then never call it on an event loop)."""
        ...

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """Decide a request against all ``limits`` at once.

        With ``consume=False`` nothing is taken: the decision says whether a
        request *would* be admitted. Raises :class:`LimitsUnavailableError`
        when the backend is down and the configured policy is to fail closed.
        """
        ...

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """:meth:`decide` for an event loop, which it never blocks.

        In process it decides at once; with Redis it awaits the script through
        ``redis.asyncio`` instead of holding a thread. Same outcomes and errors.
        """
        ...
