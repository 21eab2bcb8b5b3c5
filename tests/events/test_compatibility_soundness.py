"""Soundness, by search: whenever the checker says compatible, jsonschema-rs agrees.

Hypothesis draws a writer and a reader from a small grammar (types, bounds,
enums, const beside enum, objects open, closed or partially open, overlapping
pattern properties, unevaluatedProperties/unevaluatedItems beside allOf or
alone, arrays, tuples, allOf/anyOf/oneOf) — the reader
often a mutation of the writer, so compatible pairs are common — and JSON
values from a small domain. No value the writer accepts may fail a reader
the checker calls compatible.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interlock.events.compatibility import incompatibilities
from interlock.validation.schema import RequestSchema, compile_schema

KEYS = ("a", "ab", "b", "c")
SCALARS: tuple[Any, ...] = (None, True, False, 0, 1, 2, -3, 2.5, "", "ab", "abcdef", "x1")

scalar_values = st.sampled_from(SCALARS)
json_values = st.recursive(
    scalar_values,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=8,
)

leaf_schemas = st.one_of(
    st.just({}),
    st.sampled_from(("null", "boolean", "integer", "number", "string")).map(lambda t: {"type": t}),
    st.lists(
        st.sampled_from(("null", "integer", "number", "string")),
        min_size=1,
        max_size=3,
        unique=True,
    ).map(lambda ts: {"type": ts}),
    st.integers(-2, 3).map(lambda k: {"type": "integer", "minimum": k}),
    st.integers(-2, 3).map(lambda k: {"type": "number", "exclusiveMaximum": k}),
    st.integers(0, 4).map(lambda k: {"type": "string", "maxLength": k}),
    st.integers(0, 4).map(lambda k: {"type": "string", "minLength": k}),
    st.sampled_from((0.5, 1, 2)).map(lambda m: {"type": "number", "multipleOf": m}),
    st.lists(scalar_values, min_size=1, max_size=4).map(lambda vs: {"enum": vs}),
    scalar_values.map(lambda v: {"const": v}),
    st.builds(
        lambda v, vs: {"const": v, "enum": vs},
        scalar_values,
        st.lists(scalar_values, min_size=1, max_size=3),
    ),
)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    props = st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    extra = st.one_of(st.none(), st.just(False), st.just(True), inner)
    objects = st.builds(
        _object, props, st.lists(st.sampled_from(KEYS), unique=True, max_size=2), extra
    )
    arrays = st.builds(_array, inner, st.one_of(st.none(), st.integers(0, 3)), st.booleans())
    patterned = st.builds(
        lambda props, pats, extra: {**_object(props, [], extra), "patternProperties": pats},
        props,
        st.dictionaries(
            st.sampled_from(("^a", "^ab", "^b-", "^[bc]$", "c", "b")), inner, min_size=1, max_size=3
        ),
        extra,
    )
    tuples = st.builds(
        lambda prefix, rest: {"type": "array", "prefixItems": prefix, "items": rest},
        st.lists(inner, min_size=1, max_size=2),
        st.one_of(st.just(False), st.just(True), inner),
    )
    combined = st.builds(
        lambda keyword, branches: {keyword: branches},
        st.sampled_from(("anyOf", "oneOf", "allOf")),
        st.lists(inner, min_size=1, max_size=3),
    )
    unevaluated = st.builds(
        _unevaluated,
        props,
        st.one_of(st.just(False), st.just(True), inner),
        st.lists(props, max_size=2),
    )
    unevaluated_items = st.builds(
        lambda prefix, rest, branch: {
            "type": "array",
            "prefixItems": prefix,
            "unevaluatedItems": rest,
            **({"allOf": [{"prefixItems": branch}]} if branch else {}),
        },
        st.lists(inner, min_size=1, max_size=2),
        st.one_of(st.just(False), inner),
        st.lists(inner, max_size=2),
    )
    return objects | patterned | arrays | tuples | combined | unevaluated | unevaluated_items


def _unevaluated(
    props: dict[str, Any], rest: Any, branches: list[dict[str, Any]]
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props, "unevaluatedProperties": rest}
    if branches:
        schema["allOf"] = [{"properties": branch} for branch in branches]
    return schema


def _object(props: dict[str, Any], required: list[str], extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = required
    if extra is not None:
        schema["additionalProperties"] = extra
    return schema


def _array(items: Any, max_items: int | None, unique: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": items}
    if max_items is not None:
        schema["maxItems"] = max_items
    if unique:
        schema["uniqueItems"] = True
    return schema


schemas = st.recursive(leaf_schemas, _containers, max_leaves=6)


@st.composite
def pairs(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A (reader, writer): independent, or the reader a one-step mutation of the writer."""
    writer = draw(schemas)
    reader = draw(schemas) if draw(st.booleans()) else _mutate(writer, draw)
    if draw(st.booleans()):
        return reader, writer
    return _referenced(reader, draw), _referenced(writer, draw)


def _referenced(schema: Any, draw: st.DrawFn) -> dict[str, Any]:
    """``schema`` moved under $defs and used through $ref (with a sibling keyword, maybe)."""
    use: dict[str, Any] = {"$ref": "#/$defs/d"}
    if draw(st.booleans()):
        use["minProperties"] = 1
    return {"$defs": {"d": schema}, "type": "object", "properties": {"a": use, "b": use}}


def _mutate(schema: Any, draw: st.DrawFn) -> Any:
    if not isinstance(schema, dict) or not schema or draw(st.integers(0, 3)) == 0:
        return draw(schemas)
    key = draw(st.sampled_from(sorted(schema)))
    value = schema[key]
    mutated = dict(schema)
    if key == "properties" and value:
        name = draw(st.sampled_from(sorted(value)))
        mutated[key] = {**value, name: _mutate(value[name], draw)}
    elif key in ("items", "additionalProperties", "unevaluatedProperties") and isinstance(
        value, dict
    ):
        mutated[key] = _mutate(value, draw)
    elif draw(st.booleans()):
        del mutated[key]
    else:
        mutated[key] = draw(schemas).get(key, value)
    return mutated


@cache
def _compiled(text: str) -> RequestSchema:
    return compile_schema(json.loads(text))


def _valid(schema: Mapping[str, Any], value: Any) -> bool:
    return not _compiled(json.dumps(schema, sort_keys=True)).violations(value)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pairs(), st.lists(json_values, min_size=1, max_size=12))
def test_compatible_verdicts_hold_on_values(
    pair: tuple[dict[str, Any], dict[str, Any]], values: list[Any]
) -> None:
    """A pair called compatible never has a value the writer accepts and the reader refuses."""
    reader, writer = pair
    if incompatibilities(reader, writer):
        return
    for value in values:
        if _valid(writer, value):
            assert _valid(reader, value), (reader, writer, value)


def test_identity_is_always_compatible() -> None:
    """Sanity for the search above: a schema reads its own data."""
    schema = {"type": "object", "properties": {"a": {"anyOf": [{"type": "string"}, {"enum": [1]}]}}}
    assert incompatibilities(schema, schema) == []
