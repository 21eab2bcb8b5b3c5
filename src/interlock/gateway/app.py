"""The gateway for one manifest: its own endpoints, then its routes' pipelines.

Built by :func:`interlock.gateway.assembly.build_gateway` and never changed
afterwards: a reload builds a new one. Every refused request is answered with a
problem document; everything that reaches a client carries ``X-Request-Id``.
One access-log line per request, with the route *template* (never the query
string, which may hold a refused credential) and the caller's key id (never
the key). Every request that reaches the gateway gets exactly one audit entry
(``gateway.request``; an answer of the token endpoint's is ``token.issue`` or
``token.refuse``) and one count in the metrics: routed or not
(404, 405, 421 are labelled ``unmatched``), answered by a route or an own
endpoint, refused, or failed (an unhandled error is logged with its
correlation id and answered with a generic 500 problem; the store's database
unreachable is answered 503 ``store-unavailable``, which a balancer may retry).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from sqlalchemy.exc import DBAPIError, OperationalError

from interlock.config.manifest import Integration, Manifest
from interlock.errors import Refusal
from interlock.gateway.audit_trail import GatewayAudit, audit_unavailable
from interlock.gateway.client_address import TrustedProxies, remember_client_address
from interlock.gateway.context import RequestContext, remembered_principal
from interlock.gateway.endpoints import Endpoints
from interlock.gateway.hosts import GatewayNames
from interlock.gateway.metrics import UNMATCHED, GatewayMetrics
from interlock.gateway.observer import RequestObserver, RequestSeen
from interlock.gateway.pipeline import Pipeline
from interlock.gateway.problems import (
    INTERNAL_ERROR,
    problem_response,
    status_problem_response,
)
from interlock.gateway.routing import CompiledRoute, RouteTable
from interlock.gateway.stages.content_encoding import refuse_content_encoding
from interlock.gateway.targets import match_target
from interlock.gateway.upstream import Upstreams
from interlock.gateway.upstream_errors import UpstreamServerError
from interlock.identity.apikeys import ApiKeys
from interlock.identity.grants import Principal
from interlock.logs import get_logger
from interlock.privacy.lineage import RouteLineage
from interlock.validation.rules import Rules

__all__ = ["Gateway"]

_log = get_logger("interlock.gateway")
_ANY_HOST: Final = frozenset({"/healthz", "/readyz"})  # probes name the address they dialled
_access = logging.getLogger("interlock.gateway")
#: PostgreSQL SQLSTATEs of a server that cannot serve now (besides class 08).
_UNAVAILABLE_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})


class Gateway:
    """The routes, pipelines and own endpoints of one manifest."""

    def __init__(  # noqa: PLR0917  (assembled in one place, build_gateway)
        self,
        manifest: Manifest,
        routes: RouteTable,
        pipelines: dict[CompiledRoute, Pipeline],
        endpoints: Endpoints,
        upstreams: Upstreams,
        metrics: GatewayMetrics,
        audit: GatewayAudit,
        *,
        keys: ApiKeys,
        names: GatewayNames,
        rules: Rules | None = None,
        proxies: TrustedProxies | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        """Serve ``routes`` through ``pipelines`` behind ``endpoints``; record on ``audit``.

        Only requests for one of ``names`` are answered (``/healthz``, ``/readyz`` for any).
        ``proxies`` may report the caller's address (default: nobody may). ``observer``
        hears of each request after its audit entry (None: nobody, at the cost of a check).

        ``upstreams`` and ``rules`` hold connections this gateway closes when it
        is retired (:meth:`close`); ``keys`` are its manifest's API keys.
        """
        self.manifest = manifest
        self.routes = routes
        self.pipelines = pipelines
        self.endpoints = endpoints
        self.upstreams = upstreams
        self.metrics = metrics
        self.audit = audit
        self.keys = keys
        self.names = names
        self._rules = rules
        self._proxies = proxies or TrustedProxies()
        self._observer = observer
        # route label -> (integration name, integration), for the audit trail
        self._integrations: dict[str, tuple[str, Integration]] = {
            r.label: (r.integration_name, r.integration) for r in routes.routes
        }
        # route label -> who receives the data of the persons its locators identify
        self._lineage: dict[str, RouteLineage] = {
            r.label: RouteLineage.of(
                r.integration_name, r.integration, r.label, r.system_name, manifest.systems
            )
            for r in routes.routes
        }

    async def close(self) -> None:
        """Release what this manifest's gateway holds: upstream pools and rules' databases."""
        if self._rules is not None:
            self._rules.close()
        await self.upstreams.close()

    async def handle(
        self, request: web.BaseRequest, refuse: Refusal | None = None
    ) -> web.StreamResponse:
        """Answer one request: exactly one audit entry and one count, whatever happens.

        ``refuse``: answer with this refusal instead of serving (the listener's
        owner decided the request cannot be served), recorded and counted alike.
        """
        correlation_id = os.urandom(16).hex()  # 128 random bits, as secrets.token_hex
        started = time.perf_counter()
        where = _Where()
        try:
            answered = await self._answer(request, correlation_id, where, refuse)
        except UpstreamServerError as failed:  # forwarded: the target has the data
            answered = _refused(
                failed, correlation_id, request.path, where.label, where.principal, "forwarded"
            )
        except Refusal as refusal:  # refused before a pipeline ran, or at an own endpoint
            answered = _refused(refusal, correlation_id, request.path, where.label, where.principal)
        except web.HTTPException as exc:  # e.g. 413 from client_max_size
            reason = exc.reason
            answered = _Answered(
                status_problem_response(
                    exc.status, "http-error", reason, reason, correlation_id, request.path
                ),
                where.label,
                "refused",
                where.principal,
            )
        except Exception as failed:  # noqa: BLE001  (last resort: answer with the id only)
            answered = _failed(failed, correlation_id, request.path, where)
        label, outcome, principal = answered.label, answered.outcome, answered.principal
        # Every request is on the trail: routed or not, answered, refused or failed.
        final = await self._record(request, answered, correlation_id, where)
        # The caller can quote it, whoever answered (own endpoints' answers included).
        final.headers.setdefault("X-Request-Id", correlation_id)
        elapsed = time.perf_counter() - started
        self.metrics.observe(label, outcome, final.status, elapsed)
        if answered.code is not None:
            self.metrics.refused(answered.code)
        if _access.isEnabledFor(logging.INFO):  # skip building the event when it is dropped
            self._access_log(
                request,
                final,
                label,
                outcome,
                principal,
                answered.reason,
                elapsed,
                correlation_id,
                answered.removed_fields,
            )
        if self._observer is not None:  # the demo's console; nobody else by default
            _tell(self._observer, request, final, answered, correlation_id)
        return final

    def unparsed(self, request: web.BaseRequest, status: int, correlation_id: str) -> None:
        """Record and count an answer the listener gave instead of :meth:`handle`.

        A status below 500: the HTTP parser refused the request (malformed framing,
        oversized headers); 500 or more: the handler raised past its own last resort.
        """
        parser = status < 500
        reason = "refused by the HTTP parser" if parser else "unhandled error in the listener"
        self.audit.unparsed(
            request, label=UNMATCHED, status=status, correlation_id=correlation_id, reason=reason
        )
        self.metrics.observe(UNMATCHED, "refused" if parser else "error", status, 0.0)

    async def _record(
        self, request: web.BaseRequest, answered: _Answered, correlation_id: str, where: _Where
    ) -> web.Response:
        """Put the decision on the audit trail; withhold the response if required and failed."""
        audit = self.audit
        context = where.context
        final = answered.response
        name, integration = self._integrations.get(answered.label, (None, None))
        body = final.body
        recorded = await audit.request(
            request,
            integration_name=name,
            integration=integration,
            label=answered.label,
            status=final.status,
            forwarded=answered.outcome == "forwarded",
            served=answered.outcome == "ok",
            principal=answered.principal,
            reason=answered.reason,
            correlation_id=correlation_id,
            response_bytes=len(body) if isinstance(body, bytes) else 0,
            removed_fields=answered.removed_fields,
            upstream_country=self._upstream_country(answered.label),
            sightings=context.sightings if context is not None else (),
            route=self._lineage.get(answered.label),
        )
        if recorded:
            return final
        return problem_response(audit_unavailable(), correlation_id, request.path)

    def _upstream_country(self, label: str) -> str | None:
        """Where the system that route ``label`` forwards to is: the lineage's upstream."""
        route = self._lineage.get(label)
        return route.receivers["upstream"][1] if route is not None else None

    @staticmethod
    def _access_log(  # noqa: PLR0917  (one call site; a parameter object would only rename these)
        request: web.BaseRequest,
        final: web.StreamResponse,
        label: str,
        outcome: str,
        principal: Principal | None,
        reason: str | None,
        elapsed: float,
        correlation_id: str,
        removed_fields: int,
    ) -> None:
        _log.info(
            "request",
            method=request.method,
            route=label,
            status=final.status,
            outcome=outcome,
            client=principal.client if principal else None,
            credential=principal.credential if principal else None,
            reason=reason,
            ms=round(elapsed * 1000, 2),
            correlation_id=correlation_id,
            # Data minimisation: fields removed from the request and the response.
            removed_fields=removed_fields or None,
        )

    async def _answer(
        self,
        request: web.BaseRequest,
        correlation_id: str,
        where: _Where,
        refuse: Refusal | None = None,
    ) -> _Answered:
        """The answer; ``where`` says how far the request got should this raise."""
        # Before anything counts or records the caller: 400 for a trusted proxy's bad header.
        remember_client_address(request, self._proxies)
        if refuse is not None:
            raise refuse
        if request.path not in _ANY_HOST:
            self.names.check(request)  # 421 before any credential is looked at
        mount = self.endpoints.find(request.path, request.method)
        if mount is not None:
            # Labelled by the mount's template, never the concrete path (a secret's name is
            # no label: a client allowed to write secrets could create label sets at will).
            where.label, where.own = mount.label(request.path), request
            refuse_content_encoding(request)  # the own endpoints read no compressed body
            response = await mount.endpoint(request)
            # An own endpoint's error answer (a refused token request, 401) is a refusal too.
            outcome = "ok" if response.status < 400 else "refused"
            return _Answered(response, where.label, outcome, where.principal)
        match, query = match_target(self.routes, request)
        ctx = RequestContext(request, correlation_id, match, query)
        where.label, where.context = match.route.label, ctx
        response = await self.pipelines[match.route].run(ctx)
        response.headers["X-Request-Id"] = correlation_id
        return _Answered(response, where.label, "forwarded", ctx.principal, ctx.removed_fields)


@dataclass
class _Where:
    """How far a request got: its route label and context, for an answer that ends in an error."""

    label: str = UNMATCHED
    context: RequestContext | None = None
    own: web.BaseRequest | None = None  # answered by an own endpoint

    @property
    def principal(self) -> Principal | None:
        if self.context is not None:
            return self.context.principal
        # An own endpoint that authenticated its caller noted whom (the privacy API does).
        return remembered_principal(self.own) if self.own is not None else None


@dataclass(frozen=True)
class _Answered:
    response: web.Response
    label: str
    outcome: str
    principal: Principal | None
    removed_fields: int = 0
    reason: str | None = None  # why it was refused, for the log and the audit trail
    code: str | None = None  # the refusal's code, for the metrics


def _tell(
    observer: RequestObserver,
    request: web.BaseRequest,
    final: web.StreamResponse,
    answered: _Answered,
    correlation_id: str,
) -> None:
    principal = answered.principal
    seen = RequestSeen(
        method=request.method,
        path=request.path,
        route=answered.label,
        status=final.status,
        outcome=answered.outcome,
        client=principal.client if principal is not None else None,
        correlation_id=correlation_id,
    )
    try:
        observer(seen)
    except Exception:  # noqa: BLE001  (an observer's failure is no reason to fail the request)
        _log.exception("request observer failed", correlation_id=correlation_id)


def _failed(failed: Exception, correlation_id: str, instance: str, where: _Where) -> _Answered:
    """An error no stage turned into a refusal: 503 when the database is unreachable, else 500.

    A store that is down or restarting (connection refused, sessions ended by
    its shutdown) is not a bug: the request fails closed with a 503 the
    balancer may retry elsewhere, logged in one line rather than with a stack
    per request. Anything else is logged with its stack and answered 500.
    """
    if _store_unreachable(failed):
        _log.warning(
            "store unavailable",
            route=where.label,
            correlation_id=correlation_id,
            error=type(failed).__name__,
        )
        refusal = Refusal(
            "store-unavailable",
            "a backing service is unavailable; retry shortly",
            log_reason=f"store unavailable: {type(failed).__name__}",
        )
    else:
        _log.exception("unhandled error", route=where.label, correlation_id=correlation_id)
        refusal = Refusal(
            INTERNAL_ERROR, "the request failed; quote the correlation id to the operator"
        )
    return _refused(refusal, correlation_id, instance, where.label, where.principal, "error")


def _store_unreachable(failed: Exception) -> bool:
    """The database connection failed, not the statement: down, restarting, or full.

    SQLAlchemy marks an error after which the connection was found dead
    ``connection_invalidated``. Otherwise only PostgreSQL's own connection
    failures count: psycopg gives no SQLSTATE when it could not connect or lost
    the connection, class 08 is a connection exception, 57P01-57P03 the server
    shutting down or starting, 53300 too many connections (PostgreSQL,
    Appendix A). A statement's error — SQLite's "no such table" is an
    OperationalError too — stays a 500 with its stack in the log.
    """
    if not isinstance(failed, DBAPIError):
        return False
    if failed.connection_invalidated:
        return True
    if not isinstance(failed, OperationalError) or not hasattr(failed.orig, "sqlstate"):
        return False
    sqlstate = getattr(failed.orig, "sqlstate", None)
    return sqlstate is None or str(sqlstate).startswith("08") or sqlstate in _UNAVAILABLE_STATES


def _refused(  # noqa: PLR0917  (one private helper: the answer and what it is about)
    refusal: Refusal,
    correlation_id: str,
    instance: str,
    label: str,
    principal: Principal | None,
    outcome: str = "refused",
) -> _Answered:
    response = problem_response(refusal, correlation_id, instance)
    return _Answered(
        response, label, outcome, principal, reason=refusal.log_reason, code=refusal.code
    )
