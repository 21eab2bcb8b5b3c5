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
  ``dependentSchemas`` in the reader must be unchanged, and so must what
  their ``$ref``\\ s reach (``KEYWORD_CHANGED``);
* ``unevaluatedProperties`` is compared as the content model it makes
  (:mod:`interlock.events.compatibility_unevaluated`), ``unevaluatedItems``
  beside in-place applicators must be unchanged with its schema;
* ``enum`` and ``const`` together allow their intersection;
* a new ``patternProperties`` pattern must read the values of every writer
  pattern it may share a name with: only distinct literal prefixes (``^a-``,
  ``^b-``) count as disjoint;
* names are matched against patterns by the validator's regex dialect with
  a linear-time engine; a pattern needing lookaround or backreferences, an
  ``$id`` below the root (it re-bases ``$ref``), and a check over its work
  budget are refused (:class:`UnsupportedSchemaError`), never guessed.

:func:`incompatibilities` is the core: every reason why an instance valid
under the writer may be invalid under the reader, each located by an RFC 6901
pointer into the reader schema (following its ``$ref``; a property only the
writer has is named under the place it would be).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from interlock.config.events import CompatibilityMode
from interlock.events.compatibility_keywords import arrays, numbers, objects, strings
from interlock.events.compatibility_refs import (
    UnsupportedSchemaError,
    refuse_embedded_ids,
    resolve,
)
from interlock.events.compatibility_unevaluated import APPLICATORS, reader_view, writer_view
from interlock.events.compatibility_values import (
    canonical,
    is_empty,
    json_type,
    merge,
    same_schema,
    subschemas,
    types_of,
    values_of,
    without,
)
from interlock.events.resolution import member, valid_default

__all__ = [
    "Incompatibility",
    "UnsupportedSchemaError",
    "check_compatibility",
    "incompatibilities",
]

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
)
_MAX_DEPTH = 100  # nested schemas compared at once; deeper would exhaust Python's stack
_MAX_STEPS = 50_000  # schema pairs compared per call; nested anyOf probing can multiply
_MAX_WORK = 1_000_000  # names matched and values compared per call (each about a microsecond)


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
    :class:`UnsupportedSchemaError` for a remote ``$ref``, an embedded ``$id``
    or a pair too complex to compare.
    """
    refuse_embedded_ids(reader)
    refuse_embedded_ids(writer)
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


class _Walk:
    """One side-by-side walk over a reader and a writer schema, collecting findings."""

    def __init__(self, reader_root: Any, writer_root: Any) -> None:
        self.reader_root = reader_root
        self.writer_root = writer_root
        self.found: list[Incompatibility] = []
        self._steps = 0
        self._work = 0
        # canonical text by object id, the object held so its id is not reused: a node
        # reached along 2^n $ref paths is serialised once, not once per path.
        self._texts: dict[int, tuple[Any, str]] = {}
        self._sames: dict[tuple[int, int], tuple[Any, Any, bool]] = {}
        # Whether resolution.resolve reaches the reader schema being compared (it follows
        # properties and $ref from the root only), one entry per active compare.
        self._fills: list[bool] = [True]
        self._active: dict[tuple[int, int, str], tuple[Any, Any]] = {}

    def add(self, pointer: str, kind: str, message: str) -> None:
        self.found.append(Incompatibility(pointer, kind, message))

    def spend(self, cost: int) -> None:
        """Count ``cost`` units of work; refuse a check that would take too long."""
        self._work += cost
        if self._work > _MAX_WORK:
            raise UnsupportedSchemaError("the schemas are too complex to compare")

    def fillable(self, declared: Any) -> bool:
        """Whether the consumer fills a missing member declared as ``declared`` here.

        Only where :func:`~interlock.events.resolution.resolve` reaches (along
        properties and $ref from the root), and only with a default the
        property's own schema accepts: else the event it fills still fails.
        """
        if not self._fills[-1] or not isinstance(declared, Mapping):
            return False
        filled = member(declared, self.reader_root)
        if "default" not in filled:
            return False
        self.spend(100)
        return valid_default(declared, filled["default"], self.reader_root)

    def text(self, value: Any) -> str:
        """``canonical(value)``, computed once per object for this walk."""
        found = self._texts.get(id(value))
        if found is None:
            found = (value, canonical(value))
            self._texts[id(value)] = found
            self.spend(1 + len(found[1]) // 64)
        return found[1]

    def probe(
        self, reader: Any, pointer: str, writer: Any, writer_pointer: str, *, fill: bool = True
    ) -> bool:
        """Compare without recording; True when compatible."""
        saved = self.found
        self.found = []
        try:
            self.compare(reader, pointer, writer, writer_pointer, fill=fill)
            return not self.found
        finally:
            self.found = saved

    def compare(
        self, reader: Any, pointer: str, writer: Any, writer_pointer: str, *, fill: bool = True
    ) -> None:
        """Record why instances of ``writer`` may fail ``reader``.

        ``fill``: the consumer's resolution reaches this reader schema when it
        reaches the current one (a property's schema, not an items or allOf one).
        """
        reader, pointer = resolve(self.reader_root, reader, pointer)
        writer, writer_pointer = resolve(self.writer_root, writer, writer_pointer)
        self._steps += 1
        if self._steps > _MAX_STEPS or len(self._active) > _MAX_DEPTH:
            raise UnsupportedSchemaError(
                "the schemas are too deeply nested or too complex to compare"
            )
        key = (id(reader), id(writer), pointer)
        if key in self._active:
            return  # a recursive schema met itself: assume the cycle holds (coinduction)
        self._active[key] = (reader, writer)  # held, so no id is reused while active
        self._fills.append(self._fills[-1] and fill)
        try:
            self._compare(reader, pointer, writer, writer_pointer)
        finally:
            self._fills.pop()
            del self._active[key]

    def _compare(self, reader: Any, pointer: str, writer: Any, writer_pointer: str) -> None:
        if writer is False or is_empty(reader):
            return
        if reader is False:
            self.add(pointer, "TYPE_NARROWED", "the reader accepts nothing here (false)")
            return
        if writer is True:
            writer = {}
        if not isinstance(reader, Mapping) or not isinstance(writer, Mapping):
            raise UnsupportedSchemaError(f"'{pointer}' is neither a schema object nor a boolean")
        if self._unevaluated(reader, pointer, writer):
            return
        reader = reader_view(reader, lambda node: resolve(self.reader_root, node, "")[0])
        writer = writer_view(writer, lambda node: resolve(self.writer_root, node, "")[0])
        if self._combinators(reader, pointer, writer, writer_pointer):
            return
        self._unchecked(reader, pointer, writer)
        if not self._type(reader, pointer, writer):
            return
        self._enum(reader, pointer, writer)
        types = types_of(writer)
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
            self.compare(without(reader, "allOf"), pointer, writer, wp)
            for i, branch in enumerate(subschemas(reader["allOf"])):
                self.compare(branch, f"{pointer}/allOf/{i}", writer, wp, fill=False)
            return True
        for keyword in ("anyOf", "oneOf"):  # every writer alternative must be read
            if keyword in writer and not (keyword == "oneOf" and "oneOf" in reader):
                rest = without(writer, keyword)
                for i, branch in enumerate(subschemas(writer[keyword])):
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
            if sorted(map(self.text, subschemas(reader["oneOf"]))) != sorted(
                map(self.text, subschemas(writer.get("oneOf", [])))
            ):
                self.add(pointer, "COMBINED_TYPE_CHANGED", "the reader's oneOf alternatives differ")
                return
            self.compare(without(reader, "oneOf"), pointer, without(writer, "oneOf"), wp)
            return
        self.compare(without(reader, "anyOf"), pointer, writer, wp)
        branches = subschemas(reader["anyOf"])
        if not any(
            self.probe(b, f"{pointer}/anyOf/{i}", writer, wp, fill=False)
            for i, b in enumerate(branches)
        ):
            self.add(
                pointer, "SUM_TYPE_NARROWED", "no anyOf alternative reads all the writer's data"
            )

    def _writer_product(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any], wp: str
    ) -> None:
        """Writer data satisfies every conjunct: merged, or any one part read, suffices."""
        parts = [without(writer, "allOf"), *subschemas(writer["allOf"])]
        resolved = [resolve(self.writer_root, p, wp)[0] for p in parts]
        merged = merge(resolved, self.text)
        if merged is not None:
            self.compare(reader, pointer, merged, wp)
            return
        if not any(self.probe(reader, pointer, p, wp) for p in parts):
            self.add(
                pointer,
                "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                "no part of the writer's allOf is read by the reader",
            )

    def _unevaluated(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]
    ) -> bool:
        """unevaluated* beside applicators; True when that settled the comparison.

        The same schema on both sides reads its own data (the rewritten
        reader of compatibility_unevaluated may be stricter than it).
        unevaluatedItems there must be unchanged.
        """
        beside = any(k in reader for k in (*APPLICATORS, "contains"))
        items = not is_empty(reader.get("unevaluatedItems", True))
        properties = not is_empty(reader.get("unevaluatedProperties", True))
        if not beside or not (items or properties):
            return False
        if self._same(reader, writer):
            return True
        if not items:
            return False
        self.add(
            f"{pointer}/unevaluatedItems",
            "KEYWORD_CHANGED",
            "'unevaluatedItems' beside in-place applicators changed; cannot prove it safe",
        )
        return True

    def _same(self, reader: Any, writer: Any) -> bool:
        key = (id(reader), id(writer))
        found = self._sames.get(key)
        if found is None:
            same = same_schema(reader, self.reader_root, writer, self.writer_root, self.text)
            found = self._sames[key] = (reader, writer, same)
        return found[2]

    def _unchecked(
        self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]
    ) -> None:
        for keyword in _UNCHECKED:
            if keyword in reader and not self._same(reader[keyword], writer.get(keyword)):
                self.add(
                    f"{pointer}/{keyword}",
                    "KEYWORD_CHANGED",
                    f"'{keyword}' in the reader is new or changed; cannot prove it safe",
                )

    def _type(self, reader: Mapping[str, Any], pointer: str, writer: Mapping[str, Any]) -> bool:
        """Check types; False when the types share nothing (no point going deeper)."""
        if "type" not in reader:
            return True
        admitted = types_of({"type": reader["type"]})
        produced = types_of(writer)
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
        allowed = values_of(reader)
        if allowed is None:
            return
        where = f"{pointer}/const" if "const" in reader else f"{pointer}/enum"
        produced = values_of(writer)
        if produced is None and types_of(writer) <= {"null", "boolean"}:
            produced = [v for v in (None, True, False) if json_type(v) in types_of(writer)]
        if produced is None:
            self.add(where, "ENUM_ARRAY_NARROWED", "the reader now restricts the values")
            return
        self.spend(len(allowed) + len(produced))
        keys = {self.text(v) for v in allowed}
        lost = [v for v in produced if self.text(v) not in keys]
        if lost:
            extra = bool(keys - {self.text(v) for v in produced})
            kind = "ENUM_ARRAY_CHANGED" if extra or "const" in reader else "ENUM_ARRAY_NARROWED"
            self.add(where, kind, f"{len(lost)} value(s) the writer allows are no longer read")
