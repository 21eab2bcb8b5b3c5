"""Request-body schemas as self-contained JSON Schema 2020-12 documents.

``#/components/schemas`` references become ``$defs``; OpenAPI 3.0's
``nullable``, boolean ``exclusiveMinimum`` and ignored ``$ref`` siblings are
translated; examples and documentation are dropped; ``readOnly`` properties
are not required in a request.
"""

from __future__ import annotations

import re
from typing import Any, Final

from interlock.config.field_categories import PROPOSED, TAG
from interlock.config.openapi.document import Resolver
from interlock.config.yaml_source import DocPath
from interlock.gdpr.field_names import suggested_category

__all__ = ["DIALECT", "request_schema"]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
# Schema keywords: dropped (documentation and OpenAPI-only), and those holding subschemas.
_DROP: Final = frozenset(
    {"example", "examples", "description", "title", "externalDocs", "xml", "discriminator"}
    # Identifiers would move the base that our "#/$defs/..." references resolve against.
    | {"$id", "$anchor", "$dynamicAnchor", "$schema", "$vocabulary", "$comment"}
)
_SCHEMA_MAPS: Final = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LISTS: Final = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE: Final = frozenset(
    {"items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames"}
    | {"unevaluatedItems", "unevaluatedProperties", "contentSchema"}
)


def request_schema(converter: Resolver, node: Any, at: DocPath) -> dict[str, Any]:
    """The schema ``node`` (at ``at``) with every component it references, as 2020-12."""
    return _Schemas(converter).root(node, at)


class _Schemas:
    """One request schema, converted to a self-contained JSON Schema 2020-12 document."""

    def __init__(self, converter: Resolver) -> None:
        self.converter = converter
        self.doc = converter.doc
        self.defs: dict[str, Any] = {}
        self.names: dict[DocPath, str] = {}
        self.todo: list[tuple[DocPath, str]] = []

    def root(self, node: Any, at: DocPath) -> dict[str, Any]:
        body = self.convert(node, at)
        while self.todo:
            component, name = self.todo.pop()
            self.defs[name] = self.convert(
                self.converter.lookup(_pointer(component), at)[0], component
            )
        schema: dict[str, Any] = {"$schema": DIALECT}
        schema.update(body if isinstance(body, dict) else {} if body else {"not": {}})
        if self.defs:
            schema["$defs"] = dict(sorted(self.defs.items()))
        return schema

    def ref(self, ref: object, at: DocPath) -> str:
        _, target = self.converter.lookup(ref, at)
        if len(target) < 3 or target[:2] != ("components", "schemas"):
            raise self.doc.error((*at, "$ref"), "a schema $ref must point into components.schemas")
        component = target[:3]
        name = self.names.get(component)
        if name is None:
            name = re.sub(r"[^A-Za-z0-9_.-]", "_", str(component[2]))
            while name in self.names.values():
                name += "_"
            self.names[component] = name
            self.todo.append((component, name))
        rest = "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in target[3:])
        return f"#/$defs/{name}{rest}"

    def convert(self, node: Any, at: DocPath) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.doc.error(at, "a schema must be a mapping")
        for keyword in ("$dynamicRef", "$recursiveRef"):
            if keyword in node:
                raise self.doc.error((*at, keyword), f"{keyword} is not supported; use $ref")
        out: dict[str, Any] = {}
        if "$ref" in node:
            out["$ref"] = self.ref(node["$ref"], at)
            if self.doc.version == "3.0":
                # OpenAPI 3.0 §4.7.24.1 (Reference Object): other keywords are ignored.
                return out
        for key, value in node.items():
            if key in _DROP or key in {"$ref", "nullable"} or _extension(key):
                continue
            # The API's own x-data-category is kept (docs/privacy.md); validate checks it.
            out[key] = value if key == TAG else self.keyword(key, value, (*at, key))
        _exclusive_bounds(out)
        if isinstance(out.get("required"), list):
            out["required"] = [n for n in out["required"] if not self.read_only(node, n, at)]
            if not out["required"]:
                del out["required"]
        if "nullable" in node and self.doc.version == "3.1":
            self.warn_once(at, "nullable is not an OpenAPI 3.1 keyword; ignored (use a null type)")
        elif node.get("nullable") is True:
            return _nullable(out)
        return out

    def keyword(self, key: str, value: Any, at: DocPath) -> Any:
        if key in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise self.doc.error(at, f"{key} must be a mapping of schemas")
            converted = {k: self.convert(v, (*at, k)) for k, v in value.items()}
            if key == "properties":
                for name, sub in converted.items():
                    self.propose(str(name), sub, (*at, name))
            return converted
        if key in _SCHEMA_LISTS:
            if not isinstance(value, list):
                raise self.doc.error(at, f"{key} must be a list of schemas")
            return [self.convert(v, (*at, i)) for i, v in enumerate(value)]
        if key in _SCHEMA_ONE:
            return self.convert(value, at)
        return value

    def propose(self, name: str, schema: Any, at: DocPath) -> None:
        """Propose the data category a field's name suggests, for the operator to confirm."""
        category = suggested_category(name)
        if category is None or not isinstance(schema, dict) or TAG in schema:
            return
        schema[PROPOSED] = category
        self.converter.notes.append(
            self.doc.locate(
                at,
                f"proposed data category {category} for {name!r} (from its name): confirm "
                f"it in the manifest by renaming {PROPOSED} to {TAG}, or tag the field in "
                "the route's field_categories",
                note=True,
            )
        )

    def read_only(self, node: dict[str, Any], name: object, at: DocPath) -> bool:
        properties = node.get("properties")
        if not isinstance(properties, dict) or not isinstance(name, str) or name not in properties:
            return False
        found, _ = self.converter.deref(properties[name], (*at, "properties", name))
        return isinstance(found, dict) and found.get("readOnly") is True

    def warn_once(self, at: DocPath, message: str) -> None:
        line = self.doc.locate(at, message, warning=True)
        if line not in self.converter.warnings:
            self.converter.warnings.append(line)


def _extension(key: str) -> bool:
    """An OpenAPI extension (``x-...``) other than the data category tag: dropped."""
    return key.startswith("x-") and key != TAG


def _exclusive_bounds(schema: dict[str, Any]) -> None:
    """OpenAPI 3.0's ``exclusiveMinimum: true`` (a flag on ``minimum``) as 2020-12's number."""
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(flag), bool) and schema.pop(flag) and bound in schema:
            schema[flag] = schema.pop(bound)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0 ``nullable: true`` as 2020-12: null joins the type (or an anyOf)."""
    kind = schema.get("type")
    if isinstance(kind, str | list):
        kinds = [kind] if isinstance(kind, str) else list(kind)
        schema["type"] = kinds if "null" in kinds else [*kinds, "null"]
    elif schema:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if isinstance(schema.get("enum"), list) and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _pointer(path: DocPath) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)
