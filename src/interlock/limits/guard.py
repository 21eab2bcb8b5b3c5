"""Slow down secret guessing at the token endpoint, without letting anyone lock a client out.

An :class:`~interlock.oauth.guard.AttemptGuard` on a limiter. Every failed
client authentication takes one unit from two buckets: the (client id,
source address) pair's and the source address's. While either is empty,
attempts from *that address* are answered 429 ``slow_down`` with
``Retry-After`` before any secret is checked.

Nothing is counted per client id alone. A budget per client id let anyone
who knew the id lock the client out: ten wrong secrets a minute, from
anywhere, and its correct secret got 429 for as long as they kept going
(issue 17 item 6). Failures now slow down only the address they come from,
so a client calling from its own address is never refused because of
someone else's failures. What a per-client-id budget added against guessing
spread over many addresses was nothing worth a lockout: a client secret is
256 random bits, and an assertion a signature.

The limits are fixed constants, not settings (nothing to misconfigure):

* :data:`CLIENT_FAILURES` — 10 failures per minute per client id *from one
  address*;
* :data:`ADDRESS_FAILURES` — 50 failures per minute per address: one host
  trying many client ids (``INTERLOCK_AUTH_FAILURES_PER_IP`` overrides it).

GCRA refills one unit every 6 s (1.2 s per address). With a Redis limiter the
counts hold across replicas and the guard is ``blocking`` (the endpoint then
never consults it on the event loop; the gateway's routes await the
``..._async`` methods instead). If the backend is down and the policy
is ``closed``, attempts are slowed down (fail closed).
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
        """Keep the counts in ``limiter`` (in process or Redis).

        ``per_client`` is the budget of one client id from one address,
        ``per_address`` that of one address for every client id together.
        """
        self._limiter = limiter
        self._client = Quota("auth_failures_per_client_ip", per_client)
        self._address = Quota("auth_failures_per_ip", per_address)

    @property
    def blocking(self) -> bool:
        """True when the limiter does network I/O (Redis)."""
        return self._limiter.blocking

    def retry_after(self, client_id: str | None, remote: str | None) -> float | None:
        """Seconds to wait when this address's failures, for this client id or all, are spent."""
        limits = self._limits(client_id, remote)
        if not limits:
            return None
        try:
            decision = self._limiter.decide(limits, consume=False)
        except LimitsUnavailableError:
            return _UNAVAILABLE_WAIT
        return None if decision.allowed else float(decision.retry_after_seconds)

    def failed(self, client_id: str | None, remote: str | None) -> None:
        """Take one unit from the (client id, address) and the address failure budgets."""
        limits = self._limits(client_id, remote)
        if limits:
            # While the backend is down, retry_after already answers "wait".
            with contextlib.suppress(LimitsUnavailableError):
                self._limiter.decide(limits)

    async def retry_after_async(self, client_id: str | None, remote: str | None) -> float | None:
        """:meth:`retry_after` on an event loop (the limiter's :meth:`~Limiter.decide_async`)."""
        limits = self._limits(client_id, remote)
        if not limits:
            return None
        try:
            decision = await self._limiter.decide_async(limits, consume=False)
        except LimitsUnavailableError:
            return _UNAVAILABLE_WAIT
        return None if decision.allowed else float(decision.retry_after_seconds)

    async def failed_async(self, client_id: str | None, remote: str | None) -> None:
        """:meth:`failed` on an event loop."""
        limits = self._limits(client_id, remote)
        if limits:
            with contextlib.suppress(LimitsUnavailableError):
                await self._limiter.decide_async(limits)

    def _limits(self, client_id: str | None, remote: str | None) -> tuple[Limit, ...]:
        limits = []
        if client_id:
            # Per client id *and address*: failures elsewhere never slow the client down.
            # Both come from the request: bound them, and keep braces out of the key.
            pair = f"{_safe(client_id)}|{_safe(remote or '-')}"
            limits.append(Limit(self._client, bucket_key(_TAG, "client-ip", pair)))
        if remote:
            limits.append(Limit(self._address, bucket_key(_TAG, "ip", _safe(remote))))
        return tuple(limits)


def _safe(value: str) -> str:
    return value[:200].replace("{", "(").replace("}", ")")
