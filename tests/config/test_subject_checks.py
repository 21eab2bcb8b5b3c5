"""interlock validate on subject locators: impossible ones are errors, pointless ones warnings."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.loader import ManifestReport
from tests.config.manifests import VALID, check, messages

ROUTE0 = "upstream: erp, scope: orders.read}"
FLOW = "integrations.order-sync"


def _route0(tmp_path: Path, locators: str, **more: str) -> tuple[str, ManifestReport]:
    """VALID with ``subjects: [locators]`` (and ``more`` keys) on GET /orders/{id}."""
    extra = "".join(f", {key}: {value}" for key, value in more.items())
    text = VALID.replace(
        ROUTE0, f"upstream: erp, scope: orders.read{extra}, subjects: [{locators}]}}"
    )
    assert text != VALID
    return text, check(tmp_path, text)


def _at(report: ManifestReport, path: str, severity: str = "errors") -> list[str]:
    return [d.message for d in getattr(report, severity) if d.path == path]


def test_good_locators_pass_without_findings(tmp_path: Path) -> None:
    """A path id, a JSON response email, a query email: nothing to say."""
    _, report = _route0(
        tmp_path,
        "{kind: customer_id, in: path, param: id}, "
        "{kind: email, in: response, json: /customer/email}, "
        '{kind: email, in: response, json: "$.contacts[*].email"}, '
        "{kind: email, in: query, param: email}",
        query="{email: {format: email}}",
    )
    assert report.ok, messages(report)
    assert report.warnings == ()


@pytest.mark.parametrize(
    ("locator", "key", "fragment"),
    [
        ('{kind: email, in: response, json: "$.["}', "json", "not an RFC 9535 JSONPath"),
        ('{kind: email, in: response, json: "/a~2"}', "json", "not an RFC 6901 JSON Pointer"),
        ('{kind: email, in: response, json: "/#email"}', "json", "starting with '#'"),
        ('{kind: email, in: response, json: "$.a "}', "json", "trailing whitespace"),
        ('{kind: email, in: response, xml: "/order/email"}', "xml", "not an absolute one"),
        ('{kind: email, in: response, xml: "order/email["}', "xml", "not an ElementTree path"),
    ],
)
def test_a_locator_that_does_not_compile_is_an_error_at_its_field(
    tmp_path: Path, locator: str, key: str, fragment: str
) -> None:
    """The message names the field and says why."""
    _, report = _route0(tmp_path, locator)
    found = _at(report, f"{FLOW}.routes[0].subjects[0].{key}")
    assert found, messages(report)
    assert fragment in found[0]


def test_a_path_locator_needs_a_parameter_of_the_path(tmp_path: Path) -> None:
    """{customer} is not in /orders/{id}: an error listing the path's parameters."""
    text, report = _route0(tmp_path, "{kind: customer_id, in: path, param: customer}")
    (message,) = _at(report, f"{FLOW}.routes[0].subjects[0].param")
    assert message == "'customer' is not a parameter of the path /orders/{id} (its parameters: id)"
    (error,) = report.errors
    assert (
        error.line
        == text.splitlines().index(
            next(line for line in text.splitlines() if "param: customer" in line)
        )
        + 1
    )


def test_an_integration_locator_is_checked_against_each_route(tmp_path: Path) -> None:
    """Integration subjects apply to every route: each route lacking the parameter is named."""
    text = VALID.replace(
        "    retention: P90D\n",
        "    retention: P90D\n    subjects:\n      - {kind: order_id, in: path, param: order}\n",
    )
    report = check(tmp_path, text)
    found = _at(report, f"{FLOW}.subjects[0].param")
    assert found == [
        "route GET /orders/{id}: 'order' is not a parameter of the path /orders/{id} "
        "(its parameters: id)",
        "route POST /accounts/{id}/orders: 'order' is not a parameter of the path "
        "/accounts/{id}/orders (its parameters: id)",
    ]
    fine = check(tmp_path, text.replace("param: order}", "param: id}"))
    assert fine.ok, messages(fine)


def test_a_query_locator_outside_the_query_spec_is_a_warning(tmp_path: Path) -> None:
    """The gateway refuses unknown query parameters: the locator never matches."""
    _, report = _route0(tmp_path, "{kind: email, in: query, param: email}")
    assert report.ok
    (message,) = _at(report, f"{FLOW}.routes[0].subjects[0].param", "warnings")
    assert "not in the route's query parameters" in message


@pytest.mark.parametrize(
    ("locator", "more", "key", "fragment"),
    [
        (
            "{kind: email, in: request, csv_column: email}",
            {},
            "csv_column",
            "a CSV request locator",
        ),
        ("{kind: email, in: request, xml: ./email}", {}, "xml", "accepts only application/json"),
        (
            "{kind: email, in: request, json: /email}",
            {"csv": "{}"},
            "json",
            "accepts only text/csv",
        ),
        (
            "{kind: email, in: response, csv_column: email}",
            {"response_fields": "[id]"},
            "csv_column",
            "relay JSON responses only",
        ),
        (
            "{kind: email, in: response, xml: ./email}",
            {"response_fields": "[id]"},
            "xml",
            "relay JSON responses only",
        ),
    ],
)
def test_a_body_locator_for_a_media_type_the_route_cannot_carry_is_an_error(
    tmp_path: Path, locator: str, more: dict[str, str], key: str, fragment: str
) -> None:
    """Impossible combinations only: a request type the route refuses, a response it cannot relay."""
    _, report = _route0(tmp_path, locator, **more)
    found = _at(report, f"{FLOW}.routes[0].subjects[0].{key}")
    assert found, messages(report)
    assert fragment in found[0]


def test_possible_body_locators_pass(tmp_path: Path) -> None:
    """CSV on a CSV route, XML on an XML route, CSV responses without response_fields."""
    for locator, more in [
        ("{kind: email, in: request, csv_column: email}", {"csv": "{}"}),
        ("{kind: email, in: request, xml: ./customer/email}", {"xml": "{}"}),
        ("{kind: email, in: response, csv_column: email}", {}),
        ("{kind: email, in: response, json: /email}", {"response_fields": "[email]"}),
    ]:
        _, report = _route0(tmp_path, locator, **more)
        assert report.ok, (locator, messages(report))


def test_a_phone_locator_without_its_category_is_a_warning(tmp_path: Path) -> None:
    """order-sync declares user.contact.email only: tracing phones is not on the register."""
    _, report = _route0(tmp_path, "{kind: phone, in: path, param: id, region: DE}")
    assert report.ok
    (message,) = _at(report, f"{FLOW}.routes[0].subjects[0].kind", "warnings")
    assert "user.contact.phone_number" in message
    assert "data_categories" in message


@pytest.mark.parametrize("declared", ["user.contact.phone_number", "user.contact", "user"])
def test_a_declared_category_or_ancestor_covers_the_kind(tmp_path: Path, declared: str) -> None:
    """An ancestor category covers everything below it."""
    text = VALID.replace(
        "data_categories: [user.contact.email]", f"data_categories: [{declared}]"
    ).replace(
        ROUTE0, "upstream: erp, scope: orders.read, subjects: [{kind: phone, in: path, param: id}]}"
    )
    report = check(tmp_path, text)
    assert not [w for w in report.warnings if w.path.endswith(".kind")], report.warnings


def test_an_email_locator_on_a_flow_without_contact_data_is_warned_once(tmp_path: Path) -> None:
    """An integration-level locator: one warning, not one per route."""
    text = VALID.replace("data_categories: [user.contact.email]", "data_categories: [user.name]")
    text = text.replace(
        "    retention: P90D\n",
        "    retention: P90D\n    subjects:\n      - {kind: email, in: request, json: /email}\n",
    )
    report = check(tmp_path, text)
    assert len(_at(report, f"{FLOW}.subjects[0].kind", "warnings")) == 1
