"""Request schemas: compiled once, offline, every violation reported with a pointer."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.config.manifest import JsonLimits
from interlock.gateway.problems import REFUSALS
from interlock.validation.errors import MAX_ECHO, MAX_VIOLATIONS, BodyRefused, Violation
from interlock.validation.json_body import parse_json
from interlock.validation.schema import RequestSchema, SchemaError, compile_schema

ORDER: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["sku", "quantity"],
    "additionalProperties": False,
    "properties": {
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{6}$"},
        "quantity": {"type": "integer", "minimum": 1, "maximum": 100},
        "price": {"type": "number", "exclusiveMinimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
        "customer": {
            "type": "object",
            "required": ["email"],
            "properties": {
                "email": {"type": "string", "format": "email"},
                "id": {"type": "string", "format": "uuid"},
                "since": {"type": "string", "format": "date"},
                "seen": {"type": "string", "format": "date-time"},
            },
        },
        "lines": {
            "type": "array",
            "maxItems": 2,
            "items": {"$ref": "#/$defs/line"},
        },
        "note": {"type": "string", "maxLength": 5},
    },
    "$defs": {"line": {"type": "object", "properties": {"n": {"type": "integer"}}}},
}
VALID: dict[str, Any] = {
    "sku": "ABC-123456",
    "quantity": 5,
    "price": 9.5,
    "currency": "EUR",
    "customer": {
        "email": "buyer@example.com",
        "id": "0b6f8b4e-2f3c-4a59-9a7e-5c1d2e3f4a5b",
        "since": "2024-02-29",
        "seen": "2025-03-14T09:30:00Z",
    },
    "lines": [{"n": 1}],
    "note": "ok",
}


@pytest.fixture(scope="module")
def order() -> RequestSchema:
    """The order schema, compiled once for the module."""
    return compile_schema(ORDER)


def places(violations: tuple[Violation, ...]) -> list[tuple[str | None, str]]:
    """(pointer, detail) of each violation."""
    return [(v.pointer, v.detail) for v in violations]


def test_a_valid_instance_has_no_violations(order: RequestSchema) -> None:
    """Nothing to report, and check() returns quietly."""
    assert order.violations(VALID) == ()
    order.check(VALID)


def test_type_confusion_is_a_422_at_the_field(order: RequestSchema) -> None:
    """ "quantity": "5" against type integer: 422 schema-violation pointing at #/quantity."""
    body = b'{"sku": "ABC-123456", "quantity": "5"}'
    with pytest.raises(BodyRefused) as caught:
        order.check(parse_json(body, JsonLimits()))
    exc = caught.value
    assert (REFUSALS[exc.code].status, exc.code, REFUSALS[exc.code].title) == (
        422,
        "schema-violation",
        "Request does not match the schema",
    )
    assert places(exc.violations) == [("#/quantity", "must be of type integer")]
    assert exc.detail.startswith("1 problem ")


def test_every_violation_is_reported_at_once(order: RequestSchema) -> None:
    """Each keyword that fails is listed with the pointer of the value that failed it."""
    instance = {
        "sku": "abc",
        "quantity": 101,
        "price": 0,
        "currency": "DOGE",
        "customer": {"id": "not-a-uuid", "since": "2023-02-29", "seen": "yesterday"},
        "lines": [{"n": "1"}, {}, {}],
        "note": "too long",
        "extra": True,
    }
    found = places(order.violations(instance))
    assert sorted(found) == sorted(
        [
            ("#/sku", "must match the pattern ^[A-Z]{3}-[0-9]{6}$"),
            ("#/quantity", "must be at most 100"),
            ("#/price", "must be greater than 0"),
            ("#/currency", 'must be one of: "EUR", "USD"'),
            ("#/customer", "is a required property: email"),
            ("#/customer/id", "must be a valid uuid"),
            ("#/customer/since", "must be a valid date"),
            ("#/customer/seen", "must be a valid date-time"),
            ("#/lines", "must have at most 2 items"),
            ("#/lines/0/n", "must be of type integer"),
            ("#/note", "must be at most 5 characters long"),
            ("#", "has a property that is not allowed: extra"),
        ]
    )
    with pytest.raises(BodyRefused) as caught:
        order.check(instance)
    assert caught.value.detail.startswith("12 problems ")


def test_missing_required_properties_point_at_the_object(order: RequestSchema) -> None:
    """The property is absent, so the pointer names the object and the detail the property."""
    assert places(order.violations({})) == [
        ("#", "is a required property: sku"),
        ("#", "is a required property: quantity"),
    ]


def test_an_invalid_email_is_refused(order: RequestSchema) -> None:
    """Formats are assertions, not annotations."""
    instance = {**VALID, "customer": {"email": "not an email"}}
    assert places(order.violations(instance)) == [("#/customer/email", "must be a valid email")]


def test_details_do_not_echo_values(order: RequestSchema) -> None:
    """A wrong value is described by the rule it breaks, never quoted."""
    secret = "sk_live_" + "Z" * 300
    found = order.violations({**VALID, "quantity": secret, "note": secret})
    assert all(secret[:10] not in v.detail for v in found)


def test_long_property_names_are_shortened(order: RequestSchema) -> None:
    """An unexpected property's name is echoed at most MAX_ECHO characters."""
    name = "x" * 500
    (violation,) = order.violations({**VALID, name: 1})
    assert violation.detail.endswith("…")
    assert len(violation.detail) <= len("has a property that is not allowed: ") + MAX_ECHO


def test_violations_are_capped() -> None:
    """More than MAX_VIOLATIONS problems: only the first MAX_VIOLATIONS are listed."""
    schema = compile_schema({"type": "array", "items": {"type": "integer"}})
    found = schema.violations(["x"] * (MAX_VIOLATIONS + 50))
    assert len(found) == MAX_VIOLATIONS
    assert found[0].pointer == "#/0"
    with pytest.raises(BodyRefused) as caught:
        schema.check(["x"] * (MAX_VIOLATIONS + 50))
    assert caught.value.detail.startswith(f"{MAX_VIOLATIONS} problems (the first listed)")


@pytest.mark.parametrize(
    ("schema", "instance", "detail"),
    [
        ({"minimum": 1.5}, 1, "must be at least 1.5"),
        ({"exclusiveMaximum": 10}, 10, "must be less than 10"),
        ({"multipleOf": 5}, 7, "must be a multiple of 5"),
        ({"minLength": 2}, "a", "must be at least 2 characters long"),
        ({"minItems": 1}, [], "must have at least 1 items"),
        ({"maxProperties": 1}, {"a": 1, "b": 2}, "must have at most 1 properties"),
        ({"const": "x"}, "y", 'must be "x"'),
        ({"uniqueItems": True}, [1, 1], "must not contain duplicate items"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1.5, "anyOf"),
        ({"oneOf": [{"type": "number"}, {"type": "integer"}]}, 1, "matches several"),
        ({"not": {"type": "null"}}, None, "must not match the 'not' schema"),
        ({"type": ["string", "null"]}, 1, "must be of type null or string"),
        ({"properties": {"a": False}}, {"a": 1}, "is not allowed here"),
    ],
)
def test_each_keyword_has_a_readable_detail(
    schema: dict[str, Any], instance: Any, detail: str
) -> None:
    """The detail names the expectation of the keyword that failed."""
    (violation,) = compile_schema(schema).violations(instance)
    assert detail in violation.detail


def test_pointers_escape_slash_and_tilde() -> None:
    """RFC 6901 escaping in the instance location."""
    schema = compile_schema({"properties": {"a/b": {"properties": {"c~d": {"type": "string"}}}}})
    (violation,) = schema.violations({"a/b": {"c~d": 1}})
    assert violation.pointer == "#/a~1b/c~0d"


# Compilation


@pytest.mark.parametrize(
    "schema",
    [
        {"$ref": "https://example.com/order.json"},
        {"$ref": "order.json#/$defs/a"},
        {"properties": {"a": {"$ref": "http://169.254.169.254/latest/meta-data"}}},
        {"$id": "https://example.com/root", "items": {"$ref": "other.json"}},
        {"$dynamicRef": "https://example.com/x#meta"},
        {"allOf": [{"$ref": "file:///etc/passwd"}]},
    ],
)
def test_non_local_references_are_refused_at_compile_time(schema: dict[str, Any]) -> None:
    """Nothing is ever fetched: a remote or relative $ref is a SchemaError, not a request."""
    with pytest.raises(SchemaError, match="is not local"):
        compile_schema(schema)


def test_local_references_and_anchors_work() -> None:
    """#/$defs/... and #anchor resolve inside the schema."""
    schema = compile_schema(
        {
            "$defs": {"n": {"type": "integer"}, "s": {"$anchor": "text", "type": "string"}},
            "properties": {"a": {"$ref": "#/$defs/n"}, "b": {"$ref": "#text"}},
        }
    )
    assert places(schema.violations({"a": "1", "b": 2})) == [
        ("#/a", "must be of type integer"),
        ("#/b", "must be of type string"),
    ]


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ({"type": "nope"}, "invalid request schema"),
        ({"pattern": "("}, "invalid request schema"),
        ({"$ref": "#/$defs/missing"}, "invalid request schema"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "must be https://json-schema"),
        ({"minimum": "1"}, "invalid request schema"),
    ],
)
def test_invalid_schemas_raise_schema_error_with_one_line(
    schema: dict[str, Any], reason: str
) -> None:
    """A SchemaError (a ValueError) with a one-line reason, for start-up to report."""
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema)
    assert isinstance(caught.value, ValueError)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_2020_12_dialect_is_accepted_with_or_without_fragment() -> None:
    """Both spellings of the 2020-12 meta-schema URI name our dialect."""
    for uri in (
        "https://json-schema.org/draft/2020-12/schema",
        "https://json-schema.org/draft/2020-12/schema#",
    ):
        assert compile_schema({"$schema": uri, "type": "integer"}).violations(1) == ()


def test_2020_12_semantics_apply() -> None:
    """prefixItems (2020-12) constrains positions; items then covers the rest."""
    schema = compile_schema(
        {"type": "array", "prefixItems": [{"type": "string"}], "items": {"type": "integer"}}
    )
    assert sorted(places(schema.violations([1, "a"]))) == [
        ("#/0", "must be of type string"),
        ("#/1", "must be of type integer"),
    ]


def test_unknown_formats_stay_annotations() -> None:
    """OpenAPI's int64 or password are not checked (jsonschema-rs does not know them)."""
    assert compile_schema({"format": "int64"}).violations("x") == ()


def test_text_that_is_not_unicode_is_a_violation_not_a_crash() -> None:
    """An instance built elsewhere with a lone surrogate is reported, never a 500."""
    schema = compile_schema({"items": {"type": "string", "pattern": "^a$"}})
    assert places(schema.violations(["\ud800"])) == [
        ("#", "contains text that is not valid Unicode")
    ]


# Exact numbers (issue 18 item 9): bounds are checked on the value the target reads.


def _problems(schema: dict[str, Any], body: bytes) -> tuple[Violation, ...]:
    return compile_schema(schema).violations(parse_json(body, JsonLimits()))


@pytest.mark.parametrize(
    ("keyword", "body", "accepted"),
    [
        ({"maximum": 1000}, b"1000.00000000000000000001", False),
        ({"maximum": 1000}, b"1000", True),
        ({"maximum": 1000}, b"1000.000000000000000000000", True),
        ({"maximum": 1000}, b"999.99999999999999999999", True),
        ({"minimum": 1000}, b"999.99999999999999999", False),
        ({"minimum": 1000}, b"1000.00000000000000000001", True),
        ({"exclusiveMaximum": 1000}, b"999.999999999999999999999", True),
        ({"exclusiveMaximum": 1000}, b"1000.0000000000000000001", False),
        ({"exclusiveMinimum": 0}, b"1e-400", True),
        ({"maximum": 0}, b"1e-400", False),
        ({"minimum": 0}, b"-1e-400", False),
        ({"multipleOf": 0.01}, b"0.070000000000000000001", False),
        ({"multipleOf": 0.01}, b"0.07", True),
        ({"type": "integer"}, b"1.00000000000000000001", False),
        ({"type": "integer", "maximum": 2**53}, b"9007199254740993.0", False),
        ({"type": "integer", "maximum": 2**53}, b"9007199254740993", False),
        ({"type": "integer", "maximum": 2**53}, b"9007199254740992", True),
        ({"type": "integer", "minimum": -(2**53)}, b"-9007199254740993", False),
        ({"const": 1}, b"1.0000000000000000000001", False),
    ],
)
def test_bounds_are_checked_on_the_exact_decimal(
    keyword: dict[str, Any], body: bytes, accepted: bool
) -> None:
    """``1000.00000000000000000001`` is above ``maximum: 1000`` although its double is 1000.0."""
    assert (_problems(keyword, body) == ()) is accepted


@pytest.mark.parametrize("body", [b"1e400", b"-1e400", b'{"n": 1E+400}'])
def test_a_huge_exponent_is_refused_before_any_bound(body: bytes) -> None:
    """1e400 overflows a double: refused as out of range (400), never compared as inf."""
    with pytest.raises(BodyRefused) as refused:
        _problems({"maximum": 1000, "minimum": -1000}, body)
    assert refused.value.code == "json-limit-exceeded"
    assert REFUSALS[refused.value.code].status == 400


def test_an_exact_bound_violation_is_worded_from_the_keyword() -> None:
    """The detail names the bound, not the value's digits beyond the echo limit."""
    (violation,) = _problems(
        {"type": "object", "properties": {"total": {"maximum": 1000}}},
        b'{"total": 1000.00000000000000000001}',
    )
    assert violation == Violation("must be at most 1000", pointer="#/total")
