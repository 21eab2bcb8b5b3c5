"""``unevaluatedProperties`` and ``unevaluatedItems`` for the compatibility checker.

Which members these keywords apply to depends on what the keywords beside
them evaluated, in-place applicators included (2020-12 core §11): removing
``a`` from ``{"properties": {"a": {}}, "unevaluatedProperties": false}``
closes the model against ``a`` though the keyword's text is unchanged. The
checker compares them through rewritten schemas:

* with no in-place applicator beside it, ``unevaluatedProperties`` is
  ``additionalProperties`` (moot beside one) and ``unevaluatedItems`` is
  ``items`` (moot beside one): exact;
* with applicators (``allOf``, ``anyOf``, ``oneOf``, ``if``/``then``/``else``,
  ``dependentSchemas``, a ``$ref`` beside siblings), ``unevaluatedProperties:
  U`` becomes one more ``allOf`` branch, ``{"properties": {n: {}},
  "patternProperties": {p: {}}, "additionalProperties": U}``. For a reader,
  the names and patterns are those always evaluated (its own, its ``allOf``
  branches', its ``$ref`` targets'): at least as strict as the original. For
  a writer, those any in-place subschema may evaluate: at least as loose.
  When every name may be evaluated, the keyword is moot (reader) or dropped
  (writer);
* ``unevaluatedItems`` beside applicators is dropped from a writer; a reader
  must have it unchanged (the caller checks, fails closed otherwise).

A stricter reader or a looser writer can only add findings, never hide one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from interlock.events.compatibility_values import is_empty, without

__all__ = ["APPLICATORS", "reader_view", "writer_view"]

#: Keywords whose subschemas apply to the same instance and may evaluate its members.
APPLICATORS: Final = ("allOf", "anyOf", "oneOf", "if", "then", "else", "dependentSchemas")
_ALWAYS: Final = ("allOf",)  # applied whenever the schema holds (their annotations count)
_MAX_NODES: Final = 256  # subschemas visited for one bound; past it, assume the worst

Resolve = Callable[[Any], Any]
"""Follows a node's local ``$ref`` in its document (see compatibility_refs.resolve)."""


def reader_view(schema: Mapping[str, Any], resolve: Resolve) -> Mapping[str, Any]:
    """``schema`` without ``unevaluated*``, at least as strict (``unevaluatedItems``
    beside applicators is kept for the caller to check)."""
    schema = _items(schema, keep=True)
    if not _has(schema, "unevaluatedProperties"):
        return schema
    if not any(k in schema for k in APPLICATORS):
        return _plain(schema)
    names = _evaluated(schema, resolve, _ALWAYS, strict=True)
    return _with_bound(schema, names)


def writer_view(schema: Mapping[str, Any], resolve: Resolve) -> Mapping[str, Any]:
    """``schema`` without ``unevaluated*``, at least as loose."""
    schema = _items(schema, keep=False)
    if not _has(schema, "unevaluatedProperties"):
        return schema
    if not any(k in schema for k in APPLICATORS):
        return _plain(schema)
    names = _evaluated(schema, resolve, APPLICATORS, strict=False)
    return _with_bound(schema, names)


def _has(schema: Mapping[str, Any], keyword: str) -> bool:
    return keyword in schema and not is_empty(schema[keyword])


def _items(schema: Mapping[str, Any], *, keep: bool) -> Mapping[str, Any]:
    if not _has(schema, "unevaluatedItems"):
        return without(schema, "unevaluatedItems") if "unevaluatedItems" in schema else schema
    if any(k in schema for k in (*APPLICATORS, "contains")):  # contains evaluates items too
        return schema if keep else without(schema, "unevaluatedItems")
    rest = without(schema, "unevaluatedItems")
    if "items" in rest:
        return rest
    return {**rest, "items": schema["unevaluatedItems"]}


def _plain(schema: Mapping[str, Any]) -> dict[str, Any]:
    rest = without(schema, "unevaluatedProperties")
    if "additionalProperties" in rest:
        return rest
    return {**rest, "additionalProperties": schema["unevaluatedProperties"]}


def _with_bound(
    schema: Mapping[str, Any], names: tuple[set[str], set[str]] | None
) -> Mapping[str, Any]:
    """``schema`` with U as an allOf branch over everything but ``names``; None: moot."""
    rest = without(schema, "unevaluatedProperties")
    if names is None:
        return rest
    declared, patterns = names
    bound: dict[str, Any] = {
        "properties": {name: {} for name in sorted(declared)},
        "additionalProperties": schema["unevaluatedProperties"],
    }
    if patterns:
        bound["patternProperties"] = {pattern: {} for pattern in sorted(patterns)}
    branches = rest.get("allOf")
    return {**rest, "allOf": [*(branches if isinstance(branches, list) else []), bound]}


def _evaluated(
    schema: Mapping[str, Any], resolve: Resolve, through: tuple[str, ...], *, strict: bool
) -> tuple[set[str], set[str]] | None:
    """Names and patterns ``schema`` evaluates through ``through``; None: maybe every name.

    ``strict`` (a reader): a lower bound — stop early rather than guess.
    Otherwise (a writer): an upper bound — give up (None) rather than guess.
    """
    declared: set[str] = set()
    patterns: set[str] = set()
    pending: list[Any] = [without(schema, "unevaluatedProperties")]
    seen: set[int] = set()
    while pending:
        node = resolve(pending.pop())
        if not isinstance(node, Mapping) or id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > _MAX_NODES:
            return (declared, patterns) if strict else None
        if "additionalProperties" in node or "unevaluatedProperties" in node:
            return None  # every remaining name is evaluated there
        if isinstance(node.get("properties"), Mapping):
            declared |= set(node["properties"])
        if isinstance(node.get("patternProperties"), Mapping):
            patterns |= set(node["patternProperties"])
        for keyword in through:
            if keyword in node:
                pending.extend(_subschemas(keyword, node[keyword]))
    return declared, patterns


def _subschemas(keyword: str, value: Any) -> list[Any]:
    if isinstance(value, list):  # allOf, anyOf, oneOf
        return value
    if keyword == "dependentSchemas" and isinstance(value, Mapping):
        return list(value.values())
    return [value]  # if, then, else (absent: None, skipped)
