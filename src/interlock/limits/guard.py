"""Slow down secret guessing at the token endpoint: failures per client id and per address.

An :class:`~interlock.oauth.guard.AttemptGuard` on a limiter. Every failed
client authentication takes one unit from two buckets, the client id's and
the source address's; while either is empty, attempts are answered 429
``slow_down`` with ``Retry-After`` before any secret is checked.

The limits are fixed constants, not settings (nothing to misconfigure):

* :data:`CLIENT_FAILURES` — 10 failures per minute per client id: a
  guesser spread over many addresses still gets ten guesses a minute;
* :data:`ADDRESS_FAILURES` — 50 failures per minute per address: one host
  trying many client ids.

GCRA refills one unit every 6 s (1.2 s per address), so a legitimate client
locked out by someone else's guesses waits seconds, not minutes. With a Redis
limiter the counts hold across replicas and the guard is ``blocking`` (the
endpoint then never consults it on the event loop). If the backend is down
and the policy is ``closed``, attempts are slowed down (fail closed).
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from typing import Final

from interlock.config.units import Rate
from interlock.limits.limiter import Limit, Limiter, LimitsUnavailableError, Quota
from interlock.limits.redis_limiter import bucket_key

__all__ = ["ADDRESS_FAILURES", "CLIENT_FAILURES", "FailureGuard"]

CLIENT_FAILURES: Final = Rate(10, timedelta(minutes=1))
ADDRESS_FAILURES: Final = Rate(50, timedelta(minutes=1))
_TAG: Final = "auth"  # one hash tag: both buckets of a decision in one cluster slot
_UNAVAILABLE_WAIT: Final = 1.0


class FailureGuard:
    """Counts failed authentications; asks the caller to wait once a budget is spent."""

    def __init__(
        self,
        limiter: Limiter,
        *,
        per_client: Rate = CLIENT_FAILURES,
        per_address: Rate = ADDRESS_FAILURES,
    ) -> None:
        """Keep the counts in ``limiter`` (in process or Redis)."""
        self._limiter = limiter
        self._client = Quota("auth_failures_per_client", per_client)
        self._address = Quota("auth_failures_per_ip", per_address)

    @property
    def blocking(self) -> bool:
        """True when the limiter does network I/O (Redis)."""
        return self._limiter.blocking

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        """Seconds to wait when the client id's or the address's failures are spent."""
        limits = self._limits(client_id, remote)
        if not limits:
            return None
        try:
            decision = self._limiter.decide(limits, consume=False)
        except LimitsUnavailableError:
            return _UNAVAILABLE_WAIT
        return None if decision.allowed else float(decision.retry_after_seconds)

    def failed(self, client_id: str | None, remote: str | None) -> None:
        """Take one unit from the client id's and the address's failure budgets."""
        limits = self._limits(client_id, remote)
        if limits:
            # While the backend is down, retry_after already answers "wait".
            with contextlib.suppress(LimitsUnavailableError):
                self._limiter.decide(limits)

    def _limits(self, client_id: str | None, remote: str | None) -> tuple[Limit, ...]:
        limits = []
        if client_id:
            # Client ids come from the request: bound them, and keep braces out of the key.
            limits.append(Limit(self._client, bucket_key(_TAG, "client", _safe(client_id))))
        if remote:
            limits.append(Limit(self._address, bucket_key(_TAG, "ip", _safe(remote))))
        return tuple(limits)


def _safe(value: str) -> str:
    return value[:200].replace("{", "(").replace("}", ")")
