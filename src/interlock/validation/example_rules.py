"""Example business rules, installed as ``interlock.rules`` entry points.

:func:`order_total_matches_lines` is the kind of rule a schema cannot state:
an order's ``total`` must equal the sum of its lines' ``quantity *
unit_price``, in exact decimal arithmetic (to the cent), so a client cannot
send a total that disagrees with what it ordered. The example manifest binds
it to the CRM order route; any installed package can register its own rules
the same way::

    [project.entry-points."interlock.rules"]
    order_total_matches_lines = "interlock.validation.example_rules:order_total_matches_lines"
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal, InvalidOperation

from interlock.validation.errors import Violation, pointer
from interlock.validation.rules import RuleInput

__all__ = ["order_total_matches_lines"]


def _amount(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def order_total_matches_lines(data: RuleInput) -> Iterator[Violation]:
    """``total`` equals the sum of ``lines[].quantity * lines[].unit_price`` (to the cent)."""
    body = data.body
    if not isinstance(body, dict) or not isinstance(body.get("lines"), list):
        return  # the schema decides whether lines are required
    total = _amount(body.get("total"))
    sum_of_lines = Decimal(0)
    for index, line in enumerate(body["lines"]):
        quantity = _amount(line.get("quantity")) if isinstance(line, dict) else None
        price = _amount(line.get("unit_price")) if isinstance(line, dict) else None
        if quantity is None or price is None:
            yield Violation(
                "a line needs a numeric quantity and unit_price", pointer("lines", index)
            )
            return
        sum_of_lines += quantity * price
    if total is None or total.quantize(Decimal("0.01")) != sum_of_lines.quantize(Decimal("0.01")):
        yield Violation(
            f"total must equal the sum of the lines ({sum_of_lines.quantize(Decimal('0.01'))})",
            pointer("total"),
        )
