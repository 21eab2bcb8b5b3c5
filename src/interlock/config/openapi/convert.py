"""OpenAPI operations as manifest routes: path templates, upstream paths, scopes, bodies.

Each operation becomes one route (see :mod:`interlock.config.openapi` for the
mapping); an operation that cannot be expressed is skipped with a located
warning rather than imported loosely.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

from pydantic import ValidationError

from interlock.config.manifest import SCOPE_PATTERN, Route, media_kind, template_shape
from interlock.config.openapi.document import OpenApiDocument
from interlock.config.openapi.params import route_parameters
from interlock.config.openapi.schemas import request_schema
from interlock.config.yaml_source import DocPath

__all__ = [
    "MAX_OPERATIONS",
    "Conversion",
    "SchemaCheck",
    "convert_openapi",
    "our_scope",
    "snake_case",
]

MAX_OPERATIONS: Final = 1000
_METHODS: Final = {
    m.lower(): m for m in ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH")
}
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_WHOLE_PARAM: Final = re.compile(r"^\{([^{}/]+)\}$")
_MEDIA_TYPE: Final = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
_LITERAL_PATH: Final = re.compile(r"^(/[A-Za-z0-9._~!$&'()*+,=:@-]+)+$")
SchemaCheck = Callable[[Mapping[str, Any]], object]
"""Compiles a request schema, raising :class:`ValueError` when it cannot be used."""


@dataclass(frozen=True)
class Conversion:
    """Generated routes (manifest mappings, each a valid :class:`Route`) and warnings."""

    routes: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    # One line per data category proposed for a field (x-data-category-proposed).
    notes: tuple[str, ...] = ()


def convert_openapi(
    doc: OpenApiDocument,
    *,
    system: str,
    system_url: str,
    scope_prefix: str | None = None,
    schema_check: SchemaCheck | None = None,
) -> Conversion:
    """Routes to ``system`` for every operation of ``doc`` (see :mod:`interlock.config.openapi`).

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
    return Conversion(tuple(routes), tuple(converter.warnings), tuple(converter.notes))


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
        self.notes: list[str] = []

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
        params, query, headers = route_parameters(self, item, operation, names, at)
        route.update({"params": params} if params else {})
        route.update({"query": query} if query else {})
        route.update({"forward_headers": headers} if headers else {})
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
            fields["request_schema"] = request_schema(self, *schema)
        kinds = {media_kind(m) for m in accepted}
        fields.update({"xml": {}} if "xml" in kinds else {})
        fields.update({"csv": {}} if "csv" in kinds else {})
        return fields


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


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
