"""The gateway's own endpoints: small objects mounted in one ordered table.

Health, the JWKS and authorization server metadata (RFC 8414), the
token, revocation and introspection endpoints (RFC 6749, 7009, 7662), the CRL
and the vault API answer ahead of the manifest's routes. Each is one object
with one method; :class:`Endpoints` holds them in the order they are tried,
written in exactly one place (:func:`interlock.gateway.assembly.build_gateway`).
A mount with ``methods`` answers only those methods: a ``POST /healthz`` goes
on to the routes like any other request (and meets their 404). The metrics
are not among them: they have a listener of their own
(:mod:`interlock.gateway.metrics_listener`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Protocol, get_args
from urllib.parse import parse_qs

from aiohttp import web

from interlock.errors import Refusal
from interlock.gateway.audit_trail import GatewayAudit, TokenAnswer
from interlock.gateway.client_address import client_address
from interlock.gateway.context import peer_certificate
from interlock.gateway.crl import CrlPublisher
from interlock.gateway.metrics import GatewayMetrics
from interlock.gateway.mtls import ClientCertificates
from interlock.gateway.problems import oauth_error_response
from interlock.gateway.stages.authenticate import Authentication
from interlock.gateway.vault_api import VaultApi
from interlock.logs import get_logger
from interlock.oauth.jwks import JwksPublisher
from interlock.oauth.token_endpoint import TokenEndpoint, TokenResponse, metadata

if TYPE_CHECKING:  # privacy_api mounts through this module: no import cycle at run time
    from interlock.gateway.privacy_api import PrivacyApi

__all__ = [
    "AuthorizationMetadata",
    "CrlEndpoint",
    "Endpoint",
    "Endpoints",
    "Health",
    "JwksEndpoint",
    "Mount",
    "OAuthForm",
    "OAuthOperation",
    "PrivacyEndpoint",
    "VaultEndpoint",
]

_log = get_logger("interlock.gateway")
_CACHE_A_MINUTE: Final = {"Cache-Control": "public, max-age=60"}


class Endpoint(Protocol):
    """One of the gateway's own endpoints."""

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Answer ``request``; refuse with :class:`~interlock.errors.Refusal`."""
        ...


@dataclass(frozen=True)
class Mount:
    """Where an endpoint answers: an exact path (or every path under ``prefix``), and methods.

    ``below`` is the label of the paths under a prefix (``/v1/secrets/{name}``), or a
    function giving each its label: metrics and the audit trail name a template, never
    the concrete path.
    """

    path: str
    endpoint: Endpoint
    methods: frozenset[str] | None = None  # None: every method (the endpoint says 405 itself)
    prefix: bool = False
    below: str | Callable[[str], str] | None = None

    def matches(self, path: str, method: str) -> bool:
        """Whether this mount answers ``method`` on ``path``."""
        if self.methods is not None and method not in self.methods:
            return False
        if self.prefix:
            return path == self.path or path.startswith(self.path + "/")
        return path == self.path

    def label(self, path: str) -> str:
        """The label of a request for ``path`` that this mount answers."""
        if callable(self.below):
            return self.below(path)
        if self.prefix and path != self.path:
            return self.below or self.path + "/{path}"
        return self.path


class Endpoints:
    """The own endpoints in the order they are tried; the first that matches answers."""

    def __init__(self, mounts: Sequence[Mount]) -> None:
        """Mount ``mounts``, in this order."""
        self._mounts = tuple(mounts)

    def find(self, path: str, method: str) -> Mount | None:
        """The mount that answers ``method`` on ``path``, if any."""
        return next((m for m in self._mounts if m.matches(path, method)), None)

    @property
    def paths(self) -> tuple[str, ...]:
        """The mounted paths, in order (for tests and the metrics' route labels)."""
        return tuple(m.path for m in self._mounts)


GET: Final = frozenset({"GET"})


class Health:
    """``GET /healthz``: the process answers (readiness is not decided here)."""

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """``{"status": "ok"}``."""
        return web.json_response({"status": "ok"})


@dataclass(frozen=True)
class JwksEndpoint:
    """``GET /.well-known/jwks.json``: the token-signing keys' public halves."""

    jwks: JwksPublisher

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """The key set, cacheable for a minute (keys are published before they sign)."""
        return web.Response(
            body=await self.jwks.body(),
            content_type="application/jwk-set+json",
            headers=_CACHE_A_MINUTE,
        )


@dataclass(frozen=True)
class AuthorizationMetadata:
    """``GET /.well-known/oauth-authorization-server`` (RFC 8414)."""

    endpoint: TokenEndpoint

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """The metadata document."""
        return web.json_response(metadata(self.endpoint))


@dataclass(frozen=True)
class CrlEndpoint:
    """``GET /pki/crl``: the current intermediate's revocation list (DER).

    With ``every_issuer`` (``GET /pki/crl/all.pem``): the lists of every
    intermediate still in use, PEM, one after the other, for relying parties
    that load a CRL file (certificates issued before ``pki renew-intermediate``
    are listed only there).
    """

    crl: CrlPublisher
    every_issuer: bool = False

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """The CRL(s), cacheable for a minute."""
        if self.every_issuer:
            return web.Response(
                body=self.crl.pem, content_type="application/x-pem-file", headers=_CACHE_A_MINUTE
            )
        return web.Response(
            body=self.crl.der, content_type="application/pkix-crl", headers=_CACHE_A_MINUTE
        )


@dataclass(frozen=True)
class VaultEndpoint:
    """``/v1/secrets``: the vault API, for clients authenticated as on any route."""

    vault: VaultApi
    authenticate: Authentication

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Authenticate, authorise (in the vault) and answer."""
        return await self.vault.handle(request, self.authenticate)


@dataclass(frozen=True)
class PrivacyEndpoint:
    """``/v1/privacy``: data-subject requests and traces, for clients holding ``privacy.admin``."""

    privacy: PrivacyApi
    authenticate: Authentication

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Authenticate, authorise and answer."""
        return await self.privacy.handle(request, self.authenticate)


OAuthOperation = Literal["token", "revoke", "introspect"]
"""The form-encoded endpoints of the authorization server."""


@dataclass(frozen=True)
class OAuthForm:
    """``POST /oauth2/token``, ``/oauth2/revoke`` or ``/oauth2/introspect`` (form-encoded).

    A refusal is answered as RFC 6749 §5.2 says (``error``, ``error_description``),
    from the same refusal codes as every other answer; every token answer is on
    the audit trail (the request's entry becomes ``token.issue`` or ``token.refuse``),
    and counted (tokens issued, authentication failures by code).
    """

    endpoint: TokenEndpoint
    operation: OAuthOperation
    audit: GatewayAudit
    metrics: GatewayMetrics
    certificates: ClientCertificates | None = None  # the listener asks for client certificates

    def __post_init__(self) -> None:
        if self.operation not in get_args(OAuthOperation):
            raise ValueError(f"no OAuth endpoint {self.operation!r}")

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Answer one form-encoded OAuth request."""
        if request.method != "POST":
            raise Refusal("method-not-allowed", "use POST", headers={"Allow": "POST"})
        client: str | None = None
        scope: str | None = None
        jti: str | None = None
        try:
            form = await _form(request)
            authorization = request.headers.getall("Authorization", [])
            if self.operation == "token":
                certificate = _usable_certificate(request, self.certificates)
                answer = await _token_answer(
                    self.endpoint, request, authorization, form, certificate
                )
            else:
                call = (
                    self.endpoint.revoke if self.operation == "revoke" else self.endpoint.introspect
                )
                answer = await asyncio.to_thread(call, authorization, form, client_address(request))
        except Refusal as refusal:
            response = oauth_error_response(refusal)
            reason: str | None = refusal.log_reason
            self.metrics.refused(refusal.code)
            _log.info(
                "oauth request refused", path=request.path, reason=reason, status=response.status
            )
        else:
            response = web.json_response(answer.body, status=answer.status, headers=answer.headers)
            client, reason, jti = answer.client, answer.log_reason, answer.jti
            granted = answer.body.get("scope")
            scope = granted if isinstance(granted, str) else None
        if self.operation == "token":
            self.audit.token(request, TokenAnswer(client, reason, scope, jti))
            if response.status == 200:  # RFC 6749 §5.1
                self.metrics.token_issued()
        return response


async def _form(request: web.BaseRequest) -> dict[str, list[str]]:
    """The parameters of a form-encoded OAuth request (RFC 6749 §4.4.2, §2.3.1)."""
    if request.content_type != "application/x-www-form-urlencoded":
        raise Refusal("invalid_request", "send a form-urlencoded body")
    return parse_qs((await request.read()).decode("utf-8", "replace"), keep_blank_values=True)


def _usable_certificate(
    request: web.BaseRequest, certificates: ClientCertificates | None
) -> bytes | None:
    """The connection's client certificate, checked now (RFC 8705 §2: else ``invalid_client``).

    The handshake checked it once; a resumed session or a kept-alive connection
    may carry it past a revocation or its expiry.
    """
    if certificates is None:  # the listener asks for no client certificate
        return None
    certificate = peer_certificate(request)
    if certificate is None:
        return None
    try:
        certificates.check(certificate, client_address(request))
    except Refusal as refusal:
        raise Refusal(
            "invalid_client",
            refusal.detail,
            headers={"Connection": "close"},
            log_reason=refusal.log_reason,
        ) from None
    return certificate


async def _token_answer(
    endpoint: TokenEndpoint,
    request: web.BaseRequest,
    authorization: list[str],
    form: dict[str, list[str]],
    certificate: bytes | None,
) -> TokenResponse:
    """A token request: on the loop when nothing needs I/O, else in a worker thread."""
    dpop = request.headers.getall("DPoP", [])
    if not dpop and certificate is None:
        answer = endpoint.handle_now(authorization, form, client_address(request))
        if answer is not None:
            return answer
    return await asyncio.to_thread(
        endpoint.handle,
        authorization,
        form,
        client_address(request),
        # No uri: a proof's htu must name the token endpoint under the issuer (the public
        # URL), never a URL built from the caller's Host header.
        dpop=dpop,
        peer_certificate=certificate,
    )
