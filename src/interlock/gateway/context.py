"""What a request carries through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from interlock.gateway.routing import RouteMatch
from interlock.identity.grants import Principal

__all__ = ["RequestContext"]


@dataclass
class RequestContext:
    """One request: the raw request, its correlation id, route and (once known) caller."""

    request: web.BaseRequest
    correlation_id: str
    match: RouteMatch
    query: str
    principal: Principal | None = None
