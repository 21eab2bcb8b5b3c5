"""What a request carries through the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from interlock.gateway.body import read_limited
from interlock.gateway.routing import RouteMatch
from interlock.identity.grants import Principal
from interlock.privacy.subjects import Sighting

__all__ = ["RequestContext", "peer_certificate", "remember_principal", "remembered_principal"]


@dataclass
class RequestContext:
    """One request: the raw request, its correlation id, route and (once known) caller."""

    request: web.BaseRequest
    correlation_id: str
    match: RouteMatch
    query: str
    principal: Principal | None = None
    # The body as it is forwarded: read once (within the route's limit), possibly
    # rewritten by validation (neutralised CSV cells, minimised JSON).
    body: bytes | None = None
    # The Content-Type forwarded with a body validation read (``<media type>;
    # charset=utf-8``: what it was checked as); None forwards the caller's own.
    content_type: str | None = None
    # The Idempotency-Key sent upstream: derived per client and route from the
    # caller's (stages.idempotency); None sends none.
    idempotency_key: str | None = None
    # The JSON request body as validation parsed it and as it is forwarded (after
    # request minimisation); None for other media types and bodyless requests.
    parsed: Any = None
    # Fields data minimisation removed from the request and the response.
    removed_fields: int = 0
    # Data subjects identified in what crossed the gateway (the route's ``subjects``),
    # normalised; recorded as keyed hashes in the lineage index, never in clear.
    sightings: list[Sighting] = field(default_factory=list)
    # Identifier values at a locator that did not normalise (or bodies that could not be
    # read), and identifiers past the per-request cap: counts only, never values.
    subjects_unparsed: int = 0
    subjects_overflow: int = 0

    async def read_body(self) -> bytes:
        """The request body, read once and at most the route's ``max_body`` bytes (else 413)."""
        if self.body is None:
            self.body = await read_limited(self.request, self.match.route.route.max_body)
        return self.body

    @property
    def peer_certificate(self) -> bytes | None:
        """The client's certificate (DER) as verified by the TLS handshake, if it sent one.

        Read from the connection on demand, so routes that do not look pay nothing.
        ``None`` when the listener does not ask for certificates or the client sent none.
        """
        return peer_certificate(self.request)


def peer_certificate(request: web.BaseRequest) -> bytes | None:
    """The client certificate (DER) the TLS handshake verified, if the client sent one."""
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if ssl_object is None:
        return None
    der: bytes | None = ssl_object.getpeercert(binary_form=True)
    return der


_PRINCIPAL: Final = web.RequestKey("interlock.principal", Principal)


def remember_principal(request: web.BaseRequest, principal: Principal) -> None:
    """Note who an own endpoint authenticated, for the request's audit entry and access log."""
    request[_PRINCIPAL] = principal


def remembered_principal(request: web.BaseRequest) -> Principal | None:
    """Whom an own endpoint authenticated for ``request`` (None: nobody, or not noted)."""
    return request.get(_PRINCIPAL)
