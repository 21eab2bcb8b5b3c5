"""The schema registry over HTTPS: the Confluent Schema Registry REST subset JSON Schema uses.

A Confluent client's base URL is ``https://GATEWAY/v1/schemas``:

=====================================================================  ==========================
``GET  /subjects``                                                     subjects with versions
``POST /subjects/{subject}``                                           find a schema's version
``GET  /subjects/{subject}/versions``                                  its version numbers
``POST /subjects/{subject}/versions``                                  register (``{"id": n}``)
``GET  /subjects/{subject}/versions/{version|latest}``                 one version
``GET  /subjects/{subject}/versions/{version|latest}/schema``          its schema, bare
``GET  /schemas/ids/{id}``                                             a schema by global id
``POST /compatibility/subjects/{subject}/versions/{version|latest}``   check (``?verbose=true``)
``GET  /config/{subject}``, ``PUT /config/{subject}``                  its compatibility mode
=====================================================================  ==========================

Callers authenticate as on any route and need ``schemas.read`` (GET; a check
writes nothing but answers what a producer may register, so it is a read).
Registering a version needs ``schemas.write`` and a subject of the caller's
own: the caller is the ``client`` of an event-streaming integration declaring
it (a subject belongs to its integration, as a route does), unless it holds
``schemas.admin``. Changing a subject's compatibility mode (``PUT /config``)
changes the contract its consumers rely on: ``schemas.admin`` only, the
operator's, as ``interlock events schemas mode`` is. Refusals are RFC 9457 problems that
also carry Confluent's ``error_code`` and ``message``
(:mod:`~interlock.gateway.schema_wire`). The registry is blocking (SQL): it
runs off the event loop. Only subjects the manifest declares exist here.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

from aiohttp import web

from interlock.actors import Client
from interlock.audit.errors import AuditUnavailableError
from interlock.config.events import COMPATIBILITY_MODES, CompatibilityMode
from interlock.errors import InterlockError, Refusal
from interlock.events.registry import SchemaRegistry, Version
from interlock.events.registry_errors import (
    InvalidModeError,
    InvalidVersionError,
    UnknownSchemaError,
    UnknownSubjectError,
)
from interlock.gateway.context import remember_principal
from interlock.gateway.endpoint_scopes import require_gateway_scope
from interlock.gateway.schema_wire import (
    answer,
    confluent_refusal,
    refusal_of,
    registered_json,
    request_json,
    schema_of,
)
from interlock.gateway.stages.authenticate import Authentication

__all__ = ["ADMIN_SCOPE", "PREFIX", "READ_SCOPE", "WRITE_SCOPE", "SchemaApi", "label"]

PREFIX: Final = "/v1/schemas"
READ_SCOPE: Final = "schemas.read"
WRITE_SCOPE: Final = "schemas.write"
ADMIN_SCOPE: Final = "schemas.admin"
_SUBJECT: Final = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*")
_NUMBER: Final = re.compile(r"[1-9][0-9]{0,9}")
_MAX_NUMBER: Final = 2**31 - 1
# Query parameters Confluent's clients send; only ``verbose`` changes an answer here
# (nothing is ever deleted, and schemas are always compared in canonical form).
_QUERY: Final = frozenset({"verbose", "normalize", "deleted", "lookupDeletedSchema"})
_BOOLEAN: Final = frozenset({"true", "false"})
_T = TypeVar("_T")


@dataclass(frozen=True)
class _Route:
    """What a path names: the operation, its methods, and the subject / version / id if any."""

    operation: str
    methods: tuple[str, ...]
    subject: str = ""
    version: str = ""


def _route(path: str) -> _Route:  # noqa: PLR0911  (one return per resource)
    """The resource ``path`` names, or a 404 refusal."""
    parts = path.removeprefix(PREFIX).split("/")[1:]
    match parts:
        case ["subjects"]:
            return _Route("subjects", ("GET",))
        case ["subjects", subject]:
            return _Route("lookup", ("POST",), subject)
        case ["subjects", subject, "versions"]:
            return _Route("versions", ("GET", "POST"), subject)
        case ["subjects", subject, "versions", version]:
            return _Route("version", ("GET",), subject, version)
        case ["subjects", subject, "versions", version, "schema"]:
            return _Route("bare", ("GET",), subject, version)
        case ["schemas", "ids", number]:
            return _Route("id", ("GET",), version=number)
        case ["compatibility", "subjects", subject, "versions", version]:
            return _Route("compatibility", ("POST",), subject, version)
        case ["config", subject]:
            return _Route("config", ("GET", "PUT"), subject)
    raise Refusal("not-found", "no such schema registry resource")


def label(path: str) -> str:
    """The route label of ``path`` for metrics and the audit trail: a template, never a name."""
    try:
        route = _route(path)
    except Refusal:
        return PREFIX + "/{path}"
    templates = {
        "subjects": "/subjects",
        "lookup": "/subjects/{subject}",
        "versions": "/subjects/{subject}/versions",
        "version": "/subjects/{subject}/versions/{version}",
        "bare": "/subjects/{subject}/versions/{version}/schema",
        "id": "/schemas/ids/{id}",
        "compatibility": "/compatibility/subjects/{subject}/versions/{version}",
        "config": "/config/{subject}",
    }
    return PREFIX + templates[route.operation]


class SchemaApi:
    """Answers ``/v1/schemas`` requests from a :class:`SchemaRegistry`; an endpoint."""

    def __init__(
        self,
        registry: SchemaRegistry,
        authenticate: Authentication,
        producers: Mapping[str, frozenset[str]],
    ) -> None:
        """Serve ``registry`` to callers ``authenticate`` recognises.

        ``producers``: each subject's producing clients (:func:`subject_producers`),
        the only callers without ``schemas.admin`` that may register its schemas.
        """
        self.registry = registry
        self.authenticate = authenticate
        self.producers = producers

    async def __call__(self, request: web.BaseRequest) -> web.Response:
        """Route, authenticate, authorise and answer one request."""
        try:
            return await self._handle(request)
        except Refusal as refusal:
            raise confluent_refusal(refusal) from None

    async def _handle(self, request: web.BaseRequest) -> web.Response:
        route = _route(request.rel_url.raw_path)
        if request.method not in route.methods:
            allowed = ", ".join(route.methods)
            raise Refusal("method-not-allowed", f"use {allowed}", headers={"Allow": allowed})
        principal = await self.authenticate.principal_of(request)
        remember_principal(request, principal)
        # A check or a lookup writes nothing: reading what a producer may register.
        register = (route.operation, request.method) == ("versions", "POST")
        scope = {"PUT": ADMIN_SCOPE}.get(request.method, WRITE_SCOPE if register else READ_SCOPE)
        require_gateway_scope(principal, scope, api="schema api", what="this operation requires")
        _check_query(request)
        if route.subject and not _SUBJECT.fullmatch(route.subject):
            raise _refused(UnknownSubjectError(f"subject {route.subject!r} is not declared"))
        if (
            register
            and ADMIN_SCOPE not in principal.scopes
            and principal.client not in self.producers.get(route.subject, frozenset())
        ):
            raise Refusal(
                "access-denied",
                "this subject belongs to an event integration your client does not produce",
                log_reason=f"client {principal.client} does not produce {route.subject}",
            )
        try:
            return await self._answer(request, route, Client(principal.client))
        except AuditUnavailableError:
            raise Refusal(
                "audit-unavailable",
                # A registration is stored before its entry is written: say so, honestly.
                "the audit trail is unavailable; try again later (registering the same "
                "schema again is safe: it answers the version it has)",
            ) from None
        except InterlockError as exc:
            refusal = refusal_of(exc)
            if refusal is None:
                raise
            raise refusal from None

    async def _answer(  # noqa: PLR0911  (one answer per operation)
        self, request: web.BaseRequest, route: _Route, actor: Client
    ) -> web.Response:
        registry, subject = self.registry, route.subject
        match route.operation, request.method:
            case "subjects", _:
                return answer(await _call(registry.subjects))
            case "versions", "GET":
                return answer(await _call(registry.versions, subject))
            case "versions", _:
                schema = schema_of(await request_json(request))
                call = functools.partial(registry.register, subject, schema, actor=actor)
                return answer({"id": (await _call(call)).id})
            case "lookup", _:
                schema = schema_of(await request_json(request))
                return answer(registered_json(await _call(registry.lookup, subject, schema)))
            case "version", _:
                found = await _call(registry.get, subject, _version(route.version))
                return answer(registered_json(found))
            case "bare", _:
                found = await _call(registry.get, subject, _version(route.version))
                return answer(found.schema)
            case "id", _:
                found = await _call(registry.by_id, _schema_id(route.version))
                bare = registered_json(found)
                return answer({"schema": bare["schema"], "schemaType": bare["schemaType"]})
            case "compatibility", _:
                return await self._compatibility(request, route)
            case "config", "GET":
                return answer({"compatibilityLevel": await _call(registry.mode, subject)})
        return await self._set_mode(request, subject, actor)

    async def _compatibility(self, request: web.BaseRequest, route: _Route) -> web.Response:
        schema = schema_of(await request_json(request))
        version = _version(route.version)
        problems = await _call(self.registry.check, route.subject, schema, version)
        body: dict[str, Any] = {"is_compatible": not problems}
        if request.query.get("verbose") == "true":
            body["messages"] = [f"{p.pointer or '/'}: {p.kind}: {p.message}" for p in problems]
        return answer(body)

    async def _set_mode(
        self, request: web.BaseRequest, subject: str, actor: Client
    ) -> web.Response:
        body = await request_json(request)
        mode = body.get("compatibility")
        if set(body) != {"compatibility"} or mode not in COMPATIBILITY_MODES:
            modes = ", ".join(COMPATIBILITY_MODES)
            raise _refused(
                InvalidModeError(f'the body is {{"compatibility": MODE}}, MODE one of {modes}')
            )
        call = functools.partial(
            self.registry.set_mode, subject, cast("CompatibilityMode", mode), actor=actor
        )
        await _call(call)
        return answer({"compatibility": mode})


def _refused(error: InterlockError) -> Refusal:
    refusal = refusal_of(error)
    return refusal if refusal is not None else Refusal("invalid-request", error.message)


def _version(text: str) -> Version:
    """``latest`` or a version number as in the URL; a 422 (Confluent 42202) otherwise."""
    if text == "latest":
        return "latest"
    if not _NUMBER.fullmatch(text) or int(text) > _MAX_NUMBER:
        raise _refused(InvalidVersionError("a version is a positive integer or 'latest'"))
    return int(text)


def _schema_id(text: str) -> int:
    """A schema id as in the URL; an unknown one (40403) otherwise."""
    if not _NUMBER.fullmatch(text) or int(text) > _MAX_NUMBER:
        raise _refused(UnknownSchemaError("no schema has this id"))
    return int(text)


def _check_query(request: web.BaseRequest) -> None:
    """Confluent's own parameters only, each once and true or false; anything else is refused."""
    for name in request.query:
        values = request.query.getall(name)
        if name not in _QUERY or len(values) != 1 or values[0] not in _BOOLEAN:
            raise Refusal(
                "invalid-parameter",
                "this API takes verbose, normalize, deleted or lookupDeletedSchema (true or false)",
                log_reason="schema api: query refused",
            )


async def _call(function: Callable[..., _T], *args: Any) -> _T:
    """``function(*args)`` in a worker thread (the registry's SQL is blocking)."""
    return await asyncio.to_thread(function, *args)
