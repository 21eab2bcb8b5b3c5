"""Exact numbers: which literals a double carries, and writing Decimal back as JSON."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

from interlock.config.manifest import JsonLimits
from interlock.validation.exact_numbers import dumps_exact, number_of, survives_float
from interlock.validation.json_body import parse_json
from tests.validation.test_json_body import json_values


@pytest.mark.parametrize(
    ("literal", "survives"),
    [
        ("0.1", True),
        ("1.50", True),
        ("1e-5", True),
        ("1.7976931348623157e308", True),
        ("123456789012345.6", True),
        ("1000.00000000000000000001", False),
        ("9007199254740993.0", False),
        ("1e-400", False),
        ("0.30000000000000001", False),
    ],
)
def test_which_literals_survive_a_double(literal: str, survives: bool) -> None:
    """A literal survives when its double's shortest text is the same decimal value."""
    assert survives_float(literal, float(literal)) is survives
    expected = float(literal) if survives else Decimal(literal)
    assert number_of(literal, float(literal)) == expected


def test_decimals_are_written_back_exactly() -> None:
    """The text forwarded after minimisation carries the digits that were checked."""
    body = (
        b'{"id": 1000.00000000000000000001, "tiny": 1e-400, "plain": 0.5, '
        b'"big": 9007199254740993, "list": [-0.30000000000000001, {"k\\"": "v\\u00e9"}], '
        b'"empty": {}, "none": [], "flags": [true, false, null]}'
    )
    text = dumps_exact(parse_json(body, JsonLimits()))
    assert text == (
        '{"id":1000.00000000000000000001,"tiny":1E-400,"plain":0.5,'
        '"big":9007199254740993,"list":[-0.30000000000000001,{"k\\"":"vé"}],'
        '"empty":{},"none":[],"flags":[true,false,null]}'
    )
    assert json.loads(text, parse_float=Decimal)["id"] == Decimal("1000.00000000000000000001")


def test_a_non_finite_decimal_is_not_written() -> None:
    """NaN is not JSON; parse_json never produces one, and the writer refuses it too."""
    with pytest.raises(ValueError, match="finite"):
        dumps_exact([Decimal("NaN")])


@given(json_values())
def test_without_decimals_the_text_is_the_stdlib_encoders(value: Any) -> None:
    """Bodies without a Decimal are written exactly as json.dumps writes them."""
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert dumps_exact(value) == compact


@given(json_values())
def test_the_writer_matches_the_stdlib_on_any_value(value: Any) -> None:
    """The Decimal-aware writer, forced, writes any JSON value as the stdlib does."""
    compact = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert dumps_exact([value, Decimal("0.5")]) == f"[{compact},0.5]"
