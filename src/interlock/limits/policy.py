"""What happens when the shared limits backend is down: fail closed or open.

``closed`` (the default): every decision raises
:class:`~interlock.limits.limiter.LimitsUnavailableError`, which the gateway
answers with 503 — no request passes unlimited. ``open``: decisions fall back
to an in-process limiter, so each replica enforces the full limit on its own
(N replicas admit up to N times the rate) until Redis answers again — unless
the fallback holds a share of each budget (``INTERLOCK_WORKERS``, see
:mod:`interlock.limits.scope`).

Either way each failed decision is counted, and one log line marks each
change (backend lost, backend back); the backend is tried again on every
decision, so recovery is noticed on the first request after it.
"""

from __future__ import annotations

import threading
from typing import Literal, Protocol

from interlock.limits.limiter import Decision, Limit, Limiter, LimitsUnavailableError
from interlock.limits.memory import MemoryLimiter
from interlock.limits.redis_limiter import LimitsBackendError
from interlock.logs import get_logger

__all__ = ["BackendObserver", "FailureMode", "FailurePolicy"]

FailureMode = Literal["closed", "open"]
_log = get_logger("interlock.limits")


class BackendObserver(Protocol):
    """Told of backend failures (each one) and recoveries (metrics)."""

    def backend_failed(self, mode: FailureMode) -> None:
        """A decision could not be made by the backend."""
        ...

    def backend_up(self, up: bool) -> None:
        """The backend's state changed."""
        ...


class FailurePolicy:
    """``primary`` (Redis) with the configured behaviour when it fails."""

    blocking = True

    def __init__(
        self,
        primary: Limiter,
        mode: FailureMode = "closed",
        *,
        fallback: MemoryLimiter | None = None,
        observer: BackendObserver | None = None,
    ) -> None:
        """Fail ``mode``; ``fallback`` serves when open (default: a new MemoryLimiter)."""
        self._primary = primary
        self.mode: FailureMode = mode
        # Not `fallback or ...`: an empty MemoryLimiter has len() 0, so it is falsy.
        self._fallback = fallback if fallback is not None else MemoryLimiter()
        self._observer = observer
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        """Whether the last decision found the backend unreachable."""
        return self._down

    def decide(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """Decide by the backend; on its failure, refuse (closed) or decide in process (open)."""
        try:
            decision = self._primary.decide(limits, consume=consume)
        except LimitsBackendError as exc:
            return self._failed(exc, limits, consume)
        if self._down:
            self._changed(down=False, reason=None)
        return decision

    async def decide_async(self, limits: tuple[Limit, ...], *, consume: bool = True) -> Decision:
        """:meth:`decide` on the event loop: the backend awaited, the same policy on failure."""
        try:
            decision = await self._primary.decide_async(limits, consume=consume)
        except LimitsBackendError as exc:
            return self._failed(exc, limits, consume)
        if self._down:
            self._changed(down=False, reason=None)
        return decision

    def _failed(
        self, exc: LimitsBackendError, limits: tuple[Limit, ...], consume: bool
    ) -> Decision:
        """Refuse (closed) or decide in process (open); the fallback does no I/O."""
        self._changed(down=True, reason=str(exc))
        if self._observer is not None:
            self._observer.backend_failed(self.mode)
        if self.mode == "closed":
            raise LimitsUnavailableError("rate limits are unavailable") from exc
        return self._fallback.decide(limits, consume=consume)

    def _changed(self, *, down: bool, reason: str | None) -> None:
        with self._lock:
            if self._down == down:
                return
            self._down = down
        if down:
            _log.error(
                "rate-limit backend unreachable",
                policy=self.mode,
                effect="refusing with 503" if self.mode == "closed" else "in-process limits",
                reason=reason,
            )
        else:
            _log.warning("rate-limit backend reachable again", policy=self.mode)
        if self._observer is not None:
            self._observer.backend_up(not down)
