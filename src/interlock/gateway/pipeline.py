"""The order of the gateway's stages, written down exactly once.

TLS → route match → **credential guard → authenticate → authorise → rate
limit** → (replay guard, validation: later issues) → purpose check →
upstream call. The purpose check is structural: a route exists only inside a
registered integration, so a matched route always has its purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from aiohttp import web

from interlock.gateway.context import RequestContext
from interlock.gateway.routing import CompiledRoute, RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.stages.authorise import ScopeCheck
from interlock.gateway.stages.query_guard import QueryCredentialGuard
from interlock.gateway.stages.rate_limit import RateLimit, rate_limit_stage
from interlock.identity.grants import system_url
from interlock.limits import Limiter

__all__ = ["Pipeline", "Stage", "build_pipelines"]

Stage = Callable[[RequestContext], Awaitable[None]]
Terminal = Callable[[RequestContext], Awaitable[web.Response]]


@dataclass(frozen=True)
class Pipeline:
    """The stages one route runs, assembled once at start-up (and on reload)."""

    stages: tuple[Stage, ...]
    terminal: Terminal
    rate_limit: RateLimit | None = None  # also adds its fields to the response

    async def run(self, ctx: RequestContext) -> web.Response:
        """Run every stage, then the terminal (the upstream call)."""
        for stage in self.stages:
            await stage(ctx)
        response = await self.terminal(ctx)
        if self.rate_limit is not None:
            self.rate_limit.annotate(ctx, response)
        return response


def build_pipelines(
    routes: RouteTable,
    authenticate: Authentication,
    forward: Terminal,
    limiter: Limiter | None = None,
) -> dict[CompiledRoute, Pipeline]:
    """One pipeline per route; routes with rate limits decide them with ``limiter``."""
    guard = QueryCredentialGuard()
    return {
        route: _pipeline(route, guard, authenticate, forward, limiter) for route in routes.routes
    }


def _pipeline(
    route: CompiledRoute,
    guard: QueryCredentialGuard,
    authenticate: Authentication,
    forward: Terminal,
    limiter: Limiter | None,
) -> Pipeline:
    audience = system_url(route.system.url)
    check = ScopeCheck(route.route.scope, audience, route.route.auth)
    limit = rate_limit_stage(route, limiter)  # None: the route declares no limits
    stages: Sequence[Stage] = (guard, authenticate, check, *((limit,) if limit else ()))
    return Pipeline(tuple(stages), forward, limit)
