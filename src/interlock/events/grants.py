"""What one consumer may receive of one subject: the content filter and the field cut.

A grant (the manifest's ``events.consumers.CONSUMER.SUBJECT``) is compiled
once into a :class:`Grant`:

* :meth:`Grant.matches` — the content filter. Every listed field must be
  present and equal to the value (or one of the values); equality is strict
  about types (``true`` is not ``1``, ``"1"`` is not ``1``). A path through
  ``name[]`` matches when any element matches. A missing field, or an event
  that is not a JSON object, never matches: a filter fails closed.
* :meth:`Grant.cut` — the field cut, by
  :class:`~interlock.validation.minimise.FieldFilter` (a grant without
  ``fields`` receives every field).
* :func:`cut_schema` — the writer's schema as it applies to the cut copy:
  the same schema with the properties the grant removes no longer required
  (see its docstring). The consumer validates the copy it receives against
  it, so a copy is checked as strictly as the schema allows without asking
  for fields the consumer may not see.
* :meth:`Grant.categories` — the data categories (the subject's
  ``field_categories``) of the fields the cut keeps: what the audit entry of
  a publication names.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from interlock.config.events import ConsumerGrant, EventSubject
from interlock.validation.minimise import FieldFilter

__all__ = ["Grant", "cut_schema"]

# Keywords whose subschemas apply to the same instance (the rule stays where it is).
_IN_PLACE = ("allOf", "anyOf", "oneOf", "if", "then", "else")


@dataclass(frozen=True)
class Grant:
    """One consumer's grant of one subject, compiled."""

    consumer: str
    subject: str
    fields: tuple[str, ...] | None
    filter: Mapping[str, Any]
    field_categories: Mapping[str, str]
    _cutter: FieldFilter | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, consumer: str, subject: str, grant: ConsumerGrant, spec: EventSubject) -> Grant:
        """The grant ``grant`` of ``subject`` (declared as ``spec``) to ``consumer``."""
        fields = grant.fields
        return cls(
            consumer=consumer,
            subject=subject,
            fields=fields,
            filter=dict(grant.filter),
            field_categories=dict(spec.field_categories),
            _cutter=None if fields is None else FieldFilter(fields),
        )

    def matches(self, event: Any) -> bool:
        """Whether ``event`` passes the content filter (see the module docstring)."""
        if not isinstance(event, dict):
            return False
        return all(
            _any_equal(_values(event, path.split(".")), wanted)
            for path, wanted in self.filter.items()
        )

    def cut(self, event: Any) -> Any:
        """``event`` with only the granted fields (raises NotFilterable for a JSON scalar)."""
        if self._cutter is None:
            return event
        kept, _removed = self._cutter.apply(event)
        return kept

    def categories(self) -> tuple[str, ...]:
        """The data categories of the fields the cut keeps, sorted, without repeats."""
        kept = {
            category
            for path, category in self.field_categories.items()
            if self.fields is None or any(_overlaps(path, granted) for granted in self.fields)
        }
        return tuple(sorted(kept))


def _overlaps(path: str, granted: str) -> bool:
    """Whether some of ``path``'s value survives a cut to ``granted``."""
    a, b = path.replace("[]", "").split("."), granted.replace("[]", "").split(".")
    shorter = min(len(a), len(b))
    return a[:shorter] == b[:shorter]


def _values(value: Any, segments: Sequence[str]) -> Iterable[Any]:
    """Every value at ``segments`` under ``value`` (``name[]`` fans out over an array)."""
    if not segments:
        yield value
        return
    head, rest = segments[0], segments[1:]
    name = head.removesuffix("[]")
    if not isinstance(value, dict) or name not in value:
        return
    member = value[name]
    if head.endswith("[]"):
        if isinstance(member, list):
            for item in member:
                yield from _values(item, rest)
        return
    yield from _values(member, rest)


def _same(have: Any, want: Any) -> bool:
    # bool is an int in Python; JSON keeps them apart.
    return type(have) is type(want) and bool(have == want)


def _any_equal(found: Iterable[Any], wanted: Any) -> bool:
    options = wanted if isinstance(wanted, tuple | list) else (wanted,)
    return any(_same(have, want) for have in found for want in options)


@dataclass
class _Rule:
    whole: bool = False
    members: dict[str, _Rule] = field(default_factory=dict)
    items: _Rule | None = None


def _rules(paths: Sequence[str]) -> _Rule:
    root = _Rule()
    for path in paths:
        rule = root
        for segment in path.split("."):
            rule = rule.members.setdefault(segment.removesuffix("[]"), _Rule())
            if segment.endswith("[]"):
                rule.items = rule.items or _Rule()
                rule = rule.items
        rule.whole = True
    return root


def cut_schema(schema: Mapping[str, Any], fields: Sequence[str] | None) -> dict[str, Any]:
    """``schema`` as it applies to copies cut to ``fields``: removed properties not required.

    Where the cut keeps only some members of an object, the object's schema
    (and the schemas that apply in place: ``allOf``, ``anyOf``, ``oneOf``,
    ``if``/``then``/``else``, ``dependentSchemas``, and local ``$ref``
    targets, which are inlined there) keeps in ``required`` and in
    ``dependentRequired`` only the members the cut keeps, and loses
    ``minProperties``; member schemas under ``properties``, ``items``,
    ``prefixItems`` and ``contains`` are treated the same way along the
    granted paths. Everything else — types, formats, bounds, closed content
    models — stays, so a copy is as strictly checked as the schema allows.
    A ``$ref`` cycle on the way is left as it is (stricter, never looser).
    """
    result = copy.deepcopy(dict(schema))
    if fields is None:
        return result
    cut: dict[str, Any] = _cut(result, _rules(fields), result, frozenset())
    return cut


def _resolve(root: Mapping[str, Any], ref: str) -> Any:
    node: Any = root
    for raw in ref.removeprefix("#").split("/")[1:]:
        token = raw.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


def _cut(node: Any, rule: _Rule, root: dict[str, Any], seen: frozenset[str]) -> Any:
    if rule.whole or not isinstance(node, dict):
        return node
    out = dict(node)
    ref = out.get("$ref")
    if isinstance(ref, str) and ref.startswith("#") and ref not in seen:
        target = _resolve(root, ref)
        del out["$ref"]
        inlined = _cut(copy.deepcopy(target), rule, root, seen | {ref})
        out = (
            {"allOf": [inlined], **out}
            if "allOf" not in out
            else out | {"allOf": [*out["allOf"], inlined]}
        )
    kept = set(rule.members)
    if isinstance(out.get("required"), list):
        out["required"] = [name for name in out["required"] if name in kept]
    if isinstance(out.get("dependentRequired"), dict):
        out["dependentRequired"] = {
            name: [other for other in others if other in kept]
            for name, others in out["dependentRequired"].items()
        }
    out.pop("minProperties", None)
    if isinstance(out.get("properties"), dict):
        out["properties"] = {
            name: _cut(sub, rule.members[name], root, seen) if name in rule.members else sub
            for name, sub in out["properties"].items()
        }
    for keyword in _IN_PLACE:
        sub = out.get(keyword)
        if isinstance(sub, list):
            out[keyword] = [_cut(each, rule, root, seen) for each in sub]
        elif isinstance(sub, dict):
            out[keyword] = _cut(sub, rule, root, seen)
    if isinstance(out.get("dependentSchemas"), dict):  # name: schema, each in place
        out["dependentSchemas"] = {
            name: _cut(sub, rule, root, seen) for name, sub in out["dependentSchemas"].items()
        }
    return _cut_items(out, rule, root, seen)


def _cut_items(out: dict[str, Any], rule: _Rule, root: dict[str, Any], seen: frozenset[str]) -> Any:
    # A top-level array event: the paths apply to each element (as FieldFilter does);
    # below the top, ``name[]`` rules apply to the elements of ``name``.
    element = (
        rule.items if rule.items is not None else (rule if out.get("type") == "array" else None)
    )
    if element is None:
        return out
    if isinstance(out.get("items"), dict):
        out["items"] = _cut(out["items"], element, root, seen)
    if isinstance(out.get("prefixItems"), list):
        out["prefixItems"] = [_cut(each, element, root, seen) for each in out["prefixItems"]]
    if isinstance(out.get("contains"), dict):
        out["contains"] = _cut(out["contains"], element, root, seen)
    return out
