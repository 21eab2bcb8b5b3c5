"""JSON numbers a double cannot carry: kept exact, checked exact, written back exact.

A schema bound checked on ``float(literal)`` while the literal itself is
forwarded lets ``1000.00000000000000000001`` pass ``maximum: 1000``: the
float is 1000.0, the upstream reads more. So a number literal whose value
does not survive a round trip through a double is parsed as
:class:`decimal.Decimal` instead, and jsonschema-rs (built with arbitrary
precision) compares it exactly against ``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``, ``type:
integer``, ``enum`` and ``const``. Every other number stays a ``float``
(or an ``int``, which Python keeps exact at any size), so the common case
costs nothing.

"Survives" means the literal and the shortest text of its nearest double
(``repr``) denote the same decimal value: ``0.1``, ``1.50`` and ``1e-5``
survive; ``1000.00000000000000000001``, ``9007199254740993.0`` and
``1e-400`` (which would become 0.0) do not. Any literal with at most 15
significant digits and an exponent within a double's normal range survives
(C's ``DBL_DIG``), which is what lets the parser skip the check on bodies
without a run of 16 digit characters or a long exponent.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

__all__ = ["DBL_DIG", "dumps_exact", "number_of", "survives_float"]

DBL_DIG: Final = 15  # C's DBL_DIG: decimal digits a double always carries exactly


def survives_float(literal: str, number: float) -> bool:
    """Whether ``number`` (``float(literal)``) denotes exactly the value ``literal`` writes."""
    if len(literal) <= DBL_DIG and "e" not in literal and "E" not in literal:
        return True  # at most 15 digits, no exponent: DBL_DIG guarantees the round trip
    return Decimal(repr(number)) == Decimal(literal)


def number_of(literal: str, number: float) -> float | Decimal:
    """``number`` when it carries ``literal`` exactly, otherwise the exact ``Decimal``."""
    return number if survives_float(literal, number) else Decimal(literal)


def dumps_exact(value: Any) -> str:
    """Compact UTF-8 JSON text of a parsed body, its ``Decimal`` numbers written exactly.

    The stdlib encoder does everything but ``Decimal``; only a body holding one
    takes the (iterative) writer below.
    """
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError:
        return _write(value)


class _Raw(str):
    """Text already in JSON form (a bracket, a separator, a key with its colon)."""

    __slots__ = ()


def _write(value: Any) -> str:
    out: list[str] = []
    pending: list[Any] = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, _Raw):
            out.append(item)
        elif isinstance(item, Decimal):
            if not item.is_finite():
                raise ValueError("a JSON number must be finite")
            out.append(str(item))  # finite Decimal text is JSON number syntax (1E-400, -0.5)
        elif isinstance(item, dict):
            parts: list[Any] = [_Raw("{")]
            for index, (key, member) in enumerate(item.items()):
                comma = "," if index else ""
                parts += [_Raw(comma + json.dumps(key, ensure_ascii=False) + ":"), member]
            pending.extend(reversed([*parts, _Raw("}")]))
        elif isinstance(item, list):
            parts = [_Raw("[")]
            for index, element in enumerate(item):
                parts += [_Raw(","), element] if index else [element]
            pending.extend(reversed([*parts, _Raw("]")]))
        else:
            out.append(json.dumps(item, ensure_ascii=False, allow_nan=False))
    return "".join(out)
