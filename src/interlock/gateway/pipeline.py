"""The order of the gateway's stages, written down exactly once.

TLS → route match → **credential guard → authenticate → authorise →
content-encoding guard → rate limit → replay guard → validation** → purpose
check → upstream call (wrapped by Idempotency-Key and response minimisation,
and on routes with ``subjects`` by the capture of the data subjects that
crossed). The purpose check is structural: a route exists only inside a
registered integration, so a matched route always has its purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from interlock.errors import ConfigError
from interlock.gateway.context import RequestContext
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.routing import CompiledRoute, RouteTable
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.stages.authorise import ScopeCheck
from interlock.gateway.stages.content_encoding import ContentEncodingGuard
from interlock.gateway.stages.idempotency import (
    DEFAULT_TTL,
    IdempotencyPolicy,
    IdempotentForward,
)
from interlock.gateway.stages.query_guard import QueryCredentialGuard
from interlock.gateway.stages.rate_limit import RateLimit, rate_limit_stage
from interlock.gateway.stages.replay_guard import SignedRequestGuard
from interlock.gateway.stages.subjects import SubjectCapture
from interlock.gateway.stages.validate import MinimisedForward, Validation
from interlock.identity.grants import system_url
from interlock.limits import Limiter
from interlock.privacy.subjects import RouteSubjects
from interlock.replay.idempotency import IdempotencyStore
from interlock.replay.signatures import RequestSignatures
from interlock.validation.minimise import FieldFilter
from interlock.validation.rules import Rules
from interlock.validation.schema import SchemaError, compile_schema
from interlock.validation.xml_body import load_xsd

__all__ = ["Backends", "Pipeline", "Stage", "build_pipelines"]

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


@dataclass(frozen=True)
class Backends:
    """What stages need beyond the route itself; a route that needs a missing one fails to build.

    ``limiter`` decides rate limits; ``idempotency`` keeps the responses of
    routes with an idempotency policy; ``signatures`` verifies signed requests
    of routes with a replay policy; ``rules`` are the manifest's business
    rules; ``manifest_dir`` is where relative files (XSDs) are found;
    ``names`` gives signed requests the URL they must name (the public URL).
    """

    limiter: Limiter | None = None
    idempotency: IdempotencyStore | None = None
    signatures: RequestSignatures | None = None
    rules: Rules | None = None
    manifest_dir: Path | None = None
    names: GatewayNames | None = None


def build_pipelines(
    routes: RouteTable,
    authenticate: Authentication,
    forward: Terminal,
    backends: Backends | None = None,
) -> dict[CompiledRoute, Pipeline]:
    """One pipeline per route; a :class:`ConfigError` names a route that cannot be built."""
    guard = QueryCredentialGuard()
    parts = backends or Backends()
    return {route: _pipeline(route, guard, authenticate, forward, parts) for route in routes.routes}


def _pipeline(
    route: CompiledRoute,
    guard: QueryCredentialGuard,
    authenticate: Authentication,
    forward: Terminal,
    backends: Backends,
) -> Pipeline:
    spec = route.route
    audience = system_url(route.system.url)
    check = ScopeCheck(spec.scope, audience, spec.auth, callers=route.integration.all_callers)
    limit = rate_limit_stage(route, backends.limiter)  # None: the route declares no limits
    # A compressed body is refused once the caller is known (the audit entry names it),
    # before any stage could read the body.
    stages: list[Stage] = [
        guard,
        authenticate,
        check,
        ContentEncodingGuard(),
        *((limit,) if limit else ()),
    ]
    if spec.replay is not None:
        if backends.signatures is None or backends.names is None:
            raise ConfigError(
                f"route {route.label} needs signature keys, a replay store and the public URL"
            )
        stages.append(SignedRequestGuard(backends.signatures, spec.replay, backends.names))
    stages.append(_validation(route, backends))
    terminal = forward
    if spec.response_fields is not None:
        terminal = MinimisedForward(FieldFilter(spec.response_fields), terminal)
    if spec.idempotency is not None:
        if backends.idempotency is None:
            raise ConfigError(f"route {route.label} needs an idempotency store")
        # It wraps the upstream call: it must see the response to store and replay it.
        # A stored response is data of the integration: it lives no longer than its retention.
        ttl = min(DEFAULT_TTL, route.integration.retention)
        terminal = IdempotentForward(
            backends.idempotency, IdempotencyPolicy(spec.idempotency, ttl=ttl), terminal
        )
    subjects = _subjects(route)
    if subjects:
        # Outermost: it reads the response as relayed (minimised), and a replayed one too.
        terminal = SubjectCapture(subjects, terminal, route.label)
    return Pipeline(tuple(stages), terminal, limit)


def _subjects(route: CompiledRoute) -> RouteSubjects:
    try:
        return RouteSubjects.for_route(route.integration.subjects, route.route)
    except ValueError as exc:
        raise ConfigError(f"route {route.label}: subjects: {exc}") from None


def _validation(route: CompiledRoute, backends: Backends) -> Validation:
    spec = route.route
    schema = None
    if spec.request_schema is not None:
        try:
            schema = compile_schema(spec.request_schema)
        except SchemaError as exc:
            raise ConfigError(f"route {route.label}: request_schema: {exc}") from None
    xsd = None
    if spec.xml is not None and spec.xml.schema_file is not None:
        if backends.manifest_dir is None:
            raise ConfigError(f"route {route.label}: an XSD needs the manifest's directory")
        try:
            xsd = load_xsd(backends.manifest_dir / spec.xml.schema_file)
        except ValueError as exc:
            raise ConfigError(f"route {route.label}: xml.schema_file: {exc}") from None
    rules = None
    if spec.rules:
        if backends.rules is None:
            raise ConfigError(f"route {route.label} names rules, but no rules are loaded")
        rules = backends.rules.for_route(spec.rules)
    return Validation(spec, schema=schema, xsd=xsd, rules=rules, label=route.label)
