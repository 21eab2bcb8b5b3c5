"""The decision endpoint: the gateway's header-only stages for a request a proxy carries.

The proxy asks before it forwards. The decision rebuilds the original request
from what the proxy passes (:mod:`interlock.gateway.edge.protocol`) as an
aiohttp request of its own (same headers, the original method and target,
the caller's address, the certificate the proxy verified), then runs exactly
what the embedded gateway runs (:meth:`interlock.gateway.app.Gateway.handle`
up to the upstream call): the Host check, the target check and route match
(:func:`interlock.gateway.targets.match_target`), and the route's own
pipeline stages as :mod:`interlock.gateway.pipeline` assembled them — the
credential guard, authentication (API key, Bearer JWT, DPoP with replay,
certificate-bound tokens, mutual TLS), scopes and integration ownership,
content encoding, rate limits with the failed-authentication budget, and
parameter validation. Only routes whose stages need no body are decided here
(:func:`~interlock.gateway.edge.protocol.needs_body`); the others pass through
Interlock's own listener.

Each decision is one ``gateway.request`` audit entry. An allowed request of an
integration whose audit is required (personal data) is allowed only once its
entry is durable: fail closed, before the data moves rather than before the
answer is released.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from interlock.errors import Refusal
from interlock.gateway.app import Gateway
from interlock.gateway.audit_trail import audit_unavailable
from interlock.gateway.client_address import TrustedProxies, remember_client_address
from interlock.gateway.context import RequestContext
from interlock.gateway.edge.protocol import (
    AUTHZ_PATH,
    CLIENT,
    PROBLEM,
    STATUS,
    UPSTREAM_AUTHORIZATION,
    UPSTREAM_SYSTEM,
    UPSTREAM_URI,
    Convention,
    UnreadableCertificateError,
    needs_body,
    proxy_certificate,
    route_key,
)
from interlock.gateway.metrics import UNMATCHED
from interlock.gateway.observer import RequestObserver, RequestSeen
from interlock.gateway.problems import INTERNAL_ERROR, problem_response
from interlock.gateway.routing import CompiledRoute, RouteMatch
from interlock.gateway.targets import match_target
from interlock.gateway.upstream import upstream_url
from interlock.identity.grants import Principal
from interlock.logs import get_logger

__all__ = ["EdgeContext", "EdgeDecisions"]

_log = get_logger("interlock.gateway.edge")
_access = logging.getLogger("interlock.gateway.edge")
# Never part of the original request as the stages see it.
_HOP: Final = frozenset({"connection", "content-length", "transfer-encoding", "keep-alive"})
_NGINX_PASSES: Final = frozenset({401, 403})
# What urlsplit would drop or split at (a fragment, the WHATWG-removed tab, CR and LF):
# a URL free of them is split by string operations exactly as urlsplit splits it.
_UNSPLIT: Final = re.compile(r"[#\t\r\n]")


@dataclass
class EdgeContext(RequestContext):
    """A route's request as the proxy carries it: no body here, the proxy's verified certificate."""

    certificate: bytes | None = None

    @property
    def peer_certificate(self) -> bytes | None:
        """The client certificate the proxy verified (and passed in its header)."""
        return self.certificate

    async def read_body(self) -> bytes:
        """Never called for a route decided at the edge (its stages read no body)."""
        raise Refusal(
            "route-unavailable",
            "this route is not available at the moment",
            log_reason="edge: a stage asked for the body of a route decided at the edge",
        )


@dataclass(frozen=True, slots=True)
class _EdgeRoute:
    """What a decision needs of one route, worked out once per manifest (not per request)."""

    decided_here: bool  # no stage needs the body (:func:`needs_body`)
    key: str  # :func:`route_key`: what the proxy's location for this route names
    upstream_country: str  # the location of the system the route forwards to, for the audit
    # The path of the system's URL before the route's upstream path; None: build the
    # upstream URL and split it (a URL string operations might split differently).
    base_path: str | None

    @classmethod
    def of(cls, route: CompiledRoute) -> _EdgeRoute:
        """The plan of ``route``."""
        base = route.system.url.rstrip("/")
        static = (base, *(piece for piece in route.upstream_template if piece is not None))
        plain = not any(_UNSPLIT.search(part) or "?" in part for part in static)
        return cls(
            decided_here=not needs_body(route),
            key=route_key(route),
            upstream_country=route.system.location,
            base_path=urlsplit(base).path if plain else None,
        )

    def upstream_uri(self, match: RouteMatch, query: str) -> str:
        """The path and query the proxy forwards to: :func:`upstream_url`'s, without the origin."""
        if self.base_path is None or _UNSPLIT.search(query):
            return _path_and_query(upstream_url(match, query))
        path = self.base_path + match.route.upstream_path(match.values)
        return path + "?" + query if query else path


@dataclass
class _Decided:
    response: web.Response
    label: str = UNMATCHED
    route: CompiledRoute | None = None
    plan: _EdgeRoute | None = None
    principal: Principal | None = None
    allowed: bool = False
    reason: str | None = None
    code: str | None = None


class EdgeDecisions:
    """Answers ``/_interlock/authz``: allow (with headers to inject) or the gateway's refusal."""

    def __init__(
        self,
        current: Callable[[], Gateway | None],
        convention: Convention,
        proxies: TrustedProxies | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        """Decide with the gateway ``current`` returns (it changes on reload).

        ``convention`` says where the proxy puts the original request;
        ``proxies`` may report the caller's address beyond the edge proxy.
        ``observer`` hears of each decision once it is recorded, as the
        gateway's observer hears of each request (:mod:`interlock.gateway.observer`;
        None: nobody, at the cost of a ``None`` check).
        """
        self._current = current
        self._convention = convention
        self._proxies = proxies or TrustedProxies()
        self._observer = observer
        self._dropped = frozenset(name.lower() for name in convention.control) | _HOP
        # The routes' plans, for the gateway they were made for (a reload brings another).
        self._plans: tuple[Gateway | None, dict[CompiledRoute, _EdgeRoute]] = (None, {})

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """One decision: exactly one audit entry and one count, whatever happens."""
        correlation_id = os.urandom(16).hex()
        gateway = self._current()
        if gateway is None:
            starting = Refusal("service-starting", "the gateway is starting; retry shortly")
            return self._wire(problem_response(starting, correlation_id, AUTHZ_PATH))
        started = time.perf_counter()
        try:
            original = self._original(request)
        except Refusal as refusal:  # the proxy's own request is malformed: nothing to audit
            return self._wire(problem_response(refusal, correlation_id, AUTHZ_PATH))
        try:
            decided = await self._decide(gateway, request, original, correlation_id)
        except Exception:  # noqa: BLE001  (last resort: log it, refuse with the id only)
            _log.exception("unhandled error", correlation_id=correlation_id)
            internal = Refusal(
                INTERNAL_ERROR, "the request failed; quote the correlation id to the operator"
            )
            decided = _Decided(problem_response(internal, correlation_id, original.path))
        final = await self._record(gateway, original, decided, correlation_id)
        outcome = "allowed" if decided.allowed and final is decided.response else "refused"
        elapsed = time.perf_counter() - started
        gateway.metrics.observe(decided.label, outcome, final.status, elapsed)
        if decided.code is not None:
            gateway.metrics.refused(decided.code)
        if _access.isEnabledFor(logging.INFO):
            principal = decided.principal
            _log.info(
                "decision",
                method=original.method,
                route=decided.label,
                status=final.status,
                outcome=outcome,
                client=principal.client if principal else None,
                credential=principal.credential if principal else None,
                reason=decided.reason,
                ms=round(elapsed * 1000, 2),
                correlation_id=correlation_id,
            )
        if self._observer is not None:  # the demo's console; nobody else by default
            _tell(self._observer, original, decided, final, outcome, correlation_id)
        return self._wire(final)

    def _original(self, request: web.BaseRequest) -> web.BaseRequest:
        """The proxied request as the stages see it: its method, target, headers and address."""
        convention = self._convention
        method = request.headers.get(convention.method, "") if convention.method else None
        uri = request.headers.get(convention.uri, "") if convention.uri else None
        if convention.method is None:  # Envoy: the decision request is the original's copy
            method, uri = request.method, request.raw_path.removeprefix(AUTHZ_PATH) or "/"
        if not method or not uri or not method.isalpha() or not uri.startswith("/"):
            raise Refusal(
                "invalid-request",
                "the proxy did not name the original request",
                log_reason="edge: decision request without the original method or URI",
            )
        dropped = self._dropped
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value) for name, value in request.headers.items() if name.lower() not in dropped
        )
        address = request.headers.get(convention.address, "").split(",")[-1].strip()
        return request.clone(
            method=method.upper(),
            rel_url=URL(uri, encoded=True),
            headers=headers,
            remote=address or "unknown",
        )

    async def _decide(
        self,
        gateway: Gateway,
        request: web.BaseRequest,
        original: web.BaseRequest,
        correlation_id: str,
    ) -> _Decided:
        """Run the gateway's checks; a refusal anywhere is the decision."""
        decided = _Decided(web.Response())
        try:
            remember_client_address(original, self._proxies)
            gateway.names.check(original)  # 421 before any credential is looked at
            match, query = match_target(gateway.routes, original)
            route = match.route
            plan = self._plan(gateway, route)
            decided.label, decided.route, decided.plan = route.label, route, plan
            self._check_dispatch(route, plan, request)
            certificate = self._certificate(route, plan, request)
            ctx = EdgeContext(original, correlation_id, match, query, certificate=certificate)
            pipeline = gateway.pipelines[route]
            try:
                for stage in pipeline.stages:
                    await stage(ctx)
            finally:
                decided.principal = ctx.principal
            headers = {
                CLIENT: ctx.principal.client if ctx.principal is not None else "",
                UPSTREAM_URI: plan.upstream_uri(match, query),
                UPSTREAM_SYSTEM: route.system_name,
                "X-Request-Id": correlation_id,
            }
            authorization = await gateway.upstreams.authorization(route.system_name, route.system)
            if authorization is not None:
                headers[UPSTREAM_AUTHORIZATION] = authorization
                if not self._convention.squashes_status:
                    # Envoy, Traefik, Caddy copy named answer headers onto the forwarded
                    # request, replacing the caller's: the system's credential replaces theirs.
                    headers["Authorization"] = authorization
            decided.response = web.Response(status=200, headers=headers)
            if pipeline.rate_limit is not None:
                pipeline.rate_limit.annotate(ctx, decided.response)
            decided.allowed = True
        except Refusal as refusal:
            decided.response = problem_response(refusal, correlation_id, original.path)
            decided.reason, decided.code = refusal.log_reason, refusal.code
        return decided

    def _plan(self, gateway: Gateway, route: CompiledRoute) -> _EdgeRoute:
        """``route``'s plan, made once per gateway (every route's at the first decision)."""
        made_for, plans = self._plans
        if made_for is not gateway:
            plans = {r: _EdgeRoute.of(r) for r in gateway.routes.routes}
            self._plans = (gateway, plans)
        plan = plans.get(route)
        return plan if plan is not None else _EdgeRoute.of(route)

    def _check_dispatch(
        self, route: CompiledRoute, plan: _EdgeRoute, request: web.BaseRequest
    ) -> None:
        """Refuse unless the proxy's location is the route matched here (nginx names it).

        nginx forwards to its location's system, with the credential this
        decision returns for the route it matched: were they different routes
        (a configuration generated from another manifest version, a dispatch
        that differs from the router's), the credential would go to another
        system. Checked before any stage, so a refused request spends no rate
        limit and no DPoP proof.
        """
        header = self._convention.route
        if header is None:
            return
        named = request.headers.get(header, "")
        if named != plan.key:
            raise Refusal(
                "route-unavailable",
                "this route is not available at the moment",
                log_reason=f"edge: the proxy forwards to route {named or '(none named)'} but the "
                f"request matches {route.label} ({plan.key}); regenerate the proxy "
                "configuration and reload the decision processes (interlock edge reload)",
            )

    def _certificate(
        self, route: CompiledRoute, plan: _EdgeRoute, request: web.BaseRequest
    ) -> bytes | None:
        """The certificate the proxy verified (its headers on ``request``), else a refusal."""
        if not plan.decided_here:
            raise Refusal(
                "route-unavailable",
                "this route is not available at the moment",
                log_reason="edge: a route that needs the body was asked for a decision "
                "(regenerate the proxy configuration)",
            )
        try:
            return proxy_certificate(self._convention, request.headers)
        except UnreadableCertificateError as exc:
            raise Refusal(
                "unauthorized",
                "the client certificate cannot be used",
                headers={"WWW-Authenticate": 'Bearer realm="interlock"'},
                log_reason=f"edge: {exc}",
            ) from None

    @staticmethod
    async def _record(
        gateway: Gateway, original: web.BaseRequest, decided: _Decided, correlation_id: str
    ) -> web.Response:
        """The decision on the audit trail; an allow whose required entry failed is refused."""
        route = decided.route
        integration = route.integration if route is not None else None
        plan = decided.plan
        recorded = await gateway.audit.request(
            original,
            integration_name=route.integration_name if route is not None else None,
            integration=integration,
            label=decided.label,
            status=decided.response.status,
            forwarded=decided.allowed,
            principal=decided.principal,
            reason=decided.reason if not decided.allowed else "edge: allowed, the proxy forwards",
            correlation_id=correlation_id,
            response_bytes=0,
            removed_fields=0,
            upstream_country=plan.upstream_country if plan is not None else None,
        )
        if recorded:
            return decided.response
        return problem_response(audit_unavailable(), correlation_id, original.path)

    def _wire(self, response: web.Response) -> web.Response:
        """The answer as the proxy understands it (nginx: 401 or 403, the rest in headers)."""
        if not self._convention.squashes_status or response.status < 300:
            return response
        body = response.body
        problem = body.decode("ascii") if isinstance(body, bytes) else ""
        headers = CIMultiDict(response.headers)
        headers.popall("Content-Type", None)
        headers.popall("Content-Length", None)
        headers[STATUS] = str(response.status)
        headers[PROBLEM] = problem
        status = response.status if response.status in _NGINX_PASSES else 403
        return web.Response(status=status, headers=headers)


def _tell(  # noqa: PLR0917  (one call site, in order)
    observer: RequestObserver,
    original: web.BaseRequest,
    decided: _Decided,
    final: web.Response,
    outcome: str,
    correlation_id: str,
) -> None:
    """``observer`` hears of the decision; its failure never changes the decision."""
    principal = decided.principal
    seen = RequestSeen(
        method=original.method,
        path=original.path,
        route=decided.label,
        status=final.status,  # the status the proxy answers with (200: it forwards)
        outcome=outcome,
        client=principal.client if principal is not None else None,
        correlation_id=correlation_id,
    )
    try:
        observer(seen)
    except Exception:  # noqa: BLE001  (an observer's failure is no reason to fail it)
        _log.exception("request observer failed", correlation_id=correlation_id)


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")
