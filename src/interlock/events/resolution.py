"""Schema resolution: an event written with one version, read with the consumer's own.

Confluent's readers for JSON Schema read an event with the reader's schema
and expect it to validate; Interlock adds the two adjustments a reader needs
when the writer's version differs from its own (:func:`resolve`):

* where the reader's content model is **closed** (``additionalProperties:
  false`` or ``unevaluatedProperties: false`` on an object schema), members
  the reader does not declare are dropped — data a newer writer added that
  this reader cannot take;
* members the reader declares with a ``default`` and the event lacks are
  filled with the default — data an older writer did not have.

Both apply along ``properties`` into nested objects, following local
``$ref``\\ s. The result must then validate against the reader's schema
(the consumer checks), so anything resolution cannot reconcile is refused,
never guessed.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from interlock.events.compatibility_values import references
from interlock.validation.schema import SchemaError, compile_schema

__all__ = ["member", "resolve", "valid_default"]

_MAX_DEPTH: Final = 64


def resolve(value: Any, schema: Mapping[str, Any]) -> Any:
    """``value`` (an event) adjusted to the reader's ``schema`` (see the module docstring)."""
    return _resolve(copy.deepcopy(value), schema, schema, 0)


def member(declared: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """A declared member's schema as :func:`resolve` reads it (its local ``$ref`` followed):
    the ``default`` there is what a missing member is filled with."""
    return _target(declared, root, 0)


def valid_default(declared: Mapping[str, Any], default: Any, root: Mapping[str, Any]) -> bool:
    """Whether ``default`` satisfies ``declared`` (its ``$ref``\\ s into ``root``'s ``$defs``).

    A schema referring anywhere else, or defining its own ``$defs``, is not
    judged here: False (the default is not trusted).
    """
    if any(k in declared for k in ("$defs", "definitions")):
        return False
    if any(not ref.startswith(("#/$defs/", "#/definitions/")) for ref in references(declared)):
        return False
    document = {
        **{k: root[k] for k in ("$defs", "definitions") if k in root},
        **declared,
    }
    try:
        return not compile_schema(document).violations(default)
    except SchemaError:
        return False


def _target(node: Mapping[str, Any], root: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#") or depth > _MAX_DEPTH:
        return node
    found: Any = root
    for raw in ref.removeprefix("#").split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        found = found[int(token)] if isinstance(found, list) else found.get(token, {})
    if not isinstance(found, Mapping):
        return node
    merged = {**found, **{k: v for k, v in node.items() if k != "$ref"}}
    return _target(merged, root, depth + 1)


def _resolve(value: Any, node: Any, root: Mapping[str, Any], depth: int) -> Any:
    if not isinstance(value, dict) or not isinstance(node, Mapping) or depth > _MAX_DEPTH:
        return value
    node = _target(node, root, depth)
    properties = node.get("properties")
    if not isinstance(properties, Mapping):
        return value
    if node.get("additionalProperties") is False or node.get("unevaluatedProperties") is False:
        patterned = node.get("patternProperties")
        for name in list(value):
            if name not in properties and not patterned:
                del value[name]
    for name, declared in properties.items():
        if not isinstance(declared, Mapping):
            continue
        member = _target(declared, root, depth + 1)
        if name in value:
            value[name] = _resolve(value[name], member, root, depth + 1)
        elif "default" in member:
            value[name] = copy.deepcopy(member["default"])
    return value
