"""The gateway's aiohttp application: one handler in front of the pipeline.

Every response to a refused request is a problem document; everything that
reaches a client carries ``X-Request-Id``. One access-log line per request,
with the route *template* (never the query string, which may hold a refused
credential) and the caller's key id (never the key).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Final
from urllib.parse import parse_qs

from aiohttp import web

from interlock.config.manifest import Integration, Manifest
from interlock.errors import ConfigError, Refusal
from interlock.gateway.audit_trail import GatewayAudit, audit_unavailable
from interlock.gateway.context import RequestContext, peer_certificate
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.guessing import GuessingGuard
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.mtls import ClientCertificates
from interlock.gateway.paths import BadPathError, split_target
from interlock.gateway.pipeline import Backends, Pipeline, build_pipelines
from interlock.gateway.problems import (
    INTERNAL_ERROR,
    oauth_error_response,
    problem_response,
    status_problem_response,
)
from interlock.gateway.routing import (
    CompiledRoute,
    MethodNotAllowedError,
    RouteTable,
    UnknownRouteError,
)
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.upstream import Upstreams
from interlock.gateway.vault_api import PREFIX as VAULT_PREFIX
from interlock.gateway.vault_api import VaultApi
from interlock.identity.apikeys import ApiKeys
from interlock.identity.grants import Grants, Principal
from interlock.logs import get_logger
from interlock.oauth.dpop import DPoPVerifier
from interlock.oauth.jwks import JwksPublisher
from interlock.oauth.token_endpoint import TokenEndpoint, TokenResponse, metadata
from interlock.oauth.tokens import AccessTokenVerifier, IssuerPolicy
from interlock.validation.rules import Rules

__all__ = ["Gateway"]

_log = get_logger("interlock.gateway")
# Form-encoded OAuth endpoints (ARCHITECTURE's fixed paths) and what answers them.
_OAUTH_FORMS: Final = {
    "/oauth2/token": "handle",
    "/oauth2/revoke": "revoke",
    "/oauth2/introspect": "introspect",
}
_access = logging.getLogger("interlock.gateway")


def _no_rule_databases(reference: str) -> str:
    raise ConfigError(f"no secret store to resolve {reference}")


@dataclass(frozen=True)
class _Compiled:
    manifest: Manifest
    routes: RouteTable
    pipelines: dict[CompiledRoute, Pipeline]
    # route label -> (integration name, integration), for the audit trail
    integrations: dict[str, tuple[str, Integration]]
    # who is calling, for the gateway's own authenticated endpoints (the vault)
    authenticate: Authentication


class Gateway:
    """Routes, pipelines and upstream pools for one manifest (swappable on reload)."""

    def __init__(
        self,
        manifest: Manifest,
        keys: ApiKeys,
        upstreams: Upstreams,
        metrics: GatewayMetrics,
        jwks: JwksPublisher | None = None,
        *,
        certificates: ClientCertificates | None = None,
        backends: Backends | None = None,
        guessing: GuessingGuard | None = None,
        rule_database: Callable[[str], str] | None = None,
        audit: GatewayAudit | None = None,
    ) -> None:
        """Compile ``manifest``; ``keys`` and ``upstreams`` are shared across reloads.

        ``backends`` are the limiter, idempotency store, signature verifier and
        manifest directory the routes' stages use (without a limiter, rate limits
        are not enforced); ``guessing`` slows down addresses whose credentials keep
        failing; ``rule_database`` turns a ``secret://`` reference into the URL
        of a business rule's database; ``audit`` records every routed decision and
        token answer on the audit trail.
        """
        self.audit = audit
        self.vault: VaultApi | None = None  # /v1/secrets, once enabled
        self.guessing = guessing
        self.backends = backends or Backends()
        self._rule_database = rule_database or _no_rule_databases
        self._rules: Rules | None = None
        self.jwks = jwks
        self.token_endpoint: TokenEndpoint | None = None
        self.token_verifier: AccessTokenVerifier | None = None
        self.dpop: DPoPVerifier | None = None
        self.certificates = certificates
        self.crl: CrlPublisher | None = None
        self._trusted: Callable[[Manifest], Sequence[IssuerPolicy]] | None = None
        self.keys = keys
        self.upstreams = upstreams
        self.metrics = metrics
        self._compiled = self._compile(manifest)

    def _compile(self, manifest: Manifest) -> _Compiled:
        routes = RouteTable.compile(manifest)
        rules = Rules(manifest, self._rule_database)
        authenticate = Authentication(
            self.keys,
            Grants(manifest),
            self.token_verifier,
            self.dpop,
            self.certificates,
            guessing=self.guessing,
        )
        try:
            pipelines = build_pipelines(
                routes, authenticate, self.upstreams, replace(self.backends, rules=rules)
            )
        except BaseException:
            rules.close()
            raise
        previous, self._rules = self._rules, rules
        if previous is not None:
            previous.close()  # requests in flight on the old pipelines reconnect on demand
        integrations = {r.label: (r.integration_name, r.integration) for r in routes.routes}
        return _Compiled(manifest, routes, pipelines, integrations, authenticate)

    def close(self) -> None:
        """Release what the compiled routes hold (business rules' connection pools)."""
        if self._rules is not None:
            self._rules.close()

    def enable_oauth(
        self,
        endpoint: TokenEndpoint,
        verifier: AccessTokenVerifier,
        trusted: Callable[[Manifest], Sequence[IssuerPolicy]] | None = None,
    ) -> None:
        """Serve ``POST /oauth2/token`` and accept access tokens (DPoP-bound too) on every route.

        ``trusted`` makes the policies of the manifest's trusted issuers (again on reload).
        """
        self.token_endpoint = endpoint
        self.token_verifier = verifier
        self.dpop = endpoint.dpop
        self._trusted = trusted
        if trusted is not None:
            verifier.trusted = trusted(self.manifest)
        self._compiled = self._compile(self.manifest)

    @property
    def manifest(self) -> Manifest:
        """The manifest being served."""
        return self._compiled.manifest

    def replace(self, manifest: Manifest, upstreams: Upstreams) -> None:
        """Serve ``manifest`` from now on (requests in flight finish on the old one)."""
        self.upstreams = upstreams
        compiled = self._compile(manifest)
        self.keys.manifest = manifest
        if self.backends.signatures is not None:
            self.backends.signatures.keys.manifest = manifest
        if self.certificates is not None:
            self.certificates.manifest = manifest
        if self.token_verifier is not None and self.token_endpoint is not None:
            self.token_verifier.manifest = manifest
            self.token_endpoint.manifest = manifest
            if self._trusted is not None:
                self.token_verifier.trusted = self._trusted(manifest)
        self._compiled = compiled

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        """Answer one request."""
        correlation_id = os.urandom(16).hex()  # 128 random bits, as secrets.token_hex
        started = time.perf_counter()
        try:
            answered = await self._answer(request, correlation_id)
        except Refusal as refusal:  # refused before any route's pipeline ran
            answered = _refused(refusal, correlation_id, request.path, "-", None)
        except web.HTTPException as exc:  # e.g. 413 from client_max_size
            reason = exc.reason
            answered = _Answered(
                status_problem_response(
                    exc.status, "http-error", reason, reason, correlation_id, request.path
                ),
                "-",
                "refused",
                None,
            )
        except Exception:  # noqa: BLE001  (last resort: log it, answer 500 with the id only)
            _log.exception("unhandled error", correlation_id=correlation_id)
            internal = Refusal(
                INTERNAL_ERROR, "the request failed; quote the correlation id to the operator"
            )
            answered = _refused(internal, correlation_id, request.path, "-", None, "error")
        label, outcome, principal = answered.label, answered.outcome, answered.principal
        final = answered.response
        if self.audit is not None and label != "-":
            final = await self._record(request, answered, correlation_id)
        elapsed = time.perf_counter() - started
        self.metrics.observe(label, outcome, final.status, elapsed)
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
        return final

    async def _record(
        self, request: web.BaseRequest, answered: _Answered, correlation_id: str
    ) -> web.Response:
        """Put the decision on the audit trail; withhold the response if required and failed."""
        audit = self.audit
        if audit is None:  # pragma: no cover - checked by the caller
            return answered.response
        final = answered.response
        name, integration = self._compiled.integrations.get(answered.label, (None, None))
        body = final.body
        recorded = await audit.request(
            request,
            integration_name=name,
            integration=integration,
            label=answered.label,
            status=final.status,
            forwarded=answered.outcome == "forwarded",
            principal=answered.principal,
            reason=answered.reason,
            correlation_id=correlation_id,
            response_bytes=len(body) if isinstance(body, bytes) else 0,
            removed_fields=answered.removed_fields,
        )
        if recorded:
            return final
        return problem_response(audit_unavailable(), correlation_id, request.path)

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

    async def _answer(self, request: web.BaseRequest, correlation_id: str) -> _Answered:
        own = await self._own_endpoint(request)
        if own is not None:
            return _Answered(own, request.path, "ok", None)
        compiled = self._compiled
        try:
            segments, query = split_target(request.raw_path)
            match = compiled.routes.match(request.method, segments)
        except BadPathError as exc:
            raise Refusal("bad-path", str(exc)) from None
        except UnknownRouteError:
            raise Refusal("not-found", "no route matches this path") from None
        except MethodNotAllowedError as exc:
            allowed = ", ".join(exc.allowed)
            raise Refusal(
                "method-not-allowed", f"this path accepts {allowed}", headers={"Allow": allowed}
            ) from None
        ctx = RequestContext(request, correlation_id, match, query)
        label = match.route.label
        try:
            response = await compiled.pipelines[match.route].run(ctx)
        except Refusal as refusal:
            return _refused(refusal, correlation_id, request.path, label, ctx.principal)
        response.headers["X-Request-Id"] = correlation_id
        return _Answered(response, label, "forwarded", ctx.principal, ctx.removed_fields)

    async def _own_endpoint(  # noqa: PLR0911  (one return per endpoint reads best)
        self, request: web.BaseRequest
    ) -> web.Response | None:
        """Health, metrics, JWKS, OAuth, the vault, the CRL: the own endpoints; else ``None``."""
        path, method = request.path, request.method
        if path == "/healthz" and method in {"GET", "HEAD"}:
            return web.json_response({"status": "ok"})
        if path in _OAUTH_FORMS and self.token_endpoint is not None:
            return await self._oauth_form(request, _OAUTH_FORMS[path])
        if self.vault is not None and (path == VAULT_PREFIX or path.startswith(VAULT_PREFIX + "/")):
            return await self.vault.handle(request, self._compiled.authenticate)
        if method != "GET":
            return None
        if path == "/.well-known/jwks.json" and self.jwks is not None:
            return web.Response(
                body=await self.jwks.body(),
                content_type="application/jwk-set+json",
                headers={"Cache-Control": "public, max-age=60"},
            )
        if path == "/.well-known/oauth-authorization-server" and self.token_endpoint is not None:
            return web.json_response(metadata(self.token_endpoint))
        if path == "/pki/crl" and self.crl is not None:
            return web.Response(
                body=self.crl.der,
                content_type="application/pkix-crl",
                headers={"Cache-Control": "public, max-age=60"},
            )
        if path == "/metrics":
            return web.Response(body=self.metrics.render(), content_type="text/plain")
        return None

    async def _oauth_form(self, request: web.BaseRequest, operation: str) -> web.Response:
        endpoint = self.token_endpoint
        if endpoint is None:  # pragma: no cover - checked by the caller
            raise Refusal("not-found", "no route matches this path")
        if request.method != "POST":
            raise Refusal("method-not-allowed", "use POST", headers={"Allow": "POST"})
        client: str | None = None
        try:
            form = await _form(request)
            authorization = request.headers.getall("Authorization", [])
            if operation == "handle":
                answer = await _token_answer(endpoint, request, authorization, form)
            else:
                answer = await asyncio.to_thread(
                    getattr(endpoint, operation), authorization, form, request.remote
                )
        except Refusal as refusal:
            response = oauth_error_response(refusal)
            reason: str | None = refusal.log_reason
            _log.info(
                "oauth request refused",
                path=request.path,
                reason=reason,
                status=response.status,
            )
        else:
            response = web.json_response(answer.body, status=answer.status, headers=answer.headers)
            client, reason = answer.client, answer.log_reason
        if self.audit is not None and operation == "handle":
            scope = answer.body.get("scope") if response.status == 200 else None
            self.audit.token(
                response.status, client, reason, scope if isinstance(scope, str) else None
            )
        return response


async def _form(request: web.BaseRequest) -> dict[str, list[str]]:
    """The parameters of a form-encoded OAuth request (RFC 6749 §4.4.2, §2.3.1)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise Refusal("invalid_request", "send a form-urlencoded body")
    return parse_qs((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)


async def _token_answer(
    endpoint: TokenEndpoint,
    request: web.BaseRequest,
    authorization: list[str],
    form: dict[str, list[str]],
) -> TokenResponse:
    """A token request: on the loop when nothing needs I/O, else in a worker thread."""
    dpop = request.headers.getall("DPoP", [])
    certificate = peer_certificate(request)
    if not dpop and certificate is None:
        answer = endpoint.handle_now(authorization, form, request.remote)
        if answer is not None:
            return answer
    return await asyncio.to_thread(
        endpoint.handle,
        authorization,
        form,
        request.remote,
        dpop=dpop,
        # Built only when needed: the request URL is what a DPoP proof's htu names.
        uri=str(request.url) if dpop else None,
        peer_certificate=certificate,
    )


@dataclass(frozen=True)
class _Answered:
    response: web.Response
    label: str
    outcome: str
    principal: Principal | None
    removed_fields: int = 0
    reason: str | None = None  # why it was refused, for the log and the audit trail


def _refused(  # noqa: PLR0917  (one private helper: the answer and what it is about)
    refusal: Refusal,
    correlation_id: str,
    instance: str,
    label: str,
    principal: Principal | None,
    outcome: str = "refused",
) -> _Answered:
    response = problem_response(refusal, correlation_id, instance)
    return _Answered(response, label, outcome, principal, reason=refusal.log_reason)
