"""Calls to upstream systems: pooled, verified TLS, bounded in time and size.

* one keep-alive connection pool per system, TLS verified against the
  system's trust anchor with host-name checks (no switch exists to disable it);
* connect and read (inactivity) timeouts, and an overall deadline per call,
  the wait for a pooled connection included; redirects are returned, never
  followed;
* headers pass an allow-list each way (:mod:`interlock.gateway.header_policy`);
  ``Forwarded`` (RFC 7239) and ``X-Request-Id`` are set by Interlock;
* the caller's credential never leaves Interlock; the system's own credential,
  named ``secret://...`` in the manifest, is resolved through the
  ``SecretResolver`` and sent as ``Authorization: Bearer``;
* a response larger than the cap is refused (502), not truncated;
* a server error (5xx) is replaced by a problem document, its body logged
  redacted (:mod:`interlock.gateway.upstream_errors`).
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from multidict import CIMultiDict

from interlock.config.manifest import Manifest, System
from interlock.errors import InterlockError, Refusal
from interlock.gateway.client_address import client_address
from interlock.gateway.context import RequestContext
from interlock.gateway.header_policy import HeaderPolicy
from interlock.gateway.hosts import canonical_host
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.renewal import RenewingCertificate
from interlock.gateway.rfc7239 import for_node
from interlock.gateway.routing import CompiledRoute, RouteMatch
from interlock.gateway.tls import RevocationLists, trust_context
from interlock.gateway.upstream_errors import withheld_server_error
from interlock.gateway.upstream_http import (
    ConnectionPool,
    Origin,
    UpstreamProtocolError,
    UpstreamTooLargeError,
)
from interlock.logs import get_logger
from interlock.secrets.resolver import SecretResolver

__all__ = ["UpstreamLimits", "Upstreams", "upstream_url"]

_log = get_logger(__name__)
_SERVER_ERROR: Final = 500  # RFC 9110 §15.6: 5xx, the upstream failed


@dataclass(frozen=True)
class UpstreamLimits:
    """Time and size bounds for upstream calls.

    ``total_seconds`` bounds a whole call, the wait for a pooled connection
    included; it stays below the Idempotency-Key lease (2 minutes), so a
    retry never takes over a request that is still being forwarded.
    """

    connect_seconds: float = 5.0
    read_seconds: float = 30.0
    total_seconds: float = 60.0
    max_response_bytes: int = 10 * 1024 * 1024
    pool_size: int = 100


def upstream_url(match: RouteMatch, query: str) -> str:
    """The upstream URL of a matched request: the system's URL, the route's path, the query."""
    compiled = match.route
    url = compiled.system.url.rstrip("/") + compiled.upstream_path(match.values)
    return url + "?" + query if query else url


def _target(origin: Origin, match: RouteMatch, query: str) -> str:
    """:func:`upstream_url` without the origin: the request target sent to the system."""
    path = origin.base_path + match.route.upstream_path(match.values)
    return path + "?" + query if query else path


class Upstreams:
    """Connection pools per system and the forwarding of one request."""

    def __init__(
        self,
        manifest: Manifest,
        secrets: SecretResolver,
        trust_anchors: dict[str, Path],
        metrics: GatewayMetrics,
        limits: UpstreamLimits | None = None,
        *,
        client_certificate: RenewingCertificate | None = None,
        revocation: RevocationLists | None = None,
    ) -> None:
        """``trust_anchors`` maps ``pki:NAME`` to CA files; ``system`` uses the OS bundle.

        ``client_certificate`` is presented to systems with ``client_cert: pki:auto``;
        ``revocation``: the CRLs a ``pki:internal`` system's certificate is checked against.
        """
        self._manifest = manifest
        self._secrets = secrets
        self._anchors = trust_anchors
        self._metrics = metrics
        self.limits = limits or UpstreamLimits()
        self._client_certificate = client_certificate
        self._revocation = revocation
        self._pools: dict[str, ConnectionPool] = {}
        self._policies: dict[CompiledRoute, HeaderPolicy] = {}
        self._contexts = {name: self._context(s) for name, s in manifest.systems.items()}

    def _context(self, system: System) -> ssl.SSLContext:
        min_version = (system.tls or self._manifest.tls).min_version
        context = trust_context(system.ca, self._anchors, min_version, revocation=self._revocation)
        if system.client_cert is not None:
            if self._client_certificate is None:
                raise InterlockError("client_cert: pki:auto needs the deployment's PKI")
            self._client_certificate.attach(context)
        return context

    def context(self, system: str) -> ssl.SSLContext:
        """The TLS context connections to ``system`` are made with."""
        return self._contexts[system]

    def _pool(self, name: str, system: System) -> ConnectionPool:
        pool = self._pools.get(name)
        if pool is None:
            limits = self.limits
            pool = self._pools[name] = ConnectionPool(
                Origin.of(system.url),
                self._contexts[name],
                size=limits.pool_size,
                connect_seconds=limits.connect_seconds,
                read_seconds=limits.read_seconds,
                total_seconds=limits.total_seconds,
            )
        return pool

    async def close(self) -> None:
        """Close every pool."""
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def __call__(self, ctx: RequestContext) -> web.Response:
        """Forward ``ctx`` to its route's upstream and relay the answer."""
        compiled = ctx.match.route
        system = compiled.system
        name = compiled.system_name
        policy = self._policy(compiled)
        headers = await self._outbound_headers(ctx, system, policy)
        body = await ctx.read_body()
        pool = self._pool(name, system)
        try:
            upstream = await pool.request(
                ctx.request.method,
                _target(pool.origin, ctx.match, ctx.query),
                headers,
                body,
                max_body=self.limits.max_response_bytes,
            )
        except ssl.SSLCertVerificationError as exc:
            raise self._failure(
                name, "tls_verification", 502, f"certificate verification failed: {exc}"
            ) from None
        except ssl.SSLError as exc:
            raise self._failure(name, "tls", 502, f"TLS error: {exc}") from None
        except TimeoutError:
            raise self._failure(name, "timeout", 504, "timed out") from None
        except UpstreamTooLargeError:
            raise self._failure(name, "too_large", 502, "response larger than the cap") from None
        except (OSError, UpstreamProtocolError, ValueError) as exc:
            raise self._failure(name, "connection", 502, f"{type(exc).__name__}: {exc}") from None
        if upstream.status >= _SERVER_ERROR:
            self._metrics.upstream_errors.labels(name, "status_5xx").inc()
            raise withheld_server_error(
                name, upstream.status, upstream.headers, upstream.body, ctx.correlation_id
            )
        relayed = policy.response_headers(upstream.headers)
        relayed["X-Request-Id"] = ctx.correlation_id
        return web.Response(status=upstream.status, body=upstream.body, headers=relayed)

    def _policy(self, route: CompiledRoute) -> HeaderPolicy:
        policy = self._policies.get(route)
        if policy is None:
            policy = self._policies[route] = HeaderPolicy.for_route(
                route.route, integration_subjects=route.integration.subjects
            )
        return policy

    async def _outbound_headers(
        self, ctx: RequestContext, system: System, policy: HeaderPolicy
    ) -> CIMultiDict[str]:
        request = ctx.request
        headers = policy.request_headers(request.headers)
        if ctx.content_type is not None:  # a validated body: the charset it was read in
            headers["Content-Type"] = ctx.content_type
        if ctx.idempotency_key is not None:  # per client: every caller shares our credential
            headers["Idempotency-Key"] = ctx.idempotency_key
        peer = for_node(client_address(request))  # the caller, as trusted proxies report it
        forwarded = f'for="{peer}";proto=https'
        # The Host check passed, so this is one of our names and a port, canonical:
        # never the caller's bytes (RFC 7239 §5.3 reads host= as a Host value).
        host = canonical_host(request.headers.get("Host", ""))
        headers["Forwarded"] = forwarded if host is None else f'{forwarded};host="{host}"'
        headers["X-Request-Id"] = ctx.correlation_id
        authorization = await self.authorization(ctx.match.route.system_name, system)
        if authorization is not None:
            headers["Authorization"] = authorization
        return headers

    async def authorization(self, name: str, system: System) -> str | None:
        """The ``Authorization`` value for calls to ``system`` (its vault credential), if any.

        A credential that cannot be resolved is a 503 refusal (the operator's log says why).
        """
        if not system.credentials:
            return None
        try:
            secret = self._secrets.cached(system.credentials)
            if secret is None:
                secret = await asyncio.to_thread(self._secrets.resolve, system.credentials)
        except InterlockError as exc:
            raise self._unavailable(name, system.credentials, exc) from None
        return "Bearer " + secret.reveal().decode()

    def _unavailable(self, system: str, reference: str, exc: InterlockError) -> Refusal:
        """The system's credential cannot be had (missing from the vault, vault unreachable).

        The gateway's own fault, not the upstream's: a generic 503 for the caller;
        the reference and the cause go to the operator's log only.
        """
        self._metrics.upstream_errors.labels(system, "credentials").inc()
        _log.error(
            "route unavailable: the system's credential cannot be resolved",
            system=system,
            reference=reference,
            cause=exc.message,
        )
        return Refusal(
            "route-unavailable",
            "this route is not available at the moment",
            log_reason=f"system {system}: credential {reference} unavailable",
        )

    def _failure(self, system: str, kind: str, status: int, reason: str) -> Refusal:
        self._metrics.upstream_errors.labels(system, kind).inc()
        _log.warning("upstream call failed", system=system, kind=kind, reason=reason)
        return Refusal(
            "upstream-timeout" if status == 504 else "upstream-failure",
            f"the upstream system '{system}' could not complete the request",
            log_reason=f"upstream {kind}",
        )
