"""Cross-entity rules: references, duplicates, purpose limitation, transfers, privilege."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.manifests import VALID, assert_error_after_edit, check, messages


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        (
            "    target: crm\n",
            "    target: crmm\n",
            "integrations.order-sync.target",
            "unknown system 'crmm'; did you mean 'crm'?",
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
    assert_error_after_edit(tmp_path, old, new, path, fragment)


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


def test_route_auth_must_be_a_method_its_client_may_use(tmp_path: Path) -> None:
    """auth: [api_key] on a route whose client has only oauth2 and mtls is refused."""
    ok = VALID.replace("scope: orders.read}", "scope: orders.read, auth: [mtls]}")
    assert check(tmp_path, ok).ok
    text = VALID.replace("scope: orders.read}", "scope: orders.read, auth: [api_key]}")
    (error,) = check(tmp_path, text).errors
    assert error.path == "integrations.order-sync.routes[0].auth"
    assert "may not use api_key" in error.message


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


# The review's case (privacy finding 5): the source is in the US, the target in
# Germany, and the only route forwards the customer's e-mail address to the source.
_TO_THE_SOURCE = """\
version: 1
organisation: {controller: {name: Example GmbH, contact: privacy@example.com, country: DE}}
systems:
  erp: {url: "https://erp.example.com", location: US, owner: US ERP vendor}
  crm: {url: "https://crm.example.de", location: DE}
roles:
  order-writer: {scopes: [orders.write]}
clients:
  order-sync: {auth: [api_key], roles: [order-writer]}
integrations:
  order-sync:
    source: erp
    target: crm
    client: order-sync
    purpose: Sync confirmed orders
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P90D
    subjects: [{kind: email, in: request, json: /customer/email}]
    routes:
      - {method: POST, path: "/orders", upstream: erp, scope: orders.write}
"""


def test_personal_data_forwarded_to_a_non_eea_upstream_needs_a_declared_transfer(
    tmp_path: Path,
) -> None:
    """A route's upstream receives the request: outside the EEA it is a transfer (Art. 44).

    Before, only the target was checked, so a route to a US source passed.
    """
    (error,) = check(tmp_path, _TO_THE_SOURCE).errors
    assert error.path == "integrations.order-sync.routes[0].upstream"
    assert "personal data goes to erp in US, outside the EEA" in error.message
    declared = _TO_THE_SOURCE.replace(
        "    retention: P90D\n",
        "    retention: P90D\n    transfer: {destination: US, safeguard: SCC}\n",
    )
    assert check(tmp_path, declared).ok


def test_responses_to_a_non_eea_caller_need_a_declared_transfer(tmp_path: Path) -> None:
    """The caller (the integration's other system) receives the response: also a transfer."""
    text = _TO_THE_SOURCE.replace("upstream: erp", "upstream: crm")
    (error,) = check(tmp_path, text).errors
    assert error.path == "integrations.order-sync.routes[0]"
    assert "the caller erp in US, outside the EEA" in error.message


def test_a_non_eea_route_system_is_reported_once_and_not_without_personal_data(
    tmp_path: Path,
) -> None:
    """One finding per system, at its first route; data without user.* is no transfer."""
    text = _TO_THE_SOURCE + (
        '      - {method: PUT, path: "/orders/{id}", upstream: erp, scope: orders.write}\n'
    )
    assert [e.path for e in check(tmp_path, text).errors] == [
        "integrations.order-sync.routes[0].upstream"
    ]
    anonymous = text.replace("[user.contact.email]", "[system.operations]").replace(
        "    subjects: [{kind: email, in: request, json: /customer/email}]\n", ""
    )
    assert check(tmp_path, anonymous).ok


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
    assert (warning.line, warning.column) == (7, 40)


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
        ("insecureSkipVerify: true", True),
        ("TLS-Verify: off", True),
        ("ignore_ssl_errors: true", True),
        ("ssl_verify_mode: none", True),
        ("skip_verify: 1", True),
        ("accept_invalid_certs: true", True),
        ("verify: null", True),
        ("verify: true", False),
        ("insecure: false", False),
        ("tls_verify: {mode: strict}", False),
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
    assert (error.line, error.column) == (5, 55)
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


def test_names_that_look_like_switches_are_just_names(tmp_path: Path) -> None:
    """Keys directly below systems/roles/clients/integrations are names, not settings."""
    text = VALID.replace(
        "  crm: {url", '  insecure: {url: "https://legacy.internal", location: DE}\n  crm: {url'
    ).replace("clients:\n", "clients:\n  verify: {auth: [api_key], roles: [order-reader]}\n")
    report = check(tmp_path, text)
    assert report.ok, messages(report)


def test_unknown_upstream_lists_the_known_systems(tmp_path: Path) -> None:
    """The message for an unknown route upstream names what is declared."""
    report = check(tmp_path, VALID.replace("upstream: erp, scope", "upstream: billing, scope"))
    (error,) = report.errors
    assert error.message == "unknown system 'billing' (known: crm, erp)"
    assert (error.line, error.column) == (23, 55)


def test_a_malformed_section_does_not_cascade_into_unknown_names(tmp_path: Path) -> None:
    """systems as a list is one error; the integration's references are not also reported."""
    start, end = VALID.index("systems:\n"), VALID.index("roles:\n")
    report = check(tmp_path, VALID[:start] + "systems: [erp, crm]\n" + VALID[end:])
    assert [(d.path, d.line, d.column) for d in report.errors] == [("systems", 3, 10)]
    assert "systems must be a mapping" in report.errors[0].message


def test_malformed_roles_do_not_make_every_scope_unknown(tmp_path: Path) -> None:
    """When roles cannot be read, scope checks and least-privilege warnings are skipped."""
    start, end = VALID.index("roles:\n"), VALID.index("clients:\n")
    report = check(tmp_path, VALID[:start] + "roles: order-reader\n" + VALID[end:])
    assert [d.path for d in report.errors] == ["roles"]
    assert report.warnings == ()


def test_a_route_that_failed_validation_still_counts_as_using_its_scope(tmp_path: Path) -> None:
    """A broken route is one error, not also an 'unused scope' warning for its role."""
    report = check(tmp_path, VALID.replace("method: POST", "method: FETCH"))
    assert [d.path for d in report.errors] == ["integrations.order-sync.routes[1].method"]
    assert report.warnings == ()


def test_route_rules_must_be_declared_or_installed(tmp_path: Path) -> None:
    """A SQL rule of the rules: section and an installed entry point pass; a stranger does not."""
    rules = (
        "rules:\n"
        "  account_active:\n"
        '    {database: "secret://crm/readonly-url", view: crm.active_accounts, column: id,'
        ' value: "path:id", message: the account must be active}\n'
    )
    text = rules + VALID.replace(
        "scope: orders.read}",
        "scope: orders.read, rules: [account_active, order_total_matches_lines, no_such_rule]}",
        1,
    )
    report = check(tmp_path, text)
    assert [(d.path, d.message.split(":")[0]) for d in report.errors] == [
        ("integrations.order-sync.routes[0].rules[2]", "unknown rule 'no_such_rule'")
    ], messages(report)


def test_a_sql_rule_refuses_a_connection_string_and_odd_identifiers(tmp_path: Path) -> None:
    rules = (
        "rules:\n"
        "  bad:\n"
        '    {database: "postgresql://u:p@db/x", view: "x; drop", column: id,'
        ' value: "body:a", message: m}\n'
    )
    report = check(tmp_path, rules + VALID)
    paths = {d.path for d in report.errors}
    assert paths == {"rules.bad.database", "rules.bad.view"}, messages(report)


def test_validate_reports_a_schema_that_does_not_compile_at_its_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`interlock validate` compiles request schemas and names the route's field."""
    from interlock.cli.main import main

    text = VALID.replace(
        "scope: orders.read}",
        'scope: orders.read, request_schema: {type: object, properties: {a: {$ref: "https://evil.example/s.json"}}}}',
        1,
    )
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:" in out
    assert "integrations.order-sync.routes[0].request_schema: " in out
    assert "remote" in out or "$ref" in out
    report = check(tmp_path, text)
    assert report.ok  # the text alone is fine; compiling is the deep check's job


SECOND_FLOW = """\
  analytics:
    source: erp
    target: erp
    client: reporting
    purpose: Order statistics
    legal_basis: legitimate_interests
    retention: P30D
    routes:
      - {method: GET, path: "/stats/orders", upstream: erp, scope: orders.read}
"""


def _two_flows(extra: str = "", callers: str = "") -> str:
    """VALID plus a second integration whose client ``reporting`` also holds orders.read."""
    text = VALID.replace(
        "clients:\n", "clients:\n  reporting: {auth: [api_key], roles: [order-reader]}\n"
    ).replace("    client: order-sync\n", f"    client: order-sync\n{callers}", 1)
    return text + SECOND_FLOW + extra


def test_a_scope_held_by_clients_of_several_integrations_is_refused(tmp_path: Path) -> None:
    """order-sync and reporting (analytics) both hold orders.read, which both integrations'
    routes require; each would be refused on the other's routes, so the grant is broader than
    any use: one error for the scope, at the role granting it, naming the ways out."""
    report = check(tmp_path, _two_flows())
    (error,) = report.errors
    assert error.path == "roles.order-reader.scopes[0]"
    assert error.message.startswith(
        "scope 'orders.read' is held by clients of several integrations (order-sync, "
        "reporting), but order-sync's routes refuse reporting; analytics's routes refuse "
        "order-sync"
    )
    assert "shared_scopes" in error.message
    assert "callers" in error.message


def test_declared_shared_scopes_and_named_callers_are_accepted(tmp_path: Path) -> None:
    """shared_scopes declares the sharing; callers names a client of another integration."""
    assert check(tmp_path, _two_flows(extra="shared_scopes: [orders.read]\n")).ok
    both_ways = _two_flows(callers="    callers: [reporting]\n").replace(
        "    client: reporting\n", "    client: reporting\n    callers: [order-sync]\n"
    )
    assert check(tmp_path, both_ways).ok
    one_way = check(tmp_path, _two_flows(callers="    callers: [reporting]\n"))
    (error,) = one_way.errors
    assert "analytics's routes refuse order-sync" in error.message


def test_callers_must_be_declared_clients_once(tmp_path: Path) -> None:
    """An unknown caller is an error at its index; a repeated one too."""
    shared = "shared_scopes: [orders.read]\n"
    report = check(tmp_path, _two_flows(shared, callers="    callers: [reporting, ghost]\n"))
    assert [(e.path, "unknown client 'ghost'" in e.message) for e in report.errors] == [
        ("integrations.order-sync.callers[1]", True)
    ]
    report = check(tmp_path, _two_flows(shared, callers="    callers: [reporting, reporting]\n"))
    assert report.errors
    assert "duplicate" in report.errors[0].message


def test_shared_scopes_must_be_a_list_of_scopes(tmp_path: Path) -> None:
    """Bad entries are located at their index."""
    report = check(tmp_path, _two_flows(extra="shared_scopes: [orders.read, Not A Scope]\n"))
    assert [e.path for e in report.errors] == ["shared_scopes[1]"]
