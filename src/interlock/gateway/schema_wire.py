"""The wire of ``/v1/schemas``: Confluent's request bodies in, its answers and error codes out.

Confluent's Schema Registry answers an error as ``{"error_code": 40401,
"message": "..."}``; the gateway answers RFC 9457 problems. A refusal of this
API is both: the problem's members plus ``error_code`` and ``message``, so a
Confluent client (which reads those two) and any other client understand it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web

from interlock.config.manifest import JsonLimits
from interlock.errors import InterlockError, Refusal
from interlock.events.registry import MAX_SCHEMA_BYTES, RegisteredSchema
from interlock.events.registry_errors import (
    IncompatibleSchema,
    InvalidModeError,
    InvalidSchemaError,
    InvalidVersionError,
    UnknownSchemaError,
    UnknownSubjectError,
    UnknownVersionError,
)
from interlock.gateway.body import read_limited
from interlock.gateway.problems import REFUSALS
from interlock.validation.errors import BodyRefused
from interlock.validation.json_body import parse_json

__all__ = [
    "CONTENT_TYPE",
    "MAX_BODY",
    "answer",
    "confluent_refusal",
    "refusal_of",
    "registered_json",
    "request_json",
    "schema_of",
]

#: What Confluent's registry answers with (its clients also send it).
CONTENT_TYPE: Final = "application/vnd.schemaregistry.v1+json"
_ACCEPTED: Final = frozenset(
    {CONTENT_TYPE, "application/vnd.schemaregistry+json", "application/json"}
)
#: A body: the schema as a JSON string (escaping may double it) and a few members.
MAX_BODY: Final = 2 * MAX_SCHEMA_BYTES + 4096
_BODY_LIMITS: Final = JsonLimits(max_depth=4, max_string_length=MAX_BODY, max_members=16)
_SCHEMA_LIMITS: Final = JsonLimits(max_depth=64, max_string_length=65536, max_members=10000)
_SCHEMA_TYPE: Final = "JSON"
_NO_STORE: Final = {"Cache-Control": "no-store"}
# Confluent's error code of each registry error (its documentation's "Errors" lists).
_CODES: Final[Mapping[type[InterlockError], tuple[str, int]]] = {
    UnknownSubjectError: ("not-found", 40401),
    UnknownVersionError: ("not-found", 40402),
    UnknownSchemaError: ("not-found", 40403),
    InvalidSchemaError: ("invalid-schema", 42201),
    InvalidVersionError: ("invalid-version", 42202),
    InvalidModeError: ("invalid-compatibility-level", 42203),
    IncompatibleSchema: ("incompatible-schema", 409),
}


def refusal_of(error: InterlockError) -> Refusal | None:
    """The refusal answering a registry error, or None when it is not one of the registry's."""
    mapped = _CODES.get(type(error))
    if mapped is None:
        return None
    code, confluent = mapped
    extra: dict[str, object] = {"error_code": confluent, "message": error.message}
    if isinstance(error, IncompatibleSchema):
        extra["errors"] = [
            {"pointer": p.pointer, "kind": p.kind, "message": p.message} for p in error.problems
        ]
    return Refusal(code, error.message, extra=extra, log_reason=f"schema api: {error.code}")


def confluent_refusal(refusal: Refusal) -> Refusal:
    """``refusal`` with Confluent's ``error_code`` and ``message`` (the HTTP status if unset)."""
    if "error_code" in refusal.extra:
        return refusal
    kind = REFUSALS.get(refusal.code)
    status = kind.status if kind is not None else 500
    extra = {**refusal.extra, "error_code": status, "message": refusal.detail}
    return Refusal(
        refusal.code,
        refusal.detail,
        headers=refusal.headers,
        extra=extra,
        log_reason=refusal.log_reason,
    )


async def request_json(request: web.BaseRequest) -> dict[str, Any]:
    """The body: a JSON object in one of Confluent's content types, within the size cap."""
    if request.content_type not in _ACCEPTED:
        raise Refusal("unsupported-media-type", f"send {CONTENT_TYPE} or application/json")
    value = parse_json(await read_limited(request, MAX_BODY), _BODY_LIMITS)
    if not isinstance(value, dict):
        raise Refusal("malformed-body", "the body is a JSON object")
    return value


def schema_of(body: Mapping[str, Any]) -> dict[str, Any]:
    """The schema a register/check/lookup body carries: ``schema`` (a JSON string), type JSON.

    This registry holds JSON Schema only: ``schemaType`` must be ``JSON``
    (Confluent's default is Avro, so it must be sent), and a schema refers to
    nothing outside itself, so ``references`` must be absent or empty.
    """
    unknown = set(body) - {"schema", "schemaType", "references"}
    if unknown:
        raise Refusal("invalid-request", "the body takes schema, schemaType and references only")
    if body.get("schemaType") != _SCHEMA_TYPE:
        raise InvalidSchemaError("this registry holds JSON Schema only: send schemaType JSON")
    if body.get("references") not in (None, []):
        raise InvalidSchemaError("references are not supported: use local $defs")
    text = body.get("schema")
    if not isinstance(text, str):
        raise InvalidSchemaError("schema is the JSON Schema document as a JSON string")
    try:
        schema = parse_json(text.encode("utf-8", "surrogatepass"), _SCHEMA_LIMITS)
    except BodyRefused as exc:
        raise InvalidSchemaError(f"the schema is not JSON: {exc.detail}") from None
    if not isinstance(schema, dict):
        raise InvalidSchemaError("a schema is a JSON object")
    return schema


def registered_json(registered: RegisteredSchema) -> dict[str, Any]:
    """Confluent's answer for one version: subject, version, id, schemaType, schema (a string)."""
    return {
        "subject": registered.subject,
        "version": registered.version,
        "id": registered.id,
        "schemaType": _SCHEMA_TYPE,
        "schema": json.dumps(registered.schema, ensure_ascii=False),
    }


def answer(body: object, *, status: int = 200) -> web.Response:
    """A JSON answer in Confluent's content type, never cached."""
    return web.Response(
        body=json.dumps(body, ensure_ascii=False).encode(),
        status=status,
        content_type=CONTENT_TYPE,
        headers=_NO_STORE,
    )
