"""The values a SQL rule's ``value:`` names, or why the rule cannot check them.

A lookup rule admits a request when every value it names has a row in its
view. Read naively, a value that is absent, ``null``, a list (``["EVIL"]``)
or an object gives the rule nothing to look up, so it passes while the body
goes on unchanged — a rule that fails open. Here every such input is a
violation instead, located by a JSON pointer (or the parameter's name) and
worded without the rule's view, column or SQL:

* a field or query parameter that is absent: ``is required`` — unless the
  rule says ``optional: true``, which skips the value (only absence is
  optional);
* a value that is ``null``, an array or an object where a scalar is
  expected, a step of the path through something that is not an object,
  and ``name[]`` on something that is not an array: always refused.

An empty array (``lines: []`` for ``body:lines[].sku``) has no values and
checks nothing; whether it may be empty is the schema's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from interlock.validation.errors import MAX_VIOLATIONS, Violation, pointer

__all__ = ["rule_values"]

_Path = tuple[str | int, ...]
_KINDS: Final[dict[type, str]] = {
    dict: "an object",
    list: "an array",
    type(None): "null",
    bool: "a boolean",
    str: "text",
}


def rule_values(
    source: str,
    body: Any,
    params: Mapping[str, Mapping[str, str]],
    *,
    optional: bool,
    rule: str,
) -> tuple[list[str], list[Violation]]:
    """The values ``source`` names as text, and a violation for each one that cannot be checked.

    ``source`` is ``body:a.b[].c``, ``path:x`` or ``query:y``; ``params`` maps
    ``"path"`` and ``"query"`` to the request's parameters.
    """
    kind, _, where = source.partition(":")
    if kind != "body":
        values = params.get(kind, {})
        if where in values:
            return [values[where]], []
        missing = [] if optional else [Violation("is required", parameter=where, rule=rule)]
        return [], missing
    walk = _Walk(rule, optional=optional)
    texts = [walk.scalar(value, path) for value, path in walk.follow(body, where)]
    return [text for text in texts if text is not None], walk.problems[:MAX_VIOLATIONS]


class _Walk:
    """One walk of a body along a dotted path, collecting what it cannot use."""

    def __init__(self, rule: str, *, optional: bool) -> None:
        self.rule = rule
        self.optional = optional
        self.problems: list[Violation] = []

    def refuse(self, detail: str, path: _Path) -> None:
        self.problems.append(Violation(detail, pointer=pointer(*path), rule=self.rule))

    def follow(self, body: Any, where: str) -> list[tuple[Any, _Path]]:
        """Every value at ``where`` (``[]`` steps fan out), with its location."""
        # No body at all has none of its fields: each is missing, not malformed.
        current: list[tuple[Any, _Path]] = [({} if body is None else body, ())]
        for step in where.split("."):
            name, each = (step[:-2], True) if step.endswith("[]") else (step, False)
            following: list[tuple[Any, _Path]] = []
            for node, path in current:
                if not isinstance(node, dict):
                    self.refuse(f"must be an object, not {_kind(node)}", path)
                elif name not in node:
                    if not self.optional:
                        self.refuse("is required", (*path, name))
                elif not each:
                    following.append((node[name], (*path, name)))
                elif isinstance(node[name], list):
                    following.extend(
                        (item, (*path, name, index)) for index, item in enumerate(node[name])
                    )
                else:
                    self.refuse(f"must be an array, not {_kind(node[name])}", (*path, name))
            current = following
        return current

    def scalar(self, value: Any, path: _Path) -> str | None:
        """``value`` as text if it is a string, number or boolean; otherwise a violation."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float | Decimal):
            return str(value)
        self.refuse(f"must be a single text, number or boolean value, not {_kind(value)}", path)
        return None


def _kind(value: Any) -> str:
    return _KINDS.get(type(value), "a number")
