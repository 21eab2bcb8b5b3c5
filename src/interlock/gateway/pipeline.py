"""The order of the gateway's stages, written down exactly once.

TLS → route match → **credential guard → authenticate → authorise → rate
limit → replay guard** (signed requests; Idempotency-Key wraps the upstream
call) → (validation: a later issue) → purpose check → upstream call. The
purpose check is structural: a route exists only inside a registered
integration, so a matched route always has its purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from interlock.errors import ConfigError
from interlock.gateway.context import RequestContext
from interlock.gateway.routing import CompiledRoute, RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.stages.authorise import ScopeCheck
from interlock.gateway.stages.idempotency import IdempotencyPolicy, IdempotentForward
from interlock.gateway.stages.query_guard import QueryCredentialGuard
from interlock.gateway.stages.rate_limit import RateLimit, rate_limit_stage
from interlock.gateway.stages.replay_guard import SignedRequestGuard
from interlock.identity.grants import system_url
from interlock.limits import Limiter
from interlock.replay.idempotency import IdempotencyStore
from interlock.replay.signatures import RequestSignatures

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
    *,
    limiter: Limiter | None = None,
    idempotency: IdempotencyStore | None = None,
    signatures: RequestSignatures | None = None,
) -> dict[CompiledRoute, Pipeline]:
    """One pipeline per route.

    Routes with rate limits decide them with ``limiter``; routes with an
    ``idempotency`` policy keep their responses in ``idempotency``; routes
    with a ``replay`` policy verify signed requests with ``signatures``.
    """
    guard = QueryCredentialGuard()
    return {
        route: _pipeline(
            route,
            guard,
            authenticate,
            forward,
            limiter=limiter,
            idempotency=idempotency,
            signatures=signatures,
        )
        for route in routes.routes
    }


def _pipeline(
    route: CompiledRoute,
    guard: QueryCredentialGuard,
    authenticate: Authentication,
    forward: Terminal,
    *,
    limiter: Limiter | None,
    idempotency: IdempotencyStore | None,
    signatures: RequestSignatures | None,
) -> Pipeline:
    audience = system_url(route.system.url)
    check = ScopeCheck(route.route.scope, audience, route.route.auth)
    limit = rate_limit_stage(route, limiter)  # None: the route declares no limits
    stages: list[Stage] = [guard, authenticate, check, *((limit,) if limit else ())]
    replay = route.route.replay
    if replay is not None:
        if signatures is None:
            raise ConfigError(f"route {route.label} needs signature keys and a replay store")
        stages.append(SignedRequestGuard(signatures, replay))
    terminal = forward
    mode = route.route.idempotency
    if mode is not None:
        if idempotency is None:
            raise ConfigError(f"route {route.label} needs an idempotency store")
        # It wraps the upstream call: it must see the response to store and replay it.
        terminal = IdempotentForward(idempotency, IdempotencyPolicy(mode), forward)
    return Pipeline(tuple(stages), terminal, limit)
