"""Cross-entity rules: references, duplicates, purpose limitation, transfers, privilege."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.manifests import VALID, check, messages


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        (
            "    target: crm\n",
            "    target: crmm\n",
            "integrations.order-sync.target",
            "unknown system 'crmm' (known: crm, erp)",
        ),
        (
            "    source: erp\n",
            "    source: sap\n",
            "integrations.order-sync.source",
            "unknown system 'sap'",
        ),
        (
            "    client: order-sync\n",
            "    client: nobody\n",
            "integrations.order-sync.client",
            "unknown client 'nobody'",
        ),
        (
            "roles: [order-reader, account-writer]",
            "roles: [order-reader, account-writer, admin]",
            "clients.order-sync.roles[2]",
            "unknown role 'admin'",
        ),
        (
            "upstream: erp, scope: orders.read",
            "upstream: erp, scope: orders.delete",
            "integrations.order-sync.routes[0].scope",
            "unknown scope 'orders.delete': no role grants it",
        ),
        (
            "upstream: erp, scope",
            "upstream: billing, scope",
            "integrations.order-sync.routes[0].upstream",
            "unknown system 'billing'",
        ),
    ],
)
def test_unknown_references_are_located(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """A reference to something undeclared is an error at the reference."""
    assert old in VALID
    report = check(tmp_path, VALID.replace(old, new, 1))
    matching = [d for d in report.errors if d.path == path]
    assert matching, messages(report)
    assert fragment in matching[0].message


def test_duplicate_routes_are_found_across_integrations_by_shape(tmp_path: Path) -> None:
    """/orders/{id} and /orders/{order_id} with the same method are the same route."""
    text = VALID + (
        "  other:\n"
        "    source: erp\n    target: crm\n    client: order-sync\n"
        "    purpose: Second flow\n    legal_basis: contract\n    retention: 30d\n"
        "    routes:\n"
        '      - {method: GET, path: "/orders/{order_id}", upstream: erp, scope: orders.read}\n'
    )
    report = check(tmp_path, text)
    (error,) = report.errors
    assert error.path == "integrations.other.routes[0].path"
    assert "duplicate route GET /orders/{order_id}" in error.message
    assert "integrations.order-sync.routes[0]" in error.message
    assert error.line == text.count("\n")


def test_same_path_with_another_method_is_not_a_duplicate(tmp_path: Path) -> None:
    """GET and POST on one path are two routes."""
    text = VALID.replace('POST, path: "/accounts/{id}/orders"', 'POST, path: "/orders/{id}"')
    text = text.replace(
        "upstream: crm, scope: crm.accounts.write", "upstream: erp, scope: crm.accounts.write"
    )
    assert check(tmp_path, text).ok


def test_upstream_outside_the_integration_is_refused(tmp_path: Path) -> None:
    """A route may only reach its integration's source or target (purpose limitation)."""
    text = VALID.replace(
        "  crm: {url", '  hr: {url: "https://hr.internal", location: DE}\n  crm: {url'
    ).replace("upstream: erp, scope: orders.read", "upstream: hr, scope: orders.read")
    report = check(tmp_path, text)
    (error,) = report.errors
    assert error.path == "integrations.order-sync.routes[0].upstream"
    assert "purpose limitation" in error.message


def test_route_scope_the_integration_client_lacks_is_refused(tmp_path: Path) -> None:
    """A route its own client can never call is a misconfiguration."""
    text = VALID.replace(
        "roles: [order-reader, account-writer]}", "roles: [order-reader]}"
    ).replace("clients:\n", "clients:\n  crm-admin: {auth: [api_key], roles: [account-writer]}\n")
    report = check(tmp_path, text)
    (error,) = report.errors
    assert error.path == "integrations.order-sync.routes[1].scope"
    assert "client 'order-sync' has no role granting 'crm.accounts.write'" in error.message


def test_personal_data_leaving_the_eea_needs_a_declared_transfer(tmp_path: Path) -> None:
    """US target with user.* categories and no transfer block is an error (GDPR Art. 44)."""
    report = check(tmp_path, VALID.replace("    transfer: {destination: US, safeguard: SCC}\n", ""))
    (error,) = report.errors
    assert error.path == "integrations.order-sync.target"
    assert "outside the EEA" in error.message


def test_transfer_destination_must_match_the_target(tmp_path: Path) -> None:
    """Declaring a transfer to another country than the target's location is an error."""
    report = check(tmp_path, VALID.replace("destination: US", "destination: IN"))
    (error,) = report.errors
    assert error.path == "integrations.order-sync.transfer.destination"


def test_unused_scope_is_a_warning_not_an_error(tmp_path: Path) -> None:
    """A role granting a scope no route needs is flagged (least privilege) but valid."""
    report = check(
        tmp_path, VALID.replace("scopes: [orders.read]", "scopes: [orders.read, orders.delete]")
    )
    assert report.ok
    (warning,) = report.warnings
    assert warning.path == "roles.order-reader.scopes[1]"
    assert str(warning).endswith(
        "warning: roles.order-reader.scopes[1]: scope 'orders.delete' is granted but no route "
        "requires it; remove it (least privilege: grants should not be broader than any use)"
    )
    assert (warning.line, warning.column) == (6, 40)


@pytest.mark.parametrize(
    ("switch", "disables"),
    [
        ("verify: false", True),
        ("tls_verify: false", True),
        ("verify_ssl: no", True),
        ("check_hostname: false", True),
        ("ssl_cert_reqs: CERT_NONE", True),
        ("insecure: true", True),
        ("insecure_skip_verify: true", True),
        ("skip-tls-verify: yes", True),
        ("verify: true", False),
        ("insecure: false", False),
    ],
)
def test_switches_that_touch_certificate_verification_are_refused(
    tmp_path: Path, switch: str, disables: bool
) -> None:
    """Turning verification off is refused with the reason; mentioning it at all is unknown."""
    text = VALID.replace("location: US}", f"location: US, {switch}}}")
    report = check(tmp_path, text)
    (error,) = report.errors
    assert error.path.startswith("systems.crm.")
    assert (error.line, error.column) == (4, 55)
    if disables:
        assert "certificate verification cannot be turned off" in error.message
        assert "CWE-295" in error.message
    else:
        assert "always on" in error.message


def test_insecure_switch_nested_anywhere_is_found(tmp_path: Path) -> None:
    """The scan covers the whole document, including route options."""
    text = VALID.replace("scope: orders.read}", "scope: orders.read, tls: {insecure: true}}")
    report = check(tmp_path, text)
    assert any(
        d.path == "integrations.order-sync.routes[0].tls.insecure"
        and "cannot be turned off" in d.message
        for d in report.errors
    ), messages(report)


def test_one_broken_entity_does_not_cascade(tmp_path: Path) -> None:
    """A system that fails validation is still 'declared': references to it are not errors."""
    report = check(tmp_path, VALID.replace("location: US}", "location: usa}"))
    assert [d.path for d in report.errors] == ["systems.crm.location"]
