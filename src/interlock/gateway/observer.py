"""A request observer: who else hears of each answered request (the demo's console).

:class:`~interlock.gateway.app.Gateway` and the edge decision endpoint
(:mod:`interlock.gateway.edge.decision`) call the observer, when one is set,
once per request or decision after its audit entry is written, on the event loop, with
what the access log holds. Without one the gateway pays a ``None`` check.
An observer must be quick and must not block; one that raises is logged and
the request is answered regardless.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["RequestObserver", "RequestSeen"]


@dataclass(frozen=True, slots=True)
class RequestSeen:
    """One answered request, as the access log has it (never a query string or credential)."""

    method: str
    path: str  # the request's path only: the query string may hold a refused credential
    route: str  # the route template or own endpoint's label; "unmatched" when none matched
    status: int
    outcome: str  # forwarded, ok, refused, error
    client: str | None  # the authenticated client; None when nobody was
    correlation_id: str  # as in X-Request-Id, the problem document and the audit entry


RequestObserver = Callable[[RequestSeen], None]
