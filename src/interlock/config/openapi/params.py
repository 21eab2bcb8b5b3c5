"""Path and query parameters as the manifest's typed ParamSpec mappings.

Patterns are matched against the whole value (stricter than OpenAPI's
search); a string path parameter with neither pattern, format nor enum gets
the RFC 3986 unreserved pattern with its length bounds. What a spec cannot say
(objects, unknown formats, foreign regex syntax) becomes the closest *stricter*
spec, with a warning. A header parameter becomes an entry of the route's
``forward_headers`` (its value is not typed) unless the name may never be
forwarded; cookie parameters are not imported.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from interlock.config.header_names import header_name_refusal
from interlock.config.manifest import DEFAULT_PARAM
from interlock.config.openapi.document import Resolver
from interlock.config.yaml_source import DocPath

__all__ = ["route_parameters"]

_QUERY_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$")
_UNRESERVED: Final = "[A-Za-z0-9._~-]"
_PARAM_TYPES: Final = frozenset({"string", "integer", "number", "boolean", "array", "object"})
_FORMATS: Final = frozenset({"uuid", "date", "date-time", "email"})
_INT_BOUNDS: Final = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
# OpenAPI 3 §4.8.12.1: header parameters with these names are ignored.
_IGNORED_HEADERS: Final = frozenset({"accept", "content-type", "authorization"})


def route_parameters(
    converter: Resolver,
    item: dict[str, Any],
    operation: dict[str, Any],
    names: dict[str, str],
    at: DocPath,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The route's ``params``, ``query`` and ``forward_headers``.

    Path parameters are renamed by ``names``.
    """
    return _Parameters(converter).parameters(item, operation, names, at)


class _Parameters:
    """One operation's parameters (path item and operation level), mapped to ParamSpecs."""

    def __init__(self, converter: Resolver) -> None:
        self.doc = converter.doc
        self.deref = converter.deref
        self.warn = converter.warn

    def parameters(
        self, item: dict[str, Any], operation: dict[str, Any], names: dict[str, str], at: DocPath
    ) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
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
        headers: list[str] = []
        for (place, name), (param, where) in merged.items():
            if place == "path" and name in names:
                spec = self.spec(param, where, path=True)
                params.update({names[name]: spec} if spec is not None else {})
            elif place == "query" and _QUERY_NAME.match(name):
                spec = self.spec(param, where, path=False)
                if spec is not None and param.get("required") is True:
                    spec["required"] = True
                query.update({name: spec} if spec is not None else {})
            elif place == "header":
                self.header(name, where, headers)
            elif place == "cookie":
                self.warn(where, f"cookie parameter {name!r} not imported (cookies stay behind)")
            else:
                self.warn(where, f"{place} parameter {name!r} not imported (refused if sent)")
        return params, query, headers

    def header(self, name: str, where: DocPath, headers: list[str]) -> None:
        """Forward header ``name`` if any route may (its value passes unchecked), else warn."""
        lower = name.lower()
        if lower in _IGNORED_HEADERS or lower in (h.lower() for h in headers):
            return
        refused = header_name_refusal(name, "forward")
        if refused is not None:
            self.warn(where, f"header parameter {name!r} not imported: {refused}")
            return
        headers.append(name)
        self.warn(where, f"header parameter {name!r} is forwarded unchecked (values are not typed)")

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
