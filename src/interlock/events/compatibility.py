"""Schema compatibility for event subjects: can a reader schema read a writer's data?

Modes and their meaning follow Confluent Schema Registry ("Schema Evolution
and Compatibility", docs.confluent.io/platform/current/schema-registry/
fundamentals/schema-evolution): BACKWARD — the new schema reads data written
with the latest; FORWARD — the latest reads data written with the new; FULL —
both; ``*_TRANSITIVE`` — against every registered version, not only the
latest; NONE — no check.

For JSON Schema the rules and the names of :attr:`Incompatibility.kind`
follow Confluent's ``JsonSchemaDiff`` (``io.confluent.kafka.schemaregistry.
json.diff.Difference.Type``) as explained by its author in "Understanding JSON
Schema Compatibility" (yokota.blog, 2021-03-29): the *content model* of an
object decides whether adding or removing a property is safe —

* open (``additionalProperties`` absent or ``true``): removing a property is
  compatible (the reader still accepts it as an extra), adding one with a
  non-empty schema is not (old data may hold that name with any value):
  ``PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL``;
* closed (``additionalProperties: false``): adding an optional property is
  compatible (old data never held it), removing one is not:
  ``PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL``; adding a required one is
  not: ``REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL`` — unless it has a
  ``default`` (Confluent's ``..._WITH_DEFAULT_...``: the reader fills it in,
  as :mod:`interlock.events.consumer` does);
* partially open (``additionalProperties`` a schema, or
  ``patternProperties``): the added or removed property must be covered by it.

Narrowing a type, an enum, a bound, a length, adding a pattern and the like
are incompatible (``TYPE_NARROWED``, ``ENUM_ARRAY_NARROWED``,
``MAXIMUM_DECREASED`` ...); widening them is compatible; ``integer`` is a
subset of ``number``.

Where Interlock is stricter than Confluent, on purpose (a change that cannot
be proved safe is refused):

* ``format`` is an assertion here (:mod:`interlock.validation.schema`), so
  adding or changing one is ``FORMAT_ADDED`` / ``FORMAT_CHANGED``;
* a reader ``oneOf`` must keep exactly the writer's alternatives (adding an
  alternative can make a value match two: ``SUM_TYPE_EXTENDED`` is not proof);
* ``not``, ``if``/``then``/``else``, ``contains``, ``propertyNames``,
  ``dependentSchemas``, ``unevaluated*`` in the reader must be unchanged
  (``KEYWORD_CHANGED``).

:func:`incompatibilities` is the core: every reason why an instance valid
under the writer may be invalid under the reader, each located by an RFC 6901
pointer into the reader schema (following its ``$ref``; a property only the
writer has is named under the place it would be).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.config.events import CompatibilityMode
from interlock.events.compatibility_keywords import arrays, numbers, objects, strings
from interlock.events.compatibility_refs import ANNOTATIONS, UnsupportedSchemaError, resolve

__all__ = [
    "Incompatibility",
    "UnsupportedSchemaError",
    "check_compatibility",
    "incompatibilities",
]

_ALL_TYPES = frozenset({"null", "boolean", "object", "array", "number", "integer", "string"})
_UNCHECKED = (
    "not",
    "if",
    "then",
    "else",
    "contains",
    "minContains",
    "maxContains",
    "propertyNames",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
)
_COMBINATORS = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class Incompatibility:
    """One reason why data valid under the writer schema may be invalid under the reader."""

    pointer: str
    kind: str
    message: str


def incompatibilities(
    reader: Mapping[str, Any], writer: Mapping[str, Any]
) -> list[Incompatibility]:
    """Every reason why data valid under ``writer`` may be invalid under ``reader``.

    An empty list means every instance ``writer`` accepts, ``reader`` accepts
    too (up to the conservative cases the module docstring lists). Raise
    :class:`UnsupportedSchemaError` for a remote ``$ref``.
    """
    walk = _Walk(reader, writer)
    walk.compare(reader, "", writer, "")
    unique: dict[Incompatibility, None] = dict.fromkeys(walk.found)
    return list(unique)


def check_compatibility(
    new: Mapping[str, Any], previous: Sequence[Mapping[str, Any]], mode: CompatibilityMode
) -> list[Incompatibility]:
    """Every incompatibility of ``new`` with ``previous`` (oldest first) under ``mode``.

    Each message says which direction failed and against which entry of
    ``previous`` (1 = the oldest).
    """
    if mode == "NONE" or not previous:
        return []
    indexes = range(len(previous)) if mode.endswith("_TRANSITIVE") else [len(previous) - 1]
    found: list[Incompatibility] = []
    for index in indexes:
        old = previous[index]
        if mode.startswith(("BACKWARD", "FULL")):
            found += _tagged(
                incompatibilities(new, old), f"new schema reading data of #{index + 1}"
            )
        if mode.startswith(("FORWARD", "FULL")):
            found += _tagged(
                incompatibilities(old, new), f"#{index + 1} reading data of new schema"
            )
    return found


def _tagged(found: list[Incompatibility], direction: str) -> list[Incompatibility]:
    return [Incompatibility(i.pointer, i.kind, f"{direction}: {i.message}") for i in found]


def _canonical(value: Any) -> str:
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


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _types(schema: Mapping[str, Any]) -> frozenset[str]:
    """The JSON types ``schema`` admits by its ``type``, ``enum`` and ``const`` keywords."""
    declared = schema.get("type")
    if isinstance(declared, str):
        found = frozenset({declared})
    elif isinstance(declared, list):
        found = frozenset(t for t in declared if isinstance(t, str))
    else:
        found = _ALL_TYPES
    if "number" in found:
        found = found | {"integer"}
    values = _values(schema)
    if values is not None:
        found = found & frozenset(_json_type(v) for v in values)
    return found


def _json_type(value: Any) -> str:
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


def _values(schema: Mapping[str, Any]) -> list[Any] | None:
    """The finite set of values ``enum``/``const`` allow, or None when unrestricted."""
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if isinstance(enum, list) else None


def _empty(schema: Any) -> bool:
    """True for a schema that accepts everything (``true``, ``{}``, only annotations)."""
    if schema is True:
        return True
    return isinstance(schema, Mapping) and all(k in ANNOTATIONS for k in schema)


class _Walk:
    """One side-by-side walk over a reader and a writer schema, collecting findings."""

    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.reader_root = reader_root
        self.writer_root = writer_root
        self.found: list[Incompatibility] = []
        self._active: dict[tuple[int, int, str], tuple[Any, Any]] = {}

    def add(self, pointer: str, kind: str, message: str) -> None:
        self.found.append(Incompatibility(pointer, kind, message))

    def probe(self, reader: Any, pointer: str, writer: Any, writer_pointer: str) -> bool:
        """Compare without recording; True when compatible."""
        saved = self.found
        self.found = []
        try:
            self.compare(reader, pointer, writer, writer_pointer)
            return not self.found
        finally:
            self.found = saved

    def compare(self, reader: Any, pointer: str, writer: Any, writer_pointer: str) -> None:
        """Record why instances of ``writer`` may fail ``reader``."""
        reader, pointer = resolve(self.reader_root, reader, pointer)
        writer, writer_pointer = resolve(self.writer_root, writer, writer_pointer)
        key = (id(reader), id(writer), pointer)
        if key in self._active:
            return  # a recursive schema met itself: assume the cycle holds (coinduction)
        self._active[key] = (reader, writer)  # held, so no id is reused while active
        try:
            self._compare(reader, pointer, writer, writer_pointer)
        finally:
            del self._active[key]

    def _compare(self, reader: Any, pointer: str, writer: Any, writer_pointer: str) -> None:
        if writer is False or _empty(reader):
            return
        if reader is False:
            self.add(pointer, "SCHEMA_REMOVED", "the reader accepts nothing here")
            return
        if writer is True:
            writer = {}
        if not isinstance(reader, Mapping) or not isinstance(writer, Mapping):
            raise UnsupportedSchemaError(f"'{pointer}' is neither a schema object nor a boolean")
        if self._combinators(reader, pointer, writer, writer_pointer):
            return
        self._unchecked(reader, pointer, writer)
        if not self._type(reader, pointer, writer):
            return
        self._enum(reader, pointer, writer)
        types = _types(writer)
        if types & {"number", "integer"}:
            numbers(self, pointer, reader, writer)
        if "string" in types:
            strings(self, pointer, reader, writer)
        if "array" in types:
            arrays(self, pointer, reader, writer, writer_pointer)
        if "object" in types:
            objects(self, pointer, reader, writer, writer_pointer)

    def _combinators(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any], wp: str
    ) -> bool:
        """Handle allOf/anyOf/oneOf on either side; True when that settled the comparison."""
        if "allOf" in reader:  # the writer must satisfy every conjunct
            self.compare(_without(reader, "allOf"), pointer, writer, wp)
            for i, branch in enumerate(_list(reader["allOf"])):
                self.compare(branch, f"{pointer}/allOf/{i}", writer, wp)
            return True
        for keyword in ("anyOf", "oneOf"):  # every writer alternative must be read
            if keyword in writer and not (keyword == "oneOf" and "oneOf" in reader):
                rest = _without(writer, keyword)
                for i, branch in enumerate(_list(writer[keyword])):
                    self.compare(reader, pointer, {"allOf": [rest, branch]}, f"{wp}/{keyword}/{i}")
                return True
        if "oneOf" in reader or "anyOf" in reader:
            self._reader_sum(reader, pointer, writer, wp)
            return True
        if "allOf" in writer:
            self._writer_product(reader, pointer, writer, wp)
            return True
        return False

    def _reader_sum(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any], wp: str
    ) -> None:
        """A reader oneOf must be unchanged; a reader anyOf needs one alternative reading all."""
        if "oneOf" in reader:
            if _canonical(sorted(map(_canonical, _list(reader["oneOf"])))) != _canonical(
                sorted(map(_canonical, _list(writer.get("oneOf", []))))
            ):
                self.add(pointer, "COMBINED_TYPE_CHANGED", "the reader's oneOf alternatives differ")
                return
            self.compare(_without(reader, "oneOf"), pointer, _without(writer, "oneOf"), wp)
            return
        self.compare(_without(reader, "anyOf"), pointer, writer, wp)
        branches = _list(reader["anyOf"])
        if not any(
            self.probe(b, f"{pointer}/anyOf/{i}", writer, wp) for i, b in enumerate(branches)
        ):
            self.add(
                pointer, "SUM_TYPE_NARROWED", "no anyOf alternative reads all the writer's data"
            )

    def _writer_product(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any], wp: str
    ) -> None:
        """Writer data satisfies every conjunct: merged, or any one part read, suffices."""
        parts = [_without(writer, "allOf"), *_list(writer["allOf"])]
        resolved = [resolve(self.writer_root, p, wp)[0] for p in parts]
        merged = _merge(resolved)
        if merged is not None:
            self.compare(reader, pointer, merged, wp)
            return
        if not any(self.probe(reader, pointer, p, wp) for p in parts):
            self.add(
                pointer,
                "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                "no part of the writer's allOf is read by the reader",
            )

    def _unchecked(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]
    ) -> None:
        for keyword in _UNCHECKED:
            if keyword in reader and _canonical(reader[keyword]) != _canonical(writer.get(keyword)):
                self.add(
                    f"{pointer}/{keyword}",
                    "KEYWORD_CHANGED",
                    f"'{keyword}' in the reader is new or changed; cannot prove it safe",
                )

    def _type(self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]) -> bool:
        """Check types; False when the types share nothing (no point going deeper)."""
        if "type" not in reader:
            return True
        admitted = _types({"type": reader["type"]})
        produced = _types(writer)
        lost = produced - admitted
        if not lost:
            return True
        if not produced & admitted:
            self.add(
                f"{pointer}/type",
                "TYPE_CHANGED",
                f"type changed: the writer's {sorted(produced)} is not read",
            )
            return False
        self.add(
            f"{pointer}/type", "TYPE_NARROWED", f"type narrowed: {sorted(lost)} no longer read"
        )
        return True

    def _enum(self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]) -> None:
        allowed = _values(reader)
        if allowed is None:
            return
        where = f"{pointer}/const" if "const" in reader else f"{pointer}/enum"
        produced = _values(writer)
        if produced is None:
            self.add(where, "ENUM_ARRAY_NARROWED", "the reader now restricts the values")
            return
        keys = {_canonical(v) for v in allowed}
        lost = [v for v in produced if _canonical(v) not in keys]
        if lost:
            extra = bool(keys - {_canonical(v) for v in produced})
            kind = "ENUM_ARRAY_CHANGED" if extra or "const" in reader else "ENUM_ARRAY_NARROWED"
            self.add(where, kind, f"{len(lost)} value(s) the writer allows are no longer read")


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _without(schema: Mapping[str, Any], keyword: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != keyword}


def _merge(parts: list[Any]) -> dict[str, Any] | None:
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
        if not isinstance(part, Mapping) or any(k in part for k in (*_COMBINATORS, "$ref")):
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
            elif _canonical(merged[key]) != _canonical(value):
                return None
    return merged
