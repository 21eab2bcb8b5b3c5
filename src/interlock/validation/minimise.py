"""Data minimisation: cut a JSON value down to an allow-list of field paths.

A path is what ``FIELD_PATTERN`` in the manifest allows: member names joined
by ``.``, where ``name[]`` descends into every element of the array ``name``.
The rules, applied by :meth:`FieldFilter.apply`:

* A listed path keeps its whole subtree (``customer`` keeps every member of
  ``customer``). A shorter listed path wins over a longer one under it.
* An object on the way to a listed path is kept only as the container of its
  listed descendants; its other members are removed. It is kept even when
  none of them is present (``customer.email`` on ``{"customer": {"name": "x"}}``
  gives ``{"customer": {}}``), so the shape does not depend on the data.
* ``items[]`` applies the rest of the path to every element of ``items``.
  Where the path ends at ``[]`` every element is kept whole; where it goes on
  (``items[].sku``) object elements are filtered and any other element (a
  scalar, an array, null) is removed.
* A value that does not have the shape the path expects is removed whole:
  ``customer.email`` through a scalar, array or null ``customer``, or
  ``items[]`` on an ``items`` that is not an array. Missing members are
  simply absent; nothing is added.
* If the top-level value is an array, the paths apply to each element as to
  a top-level object; elements that are not objects are removed. A top-level
  scalar has no fields to keep and is :class:`NotFilterable`.
* The count is one per object member and one per array element removed, at
  the level where it is removed: dropping ``customer`` counts 1, however much
  it held.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from interlock.config.manifest import FIELD_PATTERN
from interlock.errors import InterlockError
from interlock.validation.exact_numbers import survives_float

__all__ = ["FieldFilter", "NotFilterable", "minimise_body"]

# RFC 8259 §11 and RFC 6839 §3.1: application/json and the +json structured syntax suffix.
_JSON_MEDIA: Final = re.compile(r"application/(?:[a-z0-9!#$&^_.+-]+\+)?json")


class NotFilterable(InterlockError):  # noqa: N818  (a verdict on the body, not a fault)
    """The body cannot be filtered; with an allow-list configured it must not pass at all."""

    code = "not_filterable"


@dataclass
class _Rule:
    """What to keep of one value: all of it, or listed members, or each item by a rule."""

    whole: bool = False
    members: dict[str, _Rule] = field(default_factory=dict)
    items: _Rule | None = None


class FieldFilter:
    """An allow-list of field paths, compiled once; see the module docstring for the rules."""

    def __init__(self, paths: Sequence[str]) -> None:
        """Compile ``paths``; a :class:`ValueError` names any that is not a field path."""
        self._root = _Rule()
        for path in paths:
            if not re.fullmatch(FIELD_PATTERN, path):
                raise ValueError(f"not a field path: {path!r}")
            rule = self._root
            for segment in path.split("."):
                name = segment.removesuffix("[]")
                rule = rule.members.setdefault(name, _Rule())
                if segment.endswith("[]"):
                    rule.items = rule.items or _Rule()
                    rule = rule.items
            rule.whole = True

    def apply(self, value: Any) -> tuple[Any, int]:
        """``value`` with only the listed fields kept, and how many fields were removed."""
        if isinstance(value, dict):
            return _object(value, self._root)
        if not isinstance(value, list):
            raise NotFilterable("a JSON scalar has no fields to filter")
        kept: list[dict[str, Any]] = []
        removed = 0
        for item in value:
            if isinstance(item, dict):
                filtered, count = _object(item, self._root)
                kept.append(filtered)
                removed += count
            else:
                removed += 1
        return kept, removed


def minimise_body(
    body: bytes, content_type: str | None, field_filter: FieldFilter
) -> tuple[bytes, int]:
    """``body`` filtered by ``field_filter`` and re-serialised compactly as UTF-8.

    Only JSON media types (``application/json``, ``application/*+json``) with no
    charset other than UTF-8 can be filtered. The body must be strict UTF-8 (a
    byte order mark is tolerated), without duplicate keys, NaN or Infinity.
    Numbers are re-serialised by value, so a number a float cannot carry exactly
    (``1e999999``, more than 17 significant digits) is refused rather than
    altered. Anything else raises :class:`NotFilterable`.
    """
    _require_json(content_type)
    try:
        value = json.loads(
            body.decode("utf-8").removeprefix("\ufeff"),
            object_pairs_hook=_unique_members,
            parse_constant=_no_constant,
            parse_float=_exact_float,
        )
        kept, removed = field_filter.apply(value)
        text = json.dumps(kept, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8"), removed
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeError are too
        raise NotFilterable(f"not filterable JSON: {type(error).__name__}") from None


def _object(value: dict[str, Any], rule: _Rule) -> tuple[dict[str, Any], int]:
    kept: dict[str, Any] = {}
    removed = 0
    for name, member in value.items():
        member_rule = rule.members.get(name)
        found = None if member_rule is None else _keep(member, member_rule)
        if found is None:
            removed += 1
        else:
            kept[name] = found[0]
            removed += found[1]
    return kept, removed


def _array(value: list[Any], rule: _Rule) -> tuple[list[Any], int]:
    kept: list[Any] = []
    removed = 0
    for item in value:
        found = _keep(item, rule)
        if found is None:
            removed += 1
        else:
            kept.append(found[0])
            removed += found[1]
    return kept, removed


def _keep(value: Any, rule: _Rule) -> tuple[Any, int] | None:
    """What survives of ``value`` under ``rule``, or None if it is removed whole."""
    if rule.whole:
        return value, 0
    if isinstance(value, dict) and rule.members:
        return _object(value, rule)
    if isinstance(value, list) and rule.items is not None:
        return _array(value, rule.items)
    return None


def _require_json(content_type: str | None) -> None:
    media, *parameters = (content_type or "").lower().split(";")
    if not _JSON_MEDIA.fullmatch(media.strip()):
        raise NotFilterable("only JSON bodies can be filtered")
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip() == "charset" and charset.strip().strip('"') != "utf-8":
            raise NotFilterable("only UTF-8 JSON can be filtered")


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("duplicate member names")
    return members


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _exact_float(literal: str) -> float:
    number = float(literal)
    if not survives_float(literal, number):
        raise ValueError("a number a float cannot carry exactly")
    return number
