"""Data-subject requests over HTTPS, for a ticketing system: ``/v1/privacy``.

======================================================  ===============================
``POST /v1/privacy/requests``                           create one (201, ``Location``)
``GET  /v1/privacy/requests[?status=open|closed]``      list them
``GET  /v1/privacy/requests/{id}``                      one request's view
``POST /v1/privacy/requests/{id}/extension``            extend its deadline (Art. 12(3))
``POST /v1/privacy/requests/{id}/confirmations``        an operator's answer for a system
``GET  /v1/privacy/requests/{id}/export``               the Art. 20 bundle (an attachment)
``GET  /v1/privacy/requests/{id}/receipt``              the signed receipt, once closed
``POST /v1/privacy/trace``                              who received a person's data
======================================================  ===============================

Callers authenticate as on any route (API key, access token for this gateway,
client certificate) and need the scope ``privacy.admin``. A subject's
identifier travels in a JSON body only, never in a URL (which access logs,
proxies and browsers keep). Every call is one ``gateway.request`` audit entry
naming the client; the service records each step of a request as its own
entry, with the actor ``client:<name>``. Answers carry ``Cache-Control:
no-store``. The service is blocking (SQL, connectors): it runs off the event
loop.

The service is a :class:`~interlock.gateway.privacy_service.PrivacyRequestsApi`
(``interlock.privacy.requests`` implements it) and the trace a
:class:`~interlock.gateway.privacy_service.SubjectTracer`; this module only
parses, authorises, calls and renders.
"""

from __future__ import annotations

import asyncio
import functools
import json
import re
import traceback
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiohttp import web

from interlock.actors import Client
from interlock.audit.errors import AuditUnavailableError
from interlock.errors import InvalidRequestError, NotFoundError, Refusal
from interlock.gateway.body import read_limited
from interlock.gateway.context import remember_principal
from interlock.gateway.endpoint_scopes import require_gateway_scope
from interlock.gateway.privacy_bodies import (
    MAX_BODY,
    Confirmation,
    Extension,
    NewRequest,
    TraceQuery,
    parse,
)
from interlock.gateway.privacy_service import PrivacyRequestsApi, SubjectTracer
from interlock.gateway.problems import INTERNAL_ERROR
from interlock.gateway.stages.authenticate import Authentication
from interlock.gdpr.identifiers import IdentifierError
from interlock.identity.grants import Principal
from interlock.logs import get_logger

__all__ = ["PREFIX", "REQUEST_ID", "SCOPE", "PrivacyApi", "label"]

PREFIX: Final = "/v1/privacy"
SCOPE: Final = "privacy.admin"
#: A request's id, as the service makes them: ``dsr_`` and 24 URL-safe characters.
REQUEST_ID: Final = re.compile(r"dsr_[A-Za-z0-9_-]{24}")
_NO_STORE: Final = {"Cache-Control": "no-store"}
_ACTIONS: Final = frozenset({"extension", "confirmations", "export", "receipt"})
_T = TypeVar("_T")
_FRAMES: Final = 5  # frames of an unexpected failure's traceback logged (file, line, function)
_log = get_logger("interlock.gateway.privacy")
# What the service raises on purpose; PrivacyApi.handle answers each.
_MAPPED: Final = (NotFoundError, IdentifierError, InvalidRequestError, AuditUnavailableError)


@dataclass(frozen=True)
class _Route:
    """What a path under the prefix names: a resource, the request id if any, the methods."""

    resource: str  # "requests", "request", "extension", ..., "trace"
    methods: tuple[str, ...]
    request_id: str | None = None


def _route(path: str) -> _Route:
    """The resource ``path`` names, or a 404 refusal."""
    parts = path.removeprefix(PREFIX).split("/")[1:]
    if parts == ["trace"]:
        return _Route("trace", ("POST",))
    if parts == ["requests"]:
        return _Route("requests", ("GET", "POST"))
    if len(parts) == 2 and parts[0] == "requests":
        return _Route("request", ("GET",), parts[1])
    if len(parts) == 3 and parts[0] == "requests" and parts[2] in _ACTIONS:
        methods = ("POST",) if parts[2] in {"extension", "confirmations"} else ("GET",)
        return _Route(parts[2], methods, parts[1])
    raise Refusal("not-found", "no such privacy resource")


def label(path: str) -> str:
    """The route label of ``path`` for metrics and the audit trail: a template, never an id."""
    try:
        route = _route(path)
    except Refusal:
        return PREFIX + "/{path}"
    if route.request_id is None:
        return f"{PREFIX}/{route.resource}"
    suffix = "" if route.resource == "request" else "/" + route.resource
    return f"{PREFIX}/requests/{{id}}{suffix}"


class PrivacyApi:
    """Answers ``/v1/privacy`` requests for a gateway, from the service and the tracer."""

    def __init__(self, requests: PrivacyRequestsApi, trace: SubjectTracer) -> None:
        """Serve ``requests`` and ``trace`` (both blocking: called in worker threads)."""
        self.requests = requests
        self.trace = trace

    async def handle(self, request: web.BaseRequest, authenticate: Authentication) -> web.Response:
        """Route, authenticate, authorise and answer one request."""
        # The raw path: a percent-encoded '/' in an id is a malformed id, not another resource.
        route = _route(request.rel_url.raw_path)
        if request.method not in route.methods:
            allowed = ", ".join(route.methods)
            raise Refusal("method-not-allowed", f"use {allowed}", headers={"Allow": allowed})
        principal = await authenticate.principal_of(request)
        remember_principal(request, principal)
        _authorise(principal)
        _check_query(request, route)
        if route.request_id is not None and not REQUEST_ID.fullmatch(route.request_id):
            raise Refusal(
                "invalid-parameter",
                "a request id is dsr_ and 24 letters, digits, '-' or '_'",
                log_reason="privacy api: malformed request id",
            )
        actor = Client(principal.client)
        try:
            return await self._answer(request, route, actor)
        except NotFoundError as exc:  # an unknown request, or a system it does not involve
            raise Refusal("not-found", exc.message, log_reason="privacy api: not found") from None
        except IdentifierError as exc:  # its message never holds the value (gdpr.identifiers)
            raise Refusal(
                "schema-violation",
                f"subject.value: {exc.message}",
                extra={"errors": [{"field": "subject.value", "message": exc.message}]},
                log_reason="privacy api: identifier refused",
            ) from None
        except InvalidRequestError as exc:
            # The service's words for the caller; the log and the audit trail get the code only.
            raise Refusal(
                "invalid-request", exc.message, log_reason=f"privacy api: {exc.code}"
            ) from None
        except AuditUnavailableError:
            raise Refusal(
                "audit-unavailable",
                "the request cannot be recorded, so it is not taken; try again later",
            ) from None

    async def _answer(self, request: web.BaseRequest, route: _Route, actor: Client) -> web.Response:
        handlers: dict[str, _Handler] = {
            "trace": self._trace,
            "requests": self._create if request.method == "POST" else self._list,
            "request": self._get,
            "extension": self._extend,
            "confirmations": self._confirm,
            "export": self._export,
            "receipt": self._receipt,
        }
        return await handlers[route.resource](request, route.request_id or "", actor)

    async def _trace(self, request: web.BaseRequest, _: str, __: Client) -> web.Response:
        subject = parse(TraceQuery, await _body(request)).subject
        report = await _call(
            self.trace, subject.kind, subject.value, subject.region, field="subject.value"
        )
        return _json(report.as_json())

    async def _create(self, request: web.BaseRequest, _: str, actor: Client) -> web.Response:
        new = parse(NewRequest, await _body(request)).checked()
        subject = new.subject
        view = await _call(
            functools.partial(
                self.requests.create,
                new.kind,
                subject.kind,
                subject.value,
                actor=actor,
                region=subject.region,
                corrections=dict(new.corrections) if new.corrections is not None else None,
                systems=list(new.systems) if new.systems is not None else None,
            ),
            field="subject.value",
        )
        body = view.as_json()
        return _json(body, {"Location": f"{PREFIX}/requests/{body['id']}"}, status=201)

    async def _list(self, request: web.BaseRequest, _: str, __: Client) -> web.Response:
        views = await _call(self.requests.list, request.query.get("status"))
        return _json({"requests": [view.as_json() for view in views]})

    async def _get(self, _: web.BaseRequest, request_id: str, __: Client) -> web.Response:
        return _json((await _call(self.requests.get, request_id)).as_json())

    async def _extend(
        self, request: web.BaseRequest, request_id: str, actor: Client
    ) -> web.Response:
        extension = parse(Extension, await _body(request))
        view = await _call(
            functools.partial(
                self.requests.extend,
                request_id,
                months=extension.months,
                reason=extension.reason,
                actor=actor,
            )
        )
        return _json(view.as_json())

    async def _confirm(
        self, request: web.BaseRequest, request_id: str, actor: Client
    ) -> web.Response:
        confirmation = parse(Confirmation, await _body(request))
        view = await _call(
            functools.partial(
                self.requests.confirm,
                request_id,
                confirmation.system,
                confirmation.status,
                actor=actor,
                note=confirmation.note,
            )
        )
        return _json(view.as_json())

    async def _export(self, _: web.BaseRequest, request_id: str, actor: Client) -> web.Response:
        bundle = await _call(
            functools.partial(self.requests.export_bundle, request_id, actor=actor)
        )
        return _json(bundle, _attachment(f"{request_id}-export.json"))

    async def _receipt(self, _: web.BaseRequest, request_id: str, __: Client) -> web.Response:
        receipt = await _call(self.requests.receipt, request_id)
        if receipt is None:
            raise Refusal("not-found", "the request is not closed yet: it has no receipt")
        return _json(receipt, _attachment(f"{request_id}-receipt.json"))


_Handler = Callable[[web.BaseRequest, str, Client], Awaitable[web.Response]]


def _attachment(filename: str) -> dict[str, str]:
    # The name is a request id (checked against REQUEST_ID) and a fixed suffix: no quoting needed.
    return {"Content-Disposition": f'attachment; filename="{filename}"'}


async def _call(function: Callable[..., _T], *args: Any, field: str | None = None) -> _T:
    """``function(*args)`` in a worker thread; its failures never carry a person's data out.

    The service refuses an identifier that is not one of its kind with a
    ``ValueError`` (``IdentifierError``) whose message may quote it: the caller
    gets a fixed one naming ``field`` instead. Any other unexpected failure is
    logged by its type and where it happened, never its message (a database
    error quotes its bound parameters, a connector's its answer), and answered
    as an internal error.
    """
    try:
        return await asyncio.to_thread(function, *args)
    except _MAPPED:
        raise  # the service's own refusals, answered by PrivacyApi.handle
    except ValueError as exc:
        if field is None:
            raise _failed(exc) from None
        raise Refusal(
            "schema-violation",
            f"{field}: not a valid identifier of this kind",
            extra={"errors": [{"field": field, "message": "not a valid identifier of this kind"}]},
            log_reason="privacy api: identifier refused",
        ) from None
    except Exception as exc:  # noqa: BLE001  (reported without its message, see above)
        raise _failed(exc) from None


def _failed(exc: BaseException) -> Refusal:
    frames = traceback.extract_tb(exc.__traceback__)[-_FRAMES:]
    _log.error(
        "privacy service failed",
        error=type(exc).__name__,
        where=[f"{frame.filename}:{frame.lineno} {frame.name}" for frame in frames],
    )
    return Refusal(
        INTERNAL_ERROR,
        "the request failed; quote the correlation id to the operator",
        log_reason=f"privacy service failed ({type(exc).__name__})",
    )


async def _body(request: web.BaseRequest) -> bytes:
    if request.content_type != "application/json":
        raise Refusal("unsupported-media-type", "send application/json")
    return await read_limited(request, MAX_BODY)


def _check_query(request: web.BaseRequest, route: _Route) -> None:
    """Only a list takes a query (``status``); anything else is refused, not ignored."""
    query = request.query
    allowed: Mapping[str, frozenset[str]] = (
        {"status": frozenset({"open", "closed", "overdue"})}
        if route.resource == "requests" and request.method == "GET"
        else {}
    )
    for name in query:
        values = query.getall(name)
        if name not in allowed or len(values) != 1 or values[0] not in allowed[name]:
            expected = "status=open, closed or overdue" if allowed else "no query parameters"
            raise Refusal(
                "invalid-parameter",
                f"this endpoint takes {expected}",
                log_reason="privacy api: query refused",
            )


def _authorise(principal: Principal) -> None:
    """A credential holding ``privacy.admin``; an access token must be for this gateway."""
    require_gateway_scope(principal, SCOPE, api="privacy api", what="data-subject requests require")


def _json(
    body: Mapping[str, Any], headers: Mapping[str, str] | None = None, *, status: int = 200
) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        headers={**_NO_STORE, **(headers or {})},
    )
