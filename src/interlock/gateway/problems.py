"""One table from refusal code to the wire: RFC 9457 problems and RFC 6749 errors.

Every refusal is an :class:`~interlock.errors.Refusal` with a stable ``code``;
:data:`REFUSALS` gives each code its status and title (RFC 9457 §3.1.3: a
title does not change from one occurrence of a problem type to the next) and
any headers every answer of that kind carries. Routes, the vault API and the
gateway's own endpoints answer ``application/problem+json`` with ``type``,
``title``, ``status``, ``detail``, ``instance`` and ``correlation_id``; the
OAuth endpoints answer the RFC 6749 §5.2 JSON error from the same refusals.
Neither ever carries internal detail (paths, stack frames, upstream text); a
code missing from the table is answered as an internal error, not guessed at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from aiohttp import web

from interlock.errors import Refusal
from interlock.logs import get_logger

__all__ = [
    "CONTENT_TYPE",
    "INTERNAL_ERROR",
    "PROBLEM_TYPE_BASE",
    "REFUSALS",
    "ProblemType",
    "oauth_error_response",
    "problem_response",
    "status_problem_response",
]

PROBLEM_TYPE_BASE: Final = "urn:interlock:problem:"
CONTENT_TYPE: Final = "application/problem+json"
INTERNAL_ERROR: Final = "internal-error"
_NO_STORE: Final = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_RETRY_SOON: Final = {"Retry-After": "1"}
_log = get_logger("interlock.gateway")


@dataclass(frozen=True)
class ProblemType:
    """What every refusal of one code answers: its status, title and fixed headers."""

    status: int
    title: str
    headers: Mapping[str, str] = field(default_factory=dict)


_UNAVAILABLE: Final = "Service unavailable"

REFUSALS: Final[Mapping[str, ProblemType]] = MappingProxyType(
    {
        # The request target and the gateway's own endpoints.
        "bad-path": ProblemType(400, "Bad request target"),
        # A trusted proxy's X-Forwarded-For / Forwarded that cannot be read.
        "malformed-forwarding-header": ProblemType(400, "Malformed forwarding header"),
        # A header the route forwards holds a byte outside printable ASCII (header_policy).
        "malformed-header": ProblemType(400, "Malformed request header"),
        "misdirected-request": ProblemType(421, "Misdirected request"),
        "not-found": ProblemType(404, "Not found"),
        "method-not-allowed": ProblemType(405, "Method not allowed"),
        INTERNAL_ERROR: ProblemType(500, "Internal error"),
        "service-starting": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        "not-ready": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        "overloaded": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),  # gateway.blocking_pool
        # The store's database did not answer (down, restarting): gateway/app.py.
        "store-unavailable": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        # Who is calling, and may they.
        "credential-in-url": ProblemType(400, "Credential in the URL"),
        "ambiguous-credentials": ProblemType(400, "More than one credential"),
        "unauthorized": ProblemType(401, "Authentication required"),
        "insufficient-scope": ProblemType(403, "Insufficient scope"),
        "credential-not-accepted": ProblemType(403, "Credential not accepted here"),
        "access-denied": ProblemType(403, "Access denied"),
        "too-many-failed-attempts": ProblemType(429, "Too many failed authentication attempts"),
        # A client certificate revoked or expired since its connection's handshake.
        "certificate-revoked": ProblemType(401, "Client certificate revoked"),
        "certificate-expired": ProblemType(401, "Client certificate outside its validity period"),
        # Rate limits and replay protection.
        "rate-limited": ProblemType(429, "Too many requests"),
        "rate-limits-unavailable": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        "replay-store-unavailable": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        "idempotency-store-unavailable": ProblemType(503, _UNAVAILABLE, _RETRY_SOON),
        "invalid-signature": ProblemType(403, "Invalid request signature"),
        "replayed-request": ProblemType(403, "Replayed request"),
        "content-digest-mismatch": ProblemType(400, "Body does not match"),
        "idempotency-key-missing": ProblemType(400, "Idempotency-Key is missing"),
        "idempotency-key-malformed": ProblemType(400, "Idempotency-Key is malformed"),
        "idempotency-key-in-flight": ProblemType(
            409, "A request is outstanding for this Idempotency-Key"
        ),
        "idempotency-key-completed": ProblemType(409, "Idempotency-Key already completed"),
        "idempotency-key-reused": ProblemType(422, "Idempotency-Key is already used"),
        # The request itself: parameters, body, schema, business rules.
        "invalid-request": ProblemType(400, "Invalid request"),
        "invalid-parameter": ProblemType(400, "Invalid request parameter"),
        "body-required": ProblemType(400, "Request body required"),
        "body-not-allowed": ProblemType(400, "Request body not allowed"),
        "body-too-large": ProblemType(413, "Request body too large"),
        "unsupported-media-type": ProblemType(415, "Unsupported media type"),
        # RFC 7694 §3: a 415 for a content coding says which codings are accepted.
        "unsupported-content-encoding": ProblemType(
            415, "Unsupported content encoding", {"Accept-Encoding": "identity"}
        ),
        "malformed-body": ProblemType(400, "Malformed request body"),
        "invalid-encoding": ProblemType(400, "Request body is not valid UTF-8 JSON"),
        "duplicate-key": ProblemType(400, "Request body has a duplicate key"),
        "json-limit-exceeded": ProblemType(400, "Request body exceeds a JSON limit"),
        "xml-refused": ProblemType(400, "XML refused"),
        "too-deep": ProblemType(400, "Body too deep"),
        "too-many-rows": ProblemType(413, "Too many rows"),
        "too-many-columns": ProblemType(400, "Too many columns"),
        "field-too-long": ProblemType(400, "Field too long"),
        "schema-violation": ProblemType(422, "Request does not match the schema"),
        "rule-violation": ProblemType(422, "Business rule violated"),
        "rule-unavailable": ProblemType(503, _UNAVAILABLE),
        # A system's credential cannot be resolved (INTERLOCK_MISSING_SECRETS=start).
        "route-unavailable": ProblemType(503, _UNAVAILABLE),
        "version-conflict": ProblemType(409, "Version conflict"),
        # The schema registry (/v1/schemas): Confluent's 409, 42201, 42202 and 42203.
        "incompatible-schema": ProblemType(409, "Incompatible schema"),
        "invalid-schema": ProblemType(422, "Invalid schema"),
        "invalid-version": ProblemType(422, "Invalid schema version"),
        "invalid-compatibility-level": ProblemType(422, "Invalid compatibility level"),
        # Upstream systems and the evidence the gateway must keep.
        "upstream-failure": ProblemType(502, "Upstream failed"),
        "upstream-timeout": ProblemType(504, "Upstream timed out"),
        # The upstream answered 5xx; its body is withheld (gateway/upstream_errors.py).
        "upstream-error": ProblemType(502, "Upstream error"),
        "response-not-filterable": ProblemType(502, "Upstream response refused"),
        "audit-unavailable": ProblemType(503, _UNAVAILABLE, {"Retry-After": "5"}),
        # The token endpoint: RFC 6749 §5.2, RFC 8707 §2 and RFC 9449 §5 / §8.
        "invalid_request": ProblemType(400, "Invalid request"),
        "invalid_client": ProblemType(401, "Client authentication failed"),
        "unsupported_grant_type": ProblemType(400, "Unsupported grant type"),
        "invalid_scope": ProblemType(400, "Invalid scope"),
        "invalid_target": ProblemType(400, "Invalid target"),
        "invalid_dpop_proof": ProblemType(400, "Invalid DPoP proof"),
        "use_dpop_nonce": ProblemType(400, "DPoP nonce required"),
        "slow_down": ProblemType(429, "Too many failed attempts"),
    }
)


def _lookup(refusal: Refusal) -> tuple[str, ProblemType]:
    kind = REFUSALS.get(refusal.code)
    if kind is None:
        # Fail closed: an unmapped code is a bug, never a guess at a status.
        _log.error("refusal code missing from the table", code=refusal.code)
        return INTERNAL_ERROR, REFUSALS[INTERNAL_ERROR]
    return refusal.code, kind


def problem_response(refusal: Refusal, correlation_id: str, instance: str) -> web.Response:
    """The ``application/problem+json`` answer to ``refusal``."""
    code, kind = _lookup(refusal)
    if code != refusal.code:
        return status_problem_response(
            kind.status, code, kind.title, "the request failed", correlation_id, instance
        )
    return _problem(
        kind.status,
        code,
        kind.title,
        refusal.detail,
        correlation_id,
        instance,
        {**kind.headers, **refusal.headers},
        refusal.extra,
    )


def status_problem_response(  # noqa: PLR0917  (the six members of the document, in order)
    status: int, code: str, title: str, detail: str, correlation_id: str, instance: str
) -> web.Response:
    """A problem whose status was decided outside the table (the HTTP parser's 413, say)."""
    return _problem(status, code, title, detail, correlation_id, instance, {}, {})


def oauth_error_response(refusal: Refusal) -> web.Response:
    """The RFC 6749 §5.2 answer to ``refusal``: ``error`` is its code, never cached."""
    code, kind = _lookup(refusal)
    body = {"error": code, "error_description": refusal.detail}
    if code != refusal.code:
        body = {"error": "server_error", "error_description": "the request failed"}
    headers = {**_NO_STORE, **kind.headers, **refusal.headers}
    return _closing(web.json_response(body, status=kind.status, headers=headers))


def _problem(  # noqa: PLR0917  (one private caller per kind of answer)
    status: int,
    code: str,
    title: str,
    detail: str,
    correlation_id: str,
    instance: str,
    headers: Mapping[str, str],
    extra: Mapping[str, object],
) -> web.Response:
    body = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance,
        "correlation_id": correlation_id,
        **extra,
    }
    return _closing(
        web.Response(
            status=status,
            body=json.dumps(body).encode(),
            content_type=CONTENT_TYPE,
            headers={"X-Request-Id": correlation_id, "Cache-Control": "no-store", **headers},
        )
    )


def _closing(response: web.Response) -> web.Response:
    """A refusal that says ``Connection: close`` ends the connection (not only tells the client)."""
    if response.headers.get("Connection", "").lower() == "close":
        response.force_close()
    return response
