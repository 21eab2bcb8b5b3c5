"""An nginx configuration for edge mode, generated from the manifest (text only).

nginx terminates TLS (the Mozilla intermediate profile, optionally verifying
client certificates against Interlock's CA) and carries the bytes; for every
request it asks the decision endpoint (``auth_request`` to the unix socket)
and forwards only what was allowed, to the upstream path the decision names,
with the system's credential the decision returns (it is never written into
these files), verifying the upstream's certificate against the system's trust
anchor and host name.

One ``location`` per path template (and per overlap of templates), matched
as the router matches (exact paths before parameters, a parameter is one
segment), dispatches each method to the route the router itself picks for
it (a GET route answers HEAD, the first route that fits wins, falling through
to less specific templates): to one internal location per route decided at
the edge (its header allow-list, body limit and timeouts), or to Interlock's
own listener for routes that need the body
(:func:`~interlock.gateway.edge.protocol.needs_body`); every other method
or path goes to a bare decision that refuses (405 with ``Allow``, 404, 400
for a bad path). A route's location names its route to the decision
(:func:`~interlock.gateway.edge.protocol.route_key`), which refuses any
other, and the bare decision names none: nginx forwards only the route that
was decided, and each request is decided once. Every refusal is the
decision's RFC 9457 document with its real status (the ``X-Interlock-Status``
convention); an unreachable or slow decision endpoint is a 503 problem (fail
closed), never a forwarded request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from interlock.config.manifest import Manifest, System
from interlock.errors import ConfigError
from interlock.gateway.edge.protocol import (
    AUTHZ_PATH,
    CLIENT,
    MAX_DECISION_WORKERS,
    PROBLEM,
    ROUTE,
    STATUS,
    UPSTREAM_AUTHORIZATION,
    UPSTREAM_SYSTEM,
    UPSTREAM_URI,
    needs_body,
    route_key,
    worker_socket,
)
from interlock.gateway.header_policy import HeaderPolicy
from interlock.gateway.messaging_keys import MESSAGING_PREFIX
from interlock.gateway.privacy_api import PREFIX as PRIVACY_PREFIX
from interlock.gateway.problems import PROBLEM_TYPE_BASE, REFUSALS
from interlock.gateway.routing import CompiledRoute, RouteTable
from interlock.gateway.schema_api import PREFIX as SCHEMAS_PREFIX
from interlock.gateway.tls import INTERMEDIATE_CIPHERS
from interlock.gateway.upstream import UpstreamLimits
from interlock.gateway.vault_api import PREFIX as VAULT_PREFIX

__all__ = ["NginxOptions", "render_nginx"]

_LIMITS: Final = UpstreamLimits()
SYSTEM_BUNDLE: Final = Path("/etc/ssl/certs/ca-certificates.crt")
# Interlock's own endpoints: answered by its listener, never decided here.
_OWN_PREFIXES: Final = (
    "/oauth2/",
    "/.well-known/",
    "/pki/",
    VAULT_PREFIX + "/",
    PRIVACY_PREFIX + "/",
    SCHEMAS_PREFIX + "/",
    MESSAGING_PREFIX + "/",
)
_OWN_EXACT: Final = ("/healthz", "/readyz", VAULT_PREFIX, PRIVACY_PREFIX, SCHEMAS_PREFIX)
_UNSAFE: Final = re.compile(r'["\\\s{};$\x00-\x1f]')
# A parameter's value in a sample request path: no template's segment is NUL (_UNSAFE).
_ANY: Final = "\x00"
# Locations for the overlaps of path templates, at most (each is a meet of templates).
MAX_OVERLAPS: Final = 4096
# The decision's answer headers, as nginx variables: (variable, header).
_FROM_DECISION: Final = (
    ("il_status", STATUS),
    ("il_problem", PROBLEM),
    ("il_request_id", "X-Request-Id"),
    ("il_client", CLIENT),
    ("il_upstream_auth", UPSTREAM_AUTHORIZATION),
    ("il_upstream_uri", UPSTREAM_URI),
    ("il_system", UPSTREAM_SYSTEM),
    ("il_www_authenticate", "WWW-Authenticate"),
    ("il_retry_after", "Retry-After"),
    ("il_allow", "Allow"),
    ("il_ratelimit", "RateLimit"),
    ("il_ratelimit_policy", "RateLimit-Policy"),
    ("il_dpop_nonce", "DPoP-Nonce"),
    ("il_accept_encoding", "Accept-Encoding"),
)
# auth_request copies the decision's WWW-Authenticate onto a 401 itself: once, not twice.
_REFUSAL_HEADERS: Final = (
    ("WWW-Authenticate", "il_www_authenticate_not_401"),
    ("Retry-After", "il_retry_after"),
    ("Allow", "il_allow"),
    ("RateLimit", "il_ratelimit"),
    ("RateLimit-Policy", "il_ratelimit_policy"),
    ("DPoP-Nonce", "il_dpop_nonce"),
    ("Accept-Encoding", "il_accept_encoding"),
)


@dataclass(frozen=True)
class NginxOptions:
    """Where nginx listens and what it trusts; paths are written into the configuration.

    ``interlock`` is Interlock's own listener (``HOST:PORT``, TLS verified
    against ``interlock_ca`` for ``interlock_name``): routes that need the
    body and Interlock's own endpoints go there. ``anchors`` maps a manifest
    trust anchor (``pki:NAME``) to its CA file. ``client_ca``: verify client
    certificates (optional) against it; ``client_crl``: a CRL file covering
    every CA of the chain (nginx checks them all), else revocation is the
    decision's, checked on every request. ``decision_workers``: decision
    processes, each on its own socket named after ``decision_socket``
    (:func:`~interlock.gateway.edge.protocol.worker_socket`); nginx spreads the
    decisions over them and skips one it cannot reach.
    """

    listen: str
    certificate: Path
    private_key: Path
    decision_socket: Path
    interlock: str
    interlock_ca: Path
    prefix: Path
    anchors: Mapping[str, Path]
    server_names: tuple[str, ...] = ("_",)
    interlock_name: str = "localhost"
    client_ca: Path | None = None
    client_crl: Path | None = None
    workers: str = "auto"
    user: str | None = None
    decision_seconds: float = 2.0
    decision_workers: int = 1
    limits: UpstreamLimits = _LIMITS
    system_bundle: Path = SYSTEM_BUNDLE


def render_nginx(manifest: Manifest, options: NginxOptions) -> str:
    """The whole ``nginx.conf`` for ``manifest``; a :class:`ConfigError` names what cannot be."""
    if not 1 <= options.decision_workers <= MAX_DECISION_WORKERS:
        raise ConfigError(
            f"decision workers: 1 to {MAX_DECISION_WORKERS}, not {options.decision_workers}"
        )
    routes = RouteTable.compile(manifest)
    lines: list[str] = []
    out = lines.append
    if options.user:
        out(f"user {_word(options.user)};")
    out(f"worker_processes {_word(options.workers)};")
    out(f"pid {_path(options.prefix / 'nginx.pid')};")
    out(f"error_log {_path(options.prefix / 'error.log')} warn;")
    out("events { worker_connections 4096; }")
    out("http {")
    out("  access_log off;")
    out("  server_tokens off;")
    out("  default_type application/octet-stream;")
    for kind in ("client_body", "proxy"):
        out(f"  {kind}_temp_path {_path(options.prefix / 'tmp' / kind)};")
    out('  map $remote_addr $il_forwarded_for { "~:" "[$remote_addr]"; default $remote_addr; }')
    out('  map $il_status $il_www_authenticate_not_401 { "401" ""; default $il_www_authenticate; }')
    decisions = " ".join(
        f"server unix:{_path(worker_socket(options.decision_socket, worker))};"
        for worker in range(1, options.decision_workers + 1)
    )
    out(f"  upstream interlock_decisions {{ {decisions} keepalive 64; }}")
    out(f"  upstream interlock_gateway {{ server {_word(options.interlock)}; keepalive 32; }}")
    for name, system in manifest.systems.items():
        server = _authority(name, system)
        out(f"  upstream system_{_word(name)} {{ server {server}; keepalive 64; }}")
    out("  server {")
    lines.extend("    " + line for line in _server(options))
    lines.extend("    " + line for line in _decision_location(options))
    lines.extend("    " + line for line in _refusal_locations())
    lines.extend("    " + line for line in _own_locations(options, manifest))
    lines.extend("    " + line for line in _template_locations(routes))
    for index, route in enumerate(routes.routes):
        if not needs_body(route):
            lines.extend("    " + line for line in _route_location(index, route, options))
    lines.extend(["  }", "}", ""])
    return "\n".join(lines)


def _server(options: NginxOptions) -> list[str]:
    lines = [
        f"listen {_word(options.listen)} ssl;",
        f"server_name {' '.join(_word(n) for n in options.server_names)};",
        f"ssl_certificate {_path(options.certificate)};",
        f"ssl_certificate_key {_path(options.private_key)};",
        # Mozilla intermediate: TLS 1.2 and 1.3, forward-secret AEAD suites only.
        "ssl_protocols TLSv1.2 TLSv1.3;",
        f"ssl_ciphers {INTERMEDIATE_CIPHERS};",
        "ssl_prefer_server_ciphers off;",
        "ssl_session_timeout 1d;",
        "ssl_session_cache shared:interlock:10m;",
        "ssl_session_tickets off;",
        "client_header_buffer_size 8k;",
        "large_client_header_buffers 4 16k;",
    ]
    if options.client_ca is not None:
        lines += [
            f"ssl_client_certificate {_path(options.client_ca)};",
            "ssl_verify_client optional;",
            "ssl_verify_depth 3;",
        ]
        if options.client_crl is not None:
            lines.append(f"ssl_crl {_path(options.client_crl)};")
    # What the decision answers, for the locations below (auth_request_set is per request).
    lines += [f"auth_request_set ${var} $upstream_http_{_var(h)};" for var, h in _FROM_DECISION]
    lines += [
        "error_page 401 403 500 502 503 504 = @interlock_refused;",
        "error_page 495 496 = @interlock_certificate;",
        "error_page 413 = @interlock_too_large;",
        "error_page 400 = @interlock_bad_request;",
        # nginx's own 404: an internal location asked for from outside (nothing decided).
        "error_page 404 = @interlock_not_found;",
    ]
    return lines


def _decision_location(options: NginxOptions) -> list[str]:
    seconds = f"{options.decision_seconds:g}s"
    return [
        f"location = {AUTHZ_PATH} {{",
        "  internal;",
        "  proxy_pass http://interlock_decisions;",
        "  proxy_http_version 1.1;",
        '  proxy_set_header Connection "";',
        "  proxy_pass_request_body off;",
        '  proxy_set_header Content-Length "";',
        "  proxy_set_header Host $http_host;",
        "  proxy_set_header X-Original-Method $request_method;",
        "  proxy_set_header X-Original-URI $request_uri;",
        "  proxy_set_header X-Original-Remote-Addr $remote_addr;",
        "  proxy_set_header X-Interlock-Client-Cert $ssl_client_escaped_cert;",
        "  proxy_set_header X-Interlock-Client-Verify $ssl_client_verify;",
        # The subrequest shares the location's variables: the route nginx will forward to.
        f"  proxy_set_header {ROUTE} $il_route;",
        # Fail closed: unreachable or slow is a 500 for auth_request, answered 503 below.
        f"  proxy_connect_timeout {seconds};",
        f"  proxy_send_timeout {seconds};",
        f"  proxy_read_timeout {seconds};",
        # With several decision processes one that cannot be reached (stopped,
        # restarting) is skipped for the next at once; a slow one uses up the
        # deadline (no second try: 503) and is left out for nginx's fail_timeout.
        "  proxy_next_upstream error timeout;",
        f"  proxy_next_upstream_timeout {seconds};",
        "}",
    ]


def _refusal_locations() -> list[str]:
    statuses = sorted({kind.status for kind in REFUSALS.values()})
    lines = ["location @interlock_refused {", "  default_type application/problem+json;"]
    lines += _problem_headers()
    lines += [f"  if ($il_status = {s}) {{ return {s} $il_problem; }}" for s in statuses]
    # Allowed, then the upstream could not be reached: nginx's own 502/504.
    lines.append(
        '  if ($il_system != "") { return 502 '
        + _problem(
            502,
            "upstream-failure",
            "Upstream failed",
            "the upstream system could not complete the request",
        )
        + "; }"
    )
    lines += [
        "  return 503 "
        + _problem(
            503,
            "decision-unavailable",
            "Service unavailable",
            "the request cannot be checked at the moment; retry shortly",
        )
        + ";",
        "}",
    ]
    for name, status, code, title, detail in (
        (
            "certificate",
            401,
            "unauthorized",
            "Authentication required",
            "the client certificate was not accepted",
        ),
        ("too_large", 413, "body-too-large", "Request body too large", "the body is too large"),
        ("bad_request", 400, "invalid-request", "Invalid request", "the request is malformed"),
        ("not_found", 404, "not-found", "Not found", "no route matches this path"),
    ):
        lines += [
            f"location @interlock_{name} {{",
            "  default_type application/problem+json;",
            '  add_header Cache-Control "no-store" always;',
            f"  return {status} {_problem(status, code, title, detail)};",
            "}",
        ]
    return lines


def _problem_headers() -> list[str]:
    lines = [
        "  add_header X-Request-Id $il_request_id always;",
        '  add_header Cache-Control "no-store" always;',
    ]
    lines += [f"  add_header {name} ${var} always;" for name, var in _REFUSAL_HEADERS]
    return lines


def _problem(status: int, code: str, title: str, detail: str) -> str:
    # Fixed text only: a variable ($uri is decoded) could close the string and add members.
    body = (
        f'{{"type":"{PROBLEM_TYPE_BASE}{code}","title":"{title}","status":{status},'
        f'"detail":"{detail}"}}'
    )
    return "'" + body + "'"


def _own_locations(options: NginxOptions, manifest: Manifest) -> list[str]:
    route_prefixes = {r.path for flow in manifest.integrations.values() for r in flow.routes}
    lines: list[str] = []
    for prefix in _OWN_PREFIXES:
        if any(path.startswith(prefix) for path in route_prefixes):
            raise ConfigError(
                f"a route under {prefix} would be shadowed by Interlock's own endpoints"
            )
        lines += [f"location ^~ {prefix} {{", *_pass(options, "https://interlock_gateway"), "}"]
    for path in _OWN_EXACT:
        lines += [f"location = {path} {{", *_pass(options, "https://interlock_gateway"), "}"]
    # Routes that need the body: Interlock's own pipeline, the original target unchanged.
    largest = max(
        (r.max_body for flow in manifest.integrations.values() for r in flow.routes), default=0
    )
    lines += [
        "location = /_interlock/pass {",
        "  internal;",
        f"  client_max_body_size {largest};",
        *_pass(options, "https://interlock_gateway$request_uri"),
        "}",
        # No route, or not this method: the decision refuses (404, 405, 400), once. It
        # allows no request here: a route it matches (a configuration generated from
        # another manifest) is refused 503, since this location names none ($il_route).
        "location = /_interlock/decide {",
        "  internal;",
        '  set $il_route "";',
        f"  auth_request {AUTHZ_PATH};",
        *_pass(options, "https://interlock_gateway$request_uri"),
        "}",
        "location / {",
        "  rewrite ^ /_interlock/decide last;",
        "}",
    ]
    return lines


def _pass(options: NginxOptions, target: str) -> list[str]:
    limits = options.limits
    return [
        f"  proxy_pass {target};",
        "  proxy_http_version 1.1;",
        '  proxy_set_header Connection "";',
        "  proxy_set_header Host $http_host;",
        "  proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "  proxy_ssl_verify on;",
        f"  proxy_ssl_trusted_certificate {_path(options.interlock_ca)};",
        f"  proxy_ssl_name {_word(options.interlock_name)};",
        "  proxy_ssl_server_name on;",
        "  proxy_ssl_session_reuse on;",
        f"  proxy_connect_timeout {limits.connect_seconds:g}s;",
        f"  proxy_read_timeout {limits.read_seconds:g}s;",
        f"  proxy_send_timeout {limits.read_seconds:g}s;",
    ]


def _template_locations(routes: RouteTable) -> list[str]:
    """One location per path template and overlap, in the router's order; dispatch as it does.

    nginx takes the first location that fits, the router the first route that
    fits, falling through to less specific templates: a location for each
    overlap of templates (``/a/{x}`` and ``/{y}/b`` make ``/a/b``) is the
    first to fit exactly the requests whose candidate routes are the same,
    so asking the router with a sample of its paths gives every method's
    route for all of them.
    """
    index = {route: number for number, route in enumerate(routes.routes)}
    patterns = _overlaps({route.pattern for route in routes.routes})
    ordered = sorted(patterns, key=lambda p: (tuple(s is None for s in p), [s or "" for s in p]))
    lines: list[str] = []
    for pattern in ordered:
        sample = tuple(_ANY if piece is None else piece for piece in pattern)
        methods = {r.route.method for r in routes.routes if _fits(r.pattern, sample)}
        if "GET" in methods:
            methods.add("HEAD")
        lines.append(f"location {_matcher(pattern)} {{")
        for method in sorted(methods):
            route = routes.match(method, sample).route
            target = (
                "/_interlock/pass" if needs_body(route) else f"/_interlock/route/{index[route]}"
            )
            lines.append(f"  if ($request_method = {method}) {{ rewrite ^ {target} last; }}")
        lines += ["  rewrite ^ /_interlock/decide last;", "}"]
    return lines


def _overlaps(patterns: set[tuple[str | None, ...]]) -> set[tuple[str | None, ...]]:
    """``patterns`` and every meet of two or more of them (the paths both fit)."""
    found = set(patterns)
    by_length: dict[int, list[tuple[str | None, ...]]] = {}
    for pattern in found:
        by_length.setdefault(len(pattern), []).append(pattern)
    fresh = list(found)
    while fresh:
        made = []
        for one in fresh:
            for other in list(by_length[len(one)]):
                meet = _meet(one, other)
                if meet is not None and meet not in found:
                    found.add(meet)
                    made.append(meet)
                    by_length[len(meet)].append(meet)
        if len(found) > len(patterns) + MAX_OVERLAPS:
            raise ConfigError(
                f"the routes' path templates overlap in more than {MAX_OVERLAPS} ways "
                "(concrete segments against parameters): too many nginx locations"
            )
        fresh = made
    return found


def _meet(
    one: tuple[str | None, ...], other: tuple[str | None, ...]
) -> tuple[str | None, ...] | None:
    """The template of the paths both fit (a concrete segment wins), or None: none do."""
    pieces: list[str | None] = []
    for a, b in zip(one, other, strict=True):
        if a is not None and b is not None and a != b:
            return None
        pieces.append(a if a is not None else b)
    return tuple(pieces)


def _fits(pattern: tuple[str | None, ...], segments: tuple[str, ...]) -> bool:
    return len(pattern) == len(segments) and all(
        piece is None or piece == segment for piece, segment in zip(pattern, segments, strict=True)
    )


def _matcher(pattern: tuple[str | None, ...]) -> str:
    for piece in pattern:
        if piece is not None and _UNSAFE.search(piece):
            raise ConfigError(f"path segment {piece!r} cannot be written into an nginx location")
    if all(piece is not None for piece in pattern):
        return '= "/' + "/".join(p for p in pattern if p is not None) + '"'
    parts = ["[^/]+" if piece is None else re.escape(piece) for piece in pattern]
    return '~ "^/' + "/".join(parts) + '$"'


def _route_location(index: int, route: CompiledRoute, options: NginxOptions) -> list[str]:
    system = route.system
    host = urlsplit(system.url).hostname or ""
    limits = options.limits
    policy = HeaderPolicy.for_route(route.route, integration_subjects=route.integration.subjects)
    lines = [
        f"location = /_interlock/route/{index} {{  # {route.label}",
        "  internal;",
        # Named to the decision, which allows this route only (never another's credential).
        f'  set $il_route "{route_key(route)}";',
        f"  auth_request {AUTHZ_PATH};",
        f"  client_max_body_size {route.route.max_body};",
        f"  proxy_pass https://system_{_word(route.system_name)}$il_upstream_uri;",
        "  proxy_http_version 1.1;",
        '  proxy_set_header Connection "";',
        # A route decided at the edge reads no body: none is forwarded.
        "  proxy_pass_request_body off;",
        '  proxy_set_header Content-Length "";',
        # Headers pass the route's allow-list (gateway/header_policy.py), nothing else.
        "  proxy_pass_request_headers off;",
        f"  proxy_set_header Host {_authority(route.system_name, system)};",
        "  proxy_set_header Authorization $il_upstream_auth;",
        "  proxy_set_header X-Request-Id $il_request_id;",
        "  proxy_set_header Forwarded 'for=\"$il_forwarded_for\";proto=https';",
    ]
    lines += [f"  proxy_set_header {_title(n)} $http_{_var(n)};" for n in sorted(policy.forwarded)]
    lines += [
        "  proxy_ssl_verify on;",
        f"  proxy_ssl_trusted_certificate {_path(_anchor(route.system_name, system, options))};",
        f"  proxy_ssl_name {_word(host)};",
        "  proxy_ssl_server_name on;",
        "  proxy_ssl_verify_depth 4;",
        "  proxy_ssl_protocols TLSv1.2 TLSv1.3;",
        "  proxy_ssl_session_reuse on;",
        f"  proxy_connect_timeout {limits.connect_seconds:g}s;",
        f"  proxy_read_timeout {limits.read_seconds:g}s;",
        f"  proxy_send_timeout {limits.read_seconds:g}s;",
        "  proxy_redirect off;",
        "  proxy_hide_header X-Request-Id;",
        "  add_header X-Request-Id $il_request_id always;",
        "  add_header RateLimit $il_ratelimit always;",
        "  add_header RateLimit-Policy $il_ratelimit_policy always;",
        "}",
    ]
    return lines


def _anchor(name: str, system: System, options: NginxOptions) -> Path:
    if system.ca == "system":
        return options.system_bundle
    if system.ca.startswith("file:"):
        return Path(system.ca.removeprefix("file:"))
    anchor = options.anchors.get(system.ca)
    if anchor is None:
        raise ConfigError(f"systems.{name}.ca: trust anchor {system.ca!r} is not known here")
    return anchor


def _authority(name: str, system: System) -> str:
    parts = urlsplit(system.url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"systems.{name}.url: edge mode forwards over https only")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return _word(f"{host}:{parts.port or 443}")


def _title(name: str) -> str:
    return "-".join(part.capitalize() for part in name.split("-"))


def _var(header: str) -> str:
    return header.lower().replace("-", "_")


def _word(value: str) -> str:
    if not value or _UNSAFE.search(value) or "'" in value:
        raise ConfigError(f"{value!r} cannot be written into an nginx configuration")
    return value


def _path(path: Path) -> str:
    return _word(str(path))
