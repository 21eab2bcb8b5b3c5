"""Data minimisation: exactly which fields survive an allow-list, and how many go."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interlock.validation.minimise import FieldFilter, NotFilterable, minimise_body

ORDER: dict[str, Any] = {
    "id": 7,
    "status": "paid",
    "customer": {"name": "Ada", "email": "ada@example.com", "address": {"city": "Berlin"}},
    "items": [
        {"sku": "A-1", "qty": 2, "price": 9.5},
        {"sku": "B-2", "qty": 1, "price": 20},
    ],
    "tags": ["vip", "eu"],
    "notes": None,
}


def kept(paths: list[str], value: Any) -> tuple[Any, int]:
    """``value`` through a filter of ``paths``."""
    return FieldFilter(paths).apply(value)


def test_top_level_fields_survive_and_the_rest_is_counted() -> None:
    """Listed members stay; six unlisted members are removed and counted one each."""
    assert kept(["id", "status"], ORDER) == ({"id": 7, "status": "paid"}, 4)


def test_listed_object_keeps_its_whole_subtree() -> None:
    """'customer' keeps every member under it, nested ones too."""
    assert kept(["customer"], ORDER) == ({"customer": ORDER["customer"]}, 5)


def test_nested_path_keeps_the_parent_only_as_its_container() -> None:
    """'customer.email' keeps customer with only email; name and address go (2 + 5)."""
    assert kept(["customer.email"], ORDER) == ({"customer": {"email": "ada@example.com"}}, 7)


def test_deep_path_and_sibling_path() -> None:
    """Two paths under one parent: both survive, nothing else of the parent does."""
    value, removed = kept(["customer.address.city", "customer.name"], ORDER)
    assert value == {"customer": {"name": "Ada", "address": {"city": "Berlin"}}}
    assert removed == 1 + 5  # customer.email, then the other top-level members


def test_shorter_path_wins_over_a_longer_one() -> None:
    """'customer' and 'customer.email' together keep all of customer."""
    assert kept(["customer.email", "customer"], ORDER) == ({"customer": ORDER["customer"]}, 5)


def test_array_of_objects_keeps_listed_members_of_each_element() -> None:
    """'items[].sku' keeps sku of every item; qty and price of both items go (4 + 5)."""
    value, removed = kept(["items[].sku"], ORDER)
    assert value == {"items": [{"sku": "A-1"}, {"sku": "B-2"}]}
    assert removed == 4 + 5


def test_path_ending_at_brackets_keeps_every_element_whole() -> None:
    """'items[]' keeps each element as it is, like 'items'."""
    assert kept(["items[]"], ORDER) == ({"items": ORDER["items"]}, 5)
    assert kept(["items"], ORDER) == ({"items": ORDER["items"]}, 5)


def test_array_of_scalars_is_kept_whole_when_the_path_ends_there() -> None:
    """'tags[]' and 'tags' keep a list of strings as it is."""
    assert kept(["tags[]"], ORDER) == ({"tags": ["vip", "eu"]}, 5)


def test_scalar_elements_are_removed_when_the_path_goes_on() -> None:
    """'tags[].label' finds no objects in tags: both strings go, the empty array stays."""
    assert kept(["tags[].label"], ORDER) == ({"tags": []}, 2 + 5)


def test_mixed_array_keeps_objects_filtered_and_drops_other_elements() -> None:
    """Objects are filtered, scalars, nulls and nested arrays are removed one each."""
    value = {"rows": [{"a": 1, "b": 2}, 3, None, [{"a": 4}], {"b": 5}]}
    assert kept(["rows[].a"], value) == ({"rows": [{"a": 1}, {}]}, 1 + 3 + 1)


def test_missing_fields_are_not_added() -> None:
    """Listed paths absent from the value add nothing; an empty container stays."""
    value = {"customer": {"name": "Ada"}}
    assert kept(["id", "customer.email", "items[].sku"], value) == ({"customer": {}}, 1)


def test_path_through_a_scalar_removes_it() -> None:
    """'notes.text' and 'status.code' meet null and a string: both are removed whole."""
    value, removed = kept(["notes.text", "status.code", "id"], ORDER)
    assert value == {"id": 7}
    assert removed == 5  # notes and status (removed whole), customer, items, tags


def test_object_path_through_an_array_removes_it() -> None:
    """'items.sku' without [] does not descend into the array: items is removed."""
    assert kept(["items.sku", "id"], ORDER) == ({"id": 7}, 5)


def test_array_path_through_an_object_removes_it() -> None:
    """'customer[].name' expects an array: the customer object is removed."""
    assert kept(["customer[].name", "id"], ORDER) == ({"id": 7}, 5)


def test_empty_allow_list_removes_everything() -> None:
    """No paths: an empty object remains and every member is counted."""
    assert kept([], ORDER) == ({}, 6)


def test_top_level_array_applies_the_paths_to_each_element() -> None:
    """A list of orders: each keeps id and customer.name; a scalar element is removed."""
    value, removed = kept(["id", "customer.name"], [ORDER, {"id": 8, "secret": "x"}, "stray"])
    assert value == [{"id": 7, "customer": {"name": "Ada"}}, {"id": 8}]
    assert removed == (2 + 4) + 1 + 1


def test_top_level_array_with_empty_allow_list_keeps_empty_objects() -> None:
    """Object elements become empty objects, their members counted."""
    assert kept([], [{"a": 1, "b": 2}, {"c": 3}]) == ([{}, {}], 3)


@pytest.mark.parametrize("value", ["text", 5, None, True])
def test_top_level_scalar_is_not_filterable(value: Any) -> None:
    """A scalar has no fields to keep: refused, so the gateway fails closed."""
    with pytest.raises(NotFilterable):
        FieldFilter(["id"]).apply(value)


@pytest.mark.parametrize("path", ["", "a..b", "a[][]", "a.", "1a", "a[0]", "a b"])
def test_invalid_paths_are_refused_when_compiling(path: str) -> None:
    """Only FIELD_PATTERN paths compile."""
    with pytest.raises(ValueError, match="not a field path"):
        FieldFilter([path])


def test_input_value_is_not_modified() -> None:
    """apply builds a new value; the original keeps every field."""
    original = json.loads(json.dumps(ORDER))
    FieldFilter(["customer.email"]).apply(original)
    assert original == ORDER


def test_minimise_body_reserialises_compact_utf8() -> None:
    """The filtered body is compact JSON in UTF-8, non-ASCII kept as is."""
    body = json.dumps({"name": "Zoë", "email": "z@example.com", "n": 1.5}).encode()
    assert minimise_body(body, "application/json", FieldFilter(["name", "n"])) == (
        '{"name":"Zoë","n":1.5}'.encode(),
        1,
    )


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        'application/json; charset="UTF-8"',
        "application/problem+json",
        "application/vnd.api+json",
        "Application/JSON",
    ],
)
def test_json_media_types_are_filterable(content_type: str) -> None:
    """application/json and any +json type can be filtered."""
    assert minimise_body(b'{"a":1,"b":2}', content_type, FieldFilter(["a"])) == (b'{"a":1}', 1)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/plain",
        "text/json",
        "application/xml",
        "application/jsonx",
        "application/json-seq",
        "application/x-ndjson",
        "application/json; charset=utf-16",
        "multipart/form-data",
    ],
)
def test_other_media_types_are_not_filterable(content_type: str | None) -> None:
    """Anything but UTF-8 JSON (or no type at all) raises NotFilterable."""
    with pytest.raises(NotFilterable):
        minimise_body(b'{"a":1}', content_type, FieldFilter(["a"]))


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1,"a":2}',
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        b'{"a":1e999999}',
        b'{"a":0.1000000000000000055511151231257827}',
        b'{"a":' + b"9" * 5000 + b"}",
        b'{"a":"\xff"}',
        '{"a":1}'.encode("utf-16"),
        b'{"a":"\\ud800"}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"a":1} x',
        b"",
    ],
    ids=[
        "duplicate-key",
        "nan",
        "infinity",
        "huge-number",
        "float-precision",
        "long-integer",
        "invalid-utf8",
        "utf16",
        "lone-surrogate",
        "deep-nesting",
        "trailing-data",
        "empty",
    ],
)
def test_hostile_or_lossy_json_is_not_filterable(body: bytes) -> None:
    """Bodies that cannot be parsed strictly, or would change on the way out, are refused."""
    with pytest.raises(NotFilterable):
        minimise_body(body, "application/json", FieldFilter(["a"]))


def test_numbers_keep_their_value() -> None:
    """Integers of any size a JSON parser allows and exact floats round-trip by value."""
    body = b'{"a":[12345678901234567890123,-0.5,1E2,0.1,-0]}'
    filtered, _ = minimise_body(body, "application/json", FieldFilter(["a"]))
    assert filtered == b'{"a":[12345678901234567890123,-0.5,100.0,0.1,0]}'


def test_byte_order_mark_is_tolerated() -> None:
    """A UTF-8 BOM before the JSON is dropped."""
    assert minimise_body(b'\xef\xbb\xbf{"a":1}', "application/json", FieldFilter(["a"])) == (
        b'{"a":1}',
        0,
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "c"]), children, max_size=3)
    ),
    max_leaves=20,
)


@given(json_values, st.lists(st.sampled_from(["a", "b.c", "a[].b", "c[]", "b"]), max_size=3))
def test_only_listed_top_level_members_survive(value: Any, paths: list[str]) -> None:
    """Property: every surviving top-level member is the head of a listed path."""
    if not isinstance(value, (dict, list)):
        with pytest.raises(NotFilterable):
            FieldFilter(paths).apply(value)
        return
    result, removed = FieldFilter(paths).apply(value)
    heads = {path.split(".")[0].removesuffix("[]") for path in paths}
    for element in result if isinstance(result, list) else [result]:
        assert set(element) <= heads
    assert removed >= 0
    if not paths:
        assert all(element == {} for element in (result if isinstance(result, list) else [result]))
