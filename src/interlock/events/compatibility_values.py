"""JSON values and schema shapes for the compatibility checker.

Equality of JSON values as JSON Schema sees it (``1`` equals ``1.0``,
``true`` is not ``1``), the types and finite value sets a schema admits, and a
conservative merge of ``allOf`` parts — shared by
:mod:`interlock.events.compatibility` and its keyword checks.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from interlock.events.compatibility_refs import (
    ANNOTATIONS,
    UnsupportedSchemaError,
    pointer_target,
)

__all__ = [
    "ALL_TYPES",
    "COMBINATORS",
    "canonical",
    "escape",
    "is_empty",
    "json_type",
    "merge",
    "references",
    "same_schema",
    "subschemas",
    "types_of",
    "values_of",
    "without",
]

ALL_TYPES: Final = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
COMBINATORS: Final = ("allOf", "anyOf", "oneOf")


def canonical(value: Any) -> str:
    """A JSON text equal for equal JSON values (1 and 1.0 equal, true and 1 not)."""

    def norm(v: Any) -> Any:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return v
        if isinstance(v, int | float):
            if math.isnan(v) or math.isinf(v):
                return ["#n", repr(v)]
            return ["#n", int(v) if float(v).is_integer() else float(v)]
        if isinstance(v, Mapping):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [norm(x) for x in v]
        return repr(v)

    return json.dumps(norm(value), sort_keys=True, separators=(",", ":"))


def escape(token: str) -> str:
    """``token`` escaped for an RFC 6901 JSON Pointer (``~`` then ``/``)."""
    return token.replace("~", "~0").replace("/", "~1")


def types_of(schema: Mapping[str, Any]) -> frozenset[str]:
    """The JSON types ``schema`` admits by its ``type``, ``enum`` and ``const`` keywords."""
    declared = schema.get("type")
    if isinstance(declared, str):
        found = frozenset({declared})
    elif isinstance(declared, list):
        found = frozenset(t for t in declared if isinstance(t, str))
    else:
        found = ALL_TYPES
    if "number" in found:
        found = found | {"integer"}
    values = values_of(schema)
    if values is not None:
        found = found & frozenset(json_type(v) for v in values)
    return found


def json_type(value: Any) -> str:
    """The JSON Schema type of a JSON value (``1.0`` is an integer, as in 2020-12)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def values_of(schema: Mapping[str, Any]) -> list[Any] | None:
    """The finite set of values ``enum``/``const`` allow, or None when unrestricted.

    Both keywords apply when both are present: the values are their
    intersection (possibly empty).
    """
    enum = schema.get("enum")
    values = list(enum) if isinstance(enum, list) else None
    if "const" not in schema:
        return values
    const = schema["const"]
    if values is None:
        return [const]
    return [const] if canonical(const) in {canonical(v) for v in values} else []


def is_empty(schema: Any) -> bool:
    """True for a schema that accepts everything (``true``, ``{}``, only annotations)."""
    if schema is True:
        return True
    return isinstance(schema, Mapping) and all(k in ANNOTATIONS for k in schema)


def subschemas(value: Any) -> list[Any]:
    """The subschemas of an ``allOf``/``anyOf``/``oneOf`` value (nothing if malformed)."""
    return list(value) if isinstance(value, list) else []


def without(schema: Mapping[str, Any], keyword: str) -> dict[str, Any]:
    """A copy of ``schema`` without ``keyword``."""
    return {k: v for k, v in schema.items() if k != keyword}


def merge(parts: list[Any], text: Callable[[Any], str] = canonical) -> dict[str, Any] | None:
    """One schema accepting at least what ``allOf: parts`` accepts, or None if unsure.

    Properties merge by name (a name in two parts gets both schemas), required
    lists unite; any other keyword in two parts must be equal. The result may
    accept more than the conjunction (an ``additionalProperties: false`` in one
    part no longer excludes another part's properties) — on the writer side
    that only makes the check stricter.
    """
    merged: dict[str, Any] = {}
    for part in parts:
        if part is True:
            continue
        if not isinstance(part, Mapping) or any(k in part for k in (*COMBINATORS, "$ref")):
            return None
        for key, value in part.items():
            if key in ANNOTATIONS:
                continue
            if key not in merged:
                merged[key] = value
            elif key == "properties" and isinstance(value, Mapping):
                props = dict(merged[key])
                for name, sub in value.items():
                    props[name] = {"allOf": [props[name], sub]} if name in props else sub
                merged[key] = props
            elif key == "required" and isinstance(value, list):
                merged[key] = sorted(set(merged[key]) | set(value))
            elif text(merged[key]) != text(value):
                return None
    return merged


def same_schema(
    a: Any, a_root: Any, b: Any, b_root: Any, text: Callable[[Any], str] = canonical
) -> bool:
    """Whether ``a`` (in ``a_root``) and ``b`` (in ``b_root``) are one schema.

    Equal text is not enough: the same ``{"$ref": "#/$defs/x"}`` means
    whatever ``x`` is in each document, so every local reference in them
    must reach equal text in both roots too (and so on, each once).
    """
    pending: list[tuple[Any, Any]] = [(a, b)]
    seen: set[str] = set()
    while pending:
        x, y = pending.pop()
        written = text(x)
        if written != text(y):
            return False
        if '"$ref"' not in written and '"$dynamicRef"' not in written:
            continue  # nothing to follow: no need to walk it
        for ref in references(x):
            if ref in seen:
                continue
            seen.add(ref)
            try:
                pending.append(
                    (pointer_target(a_root, ref[1:])[0], pointer_target(b_root, ref[1:])[0])
                )
            except UnsupportedSchemaError:
                return False
    return True


def references(value: Any) -> Iterator[str]:
    """Every ``$ref``/``$dynamicRef`` string in ``value`` (remote ones as ``#`` + text)."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            for key, sub in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(sub, str):
                    yield sub if sub.startswith("#") else f"#{sub}"
                else:
                    pending.append(sub)
        elif isinstance(node, list):
            pending.extend(node)
