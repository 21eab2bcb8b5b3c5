"""Local ``$ref`` resolution for the compatibility checker: ``#/...`` pointers only.

The checker walks two schemas side by side and follows their references
within each document. Only local JSON Pointer fragments (RFC 6901 inside an
RFC 3986 fragment) are followed; a remote reference, an anchor or a
``$dynamicRef`` is refused, as :func:`interlock.validation.schema.compile_schema`
refuses remote references (no fetching, no document that changes under us).

Every ``#/...`` is resolved against the document root. An ``$id`` below the
root would start a new resource whose ``#/...`` references the validator
resolves inside it (2020-12 §8.2.1, §9.2), so :func:`refuse_embedded_ids`
refuses such schemas: the checker, the field cut and the consumer's
resolution all rely on root-relative references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import unquote

from interlock.errors import InterlockError

__all__ = [
    "ANNOTATIONS",
    "UnsupportedSchemaError",
    "pointer_target",
    "refuse_embedded_ids",
    "resolve",
]

#: Keywords that never make an instance invalid (2020-12 core, meta-data, content).
ANNOTATIONS: Final = frozenset(
    {
        "$schema",
        "$id",
        "$anchor",
        "$comment",
        "$defs",
        "definitions",
        "$vocabulary",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
    }
)

_MAX_HOPS: Final = 32  # a chain of $ref longer than this is a loop
_UNEVALUATED: Final = ("unevaluatedProperties", "unevaluatedItems")
# Keywords whose value maps names (not keywords) to subschemas.
_NAMED: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
# Keywords whose value is data, never a schema: a "$id" there is only a value.
_DATA: Final = frozenset({"enum", "const", "default", "examples", "required", "dependentRequired"})


class UnsupportedSchemaError(InterlockError):
    """A schema uses something the compatibility checker will not follow (a remote ``$ref``)."""

    code = "invalid_schema"


def refuse_embedded_ids(schema: Any) -> None:
    """Raise :class:`UnsupportedSchemaError` for an ``$id`` anywhere below the root.

    Iterative (a deep schema cannot exhaust the stack); names under
    ``properties`` and the like, and values under ``enum``, ``const``,
    ``default`` ... are not keywords, so a property called ``$id`` is fine.
    """
    pending: list[tuple[Any, str, bool]] = [(schema, "", False)]  # node, pointer, names map
    while pending:
        node, pointer, names = pending.pop()
        if isinstance(node, Mapping):
            if pointer and not names and "$id" in node:
                raise UnsupportedSchemaError(
                    f"'$id' at '{pointer}' starts an embedded resource; only the root may "
                    "have an $id (its #/... references would resolve differently)"
                )
            for key, value in node.items():
                if names or key not in _DATA:
                    token = str(key).replace("~", "~0").replace("/", "~1")
                    pending.append((value, f"{pointer}/{token}", not names and key in _NAMED))
        elif isinstance(node, list):
            pending.extend((value, f"{pointer}/{i}", False) for i, value in enumerate(node))


def pointer_target(root: Any, fragment: str) -> tuple[Any, str]:
    """The value at JSON pointer ``fragment`` (without ``#``) in ``root``, and the pointer."""
    pointer = unquote(fragment)
    if pointer and not pointer.startswith("/"):
        raise UnsupportedSchemaError(
            f"$ref '#{fragment}' names an anchor; only local JSON pointers (#/...) are followed"
        )
    node: Any = root
    for raw in pointer.split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise UnsupportedSchemaError(f"$ref '#{fragment}' does not resolve in the schema")
    return node, pointer


def resolve(root: Any, node: Any, pointer: str) -> tuple[Any, str]:
    """Follow ``node``'s ``$ref`` chain within ``root``; return the schema and its pointer.

    Keywords beside a ``$ref`` apply too (2020-12 §8.2.3.1): they are merged
    as an ``allOf`` of the target and the siblings, annotations dropped;
    ``unevaluated*`` stay beside that ``allOf`` (they see what both evaluate).
    Raise :class:`UnsupportedSchemaError` for a non-local reference or
    ``$dynamicRef``.
    """
    for _ in range(_MAX_HOPS):
        if not isinstance(node, Mapping):
            return node, pointer
        if "$dynamicRef" in node:
            raise UnsupportedSchemaError("$dynamicRef is not supported by the compatibility check")
        ref = node.get("$ref")
        if ref is None:
            return node, pointer
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise UnsupportedSchemaError(
                f"$ref {ref!r} at '{pointer}' is not local; only #/... references are followed"
            )
        target, target_pointer = pointer_target(root, ref[1:])
        siblings = {k: v for k, v in node.items() if k != "$ref" and k not in ANNOTATIONS}
        if siblings:
            # unevaluated* see what the $ref target evaluated: they stay beside the allOf
            late = {k: siblings.pop(k) for k in _UNEVALUATED if k in siblings}
            return {"allOf": [target, siblings], **late}, pointer
        node, pointer = target, target_pointer
    raise UnsupportedSchemaError(f"$ref chain at '{pointer}' does not end (a loop)")
