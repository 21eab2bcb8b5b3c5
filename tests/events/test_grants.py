"""Grants: the content filter, the field cut, the categories, and the cut schema."""

from __future__ import annotations

from typing import Any

import pytest

from interlock.config.events import ConsumerGrant, EventSubject
from interlock.events.grants import Grant, cut_schema
from interlock.events.resolution import resolve
from interlock.validation.schema import compile_schema
from tests.events.streams_support import CANCELLED_V1, CANCELLED_V2, ORDER_CREATED, order


def grant(fields: tuple[str, ...] | None = None, **filters: Any) -> Grant:
    """A grant of ``order.created`` with ``fields`` and ``filters``."""
    return Grant.of(
        "crm",
        "order.created",
        ConsumerGrant(fields=fields, filter=filters),
        EventSubject(field_categories={"customer.email": "user.contact.email"}),
    )


@pytest.mark.parametrize(
    ("filters", "event", "passes"),
    [
        ({"region": "EU"}, {"region": "EU"}, True),
        ({"region": "EU"}, {"region": "US"}, False),
        ({"region": "EU"}, {}, False),  # missing: fails closed
        ({"region": ("EU", "CH")}, {"region": "CH"}, True),
        ({"count": 1}, {"count": True}, False),  # JSON keeps booleans and numbers apart
        ({"flag": True}, {"flag": 1}, False),
        ({"count": 1}, {"count": "1"}, False),
        ({"customer.region": "EU"}, {"customer": {"region": "EU"}}, True),
        ({"customer.region": "EU"}, {"customer": "EU"}, False),
        ({"items[].sku": "A"}, {"items": [{"sku": "B"}, {"sku": "A"}]}, True),
        ({"items[].sku": "A"}, {"items": [{"sku": "B"}]}, False),
        ({"region": "EU", "count": 2}, {"region": "EU", "count": 3}, False),
    ],
)
def test_the_content_filter(filters: dict[str, Any], event: dict[str, Any], passes: bool) -> None:
    assert grant(**filters).matches(event) is passes


def test_a_non_object_event_never_passes_a_filter() -> None:
    assert grant(region="EU").matches([{"region": "EU"}]) is False


def test_the_cut_keeps_only_the_granted_fields() -> None:
    assert grant(("id", "customer.email")).cut(order()) == {
        "id": "o-1",
        "customer": {"email": "ada@example.com"},
    }
    assert grant().cut(order()) == order()


def test_categories_are_those_of_the_fields_kept() -> None:
    assert grant(("id", "customer.email")).categories() == ("user.contact.email",)
    assert grant(("customer",)).categories() == ("user.contact.email",)
    assert grant(("id", "customer.name")).categories() == ()
    assert grant().categories() == ("user.contact.email",)


def test_the_cut_schema_requires_only_the_granted_members_and_keeps_every_other_rule() -> None:
    schema = compile_schema(cut_schema(ORDER_CREATED, ("id", "customer.email")))
    assert schema.violations({"id": "o-1", "customer": {"email": "ada@example.com"}}) == ()
    # Granted members are still required and still checked (through the $ref).
    assert schema.violations({"id": "o-1", "customer": {}})
    assert schema.violations({"id": "o-1", "customer": {"email": "nope"}})
    assert schema.violations({"customer": {"email": "ada@example.com"}})


@pytest.mark.parametrize(
    ("schema", "event", "fields"),
    [
        (
            {
                "type": "object",
                "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
                "required": ["id"],
                "dependentSchemas": {"id": {"required": ["email"]}},
            },
            {"id": "o-1", "email": "ada@example.com"},
            ("id",),
        ),
        (
            {
                "type": "object",
                "properties": {
                    "lines": {
                        "type": "array",
                        "contains": {"type": "object", "required": ["sku", "qty"]},
                    }
                },
            },
            {"lines": [{"sku": "A", "qty": 1}]},
            ("lines[].sku",),
        ),
    ],
    ids=["dependentSchemas", "contains"],
)
def test_members_required_in_place_elsewhere_are_cut_too(
    schema: dict[str, Any], event: dict[str, Any], fields: tuple[str, ...]
) -> None:
    """A valid event, cut to the grant, validates against the cut schema (else: dead-lettered)."""
    assert compile_schema(schema).violations(event) == ()
    copy = grant(fields).cut(event)
    assert compile_schema(cut_schema(schema, fields)).violations(copy) == ()


def test_the_cut_schema_does_not_change_the_original() -> None:
    before = repr(ORDER_CREATED)
    cut_schema(ORDER_CREATED, ("id",))
    assert repr(ORDER_CREATED) == before
    assert cut_schema(ORDER_CREATED, None) == ORDER_CREATED


def test_a_ref_cycle_is_left_as_it_is() -> None:
    tree = {
        "$defs": {
            "node": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "child": {"$ref": "#/$defs/node"}},
                "required": ["name", "child"],
            }
        },
        "$ref": "#/$defs/node",
    }
    schema = compile_schema(cut_schema(tree, ("name", "child.name")))
    assert schema.violations({"name": "a", "child": {"name": "b"}}) == ()
    assert schema.violations({"name": "a"})


def test_resolution_drops_what_a_closed_reader_does_not_know() -> None:
    assert resolve({"id": "c", "note": "x"}, CANCELLED_V1) == {"id": "c"}


def test_resolution_fills_the_readers_defaults() -> None:
    assert resolve({"id": "c"}, CANCELLED_V2) == {"id": "c", "note": "none"}


def test_resolution_keeps_unknown_members_for_an_open_reader() -> None:
    assert resolve({"id": "o", "extra": 1}, ORDER_CREATED) == {"id": "o", "extra": 1}
