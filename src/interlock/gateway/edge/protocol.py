"""What a proxy sends the decision endpoint, and what it gets back.

The proxy names the original request in headers (nginx ``auth_request``,
Traefik ``ForwardAuth`` and Caddy ``forward_auth``) or in the decision
request itself (Envoy ``ext_authz``, HTTP service: same method, the path
behind a prefix). The client certificate comes the way each proxy passes the
one *it verified*: nginx ``$ssl_client_escaped_cert`` (URL-encoded PEM) with
``$ssl_client_verify``, Envoy ``x-forwarded-client-cert`` (``Cert="..."``),
Traefik ``X-Forwarded-Tls-Client-Cert`` (base64 DER, URL-encoded) and Caddy's
``{http.request.tls.client.certificate_der_base64}`` placeholder. These
headers are believed only because the decision request came from the
configured proxy (:mod:`interlock.gateway.edge.listener`), which must
overwrite them on every request (docs/edge.md shows how for each).

An allowed request is answered 200 with the headers the proxy injects
upstream (:data:`ALLOW_HEADERS`); a refused one with its problem document.
nginx's ``auth_request`` maps only 2xx, 401 and 403, so for nginx every
refusal is 401 or 403 on the wire and carries its real status and problem
document in :data:`STATUS` and :data:`PROBLEM` for the generated
``error_page`` to answer with.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from interlock.errors import ConfigError
from interlock.gateway.routing import CompiledRoute
from interlock.privacy.subjects import RouteSubjects

__all__ = [
    "ALLOW_HEADERS",
    "AUTHZ_PATH",
    "CLIENT",
    "CONVENTIONS",
    "MAX_DECISION_WORKERS",
    "PROBLEM",
    "ROUTE",
    "STATUS",
    "UPSTREAM_AUTHORIZATION",
    "UPSTREAM_URI",
    "Convention",
    "ProxyKind",
    "UnreadableCertificateError",
    "needs_body",
    "proxy_certificate",
    "route_key",
    "worker_socket",
]

ProxyKind = Literal["nginx", "envoy", "traefik", "caddy"]
AUTHZ_PATH: Final = "/_interlock/authz"
#: Decision processes one proxy may spread its decisions over.
MAX_DECISION_WORKERS: Final = 64


def worker_socket(base: Path, worker: int) -> Path:
    """The decision socket of worker ``worker`` (1-based) of those named after ``base``.

    Worker 1 listens on ``base`` itself, so a single process needs no number;
    worker ``k`` on ``STEM-k.SUFFIX`` beside it (``authz.sock``,
    ``authz-2.sock``, ...): the sockets ``interlock edge nginx
    --decision-workers N`` lists and ``interlock edge serve --worker K``
    listens on.
    """
    if not 1 <= worker <= MAX_DECISION_WORKERS:
        raise ConfigError(
            f"decision workers are numbered 1 to {MAX_DECISION_WORKERS}, not {worker}"
        )
    if worker == 1:
        return base
    return base.with_name(f"{base.stem}-{worker}{base.suffix}")


# Answer headers of an allowed decision (injected upstream by the proxy).
CLIENT: Final = "X-Interlock-Client"  # the authenticated client's name
UPSTREAM_AUTHORIZATION: Final = "X-Interlock-Upstream-Authorization"  # from the vault
UPSTREAM_URI: Final = "X-Interlock-Upstream-Uri"  # path and query, as the gateway builds them
UPSTREAM_SYSTEM: Final = "X-Interlock-Upstream"  # the system (nginx upstream pool) name
ALLOW_HEADERS: Final = (CLIENT, UPSTREAM_AUTHORIZATION, UPSTREAM_URI, UPSTREAM_SYSTEM)
# A refusal, for nginx: the real status and the problem document (ASCII JSON).
STATUS: Final = "X-Interlock-Status"
PROBLEM: Final = "X-Interlock-Problem"
# nginx: the route whose location asks (route_key); the decision allows that route only.
ROUTE: Final = "X-Interlock-Route"

# nginx sets these in its auth location (proxy_set_header replaces a caller's own).
_NGINX_METHOD: Final = "X-Original-Method"
_NGINX_URI: Final = "X-Original-URI"
_NGINX_ADDRESS: Final = "X-Original-Remote-Addr"
_NGINX_CERT: Final = "X-Interlock-Client-Cert"
_NGINX_VERIFY: Final = "X-Interlock-Client-Verify"
# Traefik and Caddy name the original request the same way.
_FORWARDED_METHOD: Final = "X-Forwarded-Method"
_FORWARDED_URI: Final = "X-Forwarded-Uri"
_FORWARDED_FOR: Final = "X-Forwarded-For"
_ENVOY_CERT: Final = "X-Forwarded-Client-Cert"
_ENVOY_ADDRESS: Final = "X-Envoy-External-Address"
_TRAEFIK_CERT: Final = "X-Forwarded-Tls-Client-Cert"
_CADDY_CERT: Final = "X-Interlock-Client-Cert-Der"
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class UnreadableCertificateError(ValueError):
    """The proxy passed a client certificate that cannot be decoded (or one it did not verify)."""


@dataclass(frozen=True)
class Convention:
    """Where one kind of proxy puts the original method, target, address and certificate.

    ``method``/``uri`` None: the decision request's own method and path (Envoy,
    behind :data:`AUTHZ_PATH`). ``control`` are the headers the proxy adds for the
    decision only; they are removed before the stages see the request. ``route``:
    the header naming the route the proxy will forward to (:func:`route_key`),
    which must be the route the decision matches (None: the proxy forwards
    wherever its own configuration says).
    """

    kind: ProxyKind
    method: str | None
    uri: str | None
    address: str
    certificate: str
    control: tuple[str, ...]
    route: str | None = None

    @property
    def squashes_status(self) -> bool:
        """nginx ``auth_request`` passes 401 and 403 only: the real status travels in a header."""
        return self.kind == "nginx"


CONVENTIONS: Final[dict[ProxyKind, Convention]] = {
    "nginx": Convention(
        "nginx",
        _NGINX_METHOD,
        _NGINX_URI,
        _NGINX_ADDRESS,
        _NGINX_CERT,
        (_NGINX_METHOD, _NGINX_URI, _NGINX_ADDRESS, _NGINX_CERT, _NGINX_VERIFY, ROUTE),
        ROUTE,
    ),
    "envoy": Convention("envoy", None, None, _ENVOY_ADDRESS, _ENVOY_CERT, (_ENVOY_ADDRESS,)),
    "traefik": Convention(
        "traefik",
        _FORWARDED_METHOD,
        _FORWARDED_URI,
        _FORWARDED_FOR,
        _TRAEFIK_CERT,
        (_FORWARDED_METHOD, _FORWARDED_URI, "X-Forwarded-Host", "X-Forwarded-Proto"),
    ),
    "caddy": Convention(
        "caddy",
        _FORWARDED_METHOD,
        _FORWARDED_URI,
        _FORWARDED_FOR,
        _CADDY_CERT,
        (_FORWARDED_METHOD, _FORWARDED_URI, "X-Forwarded-Host", "X-Forwarded-Proto"),
    ),
}


def route_key(route: CompiledRoute) -> str:
    """The name of ``route`` and of where it forwards to, as nginx and the decision compare it.

    The generated nginx location of a route sends it with every decision it
    asks for, and the decision allows only the route it matched itself: the
    system's credential goes to that route's system or nowhere, even when
    nginx's configuration and the decision's manifest are not the same
    version. It changes with the route's integration, method and path and
    its system's name, URL and trust anchor (not with its place in the
    manifest: a route added before it changes nothing).
    """
    spec, system = route.route, route.system
    parts = (route.integration_name, spec.method, spec.path, route.system_name, system.url)
    digest = hashlib.sha256("\0".join((*parts, system.ca)).encode()).hexdigest()
    return digest[:32]


def needs_body(route: CompiledRoute) -> bool:
    """Whether a stage of ``route`` reads the body or the response: such routes pass through.

    Everything else (a bodyless method; no replay policy, idempotency,
    minimisation, business rules or data-subject locators) is decided at the
    edge, and its body, if any, is not forwarded.
    """
    spec = route.route
    if spec.method in _BODY_METHODS:
        return True
    if (
        spec.replay is not None
        or spec.idempotency is not None
        or spec.response_fields is not None
        or spec.request_fields is not None
        or spec.rules
    ):
        return True
    try:
        return bool(RouteSubjects.for_route(route.integration.subjects, spec))
    except ValueError:  # the embedded pipeline refuses to build it: let it say so
        return True


def proxy_certificate(convention: Convention, headers: CIMultiDictProxy[str]) -> bytes | None:
    """The DER client certificate the proxy verified, or None when the client sent none.

    Raises :class:`UnreadableCertificateError` for a value that cannot be
    decoded, or one nginx says it did not verify.
    """
    values = headers.getall(convention.certificate, [])
    if not values or not values[0].strip():
        return None
    if len(values) != 1:
        raise UnreadableCertificateError("more than one certificate header")
    value = values[0].strip()
    if convention.kind == "nginx" and headers.get(_NGINX_VERIFY, "") != "SUCCESS":
        raise UnreadableCertificateError("the proxy did not verify the certificate")
    if convention.kind == "envoy":
        value = _xfcc_cert(value)
    text = unquote(value)
    try:
        if "-----BEGIN CERTIFICATE-----" in text:
            return ssl.PEM_cert_to_DER_cert(text)
        return base64.b64decode("".join(text.split()), validate=True)
    except (ValueError, binascii.Error):
        raise UnreadableCertificateError("the certificate cannot be decoded") from None


def _xfcc_cert(value: str) -> str:
    """The ``Cert`` of the nearest element of an Envoy ``x-forwarded-client-cert`` header."""
    element = value.rsplit(",", maxsplit=1)[-1]  # Envoy appends: the last element is its own
    for pair in element.split(";"):
        key, _, found = pair.partition("=")
        if key.strip().lower() == "cert":
            return found.strip().strip('"')
    raise UnreadableCertificateError("no Cert in x-forwarded-client-cert")
