"""Keyword-level compatibility checks for numbers, strings, arrays and objects.

Each check receives a :class:`Walker` (the side-by-side walk of
:mod:`interlock.events.compatibility`), the reader and writer schema objects
at one place, and records what in the reader rejects data the writer allows.
Kinds are Confluent's ``JsonSchemaDiff`` difference types (see the module
docstring of :mod:`interlock.events.compatibility`).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any, Protocol

from interlock.events.compatibility_patterns import disjoint, matches
from interlock.events.compatibility_refs import UnsupportedSchemaError
from interlock.events.compatibility_values import escape, is_empty

__all__ = ["Walker", "arrays", "numbers", "objects", "strings"]

Schema = Mapping[str, Any]


class Walker(Protocol):
    """The part of the side-by-side walk the keyword checks call back into."""

    def add(self, pointer: str, kind: str, message: str) -> None:
        """Record one incompatibility."""

    def compare(
        self, reader: Any, pointer: str, writer: Any, writer_pointer: str, *, fill: bool = True
    ) -> None:
        """Record why instances of ``writer`` may fail ``reader`` (recursing); ``fill``:
        the consumer's resolution reaches ``reader`` (a property's schema)."""

    def probe(
        self, reader: Any, pointer: str, writer: Any, writer_pointer: str, *, fill: bool = True
    ) -> bool:
        """True when ``reader`` reads every instance of ``writer``; records nothing."""

    def fillable(self, declared: Any) -> bool:
        """Whether the consumer fills the default of a member declared as ``declared`` here."""

    def spend(self, cost: int) -> None:
        """Count ``cost`` units of work (a name matched, a value compared) against the budget."""


def _number(value: Any) -> Fraction | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def _bound(
    walk: Walker, pointer: str, name: str, reader: Schema, writer: Schema, *, lower: bool
) -> None:
    """A count bound (minLength, maxItems ...): the reader's may only be looser."""
    keyword = {
        "MIN_LENGTH": "minLength",
        "MAX_LENGTH": "maxLength",
        "MIN_ITEMS": "minItems",
        "MAX_ITEMS": "maxItems",
        "MIN_PROPERTIES": "minProperties",
        "MAX_PROPERTIES": "maxProperties",
    }[name]
    r, w = _number(reader.get(keyword)), _number(writer.get(keyword))
    if r is None or (lower and r <= 0):
        return
    if w is None and lower:
        w = Fraction(0)
    if w is None:
        walk.add(f"{pointer}/{keyword}", f"{name}_ADDED", f"{keyword} {r} added")
    elif (lower and r > w) or (not lower and r < w):
        change = "INCREASED" if lower else "DECREASED"
        kind = f"{name}_ADDED" if keyword not in writer else f"{name}_{change}"
        walk.add(f"{pointer}/{keyword}", kind, f"{keyword} tightened from {w} to {r}")


def _limit(schema: Schema, *, lower: bool) -> tuple[Fraction, bool, str] | None:
    """The tighter of minimum/exclusiveMinimum (or the maxima): value, exclusive, keyword."""
    inclusive_key, exclusive_key = (
        ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    )
    found: list[tuple[Fraction, bool, str]] = []
    for key, exclusive in ((inclusive_key, False), (exclusive_key, True)):
        value = _number(schema.get(key))
        if value is not None:
            found.append((value, exclusive, key))
    if not found:
        return None
    sign = 1 if lower else -1
    return max(found, key=lambda f: (sign * f[0], f[1]))


def numbers(walk: Walker, pointer: str, reader: Schema, writer: Schema) -> None:
    """minimum, maximum (exclusive or not) and multipleOf."""
    for lower in (True, False):
        r, w = _limit(reader, lower=lower), _limit(writer, lower=lower)
        if r is None:
            continue
        name = "MINIMUM" if lower else "MAXIMUM"
        kind_name = f"EXCLUSIVE_{name}" if r[1] else name
        if w is None:
            walk.add(f"{pointer}/{r[2]}", f"{kind_name}_ADDED", f"{r[2]} {r[0]} added")
            continue
        looser = r[0] < w[0] if lower else r[0] > w[0]
        if looser or (r[0] == w[0] and (w[1] or not r[1])):
            continue
        change = "INCREASED" if lower else "DECREASED"
        walk.add(f"{pointer}/{r[2]}", f"{kind_name}_{change}", f"{r[2]} tightened to {r[0]}")
    r_step, w_step = _number(reader.get("multipleOf")), _number(writer.get("multipleOf"))
    if r_step is None or r_step <= 0:
        return
    if w_step is None:
        walk.add(f"{pointer}/multipleOf", "MULTIPLE_OF_ADDED", f"multipleOf {r_step} added")
    elif (w_step / r_step).denominator != 1:
        kind = (
            "MULTIPLE_OF_EXPANDED" if (r_step / w_step).denominator == 1 else "MULTIPLE_OF_CHANGED"
        )
        walk.add(f"{pointer}/multipleOf", kind, f"multipleOf changed from {w_step} to {r_step}")


def strings(walk: Walker, pointer: str, reader: Schema, writer: Schema) -> None:
    """minLength, maxLength, pattern, format (an assertion in Interlock)."""
    _bound(walk, pointer, "MIN_LENGTH", reader, writer, lower=True)
    _bound(walk, pointer, "MAX_LENGTH", reader, writer, lower=False)
    for keyword, name in (("pattern", "PATTERN"), ("format", "FORMAT")):
        if keyword not in reader or reader[keyword] == writer.get(keyword):
            continue
        kind = f"{name}_CHANGED" if keyword in writer else f"{name}_ADDED"
        walk.add(f"{pointer}/{keyword}", kind, f"{keyword} {reader[keyword]!r} is new or changed")


def arrays(walk: Walker, pointer: str, reader: Schema, writer: Schema, wp: str) -> None:
    """minItems, maxItems, uniqueItems, prefixItems and items, position by position."""
    _bound(walk, pointer, "MIN_ITEMS", reader, writer, lower=True)
    _bound(walk, pointer, "MAX_ITEMS", reader, writer, lower=False)
    if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
        walk.add(f"{pointer}/uniqueItems", "UNIQUE_ITEMS_ADDED", "items must now be unique")
    for schema in (reader, writer):
        if isinstance(schema.get("items"), list):
            raise UnsupportedSchemaError("'items' as an array is draft 2019-09; use prefixItems")
    r_pre = list(reader.get("prefixItems", []))
    w_pre = list(writer.get("prefixItems", []))
    r_rest, w_rest = reader.get("items", True), writer.get("items", True)
    w_max = _number(writer.get("maxItems"))
    for i in range(max(len(r_pre), len(w_pre))):
        if w_max is not None and i >= w_max:
            return
        r_at = (
            (r_pre[i], f"{pointer}/prefixItems/{i}")
            if i < len(r_pre)
            else (r_rest, f"{pointer}/items")
        )
        w_at = (w_pre[i], f"{wp}/prefixItems/{i}") if i < len(w_pre) else (w_rest, f"{wp}/items")
        _item(walk, r_at, w_at)
    if w_max is None or w_max > max(len(r_pre), len(w_pre)):
        _item(walk, (r_rest, f"{pointer}/items"), (w_rest, f"{wp}/items"))


def _item(walk: Walker, reader: tuple[Any, str], writer: tuple[Any, str]) -> None:
    if reader[0] is False and writer[0] is not False:
        walk.add(
            reader[1], "ITEM_REMOVED_FROM_CLOSED_CONTENT_MODEL", "the reader allows no item here"
        )
        return
    walk.compare(reader[0], reader[1], writer[0], writer[1], fill=False)


def _governing(walk: Walker, schema: Schema, name: str) -> list[Any]:
    """The subschemas an object's property ``name`` must satisfy (2020-12 §10.3.2)."""
    found = [schema["properties"][name]] if name in schema.get("properties", {}) else []
    patterns: Mapping[str, Any] = schema.get("patternProperties", {})
    walk.spend(len(patterns))
    found += [s for p, s in patterns.items() if matches(p, name)]
    return found or [schema.get("additionalProperties", True)]


def _all(schemas: list[Any]) -> Any:
    return schemas[0] if len(schemas) == 1 else {"allOf": schemas}


def objects(walk: Walker, pointer: str, reader: Schema, writer: Schema, wp: str) -> None:
    """Properties by content model, required, additional/pattern properties, bounds."""
    r_props: Mapping[str, Any] = reader.get("properties", {})
    w_props: Mapping[str, Any] = writer.get("properties", {})
    walk.spend(len(r_props) + len(w_props) + len(reader.get("required", [])))
    for name in sorted(set(r_props) | set(w_props)):
        _property(walk, pointer, reader, writer, wp=wp, name=name)
    _extras(walk, pointer, reader, writer, wp)
    _required(walk, pointer, reader, writer)
    _bound(walk, pointer, "MIN_PROPERTIES", reader, writer, lower=True)
    _bound(walk, pointer, "MAX_PROPERTIES", reader, writer, lower=False)
    w_deps: Mapping[str, Any] = writer.get("dependentRequired", {})
    for key, needs in reader.get("dependentRequired", {}).items():
        extra = set(needs) - set(w_deps.get(key, [])) - set(writer.get("required", []))
        if extra:
            kind = "DEPENDENCY_ARRAY_EXTENDED" if key in w_deps else "DEPENDENCY_ARRAY_ADDED"
            walk.add(
                f"{pointer}/dependentRequired/{escape(key)}",
                kind,
                f"'{key}' now needs {sorted(extra)}",
            )


def _property(
    walk: Walker, pointer: str, reader: Schema, writer: Schema, *, wp: str, name: str
) -> None:
    here, there = f"{pointer}/properties/{escape(name)}", f"{wp}/properties/{escape(name)}"
    r_gov, w_gov = _governing(walk, reader, name), _governing(walk, writer, name)
    in_reader, in_writer = (
        name in reader.get("properties", {}),
        name in writer.get("properties", {}),
    )
    if in_reader and in_writer:
        walk.compare(_all(r_gov), here, _all(w_gov), there)
        return
    if walk.probe(_all(r_gov), here, _all(w_gov), there):
        return
    if in_reader:  # added: old data may hold this name as an extra
        open_writer = is_empty(_all(w_gov))
        kind = (
            "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"
            if open_writer
            else "PROPERTY_ADDED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL"
        )
        walk.add(here, kind, f"property '{name}' added; the writer allowed it with any other value")
    elif _all(r_gov) is False:
        walk.add(
            here,
            "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
            f"property '{name}' removed but the reader's content model is closed",
        )
    else:
        walk.add(
            here,
            "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL",
            f"property '{name}' removed; the reader's extras schema does not cover it",
        )


def _extras(walk: Walker, pointer: str, reader: Schema, writer: Schema, wp: str) -> None:
    """Names neither side declares: patternProperties and additionalProperties.

    A name may match several patterns; on each side it must satisfy every one
    it matches. A writer pattern the reader keeps is compared with the
    reader's; one the reader dropped with every reader pattern and the
    reader's additionalProperties (they may all apply). A *new* reader
    pattern is compared with each writer pattern it may share names with
    and with the writer's additionalProperties. Whether two patterns share
    a name is undecidable in general, so only two distinct literal prefixes
    (``^a-`` and ``^b-``) count as disjoint: otherwise, fail closed.
    """
    r_pat: Mapping[str, Any] = reader.get("patternProperties", {})
    w_pat: Mapping[str, Any] = writer.get("patternProperties", {})
    r_add, w_add = (
        reader.get("additionalProperties", True),
        writer.get("additionalProperties", True),
    )
    for pattern, schema in w_pat.items():
        target = r_pat[pattern] if pattern in r_pat else _all([*r_pat.values(), r_add])
        walk.compare(
            target,
            f"{pointer}/patternProperties/{escape(pattern)}",
            schema,
            f"{wp}/patternProperties/{escape(pattern)}",
            fill=False,
        )
    for pattern, schema in r_pat.items():
        if pattern not in w_pat:
            _new_pattern(walk, pointer, (pattern, schema), w_pat, (w_add, wp))
    if w_add is False:
        return
    if r_add is False:
        walk.add(
            f"{pointer}/additionalProperties",
            "ADDITIONAL_PROPERTIES_REMOVED",
            "the reader's content model is closed; the writer's is not",
        )
    elif not walk.probe(
        r_add, f"{pointer}/additionalProperties", w_add, f"{wp}/additionalProperties", fill=False
    ):
        walk.add(
            f"{pointer}/additionalProperties",
            "ADDITIONAL_PROPERTIES_NARROWED",
            "the reader's additionalProperties rejects extras the writer allows",
        )


def _new_pattern(
    walk: Walker,
    pointer: str,
    new: tuple[str, Any],
    w_pat: Mapping[str, Any],
    w_extras: tuple[Any, str],
) -> None:
    """A reader pattern the writer lacks: the writer's values for its names must read."""
    pattern, schema = new
    w_add, wp = w_extras
    here = f"{pointer}/patternProperties/{escape(pattern)}"
    for other, allowed in w_pat.items():
        there = f"{wp}/patternProperties/{escape(other)}"
        if not disjoint(pattern, other) and not walk.probe(
            schema, here, allowed, there, fill=False
        ):
            walk.add(
                here,
                "ADDITIONAL_PROPERTIES_NARROWED",
                f"a new pattern may match names the writer's pattern {other!r} allows "
                "with other values",
            )
            return
    if w_add is not False and not walk.probe(schema, here, w_add, wp, fill=False):
        walk.add(
            here, "ADDITIONAL_PROPERTIES_NARROWED", "a new pattern constrains the writer's extras"
        )


def _required(walk: Walker, pointer: str, reader: Schema, writer: Schema) -> None:
    w_required = set(writer.get("required", []))
    r_props: Mapping[str, Any] = reader.get("properties", {})
    for name in [n for n in reader.get("required", []) if n not in w_required]:
        if walk.fillable(r_props.get(name)):
            continue  # Confluent: ..._WITH_DEFAULT_ADDED is compatible; the reader fills it
        if (
            name not in writer.get("properties", {})
            and _all(_governing(walk, writer, name)) is False
        ):
            kind = "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL"
        else:
            kind = "REQUIRED_ATTRIBUTE_ADDED"
        walk.add(f"{pointer}/required", kind, f"property '{name}' is now required")
