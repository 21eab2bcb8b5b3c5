"""Schema compatibility: a table of schema pairs, each verdict cross-checked with jsonschema-rs.

Each row is an old and a new schema, the kind expected for BACKWARD (the new
schema reads old data) and for FORWARD (the old reads new data) — ``None``
when compatible — and sample instances. For every compatible direction, each
sample the writer accepts must validate under the reader (jsonschema-rs, the
validator the gateway uses); for every incompatible one, some sample the
writer accepts must fail the reader (a witness), except where the checker is
conservative on purpose (``no_witness``).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Final

import pytest

from interlock.config.events import COMPATIBILITY_MODES, CompatibilityMode
from interlock.events import compatibility, compatibility_values
from interlock.events.compatibility import (
    Incompatibility,
    UnsupportedSchemaError,
    check_compatibility,
    incompatibilities,
)
from interlock.events.compatibility_values import canonical
from interlock.events.resolution import resolve
from interlock.validation.schema import compile_schema

S: dict[str, Any] = {"type": "string"}
I: dict[str, Any] = {"type": "integer"}  # noqa: E741
N: dict[str, Any] = {"type": "number"}


def obj(props: Mapping[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    """An object schema (open content model unless ``additionalProperties`` is given)."""
    schema: dict[str, Any] = {"type": "object", "properties": dict(props), **extra}
    if required:
        schema["required"] = list(required)
    return schema


def closed(props: Mapping[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object schema with a closed content model."""
    return obj(props, required, additionalProperties=False)


@dataclass(frozen=True)
class Case:
    """One row: old and new schema, expected kinds (None = compatible), samples."""

    name: str
    old: dict[str, Any]
    new: dict[str, Any]
    backward: str | None
    forward: str | None
    samples: tuple[Any, ...]
    no_witness: tuple[str, ...] = field(default=())  # directions flagged conservatively


TREE: dict[str, Any] = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "value": I,
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
            },
        }
    },
    "$ref": "#/$defs/node",
}
TREE_WIDER: dict[str, Any] = json.loads(json.dumps(TREE).replace('"integer"', '"number"'))

CASES: tuple[Case, ...] = (
    Case("identical", obj({"a": S}, ("a",)), obj({"a": S}, ("a",)), None, None, ({"a": "x"},)),
    Case("annotations only", obj({"a": S}), obj({"a": {**S, "description": "d", "title": "t"}}),
         None, None, ({"a": "x"},)),
    # -- content models
    Case("optional added, open", obj({"a": S}), obj({"a": S, "b": I}),
         "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", None, ({"a": "x"}, {"a": "x", "b": "s"}, {"a": "x", "b": 1})),
    Case("empty-schema property added, open", obj({"a": S}), obj({"a": S, "b": {}}),
         None, None, ({"a": "x"}, {"a": "x", "b": [1]})),
    Case("optional added, closed", closed({"a": S}), closed({"a": S, "b": I}),
         None, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ({"a": "x"}, {"a": "x", "b": 1})),
    Case("required added, closed", closed({"a": S}, ("a",)), closed({"a": S, "b": I}, ("a", "b")),
         "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
         ({"a": "x"}, {"a": "x", "b": 1})),
    Case("required with default added, closed", closed({"a": S}, ("a",)),
         closed({"a": S, "b": {**I, "default": 0}}, ("a", "b")),
         None, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ({"a": "x"}, {"a": "x", "b": 1})),
    Case("required added, open", obj({"a": S}, ("a",)), obj({"a": S, "b": I}, ("a", "b")),
         "REQUIRED_ATTRIBUTE_ADDED", None, ({"a": "x"}, {"a": "x", "b": 1})),
    Case("optional removed, open", obj({"a": S, "b": I}), obj({"a": S}),
         None, "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", ({"a": "x"}, {"a": "x", "b": "s"}, {"a": "x", "b": 2})),
    Case("optional removed, closed", closed({"a": S, "b": I}), closed({"a": S}),
         "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", None, ({"a": "x"}, {"a": "x", "b": 1})),
    Case("false property removed, closed", closed({"a": S, "b": False}), closed({"a": S}),
         None, None, ({"a": "x"},)),
    Case("required removed, open", obj({"a": S, "b": I}, ("a", "b")), obj({"a": S}, ("a",)),
         None, "REQUIRED_ATTRIBUTE_ADDED", ({"a": "x"}, {"a": "x", "b": 1})),
    Case("optional made required", obj({"a": S, "b": I}, ("a",)), obj({"a": S, "b": I}, ("a", "b")),
         "REQUIRED_ATTRIBUTE_ADDED", None, ({"a": "x"}, {"a": "x", "b": 1})),
    Case("closed model opened", closed({"a": S}), obj({"a": S}),
         None, "ADDITIONAL_PROPERTIES_REMOVED", ({"a": "x"}, {"a": "x", "z": 1})),
    Case("additionalProperties schema narrowed", obj({}, additionalProperties=S),
         obj({}, additionalProperties={**S, "maxLength": 3}),
         "ADDITIONAL_PROPERTIES_NARROWED", None, ({"k": "long value"}, {"k": "ab"})),
    Case("added, covered by partially open model", obj({"a": S}, additionalProperties=S),
         obj({"a": S, "b": S}, additionalProperties=S), None, None,
         ({"a": "x", "b": "y"}, {"a": "x", "c": "z"})),
    Case("added, not covered by partially open model", obj({"a": S}, additionalProperties=S),
         obj({"a": S, "b": I}, additionalProperties=S),
         "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
         "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
         ({"a": "x", "b": "y"}, {"a": "x", "b": 1})),
    Case("property under patternProperties tightened",
         obj({}, patternProperties={"^x-": S}, additionalProperties=False),
         obj({"x-id": {**S, "minLength": 1}}, patternProperties={"^x-": S}, additionalProperties=False),
         "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL", None,
         ({"x-id": ""}, {"x-id": "a", "x-b": "c"})),
    Case("maxProperties added", obj({}), obj({}, maxProperties=1),
         "MAX_PROPERTIES_ADDED", None, ({}, {"a": 1, "b": 2})),
    Case("dependentRequired added", obj({"a": S, "b": S}), obj({"a": S, "b": S}, dependentRequired={"a": ["b"]}),
         "DEPENDENCY_ARRAY_ADDED", None, ({"a": "x"}, {"a": "x", "b": "y"})),
    # -- types
    Case("integer widened to number", closed({"a": I}), closed({"a": N}),
         None, "TYPE_NARROWED", ({"a": 1}, {"a": 1.5})),
    Case("string changed to integer", closed({"a": S}), closed({"a": I}),
         "TYPE_CHANGED", "TYPE_CHANGED", ({"a": "x"}, {"a": 1})),
    Case("null added to type", S, {"type": ["string", "null"]}, None, "TYPE_NARROWED", ("x", None)),
    Case("type union narrowed", {"type": ["string", "integer"]}, S, "TYPE_NARROWED", None, ("x", 3)),
    Case("object changed to array", obj({}), {"type": "array"}, "TYPE_CHANGED", "TYPE_CHANGED", ({}, [])),
    Case("type added to untyped", {}, S, "TYPE_NARROWED", None, ("x", 1)),
    # -- enum and const
    Case("enum extended", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]},
         None, "ENUM_ARRAY_NARROWED", ("a", "c")),
    Case("enum changed", {"enum": ["a", "b"]}, {"enum": ["a", "c"]},
         "ENUM_ARRAY_CHANGED", "ENUM_ARRAY_CHANGED", ("a", "b", "c")),
    Case("enum added", S, {**S, "enum": ["a"]}, "ENUM_ARRAY_NARROWED", None, ("a", "z")),
    Case("const changed", {"const": "v1"}, {"const": "v2"}, "ENUM_ARRAY_CHANGED", "ENUM_ARRAY_CHANGED",
         ("v1", "v2")),
    Case("const widened to enum", {"const": "a"}, {"enum": ["a", "b"]},
         None, "ENUM_ARRAY_CHANGED", ("a", "b")),
    Case("enum of integers read as number", {"enum": [1, 2]}, N, None, "ENUM_ARRAY_NARROWED", (1, 2, 2.5)),
    # -- strings
    Case("maxLength decreased", {**S, "maxLength": 10}, {**S, "maxLength": 5},
         "MAX_LENGTH_DECREASED", None, ("abcdefg", "abc")),
    Case("maxLength added", S, {**S, "maxLength": 5}, "MAX_LENGTH_ADDED", None, ("abcdefg", "abc")),
    Case("minLength decreased", {**S, "minLength": 3}, {**S, "minLength": 1},
         None, "MIN_LENGTH_INCREASED", ("ab", "abcd")),
    Case("pattern added", S, {**S, "pattern": "^[a-z]+$"}, "PATTERN_ADDED", None, ("abc", "123")),
    Case("pattern changed (wider, unprovable)", {**S, "pattern": "^[a-z]+$"}, {**S, "pattern": "^[a-z0-9]+$"},
         "PATTERN_CHANGED", "PATTERN_CHANGED", ("abc", "a1"), no_witness=("backward",)),
    Case("format added", S, {**S, "format": "date"}, "FORMAT_ADDED", None, ("2024-01-31", "tomorrow")),
    # -- numbers
    Case("minimum increased", {**I, "minimum": 0}, {**I, "minimum": 10}, "MINIMUM_INCREASED", None, (5, 20)),
    Case("maximum increased", {**I, "maximum": 100}, {**I, "maximum": 1000},
         None, "MAXIMUM_DECREASED", (50, 500)),
    Case("minimum made exclusive", {**N, "minimum": 0}, {**N, "exclusiveMinimum": 0},
         "EXCLUSIVE_MINIMUM_INCREASED", None, (0, 1)),
    Case("multipleOf expanded", {**I, "multipleOf": 2}, {**I, "multipleOf": 4},
         "MULTIPLE_OF_EXPANDED", None, (4, 6)),
    Case("multipleOf reduced", {**N, "multipleOf": 0.5}, {**N, "multipleOf": 0.25},
         None, "MULTIPLE_OF_EXPANDED", (1.5, 0.75)),
    # -- nested objects
    Case("nested optional added, open", obj({"o": obj({"x": S})}), obj({"o": obj({"x": S, "y": I})}),
         "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", None, ({"o": {"x": "a", "y": "s"}}, {"o": {"y": 1}})),
    Case("nested removed, closed", obj({"o": closed({"x": S, "y": I})}), obj({"o": closed({"x": S})}),
         "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", None, ({"o": {"x": "a", "y": 1}}, {"o": {}})),
    Case("nested type widened", obj({"o": obj({"n": I})}), obj({"o": obj({"n": N})}),
         None, "TYPE_NARROWED", ({"o": {"n": 1}}, {"o": {"n": 0.5}})),
    # -- arrays
    Case("items widened", {"type": "array", "items": I}, {"type": "array", "items": N},
         None, "TYPE_NARROWED", ([1, 2], [1.5])),
    Case("maxItems decreased", {"type": "array", "maxItems": 10}, {"type": "array", "maxItems": 2},
         "MAX_ITEMS_DECREASED", None, ([1, 2, 3], [1])),
    Case("minItems added", {"type": "array"}, {"type": "array", "minItems": 1},
         "MIN_ITEMS_ADDED", None, ([], [1])),
    Case("uniqueItems added", {"type": "array"}, {"type": "array", "uniqueItems": True},
         "UNIQUE_ITEMS_ADDED", None, ([1, 1], [1, 2])),
    Case("array of closed objects gains optional", {"type": "array", "items": closed({"a": S})},
         {"type": "array", "items": closed({"a": S, "b": I})},
         None, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ([{"a": "x"}], [{"a": "x", "b": 1}])),
    Case("tuple gains a position", {"type": "array", "prefixItems": [S, I], "items": False},
         {"type": "array", "prefixItems": [S, I, N], "items": False},
         None, "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", (["a", 1], ["a", 1, 2.5])),
    Case("tuple position narrowed", {"type": "array", "prefixItems": [S, N]},
         {"type": "array", "prefixItems": [S, I]}, "TYPE_NARROWED", None, (["a", 1.5], ["a", 1])),
    # -- references
    Case("$defs renamed", {"$defs": {"a": S}, **obj({"x": {"$ref": "#/$defs/a"}})},
         {"$defs": {"b": S}, **obj({"x": {"$ref": "#/$defs/b"}})}, None, None, ({"x": "s"}, {"x": 1})),
    Case("referenced type narrowed", {"$defs": {"a": N}, **obj({"x": {"$ref": "#/$defs/a"}})},
         {"$defs": {"a": I}, **obj({"x": {"$ref": "#/$defs/a"}})}, "TYPE_NARROWED", None,
         ({"x": 1.5}, {"x": 1})),
    Case("recursive schema widened", TREE, TREE_WIDER, None, "TYPE_NARROWED",
         ({"value": 1, "children": [{"value": 2}]}, {"children": [{"children": [{"value": 0.5}]}]})),
    # -- combinators
    Case("anyOf extended", {"anyOf": [S, I]}, {"anyOf": [S, I, {"type": "null"}]},
         None, "SUM_TYPE_NARROWED", ("x", 1, None)),
    Case("oneOf alternative added (strict)", {"oneOf": [S, I]}, {"oneOf": [S, I, {"type": "null"}]},
         "COMBINED_TYPE_CHANGED", "COMBINED_TYPE_CHANGED", ("x", 1, None), no_witness=("backward",)),
    Case("oneOf unchanged", {"oneOf": [S, I]}, {"oneOf": [I, S]}, None, None, ("x", 1)),
    Case("writer allOf merged", {"allOf": [obj({"a": S}), {"required": ["a"]}]}, obj({"a": S}, ("a",)),
         None, None, ({"a": "x"}, {})),
    Case("reader allOf conjunct added", obj({"a": S}), {"allOf": [obj({"a": S}), {"required": ["a"]}]},
         "REQUIRED_ATTRIBUTE_ADDED", None, ({"a": "x"}, {})),
    Case("not added (unprovable)", S, {**S, "not": {"const": ""}}, "KEYWORD_CHANGED", None, ("", "x")),
    # -- found by review: each was called compatible, yet old data failed the new schema
    Case("const narrowed by an enum beside it", obj({"s": {"const": 1}}), obj({"s": {"const": 1, "enum": [2]}}),
         "ENUM_ARRAY_CHANGED", None, ({"s": 1}, {})),
    Case("new pattern overlaps a writer pattern, closed",
         obj({}, patternProperties={"^x": {}}, additionalProperties=False),
         obj({}, patternProperties={"^x": {}, "^xy": I}, additionalProperties=False),
         "ADDITIONAL_PROPERTIES_NARROWED", "TYPE_NARROWED", ({"xyz": "text"}, {"xyz": 1}),
         no_witness=("forward",)),
    Case("new pattern overlaps a writer pattern, open",
         obj({}, patternProperties={"^x": {}}, additionalProperties=I),
         obj({}, patternProperties={"^x": {}, "^xy": I}, additionalProperties=I),
         "ADDITIONAL_PROPERTIES_NARROWED", None, ({"xyz": "text"}, {"xyz": 1}, {"q": 1})),
    Case("new pattern with a disjoint literal prefix, closed",
         obj({}, patternProperties={"^a-": S}, additionalProperties=False),
         obj({}, patternProperties={"^a-": S, "^b-": I}, additionalProperties=False),
         None, "TYPE_NARROWED", ({"a-1": "x"}, {"b-1": 1}), no_witness=()),
    Case("property removed under unevaluatedProperties false",
         obj({"a": {}}, unevaluatedProperties=False), obj({}, unevaluatedProperties=False),
         "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", None, ({"a": 1}, {})),
    Case("optional added under unevaluatedProperties false",
         obj({"a": S}, unevaluatedProperties=False), obj({"a": S, "b": I}, unevaluatedProperties=False),
         None, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ({"a": "x"}, {"a": "x", "b": 1})),
    Case("property removed from an allOf under unevaluatedProperties false",
         {"type": "object", "allOf": [obj({"a": {}})], "unevaluatedProperties": False},
         {"type": "object", "allOf": [obj({})], "unevaluatedProperties": False},
         "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", None, ({"a": 1}, {})),
    Case("$ref with unevaluatedProperties false gains an optional property",
         {"$defs": {"b": obj({"a": S})}, "$ref": "#/$defs/b", "unevaluatedProperties": False},
         {"$defs": {"b": obj({"a": S, "c": I})}, "$ref": "#/$defs/b", "unevaluatedProperties": False},
         None, "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", ({"a": "x"}, {"a": "x", "c": 1})),
    Case("item removed under unevaluatedItems false",
         {"type": "array", "prefixItems": [S], "unevaluatedItems": False},
         {"type": "array", "unevaluatedItems": False},
         "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", None, (["x"], [])),
    # -- a default counts only where the consumer's resolution fills it, and only if valid
    Case("required with default added inside array items",
         {"type": "array", "items": closed({"sku": S}, ("sku",))},
         {"type": "array", "items": closed({"sku": S, "qty": {**I, "default": 1}}, ("sku", "qty"))},
         "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
         ([{"sku": "A"}], [{"sku": "A", "qty": 1}])),
    Case("required with default added in an allOf branch", obj({"id": S}, ("id",)),
         {**obj({"id": S}, ("id",)),
          "allOf": [{"properties": {"channel": {"default": "web"}}, "required": ["channel"]}]},
         "REQUIRED_ATTRIBUTE_ADDED", None, ({"id": "o"}, {"id": "o", "channel": "web"})),
    Case("required with a default its own schema refuses", closed({"id": S}, ("id",)),
         closed({"id": S, "qty": {**I, "default": "one"}}, ("id", "qty")),
         "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
         ({"id": "o"}, {"id": "o", "qty": 1})),
    Case("referenced target of an unchanged not changed",
         {"$defs": {"x": S}, "not": {"$ref": "#/$defs/x"}}, {"$defs": {"x": I}, "not": {"$ref": "#/$defs/x"}},
         "KEYWORD_CHANGED", "KEYWORD_CHANGED", (1, "a", 1.5)),
)  # fmt: skip


def _key(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


@cache
def _compiled(key: str) -> Any:
    return compile_schema(json.loads(key))


def _with_defaults(reader: Mapping[str, Any], instance: Any) -> Any:
    """Fill the reader's top-level property defaults, as a consumer resolving events does."""
    props = reader.get("properties", {})
    if not isinstance(instance, dict):
        return instance
    missing = {k: s["default"] for k, s in props.items() if isinstance(s, dict) and "default" in s}
    return {**missing, **instance}


def _valid(schema: Mapping[str, Any], instance: Any) -> bool:
    return not _compiled(_key(schema)).violations(instance)


def _kinds(found: list[Incompatibility]) -> set[str]:
    return {i.kind for i in found}


DIRECTIONS = ("backward", "forward")


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_and_kind(case: Case, direction: str) -> None:
    """Each pair gets the expected verdict and Confluent kind in each direction."""
    reader, writer = (case.new, case.old) if direction == "backward" else (case.old, case.new)
    expected = case.backward if direction == "backward" else case.forward
    found = incompatibilities(reader, writer)
    if expected is None:
        assert found == []
    else:
        assert expected in _kinds(found), found
        assert all(i.pointer == "" or i.pointer.startswith("/") for i in found)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verdict_matches_jsonschema_rs(case: Case, direction: str) -> None:
    """Compatible: every sample the writer accepts, the reader accepts; else a witness fails."""
    reader, writer = (case.new, case.old) if direction == "backward" else (case.old, case.new)
    expected = case.backward if direction == "backward" else case.forward
    written = [s for s in case.samples if _valid(writer, s)]
    assert written, "no sample is valid under the writer: the row proves nothing"
    read = [_valid(reader, _with_defaults(reader, s)) for s in written]
    if expected is None:
        assert all(read), [s for s, ok in zip(written, read, strict=True) if not ok]
    elif direction not in case.no_witness:
        assert not all(read), "flagged incompatible but every writer sample reads"


def test_table_size() -> None:
    """The table covers at least 40 pairs, both verdicts in both directions."""
    assert len(CASES) >= 40
    assert {c.backward is None for c in CASES} == {True, False}
    assert {c.forward is None for c in CASES} == {True, False}


def test_pointers_name_the_change() -> None:
    """Pointers are RFC 6901 into the reader, through nested properties and $ref targets."""
    found = incompatibilities(obj({"o": obj({"x": S, "y/z": I})}), obj({"o": obj({"x": S})}))
    assert [i.pointer for i in found] == ["/properties/o/properties/y~1z"]
    ref = {"$defs": {"a": I}, **obj({"x": {"$ref": "#/$defs/a"}})}
    found = incompatibilities(ref, obj({"x": N}))
    assert [(i.pointer, i.kind) for i in found] == [("/$defs/a/type", "TYPE_NARROWED")]


def test_every_reason_is_listed() -> None:
    """Several changes at once: each one is reported."""
    old = closed({"a": S, "b": I, "c": {**S, "maxLength": 9}})
    new = closed({"a": I, "c": {**S, "maxLength": 3}, "d": S}, ("d",))
    kinds = _kinds(incompatibilities(new, old))
    assert kinds == {
        "TYPE_CHANGED",
        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
        "MAX_LENGTH_DECREASED",
        "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
    }


def test_remote_references_are_refused() -> None:
    """A $ref outside the schema is never followed."""
    remote = obj({"x": {"$ref": "https://example.org/s.json"}})
    with pytest.raises(UnsupportedSchemaError, match="not local"):
        incompatibilities(remote, obj({"x": S}))
    with pytest.raises(UnsupportedSchemaError, match="does not resolve"):
        incompatibilities(obj({"x": {"$ref": "#/$defs/missing"}}), obj({"x": S}))
    assert UnsupportedSchemaError.code == "invalid_schema"


# -- modes --------------------------------------------------------------------

V1 = closed({"a": S}, ("a",))
V2 = closed({"a": S, "b": {**I, "default": 0}}, ("a", "b"))
V3 = closed({"a": S, "b": I}, ("a", "b"))


def test_backward_transitive_catches_what_backward_misses() -> None:
    """v2 reads v1 (default), v3 reads v2, but v3 cannot read v1: only transitive sees it."""
    assert incompatibilities(V2, V1) == []
    assert incompatibilities(V3, V2) == []
    assert check_compatibility(V3, [V1, V2], "BACKWARD") == []
    found = check_compatibility(V3, [V1, V2], "BACKWARD_TRANSITIVE")
    assert _kinds(found) == {"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"}
    assert found[0].message.startswith("new schema reading data of #1:")


def test_forward_transitive_catches_what_forward_misses() -> None:
    """v1 reads v2, v2 reads v3 (default), but v1 cannot read v3."""
    f1 = closed({"a": S, "b": I}, ("a", "b"))
    f2 = closed({"a": S, "b": {**I, "default": 0}}, ("a", "b"))
    f3 = closed({"a": S}, ("a",))
    assert check_compatibility(f2, [f1], "FORWARD") == []
    assert check_compatibility(f3, [f1, f2], "FORWARD") == []
    found = check_compatibility(f3, [f1, f2], "FORWARD_TRANSITIVE")
    assert _kinds(found) == {"REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"}
    assert found[0].message.startswith("#1 reading data of new schema:")


def test_full_is_both_directions() -> None:
    """FULL reports the backward and the forward problems; FULL_TRANSITIVE every version."""
    old, new = obj({"a": S}, ("a",)), closed({"a": S, "b": I}, ("b",))
    full = check_compatibility(new, [old], "FULL")
    back = check_compatibility(new, [old], "BACKWARD")
    forward = check_compatibility(new, [old], "FORWARD")
    assert back
    assert forward
    assert full == back + forward
    transitive = check_compatibility(new, [old, old], "FULL_TRANSITIVE")
    assert len(transitive) == 2 * len(full)


def _expected_in(mode: str, case: Case) -> set[str]:
    """The kinds ``mode`` must report for the row: its backward and/or forward verdicts."""
    wanted = set()
    if mode.startswith(("BACKWARD", "FULL")) and case.backward is not None:
        wanted.add(case.backward)
    if mode.startswith(("FORWARD", "FULL")) and case.forward is not None:
        wanted.add(case.forward)
    return wanted


@pytest.mark.parametrize("mode", COMPATIBILITY_MODES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_table_in_every_mode(case: Case, mode: CompatibilityMode) -> None:
    """Every row registered under every mode, as the registry checks it.

    After the old version alone, the new one is refused exactly when a
    direction the mode checks is incompatible (FULL: both; NONE: neither),
    with that direction's kind. After the old version and then the new one
    (the same schema again is always compatible with itself), only the
    transitive modes still see the old version.
    """
    expected = _expected_in(mode, case)
    found = check_compatibility(case.new, [case.old], mode)
    assert bool(found) == bool(expected), found
    assert expected <= _kinds(found)
    history = check_compatibility(case.new, [case.old, case.new], mode)
    if mode.endswith("_TRANSITIVE"):
        assert bool(history) == bool(expected), history
        assert expected <= _kinds(history)
    else:
        assert history == []


@pytest.mark.parametrize("mode", COMPATIBILITY_MODES)
def test_modes_on_a_compatible_and_an_incompatible_change(mode: CompatibilityMode) -> None:
    """Adding an optional property to a closed model: backward yes, forward no; NONE never."""
    found = check_compatibility(closed({"a": S, "b": I}), [closed({"a": S})], mode)
    assert bool(found) == (mode.startswith(("FORWARD", "FULL")))
    assert check_compatibility(closed({"a": S}), [], mode) == []


def test_none_accepts_anything() -> None:
    """NONE checks nothing, not even a type change."""
    assert check_compatibility(S, [I], "NONE") == []
    assert check_compatibility(S, [I], "BACKWARD")


def test_recursive_schemas_through_anyof_terminate() -> None:
    """A linked list (recursion through anyOf and $ref) is compared without looping."""
    node: dict[str, Any] = {"anyOf": [{"type": "null"}, obj({"value": I, "next": {"$ref": "#"}})]}
    wider = json.loads(json.dumps(node).replace('"integer"', '"number"'))
    assert incompatibilities(node, node) == []
    assert incompatibilities(wider, node) == []
    assert _kinds(incompatibilities(node, wider)) == {"SUM_TYPE_NARROWED"}


def test_false_reader_reads_nothing() -> None:
    """A property the reader forbids (false) but the writer allows is flagged."""
    found = incompatibilities(obj({"a": False}), obj({"a": S}))
    assert [(i.pointer, i.kind) for i in found] == [("/properties/a", "TYPE_NARROWED")]
    assert incompatibilities(obj({"a": S}), obj({"a": False})) == []


def test_finite_types_compare_as_values() -> None:
    """boolean is the enum [true, false]: an enum of both reads it, one of them does not."""
    assert incompatibilities({"enum": [True, False]}, {"type": "boolean"}) == []
    assert _kinds(incompatibilities({"const": True}, {"type": "boolean"})) == {"ENUM_ARRAY_CHANGED"}


def test_nesting_and_work_are_capped() -> None:
    """A schema nested deeper than the cap is refused, not a RecursionError."""
    deep: dict[str, Any] = S
    for _ in range(150):
        deep = obj({"a": deep})
    with pytest.raises(UnsupportedSchemaError, match="too deeply nested"):
        incompatibilities(deep, deep)


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        (obj({"x": {"$ref": "#node"}}), "anchor"),
        (obj({"x": {"$dynamicRef": "#node"}}), "dynamicRef"),
        ({"$defs": {"a": {"$ref": "#/$defs/a"}}, **obj({"x": {"$ref": "#/$defs/a"}})}, "loop"),
        ({"type": "array", "items": [S]}, "prefixItems"),
    ],
)
def test_unfollowable_schemas_are_refused(schema: dict[str, Any], reason: str) -> None:
    """Anchors, $dynamicRef, $ref loops and draft-7 tuple items fail closed, with a reason."""
    with pytest.raises(UnsupportedSchemaError, match=reason):
        incompatibilities(schema, schema)


# -- hostile schemas (a schemas.read client can send these to the check) --------


_CHECK_IN_A_CHILD: Final = """
import contextlib, json, sys
from interlock.events.compatibility import UnsupportedSchemaError, incompatibilities
reader, writer = json.load(sys.stdin)
with contextlib.suppress(UnsupportedSchemaError):
    incompatibilities(reader, writer)
"""


@pytest.mark.processes
def test_pattern_properties_are_matched_in_linear_time() -> None:
    """A catastrophic-backtracking pattern against a name the schema declares: no stall.

    Python's backtracking ``re`` took about 16 s for a 30-character name,
    doubling per character: at 60 characters it would not finish in a year.
    The check runs in a child process so a stall is killed (the timeout is a
    hang guard for a loaded machine, not a performance claim).
    """
    name = "a" * 59 + "!"
    hostile = obj({"id": S, name: {}}, patternProperties={"^(a+)+$": {}})
    subprocess.run(  # noqa: S603  (this interpreter, a fixed program)
        [sys.executable, "-c", _CHECK_IN_A_CHILD],
        input=json.dumps([hostile, obj({"id": S})]).encode(),
        check=True,
        timeout=60,
    )


def test_pattern_properties_match_as_the_validator_does() -> None:
    """Names are matched by the validator's own (ECMA 262) regex dialect, not Python's.

    ``\\W`` does not match ``é`` in Python but does in jsonschema-rs: a new
    pattern governing a declared name must be seen, or old data breaks.
    """
    writer = closed({"é": {}})
    reader = {**closed({"é": {}}), "patternProperties": {"^\\W$": I}}
    assert _valid(writer, {"é": "x"})
    assert not _valid(reader, {"é": "x"})
    assert incompatibilities(reader, writer)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "allOf": [obj({"a": S})], "anyOf": [obj({"b": I}), {}],
         "unevaluatedProperties": False},
        {"$defs": {"b": obj({"a": S})}, "$ref": "#/$defs/b", "properties": {"c": I},
         "unevaluatedProperties": False},
        {"type": "array", "allOf": [{"prefixItems": [S]}], "unevaluatedItems": False},
        {"patternProperties": {"^a": S, "^b": I}, "additionalProperties": False},
    ],
)  # fmt: skip
def test_identical_schemas_with_unevaluated_and_patterns_are_compatible(
    schema: dict[str, Any],
) -> None:
    """The stricter handling of unevaluated* and overlapping patterns keeps identity compatible."""
    assert incompatibilities(schema, schema) == []


@pytest.mark.parametrize(
    "schema",
    [
        obj({"a": {"$id": "urn:inner", "$defs": {"t": S}, "$ref": "#/$defs/t"}}),
        {"$defs": {"t": {"$id": "urn:t", "type": "string"}}, **obj({"a": {"$ref": "#/$defs/t"}})},
        {"type": "array", "items": {"$id": "https://example.org/item"}},
    ],
)
def test_embedded_id_is_refused(schema: dict[str, Any]) -> None:
    """An ``$id`` below the root re-bases its ``$ref``s (2020-12 §8.2.1): refused, not guessed.

    The checker (and the consumer's cut and resolution) resolve ``#/...``
    against the document root; jsonschema-rs resolves it inside the ``$id``
    resource, so the two would compare different schemas.
    """
    with pytest.raises(UnsupportedSchemaError, match=r"\$id"):
        incompatibilities(schema, schema)


def test_root_id_and_properties_named_id_are_allowed() -> None:
    """``$id`` at the root changes nothing; a property may be called ``$id``."""
    schema = {"$id": "urn:order", **obj({"$id": S}), "$defs": {"x": {"enum": [{"$id": 1}]}}}
    assert incompatibilities(schema, schema) == []


def _fan_out(leaf: dict[str, Any], levels: int = 15) -> dict[str, Any]:
    """``levels`` of $defs, each referring twice to the next; ``leaf`` beside the deepest."""
    defs: dict[str, Any] = {
        f"d{i}": {
            "type": "object",
            **(leaf if i == levels - 1 else {}),
            "properties": {
                "a": {"$ref": f"#/$defs/d{i + 1}"},
                "b": {"$ref": f"#/$defs/d{i + 1}"},
            },
        }
        for i in range(levels)
    }
    defs[f"d{levels}"] = S
    return {"$defs": defs, "$ref": "#/$defs/d0"}


BIG_ENUM: dict[str, Any] = {"enum": [{f"k{i}": [i, str(i), None]} for i in range(200)]}


@pytest.mark.parametrize("leaf", [{"not": BIG_ENUM}, BIG_ENUM], ids=["not", "enum"])
def test_ref_fan_out_over_a_large_keyword_is_refused_or_answered_quickly(
    leaf: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """2^15 paths to one large ``not`` (or ``enum``): its text is not rebuilt per step.

    Counted, not timed: before, the check serialised the ``not`` 16,666 times
    and the enum's values 3,333,200 times (6 and 13 s), once per compare step;
    each value is serialised at most once per check now.
    """
    schema = _fan_out(leaf)
    compile_schema(schema)
    calls = 0

    def counting(value: Any) -> str:
        nonlocal calls
        calls += 1
        return canonical(value)

    monkeypatch.setattr(compatibility, "canonical", counting)
    monkeypatch.setattr(compatibility_values, "canonical", counting)
    with contextlib.suppress(UnsupportedSchemaError):
        incompatibilities(schema, schema)
    assert 0 < calls <= 1 + len(BIG_ENUM["enum"])


def test_a_default_counts_where_the_consumer_fills_it() -> None:
    """Along properties from the root, through $ref (as resolution.resolve walks): compatible;
    and the consumer's read path indeed reads the old event."""
    old = obj({"o": closed({"a": S})})
    new = {
        "$defs": {
            "n": {**I, "default": 0},
            "o": closed({"a": S, "n": {"$ref": "#/$defs/n"}}, ("n",)),
        },
        **obj({"o": {"$ref": "#/$defs/o"}}),
    }
    assert incompatibilities(new, old) == []
    assert _valid(new, resolve({"o": {"a": "x"}}, new))
