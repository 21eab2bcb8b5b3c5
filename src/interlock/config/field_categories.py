"""Category-vs-field consistency: a route carries only data its integration declares.

A route's fields are tagged with fideslang data categories in two places: the
route's ``field_categories`` (a field path of ``response_fields``,
``request_fields`` or ``request_schema`` -> a category) and ``x-data-category``
on a property of ``request_schema``. ``interlock validate`` then warns when a
route can carry a field of a personal-data category (``user.*``) that its
integration does not declare in ``data_categories`` (GDPR Art. 5(1)(c),
30(1)(c)); a declared category covers every category below it. An untagged
field whose name strongly suggests personal data
(:mod:`interlock.gdpr.field_names`) is warned about the same way, and a
category ``import-openapi`` proposed (``x-data-category-proposed``) is reported
until the operator confirms it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from interlock.config.manifest import Route
from interlock.config.yaml_source import DocPath
from interlock.gdpr.field_names import leaf_name, suggested_category
from interlock.gdpr.taxonomy import unknown_category

__all__ = ["PROPOSED", "TAG", "covered", "route_field_findings"]

TAG: Final = "x-data-category"
PROPOSED: Final = "x-data-category-proposed"
_MAX_DEPTH: Final = 32  # schema nesting walked; deeper fields are not looked at
_SUBSCHEMA_LISTS: Final = ("allOf", "anyOf", "oneOf")


@dataclass(frozen=True)
class _Field:
    """A field a route carries: its path, where it is written, and its tag (if any)."""

    path: str
    at: DocPath
    tag: str | None = None
    tag_at: DocPath | None = None
    proposed: str | None = None


def covered(category: str, declared: tuple[str, ...]) -> bool:
    """True when ``category`` or one of its ancestors is in ``declared``."""
    return any(category == d or category.startswith(d + ".") for d in declared)


def route_field_findings(
    at: DocPath, route: Route, flow: str, declared: tuple[str, ...]
) -> Iterator[tuple[DocPath, str, bool]]:
    """``(path, message, is_error)`` for every tag problem of ``route`` (at ``at``)."""
    fields, errors = _fields(at, route)
    yield from errors
    tags = {f.path: f.tag for f in fields if f.tag is not None}
    for key, category in route.field_categories.items():
        tags[key] = category
        if not _carried_key(route, key, fields):
            yield (
                (*at, "field_categories", key),
                f"field_categories tags {key!r}, which the route does not carry: name it in "
                "response_fields or request_fields, or remove the tag",
                True,
            )
    reported: set[tuple[str, str]] = set()
    for item in fields:
        tag = tags.get(item.path)
        if tag is not None:
            personal = tag.startswith("user") and not covered(tag, declared)
            if personal and (item.path, tag) not in reported:
                reported.add((item.path, tag))
                where = item.tag_at or (*at, "field_categories", item.path)
                yield where, _undeclared(route, flow, item.path, tag), False
            continue
        if item.proposed is not None:
            yield (
                (*item.at, PROPOSED),
                f"unconfirmed: import-openapi proposed {item.proposed} for {item.path!r}; "
                f"confirm it by renaming {PROPOSED} to {TAG} (or tag the field in "
                "field_categories), or remove the proposal",
                False,
            )
            continue
        suggestion = suggested_category(leaf_name(item.path))
        if suggestion is None or covered(suggestion, declared):
            continue
        if _ancestor_covers(item.path, tags, suggestion) or (item.path, suggestion) in reported:
            continue
        reported.add((item.path, suggestion))
        yield (
            item.at,
            f"{item.path!r} looks like personal data ({suggestion}) but is neither tagged "
            f"nor declared: integration {flow} does not declare {suggestion} in "
            "data_categories; tag the field (field_categories or x-data-category) and "
            "declare its category, or stop carrying it (GDPR Art. 5(1)(c), 30(1)(c))",
            False,
        )


def _undeclared(route: Route, flow: str, path: str, category: str) -> str:
    return (
        f"{route.label} can carry {path!r}, tagged {category}, but integration {flow} does "
        f"not declare {category} (nor a broader category) in data_categories: declare it, "
        "or stop carrying the field (GDPR Art. 5(1)(c), 30(1)(c))"
    )


def _ancestor_covers(path: str, tags: Mapping[str, str], suggestion: str) -> bool:
    """A tagged ancestor whose category covers ``suggestion`` already speaks for the field."""
    return any(_within(other, path) and covered(suggestion, (tag,)) for other, tag in tags.items())


def _segments(path: str) -> list[str]:
    return path.replace("[]", "").split(".")


def _within(ancestor: str, path: str) -> bool:
    """True when ``path`` is ``ancestor`` or lies below it (``[]`` ignored)."""
    outer, inner = _segments(ancestor), _segments(path)
    return inner[: len(outer)] == outer


def _carried_key(route: Route, key: str, fields: list[_Field]) -> bool:
    if route.response_fields is None:
        return True  # an unfiltered response may carry any field
    return any(_within(f.path, key) or _within(key, f.path) for f in fields)


def _fields(at: DocPath, route: Route) -> tuple[list[_Field], list[tuple[DocPath, str, bool]]]:
    """The fields the route lists or its request schema describes, and bad tags found."""
    fields: list[_Field] = []
    for name in ("response_fields", "request_fields"):
        for index, path in enumerate(getattr(route, name) or ()):
            fields.append(_Field(path, (*at, name, index)))
    errors: list[tuple[DocPath, str, bool]] = []
    schema = route.request_schema
    if schema is not None:
        walker = _SchemaWalker(schema, (*at, "request_schema"), errors)
        walker.walk(schema, (*at, "request_schema"), "", 0, frozenset())
        forwarded = route.request_fields
        fields.extend(
            f
            for f in walker.fields
            if forwarded is None or any(_within(r, f.path) or _within(f.path, r) for r in forwarded)
        )
    return fields, errors


class _SchemaWalker:
    """The properties of a JSON Schema as field paths, through items, allOf... and $defs."""

    def __init__(
        self, root: Mapping[str, Any], root_at: DocPath, errors: list[tuple[DocPath, str, bool]]
    ) -> None:
        self.root = root
        self.root_at = root_at
        self.errors = errors
        self.fields: list[_Field] = []

    def walk(
        self, node: object, at: DocPath, prefix: str, depth: int, refs: frozenset[str]
    ) -> None:
        if not isinstance(node, dict) or depth > _MAX_DEPTH:
            return
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and ref not in refs:
            name = ref.removeprefix("#/$defs/")
            target = self.root.get("$defs", {}).get(name) if "/" not in name else None
            self.walk(target, (*self.root_at, "$defs", name), prefix, depth + 1, refs | {ref})
        properties = node.get("properties")
        if isinstance(properties, dict):
            for name, sub in properties.items():
                where: DocPath = (*at, "properties", name)
                path = f"{prefix}.{name}" if prefix else str(name)
                tag = self.tag(sub, where, TAG)
                tag_at: DocPath | None = (*where, TAG) if tag is not None else None
                self.fields.append(_Field(path, where, tag, tag_at, self.tag(sub, where, PROPOSED)))
                self.walk(sub, where, path, depth + 1, refs)
        items = node.get("items")
        if isinstance(items, dict) and prefix:
            self.walk(items, (*at, "items"), prefix + "[]", depth + 1, refs)
        for keyword in _SUBSCHEMA_LISTS:
            for index, sub in enumerate(node.get(keyword) or ()):
                self.walk(sub, (*at, keyword, index), prefix, depth + 1, refs)

    def tag(self, sub: object, at: DocPath, keyword: str) -> str | None:
        value = sub.get(keyword) if isinstance(sub, dict) else None
        if value is None:
            return None
        problem = (
            unknown_category(value)
            if isinstance(value, str)
            else f"{keyword} is a fideslang data category key, e.g. user.contact.email"
        )
        if problem is not None:
            self.errors.append(((*at, keyword), problem, True))
            return None
        return str(value)
