"""Routes and request schemas from an OpenAPI 3.0/3.1 document, merged into the manifest.

The document is untrusted input: it is read with our safe YAML reader (JSON
with :mod:`json`), capped in size and depth, and only references inside it are
followed (a remote ``$ref`` could make the import fetch, or depend on, anything).
The mapping, operation by operation:

* ``path``: the OpenAPI path with template names in snake_case, our rule for
  parameter names (``{orderId}`` -> ``{order_id}``). A path no template can
  express (``/files/{name}.{ext}``, a trailing ``/``) is skipped with a warning.
* ``upstream_path``: the same template, prefixed by the path of
  ``servers[0].url`` (variables at their defaults) unless the system's ``url``
  already ends with it, because the gateway calls ``system.url + upstream_path``.
  Values are substituted by position, so renaming never changes the URL called.
* ``scope``: the operation's (else the document's) OAuth 2.0 / OpenID Connect
  scope when exactly one is named and it reads as ours (``orders:read`` ->
  ``orders.read``); otherwise ``PREFIX.read`` for GET, HEAD and OPTIONS and
  ``PREFIX.write`` for the rest (PREFIX: ``scope_prefix``, default the system).
* ``params`` / ``query``: typed from the parameters' schemas. Patterns are
  matched against the whole value (stricter than OpenAPI's search); a string
  path parameter with neither pattern, format nor enum gets the RFC 3986
  unreserved pattern with its length bounds. What a spec cannot say (objects,
  unknown formats, foreign regex syntax) becomes the closest *stricter* spec,
  with a warning. Header and cookie parameters are not imported.
* ``request_schema``: the JSON request body's schema as a self-contained JSON
  Schema 2020-12 document (``#/components/schemas`` references become
  ``$defs``); OpenAPI 3.0's ``nullable``, boolean ``exclusiveMinimum`` and
  ignored ``$ref`` siblings are translated; examples and documentation are
  dropped; ``readOnly`` properties are not required in a request. A schema
  the gateway's compiler (``schema_check``) refuses skips its operation.
* ``content_types``: JSON, XML and CSV media types of the body when they are
  not only ``application/json`` (XML and CSV get their safe-parsing policies);
  bodies Interlock cannot validate (forms, multipart, octets) are not accepted.

Merging replaces, in a route with the same method and path template, only the
fields above, so hand-added rate limits, response allow-lists and rules
survive a re-import.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from interlock.config.loader import DeepCheck, check_manifest, format_path, load_manifest
from interlock.config.manifest import (
    DEFAULT_PARAM,
    PATTERN_HELP,
    SCOPE_PATTERN,
    Manifest,
    Route,
    media_kind,
    template_shape,
)
from interlock.config.yaml_source import (
    MAX_BYTES,
    MAX_DEPTH,
    DocPath,
    YamlDocument,
    YamlSourceError,
    read_yaml,
)
from interlock.errors import ConfigError, InvalidRequestError, ManifestError, NotFoundError

__all__ = [
    "MAX_OPERATIONS",
    "Conversion",
    "ImportPlan",
    "OpenApiDocument",
    "OpenApiError",
    "SchemaCheck",
    "apply_import",
    "convert_openapi",
    "merge_routes",
    "our_scope",
    "plan_import",
    "read_openapi",
    "routes_yaml",
    "snake_case",
]

MAX_OPERATIONS: Final = 1000
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
_VERSION: Final = re.compile(r"^3\.([01])\.\d+$")
_METHODS: Final = {
    m.lower(): m for m in ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH")
}
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_WHOLE_PARAM: Final = re.compile(r"^\{([^{}/]+)\}$")
_QUERY_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_MEDIA_TYPE: Final = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_LITERAL_PATH: Final = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,=:@-]+)+$")
_UNRESERVED: Final = "[A-Za-z0-9._~-]"
_PARAM_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "array", "object"})
_FORMATS: Final = frozenset({"uuid", "date", "date-time", "email"})
_INT_BOUNDS: Final = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
SchemaCheck = Callable[[Mapping[str, Any]], object]
"""Compiles a request schema, raising :class:`ValueError` when it cannot be used."""

# Parts of a document the import never reads: problems there (YAML 1.1 integer
# keys such as `200:` under responses) do not stop it.
_UNREAD: Final = frozenset({"responses", "callbacks", "examples", "links", "webhooks", "info"})
# Schema keywords: dropped (documentation and OpenAPI-only), and those holding subschemas.
_DROP: Final = frozenset(
    {"example", "examples", "description", "title", "externalDocs", "xml", "discriminator"}
    # Identifiers would move the base that our "#/$defs/..." references resolve against.
    | {"$id", "$anchor", "$dynamicAnchor", "$schema", "$vocabulary", "$comment"}
)
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE: Final = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)
# Keys of a route the import owns; everything else in an existing route is kept.
_OWNED: Final = (
    "method",
    "path",
    "upstream",
    "upstream_path",
    "scope",
    "content_types",
    "request_schema",
    "params",
    "query",
)


class OpenApiError(ConfigError):
    """The OpenAPI document cannot be imported; the message names file, line and field."""

    code = "openapi_invalid"


@dataclass(frozen=True)
class OpenApiDocument:
    """A parsed OpenAPI document and where each of its values stands."""

    file: str
    data: Mapping[str, Any]
    version: Literal["3.0", "3.1"]
    source: YamlDocument | None = None

    def locate(
        self, path: DocPath, message: str, *, warning: bool = False, key: bool = False
    ) -> str:
        """``FILE:LINE:COL: [warning: ]field.path: message`` (at the key of ``path`` if ``key``)."""
        line, column = self.source.position(path, key=key) if self.source else (1, 1)
        where = f"{format_path(path)}: " if path else ""
        return f"{self.file}:{line}:{column}: {'warning: ' if warning else ''}{where}{message}"

    def error(self, path: DocPath, message: str) -> OpenApiError:
        """An :class:`OpenApiError` located at ``path``."""
        return OpenApiError(self.locate(path, message))


@dataclass(frozen=True)
class Conversion:
    """Generated routes (manifest mappings, each a valid :class:`Route`) and warnings."""

    routes: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class ImportPlan:
    """An import worked out: the generated routes and the manifest text before and after."""

    manifest: Path
    integration: str
    routes: tuple[dict[str, Any], ...]
    added: int
    replaced: int
    warnings: tuple[str, ...]
    before: str = field(repr=False)
    after: str = field(repr=False)


# -- reading -------------------------------------------------------------------


def read_openapi(path: Path) -> OpenApiDocument:
    """Read an OpenAPI 3.0.x or 3.1.x document; :class:`OpenApiError` otherwise."""
    file = str(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(MAX_BYTES + 1).lstrip()[:1]
    except OSError as exc:
        raise OpenApiError(f"{file}:1:1: cannot read file: {exc.strerror}") from None
    if head == b"{":
        data, source = _read_json(path)
    else:
        try:
            source = read_yaml(path)
        except YamlSourceError as exc:
            problem = exc.problem
            raise OpenApiError(
                f"{file}:{problem.line}:{problem.column}: {problem.message}"
            ) from None
        data = source.data
    doc = OpenApiDocument(file, data if isinstance(data, dict) else {}, "3.0", source)
    for problem in source.problems if source else ():
        if not _UNREAD.intersection(str(part) for part in problem.path):
            raise doc.error(problem.path, problem.message)
    return dataclasses.replace(doc, version=_version(doc, data))


def _read_json(path: Path) -> tuple[object, YamlDocument | None]:
    file = str(path)
    raw = path.read_bytes()[: MAX_BYTES + 1]
    if len(raw) > MAX_BYTES:
        raise OpenApiError(f"{file}:1:1: file is larger than {MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except UnicodeDecodeError as exc:
        raise OpenApiError(f"{file}:1:1: not UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise OpenApiError(f"{file}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise OpenApiError(f"{file}:1:1: {reason}") from None
    if _depth(data) > MAX_DEPTH:
        raise OpenApiError(f"{file}:1:1: nested deeper than {MAX_DEPTH} levels")
    # Positions only: JSON is YAML, but PyYAML reads a few JSON numbers as text.
    try:
        return data, read_yaml(path)
    except YamlSourceError:
        return data, None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _depth(data: object) -> int:
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        children = list(node.values()) if isinstance(node, dict) else node
        if isinstance(children, list):
            stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def _version(doc: OpenApiDocument, data: object) -> Literal["3.0", "3.1"]:
    if not isinstance(data, dict):
        raise doc.error((), "an OpenAPI document is a mapping with openapi, info and paths")
    if "swagger" in data:
        raise doc.error(
            ("swagger",),
            f"Swagger {data['swagger']} (OpenAPI 2) is not supported; convert the document "
            "to OpenAPI 3 first (e.g. with swagger2openapi)",
        )
    text = data.get("openapi")
    found = _VERSION.match(text) if isinstance(text, str) else None
    if found is None:
        raise doc.error(("openapi",), f"unsupported OpenAPI version {text!r}; use 3.0.x or 3.1.x")
    if not isinstance(data.get("paths", {}), dict):
        raise doc.error(("paths",), "paths must be a mapping")
    return "3.0" if found.group(1) == "0" else "3.1"


# -- conversion ----------------------------------------------------------------


def convert_openapi(
    doc: OpenApiDocument,
    *,
    system: str,
    system_url: str,
    scope_prefix: str | None = None,
    schema_check: SchemaCheck | None = None,
) -> Conversion:
    """Routes to ``system`` for every operation of ``doc`` (see the module docstring).

    ``schema_check`` (the gateway's schema compiler) raises :class:`ValueError`
    for a request schema it cannot use; that operation is skipped with a warning.
    """
    converter = _Converter(doc, system, scope_prefix or system, schema_check)
    converter.prefix = converter.server_prefix(system_url)
    routes: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for route in converter.routes():
        key = (route["method"], template_shape(route["path"]))
        if key in seen:
            converter.warn(("paths",), f"{key[0]} {route['path']} duplicates a template; skipped")
            continue
        seen.add(key)
        routes.append(route)
    return Conversion(tuple(routes), tuple(converter.warnings))


class _Converter:
    def __init__(
        self, doc: OpenApiDocument, system: str, scope_prefix: str, schema_check: SchemaCheck | None
    ) -> None:
        self.doc = doc
        self.system = system
        self.scope_prefix = scope_prefix
        self.schema_check = schema_check
        self.prefix = ""
        self.warnings: list[str] = []

    def warn(self, path: DocPath, message: str, *, key: bool = False) -> None:
        self.warnings.append(self.doc.locate(path, message, warning=True, key=key))

    def lookup(self, ref: object, at: DocPath) -> tuple[Any, DocPath]:
        """The value a local ``$ref`` names, and its path; remote references are refused."""
        if not isinstance(ref, str):
            raise self.doc.error((*at, "$ref"), "$ref must be text")
        if not ref.startswith("#"):
            raise self.doc.error(
                (*at, "$ref"),
                f"remote $ref {ref!r} refused: only references inside the document "
                "(#/components/...) are followed; bundle the document first",
            )
        node: Any = self.doc.data
        path: list[str | int] = []
        step: str | int
        parts = ref[2:].split("/") if ref.startswith("#/") else [ref]
        for raw in parts:
            part = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node, step = node[int(part)], int(part)
            elif isinstance(node, dict) and part in node:
                node, step = node[part], part
            else:
                raise self.doc.error((*at, "$ref"), f"$ref {ref!r} points at nothing")
            path.append(step)
        return node, tuple(path)

    def deref(self, node: Any, at: DocPath) -> tuple[Any, DocPath]:
        for _ in range(32):
            if not (isinstance(node, dict) and "$ref" in node):
                return node, at
            node, at = self.lookup(node["$ref"], at)
        raise self.doc.error(at, "$ref chain longer than 32 or circular")

    def server_prefix(self, system_url: str) -> str:
        servers = self.doc.data.get("servers")
        server = servers[0] if isinstance(servers, list) and servers else None
        if not isinstance(server, dict) or not isinstance(server.get("url"), str):
            return ""
        found = server.get("variables")
        variables: dict[str, Any] = found if isinstance(found, dict) else {}

        def default(match: re.Match[str]) -> str:
            spec = variables.get(match.group(1))
            return str(spec.get("default", "")) if isinstance(spec, dict) else match.group(0)

        url = re.sub(r"\{([^{}]*)\}", default, server["url"])
        path = "/" + urlsplit(url).path.strip("/")
        if path == "/" or urlsplit(system_url).path.rstrip("/").endswith(path):
            return ""
        if not _LITERAL_PATH.match(path) or {".", ".."} & set(path.split("/")):
            self.warn(("servers", 0, "url"), f"server path {path!r} is not a plain path; ignored")
            return ""
        return path

    def routes(self) -> Iterator[dict[str, Any]]:
        count = 0
        for raw_path, raw_item in self.doc.data.get("paths", {}).items():
            item, at = self.deref(raw_item, ("paths", raw_path))
            if not isinstance(item, dict):
                raise self.doc.error(at, "a path item must be a mapping")
            for key, operation in item.items():
                if key == "trace":
                    self.warn((*at, key), "TRACE is not a method Interlock routes; skipped")
                if key not in _METHODS:
                    continue
                count += 1
                if count > MAX_OPERATIONS:
                    raise self.doc.error(at, f"more than {MAX_OPERATIONS} operations")
                if not isinstance(operation, dict):
                    raise self.doc.error((*at, key), "an operation must be a mapping")
                route = self.route(str(raw_path), _METHODS[key], operation, item, (*at, key))
                if route is not None:
                    yield route

    def route(
        self,
        raw_path: str,
        method: str,
        operation: dict[str, Any],
        item: dict[str, Any],
        at: DocPath,
    ) -> dict[str, Any] | None:
        names = self.template_names(raw_path, at)
        if names is None:
            return None
        template = "/" + "/".join(
            "{" + names[m.group(1)] + "}" if (m := _WHOLE_PARAM.match(s)) else s
            for s in raw_path.split("/")[1:]
        )
        route: dict[str, Any] = {
            "method": method,
            "path": template,
            "upstream": self.system,
            "upstream_path": self.prefix + template if template != "/" else self.prefix or "/",
            "scope": self.scope(method, operation, at),
        }
        body = self.body(operation, at)
        if body is None:
            return None
        route.update(body)
        params, query = self.parameters(item, operation, names, at)
        route.update({"params": params} if params else {})
        route.update({"query": query} if query else {})
        route = json.loads(json.dumps(route))  # plain data, no shared objects (no YAML aliases)
        try:
            if "request_schema" in route and self.schema_check is not None:
                self.schema_check(route["request_schema"])
        except ValueError as exc:
            reason = (str(exc).strip().splitlines() or ["invalid"])[0]
            self.warn(at, f"skipped: the request schema does not compile ({reason})")
            return None
        try:
            Route.model_validate(route)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            reason = first["msg"].removeprefix("Value error, ")
            self.warn(at, f"skipped: the route would be invalid ({where}: {reason})")
            return None
        return route

    def template_names(self, raw_path: str, at: DocPath) -> dict[str, str] | None:
        """OpenAPI template names -> ours, or None (warned) when no template can say it."""
        if not raw_path.startswith("/"):
            self.warn(at[:-1], "skipped: a path starts with '/'", key=True)
            return None
        names: dict[str, str] = {}
        for segment in raw_path.split("/")[1:]:
            found = _WHOLE_PARAM.match(segment)
            if found is None and ("{" in segment or "}" in segment):
                self.warn(at[:-1], "skipped: a parameter must be a whole path segment", key=True)
                return None
            if found is not None:
                ours = snake_case(found.group(1))
                if ours in names.values():
                    message = f"skipped: two parameters are both {ours!r} in snake_case"
                    self.warn(at[:-1], message, key=True)
                    return None
                names[found.group(1)] = ours
        return names

    def scope(self, method: str, operation: dict[str, Any], at: DocPath) -> str:
        security = operation.get("security", self.doc.data.get("security"))
        named: set[str] = set()
        for requirement in security if isinstance(security, list) else ():
            for scheme, scopes in requirement.items() if isinstance(requirement, dict) else ():
                if self.oauth(scheme) and isinstance(scopes, list):
                    named.update(s for s in scopes if isinstance(s, str))
        fallback = f"{self.scope_prefix}.{'read' if method in _SAFE_METHODS else 'write'}"
        ours = our_scope(next(iter(named))) if len(named) == 1 else None
        if ours is not None:
            return ours
        if named:
            self.warn(
                (*at, "security") if "security" in operation else ("security",),
                f"scopes {', '.join(sorted(named))}: not exactly one that reads as an "
                f"Interlock scope; the route requires {fallback}",
            )
        return fallback

    def oauth(self, scheme: str) -> bool:
        schemes = _mapping(_mapping(self.doc.data.get("components")).get("securitySchemes"))
        found, _ = self.deref(schemes.get(scheme), ("components", "securitySchemes", scheme))
        return isinstance(found, dict) and found.get("type") in {"oauth2", "openIdConnect"}

    def body(self, operation: dict[str, Any], at: DocPath) -> dict[str, Any] | None:
        """Route fields from the request body; None (warned) when no body can be accepted."""
        if "requestBody" not in operation:
            return {}
        body, where = self.deref(operation["requestBody"], (*at, "requestBody"))
        content = body.get("content") if isinstance(body, dict) else None
        if not isinstance(content, dict) or not content:
            raise self.doc.error(where, "a request body needs content")
        accepted: list[str] = []
        schema: tuple[Any, DocPath] | None = None
        for media, entry in content.items():
            main = str(media).split(";", 1)[0].strip().lower()
            kind = media_kind(main)
            if not _MEDIA_TYPE.match(main) or kind == "other":
                self.warn(
                    (*where, "content", media),
                    f"{media} bodies are not accepted: Interlock cannot validate them "
                    "(add the type to content_types by hand if the upstream needs it)",
                )
                continue
            if main not in accepted:
                accepted.append(main)
            json_schema = isinstance(entry, dict) and "schema" in entry and kind == "json"
            if json_schema and (schema is None or main == "application/json"):
                schema = (entry["schema"], (*where, "content", media, "schema"))
        if not accepted:
            self.warn(where, "skipped: no request body type Interlock can validate")
            return None
        fields: dict[str, Any] = {}
        if accepted != ["application/json"]:
            fields["content_types"] = accepted
        if schema is not None:
            fields["request_schema"] = _Schemas(self).root(*schema)
        kinds = {media_kind(m) for m in accepted}
        fields.update({"xml": {}} if "xml" in kinds else {})
        fields.update({"csv": {}} if "csv" in kinds else {})
        return fields

    def parameters(
        self, item: dict[str, Any], operation: dict[str, Any], names: dict[str, str], at: DocPath
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        merged: dict[tuple[str, str], tuple[dict[str, Any], DocPath]] = {}
        for raw, base in ((item.get("parameters"), at[:-1]), (operation.get("parameters"), at)):
            if not isinstance(raw, list):
                continue
            for index, entry in enumerate(raw):
                param, where = self.deref(entry, (*base, "parameters", index))
                if not (isinstance(param, dict) and isinstance(param.get("name"), str)):
                    raise self.doc.error(where, "a parameter needs a name")
                merged[(str(param.get("in")), param["name"])] = (param, where)
        params: dict[str, Any] = {}
        query: dict[str, Any] = {}
        for (place, name), (param, where) in merged.items():
            if place == "path" and name in names:
                spec = self.spec(param, where, path=True)
                params.update({names[name]: spec} if spec is not None else {})
            elif place == "query" and _QUERY_NAME.match(name):
                spec = self.spec(param, where, path=False)
                if spec is not None and param.get("required") is True:
                    spec["required"] = True
                query.update({name: spec} if spec is not None else {})
            elif place in {"header", "cookie"}:
                self.warn(
                    where, f"{place} parameter {name!r} not imported (routes type path and query)"
                )
            else:
                self.warn(where, f"{place} parameter {name!r} not imported (refused if sent)")
        return params, query

    def spec(self, param: dict[str, Any], where: DocPath, *, path: bool) -> dict[str, Any] | None:
        """A ParamSpec mapping for ``param``; None (warned) for objects."""
        name = param["name"]
        schema, at = self.deref(param.get("schema", {}), (*where, "schema"))
        schema = _without_null_branch(schema) if isinstance(schema, dict) else {}
        kind = _simple_type(schema)
        if kind == "array":
            self.warn(at, f"{name!r} is an array: imported as one value of its item type")
            items, at = self.deref(schema.get("items", {}), (*at, "items"))
            schema = items if isinstance(items, dict) else {}
            kind = _simple_type(schema)
        if kind == "object":
            self.warn(at, f"object parameter {name!r} not imported (refused if sent)")
            return None
        if kind is None:
            self.warn(at, f"{name!r} has no single type: imported as {DEFAULT_PARAM}")
            return {"type": "string", "pattern": DEFAULT_PARAM}
        spec: dict[str, Any] = {"type": kind}
        if kind in {"integer", "number"}:
            spec.update(self.bounds(schema, kind, at))
        elif kind == "string":
            spec.update(self.text(schema, at, path=path))
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            values = [v for v in enum if v is not None]
            if values and all(isinstance(v, str | int | float) for v in values):
                spec["enum"] = [str(v) for v in values] if kind == "string" else values
        if not path and kind == "string" and set(spec) == {"type"}:
            self.warn(at, f"query parameter {name!r} is free text (any 256 characters pass)")
        return spec

    def bounds(self, schema: dict[str, Any], kind: str, at: DocPath) -> dict[str, Any]:
        low, high = _number(schema.get("minimum")), _number(schema.get("maximum"))
        ex_low, ex_high = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if ex_low is True:  # OpenAPI 3.0: a flag saying minimum itself is excluded
            ex_low, low = low, None
        if ex_high is True:
            ex_high, high = high, None
        if (value := _number(ex_low)) is not None:
            low = _above(value, kind) if low is None else max(low, _above(value, kind))
        if (value := _number(ex_high)) is not None:
            high = _below(value, kind) if high is None else min(high, _below(value, kind))
        if kind == "integer" and str(schema.get("format")) in _INT_BOUNDS:
            fmt_low, fmt_high = _INT_BOUNDS[str(schema.get("format"))]
            low = fmt_low if low is None else max(low, fmt_low)
            high = fmt_high if high is None else min(high, fmt_high)
        return {k: v for k, v in (("minimum", low), ("maximum", high)) if v is not None}

    def text(self, schema: dict[str, Any], at: DocPath, *, path: bool) -> dict[str, Any]:
        spec: dict[str, Any] = {}
        fmt = schema.get("format")
        if fmt in _FORMATS:
            spec["format"] = fmt
        elif fmt is not None:
            self.warn(at, f"format {fmt!r} is not checked by Interlock")
        pattern = self.pattern(schema.get("pattern"), at)
        low, high = schema.get("minLength"), schema.get("maxLength")
        low = low if isinstance(low, int) and not isinstance(low, bool) and low >= 0 else None
        high = high if isinstance(high, int) and not isinstance(high, bool) and high > 0 else None
        if high is not None and high > 8192:
            self.warn(at, f"maxLength {high} lowered to 8192, Interlock's cap for a parameter")
            high = 8192
        if path and pattern is None and "format" not in spec and "enum" not in schema:
            pattern = f"{_UNRESERVED}{{{max(low or 1, 1)},{high or 128}}}"
        spec.update({"pattern": pattern} if pattern is not None else {})
        spec.update({"min_length": low} if low else {})
        spec.update({"max_length": high} if high is not None else {})
        return spec

    def pattern(self, raw: object, at: DocPath) -> str | None:
        if raw is None:
            return None
        # ECMA-262 named groups (?<name>...) are (?P<name>...) in Python.
        text = re.sub(r"\(\?<(?![=!])", "(?P<", raw) if isinstance(raw, str) else ""
        try:
            re.compile(text)
        except re.error:
            text = ""
        if not text or len(text) > 500:
            self.warn(at, f"pattern {raw!r} is not usable here; {DEFAULT_PARAM} is used instead")
            return DEFAULT_PARAM
        return text


class _Schemas:
    """One request schema, converted to a self-contained JSON Schema 2020-12 document."""

    def __init__(self, converter: _Converter) -> None:
        self.converter = converter
        self.doc = converter.doc
        self.defs: dict[str, Any] = {}
        self.names: dict[DocPath, str] = {}
        self.todo: list[tuple[DocPath, str]] = []

    def root(self, node: Any, at: DocPath) -> dict[str, Any]:
        body = self.convert(node, at)
        while self.todo:
            component, name = self.todo.pop()
            self.defs[name] = self.convert(
                self.converter.lookup(_pointer(component), at)[0], component
            )
        schema: dict[str, Any] = {"$schema": DIALECT}
        schema.update(body if isinstance(body, dict) else {} if body else {"not": {}})
        if self.defs:
            schema["$defs"] = dict(sorted(self.defs.items()))
        return schema

    def ref(self, ref: object, at: DocPath) -> str:
        _, target = self.converter.lookup(ref, at)
        if len(target) < 3 or target[:2] != ("components", "schemas"):
            raise self.doc.error((*at, "$ref"), "a schema $ref must point into components.schemas")
        component = target[:3]
        name = self.names.get(component)
        if name is None:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(component[2]))
            while name in self.names.values():
                name += "_"
            self.names[component] = name
            self.todo.append((component, name))
        rest = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in target[3:])
        return f"#/$defs/{name}{rest}"

    def convert(self, node: Any, at: DocPath) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.doc.error(at, "a schema must be a mapping")
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise self.doc.error((*at, keyword), f"{keyword} is not supported; use $ref")
        out: dict[str, Any] = {}
        if "$ref" in node:
            out["$ref"] = self.ref(node["$ref"], at)
            if self.doc.version == "3.0":
                # OpenAPI 3.0 §4.7.24.1 (Reference Object): other keywords are ignored.
                return out
        for key, value in node.items():
            if key in _DROP or key in {"$ref", "nullable"} or key.startswith("x-"):
                continue
            out[key] = self.keyword(key, value, (*at, key))
        _exclusive_bounds(out)
        if isinstance(out.get("required"), list):
            out["required"] = [n for n in out["required"] if not self.read_only(node, n, at)]
            if not out["required"]:
                del out["required"]
        if "nullable" in node and self.doc.version == "3.1":
            self.warn_once(at, "nullable is not an OpenAPI 3.1 keyword; ignored (use a null type)")
        elif node.get("nullable") is True:
            return _nullable(out)
        return out

    def keyword(self, key: str, value: Any, at: DocPath) -> Any:
        if key in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise self.doc.error(at, f"{key} must be a mapping of schemas")
            return {k: self.convert(v, (*at, k)) for k, v in value.items()}
        if key in _SCHEMA_LISTS:
            if not isinstance(value, list):
                raise self.doc.error(at, f"{key} must be a list of schemas")
            return [self.convert(v, (*at, i)) for i, v in enumerate(value)]
        if key in _SCHEMA_ONE:
            return self.convert(value, at)
        return value

    def read_only(self, node: dict[str, Any], name: object, at: DocPath) -> bool:
        properties = node.get("properties")
        if not isinstance(properties, dict) or not isinstance(name, str) or name not in properties:
            return False
        found, _ = self.converter.deref(properties[name], (*at, "properties", name))
        return isinstance(found, dict) and found.get("readOnly") is True

    def warn_once(self, at: DocPath, message: str) -> None:
        line = self.doc.locate(at, message, warning=True)
        if line not in self.converter.warnings:
            self.converter.warnings.append(line)


# -- the manifest ----------------------------------------------------------------


def plan_import(
    spec: Path,
    manifest: Path,
    *,
    system: str,
    integration: str | None = None,
    scope_prefix: str | None = None,
    schema_check: SchemaCheck | None = None,
) -> ImportPlan:
    """The manifest with the routes ``spec`` describes for ``system`` merged in (not written).

    The manifest must already be valid and declare ``system`` and the
    integration, with its GDPR facts: the import never invents a purpose or a
    legal basis. ``integration`` defaults to the one integration whose routes
    use ``system`` (else the one whose source or target it is). ``schema_check``
    is passed to :func:`convert_openapi`.
    """
    current = load_manifest(manifest)
    if system not in current.systems:
        message = f"unknown system {system!r}{_known(current.systems)}"
        raise NotFoundError(_located(manifest, ("systems",), message))
    name = _integration(current, system, integration, manifest)
    if scope_prefix is not None and not re.match(SCOPE_PATTERN, scope_prefix):
        raise InvalidRequestError(f"--scope-prefix {scope_prefix!r}: {PATTERN_HELP[SCOPE_PATTERN]}")
    conversion = convert_openapi(
        read_openapi(spec),
        system=system,
        system_url=current.systems[system].url,
        scope_prefix=scope_prefix,
        schema_check=schema_check,
    )
    before = manifest.read_text(encoding="utf-8")
    after, added, replaced = merge_routes(before, name, conversion.routes)
    return ImportPlan(
        manifest, name, conversion.routes, added, replaced, conversion.warnings, before, after
    )


def apply_import(plan: ImportPlan, *, dry_run: bool = False, deep: DeepCheck | None = None) -> bool:
    """Check the merged manifest like ``interlock validate``; write it if valid. True if written.

    The result goes to a temporary file beside the manifest (so relative
    paths in it resolve as they will) and is checked there with
    :func:`check_manifest` and ``deep``; only a valid result replaces the
    manifest (``os.replace``, same mode), so on any error (a
    :class:`ManifestError` carrying every located problem) the manifest is
    untouched. A dry run checks the same way and removes the temporary file;
    an unchanged manifest is not rewritten.
    """
    if plan.after == plan.before:
        return False
    _check_and_write(plan.manifest, plan.after, write=not dry_run, deep=deep)
    return not dry_run


def merge_routes(
    text: str, integration: str, routes: tuple[dict[str, Any], ...]
) -> tuple[str, int, int]:
    """``text`` with ``routes`` in ``integration`` (comments and order kept); added, replaced.

    A route with the same method and path template is updated in place: the
    fields the import owns are set, everything else in it is kept.
    """
    yaml = _round_trip(text)
    data = yaml.load(text)
    flow = data["integrations"][integration]
    existing = flow.get("routes")
    if not isinstance(existing, CommentedSeq):
        existing = flow["routes"] = CommentedSeq()
    if flow.fa.flow_style() or existing.fa.flow_style():
        flow.fa.set_block_style()
        existing.fa.set_block_style()
    index: dict[tuple[str, str], int] = {}
    for position, old in enumerate(existing):
        if isinstance(old, dict):
            key = (str(old.get("method", "")).upper(), template_shape(str(old.get("path", ""))))
            index.setdefault(key, position)
    added = replaced = 0
    for route in routes:
        key = (route["method"], template_shape(route["path"]))
        if key in index:
            _update(existing[index[key]], route)
            replaced += 1
        else:
            index[key] = len(existing)
            existing.append(entry := _yaml_value(route))
            entry.fa.set_block_style()
            added += 1
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue(), added, replaced


def routes_yaml(routes: tuple[dict[str, Any], ...]) -> str:
    """The routes as the YAML list the manifest would hold."""
    yaml = _round_trip("")
    out = io.StringIO()
    entries = _yaml_value(list(routes))
    for entry in entries:
        entry.fa.set_block_style()
    yaml.dump(entries, out)
    return out.getvalue()


def _update(target: CommentedMap, route: dict[str, Any]) -> None:
    if target.fa.flow_style():
        target.fa.set_block_style()
    previous: str | None = None
    for key in _OWNED:
        if key not in route:
            if key in target:
                del target[key]
            continue
        if key not in target:
            keys = list(target)
            position = keys.index(previous) + 1 if previous in keys else len(keys)
            target.insert(position, key, _yaml_value(route[key]))
        elif target[key] != route[key]:  # unchanged values keep their formatting
            target[key] = _yaml_value(route[key])
        previous = key
    for key in ("xml", "csv"):  # a policy tuned by hand (an XSD, limits) stays
        if key in route and key not in target:
            target[key] = _yaml_value(route[key])


def _yaml_value(value: Any) -> Any:
    """Round-trip containers; short all-scalar mappings and scalar lists in flow style."""
    if isinstance(value, dict):
        mapping = CommentedMap((k, _yaml_value(v)) for k, v in value.items())
        if 0 < len(value) <= 5 and all(_flat(v) for v in value.values()):
            mapping.fa.set_flow_style()
        return mapping
    if isinstance(value, list):
        sequence = CommentedSeq(_yaml_value(v) for v in value)
        if all(not isinstance(v, dict | list) for v in value):
            sequence.fa.set_flow_style()
        return sequence
    return value


def _flat(value: object) -> bool:
    if isinstance(value, list):
        return all(not isinstance(v, dict | list) for v in value)
    return not isinstance(value, dict)


def _round_trip(text: str) -> YAML:
    yaml = YAML()  # round-trip mode: comments, key order and quoting survive
    yaml.preserve_quotes = True
    yaml.width = 4096  # never re-wrap the file's long lines
    mapping, offset = _indentation(text)
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    return yaml


def _indentation(text: str) -> tuple[int, int]:
    """The file's mapping indent and block-sequence dash offset (default 2 and 2)."""
    mapping: int | None = None
    offset: int | None = None
    parent: int | None = None  # indentation of the last line that is only "key:"
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if parent is not None and indent > parent:
            if stripped.startswith("- ") and offset is None:
                offset = indent - parent
            elif not stripped.startswith("- ") and mapping is None:
                mapping = indent - parent
        parent = indent if stripped.endswith(":") and not stripped.startswith("-") else None
    return mapping or 2, 2 if offset is None else offset


def _check_and_write(manifest: Path, text: str, *, write: bool, deep: DeepCheck | None) -> None:
    real = manifest.resolve()
    # Beside the manifest, so that os.replace is an atomic rename on one file system.
    handle, name = tempfile.mkstemp(prefix=f".{real.name}.", suffix=".import", dir=real.parent)
    temporary = Path(name)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        report = check_manifest(temporary, deep)
        if report.errors:
            errors = tuple(dataclasses.replace(d, file=str(manifest)) for d in report.errors)
            raise ManifestError(
                f"{errors[0]} (in the manifest as the import would leave it; nothing was written)",
                diagnostics=errors,
            )
        if write:
            temporary.chmod(stat.S_IMODE(real.stat().st_mode))
            temporary.replace(real)  # os.replace: atomic
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _integration(manifest: Manifest, system: str, wanted: str | None, file: Path) -> str:
    flows = manifest.integrations
    if wanted is not None:
        flow = flows.get(wanted)
        if flow is None:
            message = (
                f"unknown integration {wanted!r}{_known(flows)}; declare it first, with its "
                "purpose and legal basis"
            )
            raise NotFoundError(_located(file, ("integrations",), message))
        if system not in {flow.source, flow.target}:
            message = (
                f"integration {wanted!r} connects {flow.source} and {flow.target}, not {system}"
            )
            raise InvalidRequestError(_located(file, ("integrations", wanted), message))
        return wanted
    using = sorted(n for n, f in flows.items() if any(r.upstream == system for r in f.routes))
    using = using or sorted(n for n, f in flows.items() if system in {f.source, f.target})
    if len(using) == 1:
        return using[0]
    if using:
        message = f"system {system!r} is used by {', '.join(using)}; choose with --integration"
        raise InvalidRequestError(_located(file, ("integrations",), message))
    message = (
        f"no integration connects system {system!r}; declare one (source, target, client, "
        "purpose, legal_basis, retention) first"
    )
    raise NotFoundError(_located(file, ("integrations",), message))


def _located(manifest: Path, path: DocPath, message: str) -> str:
    line, column = read_yaml(manifest).position(path, key=True)
    return f"{manifest}:{line}:{column}: {format_path(path)}: {message}"


def _known(names: Mapping[str, object]) -> str:
    return f" (known: {', '.join(sorted(names))})" if names else ""


# -- helpers -------------------------------------------------------------------


def snake_case(name: str) -> str:
    """A parameter name as ours: ``orderId`` -> ``order_id``, ``X-Id`` -> ``x_id``."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    text = re.sub(r"[^a-z0-9_]", "_", text.lower())
    return text if text and not text[0].isdigit() else f"_{text}"


def our_scope(scope: str) -> str | None:
    """``orders:read`` -> ``orders.read``; None when it cannot read as an Interlock scope."""
    parts = re.split(r"[:/.]", scope.strip().lower())
    text = ".".join(re.sub(r"[^a-z0-9_-]", "_", part) for part in parts)
    return text if re.match(SCOPE_PATTERN, text) else None


def _exclusive_bounds(schema: dict[str, Any]) -> None:
    """OpenAPI 3.0's ``exclusiveMinimum: true`` (a flag on ``minimum``) as 2020-12's number."""
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(flag), bool) and schema.pop(flag) and bound in schema:
            schema[flag] = schema.pop(bound)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 ``nullable: true`` as 2020-12: null joins the type (or an anyOf)."""
    kind = schema.get("type")
    if isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else list(kind)
        schema["type"] = kinds if "null" in kinds else [*kinds, "null"]
    elif schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _without_null_branch(schema: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches:
            other = branches[1 - branches.index({"type": "null"})]
            return other if isinstance(other, dict) else schema
    return schema


def _simple_type(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    kinds = [kind] if isinstance(kind, str) else kind if isinstance(kind, list) else []
    kinds = [k for k in kinds if k != "null"]
    if not kinds and not any(k in schema for k in ("allOf", "anyOf", "oneOf", "not")):
        return "string"
    if len(kinds) != 1 or kinds[0] not in _PARAM_TYPES:
        return None
    return str(kinds[0])


def _number(value: object) -> int | float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _above(value: int | float, kind: str) -> int | float:
    return math.floor(value) + 1 if kind == "integer" else math.nextafter(value, math.inf)


def _below(value: int | float, kind: str) -> int | float:
    return math.ceil(value) - 1 if kind == "integer" else math.nextafter(value, -math.inf)


def _pointer(path: DocPath) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
