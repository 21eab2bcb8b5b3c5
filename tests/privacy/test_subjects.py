"""Subjects read out of one request: where the manifest says, normalised, deduplicated, capped."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import MultiDict

from interlock.config.manifest import Route, SubjectLocator
from interlock.privacy.subjects import MAX_SIGHTINGS, Found, RouteSubjects, Sighting

JSON = "application/json"


def _route(**extra: Any) -> Route:
    spec = {"method": "POST", "path": "/customers/{id}/orders", "upstream": "erp", "scope": "x"}
    return Route.model_validate({**spec, **extra})


def _locator(**spec: Any) -> SubjectLocator:
    return SubjectLocator.model_validate(spec)


def _subjects(*locators: dict[str, Any], **route: Any) -> RouteSubjects:
    return RouteSubjects([_locator(**spec) for spec in locators], _route(**route))


def _seen(found: Found) -> set[tuple[str, str, str, str]]:
    return {(s.kind, s.value, s.receiver, s.direction) for s in found.sightings}


def test_a_route_without_locators_is_false() -> None:
    """The gateway skips extraction entirely for such routes."""
    assert not RouteSubjects([], _route())
    assert RouteSubjects.for_route(
        [], _route(subjects=[{"kind": "email", "in": "request", "json": "/e"}])
    )


def test_integration_locators_come_first_then_the_routes() -> None:
    """for_route joins both lists: an integration's locator applies to each of its routes."""
    integration = [_locator(kind="customer_id", **{"in": "path"}, param="id")]
    route = _route(subjects=[{"kind": "email", "in": "request", "json": "/email"}])
    subjects = RouteSubjects.for_route(integration, route)
    found = subjects.from_request({"id": "C-7"}, {}, {"email": "A@Example.com"}, None, JSON)
    assert _seen(found) == {
        ("customer_id", "C-7", "upstream", "request"),
        ("email", "a@example.com", "upstream", "request"),
    }


def test_json_pointer_and_jsonpath_find_normalised_values() -> None:
    """A pointer selects one value, a JSONPath every match; values are normalised."""
    subjects = _subjects(
        {"kind": "email", "in": "request", "json": "/customer/email"},
        {"kind": "phone", "in": "request", "json": "$.lines[*].contact.phone", "region": "DE"},
        {"kind": "customer_id", "in": "request", "json": "$..customer_id"},
    )
    body = {
        "customer": {"email": "Jane.Doe@BÜCHER.de", "customer_id": 4711},
        "lines": [
            {"contact": {"phone": "030 1234567"}, "customer_id": "C-2"},
            {"contact": {"phone": "+1 202-555-0123"}},
            {"contact": {"phone": None}},
            {"contact": {"phone": {"nested": "+4930 1234567"}}},
        ],
    }
    found = subjects.from_request({}, {}, body, None, JSON)
    assert _seen(found) == {
        ("email", "jane.doe@bücher.de", "upstream", "request"),
        ("phone", "+49301234567", "upstream", "request"),
        ("phone", "+12025550123", "upstream", "request"),
        ("customer_id", "4711", "upstream", "request"),
        ("customer_id", "C-2", "upstream", "request"),
    }
    assert found.unparsed == 0


def test_non_scalars_booleans_and_fractions_are_ignored_not_counted() -> None:
    """null, true, 1.5, objects and arrays are not identifiers."""
    subjects = _subjects({"kind": "customer_id", "in": "request", "json": "$.ids[*]"})
    body = {"ids": [None, True, 1.5, {"a": 1}, [1], "C-1"]}
    found = subjects.from_request({}, {}, body, None, JSON)
    assert [s.value for s in found.sightings] == ["C-1"]
    assert found.unparsed == 0


def test_a_value_that_does_not_normalise_is_counted_not_recorded() -> None:
    """subjects_unparsed on the audit entry: the route's data does not fit its declaration."""
    subjects = _subjects({"kind": "email", "in": "request", "json": "$.emails[*]"})
    body = {"emails": ["ok@example.com", "not-an-email", "also bad@", "ok@example.com"]}
    found = subjects.from_request({}, {}, body, None, JSON)
    assert [s.value for s in found.sightings] == ["ok@example.com"]  # deduplicated
    assert found.unparsed == 2


def test_the_json_body_is_parsed_when_the_gateway_did_not() -> None:
    """Without parsed_json, a JSON body is read from the bytes."""
    subjects = _subjects({"kind": "email", "in": "request", "json": "/email"})
    found = subjects.from_request({}, {}, None, b'{"email": "X@Example.com"}', JSON)
    assert [s.value for s in found.sightings] == ["x@example.com"]
    broken = subjects.from_request({}, {}, None, b'{"email": ', JSON)
    assert broken.sightings == ()
    assert broken.unparsed == 1


def test_a_locator_of_another_media_type_finds_nothing() -> None:
    """A JSON locator on a CSV body (or no media type) looks at nothing."""
    subjects = _subjects({"kind": "email", "in": "request", "json": "/email"})
    assert subjects.from_request({}, {}, None, b"email\r\na@example.com\r\n", "text/csv") == Found()
    assert subjects.from_request({}, {}, None, b'{"email":"a@example.com"}', None) == Found()


def test_path_and_query_parameters_reach_both_sides_once_answered() -> None:
    """Parameters default to both receivers; the caller only on a 2xx answer."""
    subjects = _subjects(
        {"kind": "customer_id", "in": "path", "param": "id"},
        {"kind": "email", "in": "query", "param": "email"},
    )
    query = MultiDict([("email", "A@example.com"), ("email", "b@example.com")])
    before = subjects.from_request({"id": "C-1"}, query, None, None, None)
    assert {(s.value, s.receiver) for s in before.sightings} == {
        ("C-1", "upstream"),
        ("a@example.com", "upstream"),
        ("b@example.com", "upstream"),
    }
    answered = subjects.from_request({"id": "C-1"}, query, None, None, None, status=200)
    assert {(s.value, s.receiver) for s in answered.sightings} == {
        (value, receiver)
        for value in ("C-1", "a@example.com", "b@example.com")
        for receiver in ("upstream", "caller")
    }
    refused = subjects.from_request(
        {"id": "C-1"}, {"email": "a@example.com"}, None, None, None, status=404
    )
    assert {s.receiver for s in refused.sightings} == {"upstream"}


def test_a_path_parameter_the_upstream_path_drops_reaches_only_the_caller() -> None:
    """upstream_path without {id}: the upstream never receives the id."""
    subjects = _subjects(
        {"kind": "customer_id", "in": "path", "param": "id"},
        upstream_path="/orders",
    )
    assert subjects.from_request({"id": "C-1"}, {}, None, None, None) == Found()
    found = subjects.from_request({"id": "C-1"}, {}, None, None, None, status=201)
    assert _seen(found) == {("customer_id", "C-1", "caller", "request")}


def test_response_sightings_reach_the_caller_only_on_2xx() -> None:
    """An error answer carries no data to the caller."""
    subjects = _subjects({"kind": "email", "in": "response", "json": "$.items[*].email"})
    body = json.dumps({"items": [{"email": "A@example.com"}, {"email": "b@example.com"}]}).encode()
    found = subjects.from_response(body, JSON, 200)
    assert _seen(found) == {
        ("email", "a@example.com", "caller", "response"),
        ("email", "b@example.com", "caller", "response"),
    }
    assert subjects.from_response(body, JSON, 404) == Found()
    assert subjects.from_response(b"", JSON, 200) == Found()


def test_a_malformed_response_counts_its_locators_as_unparsed() -> None:
    """The upstream's body could not be read: the audit entry says so."""
    subjects = _subjects(
        {"kind": "email", "in": "response", "json": "/email"},
        {"kind": "phone", "in": "response", "json": "/phone"},
    )
    found = subjects.from_response(b"\xff{not json", JSON, 200)
    assert found.sightings == ()
    assert found.unparsed == 2


def test_csv_columns_by_header_name_with_neutralised_cells_read_back() -> None:
    """The request as forwarded: '+49... was neutralised, the phone is still +49..."""
    subjects = _subjects(
        {"kind": "phone", "in": "request", "csv_column": "Phone"},
        {"kind": "email", "in": "request", "csv_column": "email"},
        csv={"delimiter": ";"},
        content_types=["text/csv"],
    )
    body = (
        "\ufeffname;email;Phone\r\nJane;J@Example.com;'+49 30 1234567\r\n"
        "Bob;;'+1 202 555 0123\r\nEve;'-Eve@example.com;\r\nShort\r\n"
    )
    found = subjects.from_request({}, {}, None, body.encode(), "text/csv; charset=utf-8")
    assert _seen(found) == {
        ("email", "j@example.com", "upstream", "request"),
        ("phone", "+49301234567", "upstream", "request"),
        ("phone", "+12025550123", "upstream", "request"),
        ("email", "-eve@example.com", "upstream", "request"),
    }
    assert found.unparsed == 0


def test_a_csv_response_is_read_as_the_upstream_wrote_it() -> None:
    """Only the gateway's own prefix is removed, and only from requests."""
    subjects = _subjects({"kind": "customer_id", "in": "response", "csv_column": "id"})
    found = subjects.from_response(b"id\r\n'=C-1\r\n", "text/csv", 200)
    assert [s.value for s in found.sightings] == ["'=C-1"]


def test_xml_by_elementtree_path() -> None:
    """Element text, leaf elements only, parsed without DTDs."""
    subjects = _subjects(
        {"kind": "email", "in": "request", "xml": "./customer/email"},
        {"kind": "customer_id", "in": "request", "xml": ".//id"},
        xml={},
    )
    body = (
        b"<order><customer><email> Ann@Example.com </email><id>C-9</id></customer>"
        b"<line><id>C-10</id><id><nested>x</nested></id></line></order>"
    )
    found = subjects.from_request({}, {}, None, body, "application/xml")
    assert _seen(found) == {
        ("email", "ann@example.com", "upstream", "request"),
        ("customer_id", "C-9", "upstream", "request"),
        ("customer_id", "C-10", "upstream", "request"),
    }


def test_an_xml_response_with_a_dtd_is_not_read() -> None:
    """defusedxml refuses it: nothing is extracted, the locator counts as unparsed."""
    subjects = _subjects({"kind": "email", "in": "response", "xml": "./email"})
    evil = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "x@example.com">]><r><email>&e;</email></r>'
    )
    found = subjects.from_response(evil, "application/xml", 200)
    assert found.sightings == ()
    assert found.unparsed == 1


def test_sightings_are_capped_and_the_rest_counted() -> None:
    """A body of thousands of identifiers records MAX_SIGHTINGS and counts the overflow."""
    subjects = _subjects({"kind": "customer_id", "in": "request", "json": "$.ids[*]"})
    body = {"ids": [f"C-{n}" for n in range(MAX_SIGHTINGS + 44)]}
    found = subjects.from_request({}, {}, body, None, JSON)
    assert len(found.sightings) == MAX_SIGHTINGS
    assert found.overflow == 44


def test_adding_founds_deduplicates_on_kind_value_receiver() -> None:
    """The same person seen in the request and the response is one caller sighting."""
    first = Found((Sighting("email", "a@example.com", "caller", "request"),), unparsed=1)
    second = Found(
        (
            Sighting("email", "a@example.com", "caller", "response"),
            Sighting("email", "a@example.com", "upstream", "response"),
        ),
        unparsed=2,
        overflow=3,
    )
    both = first + second
    assert [(s.receiver, s.direction) for s in both.sightings] == [
        ("caller", "request"),
        ("upstream", "response"),
    ]
    assert (both.unparsed, both.overflow) == (3, 3)


def test_sighting_repr_never_shows_the_value() -> None:
    """A sighting logged by accident does not log the person."""
    assert "secret@example.com" not in repr(
        Sighting("email", "secret@example.com", "caller", "request")
    )


def test_a_json_locator_that_does_not_compile_is_refused() -> None:
    """The gateway's build fails with the reason (interlock validate reports it first)."""
    with pytest.raises(ValueError, match="JSONPath"):
        _subjects({"kind": "email", "in": "request", "json": "$.["})


def test_a_malformed_csv_response_counts_its_locators_as_unparsed() -> None:
    """A stray quote or bytes that are not UTF-8: the column cannot be read."""
    subjects = _subjects({"kind": "customer_id", "in": "response", "csv_column": "id"})
    for body in (b'id\r\n"C-1\r\n', b"id\r\n\xff\xfe\r\n"):
        found = subjects.from_response(body, "text/csv", 200)
        assert (found.sightings, found.unparsed) == ((), 1)


def test_a_csv_without_the_column_finds_nothing_and_counts_nothing() -> None:
    """The header has no such column: nothing was there to read."""
    subjects = _subjects({"kind": "customer_id", "in": "response", "csv_column": "id"})
    assert subjects.from_response(b"name\r\nAda\r\n", "text/csv", 200) == Found()
