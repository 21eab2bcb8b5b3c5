"""Category-vs-field consistency (issue 19 item 4).

A route's fields are tagged with fideslang categories (``field_categories`` on
the route, ``x-data-category`` in its request schema); validate warns when a
route carries a personal-data category its integration does not declare, and
about untagged fields whose name looks like personal data.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.config.loader import ManifestReport, check_manifest
from interlock.gdpr.field_names import FIELD_NAME_CATEGORIES, suggested_category
from interlock.gdpr.taxonomy import data_categories
from tests.config.manifests import VALID, check, messages

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"
ROUTE = '      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read}\n'


def _with_route(route: str, categories: str = "[user.contact.email]") -> str:
    assert ROUTE in VALID
    text = VALID.replace(ROUTE, route)
    return text.replace("data_categories: [user.contact.email]", f"data_categories: {categories}")


def _warnings(report: ManifestReport) -> list[str]:
    return [f"{d.path}: {d.message}" for d in report.warnings]


def _example_without(tmp_path: Path, line: str) -> ManifestReport:
    text = EXAMPLE.read_text()
    assert line in text
    path = tmp_path / "interlock.yaml"
    path.write_text(text.replace(line, "", 1))
    return check_manifest(path)


def test_the_example_validates_without_warnings() -> None:
    """The shipped example tags its personal fields and declares their categories."""
    report = check_manifest(EXAMPLE)
    assert report.ok, messages(report)
    assert report.warnings == ()


def test_route_returning_customer_email_warns_once_email_is_undeclared(tmp_path: Path) -> None:
    """The issue's case: removing user.contact.email from the categories no longer passes silently."""
    report = _example_without(tmp_path, "      - user.contact.email\n")
    assert report.ok, messages(report)
    found = [w for w in _warnings(report) if "'customer.email'" in w]
    assert found, _warnings(report)
    assert "integrations.order-sync.routes[0].field_categories.customer.email" in found[0]
    assert "does not declare user.contact.email" in found[0]


def test_untagged_email_in_response_fields_warns_when_undeclared(tmp_path: Path) -> None:
    """Without any tag, the field's name alone says it is an e-mail address."""
    route = ROUTE.replace("}\n", ", response_fields: [id, customer.email]}\n")
    report = check(tmp_path, _with_route(route, "[user.name]"))
    assert report.ok, messages(report)
    [warning] = [d for d in report.warnings if "looks like personal data" in d.message]
    assert warning.path == "integrations.order-sync.routes[0].response_fields[1]"
    assert "(user.contact.email) but is neither tagged nor declared" in warning.message
    assert warning.line > 1


def test_declared_ancestor_covers_a_tagged_field(tmp_path: Path) -> None:
    """A declared user.contact covers user.contact.email."""
    route = (
        '      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read,\n'
        "         response_fields: [id, customer.mail_to],\n"
        "         field_categories: {customer.mail_to: user.contact.email}}\n"
    )
    report = check(tmp_path, _with_route(route, "[user.contact]"))
    assert report.ok, messages(report)
    assert report.warnings == ()
    narrower = check(tmp_path, _with_route(route, "[user.contact.phone_number]"))
    assert any("tagged user.contact.email" in w for w in _warnings(narrower))


def test_tag_names_a_field_the_name_heuristic_would_miss(tmp_path: Path) -> None:
    """A tag is what counts: a field named 'contact_ref' tagged as a phone number warns."""
    route = (
        '      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read,\n'
        "         response_fields: [contact_ref],\n"
        "         field_categories: {contact_ref: user.contact.phone_number}}\n"
    )
    report = check(tmp_path, _with_route(route))
    [warning] = report.warnings
    assert warning.path == "integrations.order-sync.routes[0].field_categories.contact_ref"


def test_unknown_tag_in_field_categories_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    """A tag outside the fideslang taxonomy is an error naming the closest key."""
    route = (
        '      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read,\n'
        "         response_fields: [email],\n"
        "         field_categories: {email: user.contact.emial}}\n"
    )
    report = check(tmp_path, _with_route(route))
    assert not report.ok
    assert any("did you mean 'user.contact.email'" in d.message for d in report.errors)


def test_unknown_x_data_category_in_a_schema_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    """x-data-category in a request schema is checked against the taxonomy, located at the tag."""
    route = (
        '      - method: POST\n        path: "/orders/{id}"\n        upstream: erp\n'
        "        scope: orders.read\n        request_schema:\n          type: object\n"
        "          properties:\n"
        "            buyer: {type: string, x-data-category: user.contact.emial}\n"
    )
    report = check(tmp_path, _with_route(route))
    [error] = report.errors
    assert error.path.endswith("request_schema.properties.buyer.x-data-category")
    assert "did you mean 'user.contact.email'" in error.message


def test_schema_tag_through_defs_and_items_warns_when_undeclared(tmp_path: Path) -> None:
    """Tags are found below items and $ref into $defs; the field path reads like request_fields."""
    route = (
        '      - method: POST\n        path: "/orders/{id}"\n        upstream: erp\n'
        "        scope: orders.read\n        request_schema:\n          type: object\n"
        "          properties:\n"
        "            people: {type: array, items: {$ref: '#/$defs/Person'}}\n"
        "          $defs:\n"
        "            Person:\n              type: object\n              properties:\n"
        "                born: {type: string, x-data-category: user.demographic.date_of_birth}\n"
    )
    report = check(tmp_path, _with_route(route))
    assert report.ok, messages(report)
    [warning] = report.warnings
    assert "'people[].born', tagged user.demographic.date_of_birth" in warning.message
    assert warning.path.endswith("$defs.Person.properties.born.x-data-category")


def test_schema_field_removed_by_request_fields_is_not_carried(tmp_path: Path) -> None:
    """A property request_fields drops never reaches the target: no warning."""
    route = (
        '      - method: POST\n        path: "/orders/{id}"\n        upstream: erp\n'
        "        scope: orders.read\n        request_fields: [order_id]\n"
        "        request_schema:\n          type: object\n          properties:\n"
        "            order_id: {type: string}\n            phone: {type: string}\n"
    )
    report = check(tmp_path, _with_route(route))
    assert report.ok, messages(report)
    assert report.warnings == ()


def test_tagging_a_field_the_route_does_not_carry_is_refused(tmp_path: Path) -> None:
    """A tag on a path outside response_fields is a typo or a stale tag."""
    route = (
        '      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read,\n'
        "         response_fields: [id, email],\n"
        "         field_categories: {emial: user.contact.email}}\n"
    )
    report = check(tmp_path, _with_route(route))
    assert any("which the route does not carry" in d.message for d in report.errors)


def test_unconfirmed_proposal_is_reported_until_confirmed(tmp_path: Path) -> None:
    """x-data-category-proposed (written by import-openapi) warns until renamed."""
    schema = (
        '      - method: POST\n        path: "/orders/{id}"\n        upstream: erp\n'
        "        scope: orders.read\n        request_schema:\n          type: object\n"
        "          properties:\n"
        "            email: {type: string, KEY: user.contact.email}\n"
    )
    proposed = check(tmp_path, _with_route(schema.replace("KEY", "x-data-category-proposed")))
    assert proposed.ok, messages(proposed)
    [warning] = proposed.warnings
    assert warning.message.startswith("unconfirmed: import-openapi proposed user.contact.email")
    confirmed = check(tmp_path, _with_route(schema.replace("KEY", "x-data-category")))
    assert confirmed.warnings == ()


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("email", "user.contact.email"),
        ("e_mail", "user.contact.email"),
        ("customerEmail", "user.contact.email"),
        ("mobile", "user.contact.phone_number"),
        ("phoneNumber", "user.contact.phone_number"),
        ("iban", "user.financial.bank_account"),
        ("dateOfBirth", "user.demographic.date_of_birth"),
        ("dob", "user.demographic.date_of_birth"),
        ("first_name", "user.name.first"),
        ("surname", "user.name.last"),
        ("full_name", "user.name"),
        ("street", "user.contact.address.street"),
        ("zip", "user.contact.address.postal_code"),
        ("postal_code", "user.contact.address.postal_code"),
        ("address", "user.contact.address"),
        ("ssn", "user.government_id.national_identification_number"),
        ("passport", "user.government_id.passport_number"),
        ("ip_address", "user.device.ip_address"),
    ],
)
def test_names_that_look_personal_suggest_their_category(name: str, category: str) -> None:
    """The one table maps strongly personal names to fideslang keys."""
    assert suggested_category(name) == category


@pytest.mark.parametrize("name", ["name", "id", "status", "bic", "city", "customer_pseudonym"])
def test_ambiguous_names_suggest_nothing(name: str) -> None:
    """Names that are not personal in most APIs are left alone."""
    assert suggested_category(name) is None


def test_every_suggested_category_is_a_fideslang_key() -> None:
    """The table never suggests a key validate would refuse."""
    assert {key for _, key in FIELD_NAME_CATEGORIES} <= data_categories()
