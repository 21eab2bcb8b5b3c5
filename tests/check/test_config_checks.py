"""Every checklist item from configuration: the base passes, each variant fails its item."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.check.items import ITEMS
from interlock.check.run import run_check
from interlock.errors import ManifestError
from tests.check.conftest import Write, check

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "interlock.yaml"


def test_base_manifest_passes_every_item_but_encryption_at_rest(write_manifest: Write) -> None:
    """Encryption at rest is a property of the deployment: evidence is needed, never a pass."""
    findings = check(write_manifest())
    assert set(findings) == {i.id for i in ITEMS}
    statuses = {item: f.status for item, f in findings.items()}
    assert statuses.pop("encryption_at_rest") == "needs_evidence"
    assert set(statuses.values()) == {"pass"}
    assert all(f.evidence and f.location is not None for f in findings.values())


def test_example_manifest_has_no_failure() -> None:
    """examples/interlock.yaml passes in configuration mode (make check relies on it)."""
    scorecard = run_check(EXAMPLE)
    assert not [f for f in scorecard.findings if f.status == "fail"]
    assert {f.integration for f in scorecard.findings} == {
        "order-sync",
        "analytics-feed",
        "order-events",
        "order-stream",
    }


def test_api_keys_alone_on_special_category_data_fail_authentication(
    write_manifest: Write,
) -> None:
    """Art. 9 data behind bearer API keys only: a failure located at the client."""
    path = write_manifest(
        ("auth: [oauth2, mtls]", "auth: [api_key]"),
        ("data_categories: [user.contact.email]", "data_categories: [user.contact.email, "
         "user.health_and_medical]\n    special_category_condition: explicit_consent"),
    )  # fmt: skip
    finding = check(path)["authentication"]
    assert finding.status == "fail"
    assert "user.health_and_medical" in finding.reason
    assert "GET /orders/{id}: api_key" in finding.evidence
    assert finding.location is not None
    assert finding.location.line == path.read_text().splitlines().index("    client: sync") + 1


SPECIAL = (
    "data_categories: [user.contact.email]",
    "data_categories: [user.contact.email, user.health_and_medical]\n"
    "    special_category_condition: explicit_consent",
)
KEY_ONLY_CALLER = (
    ("clients:\n", "clients:\n  keyonly:\n    auth: [api_key]\n    roles: [reader]\n"),
    ("    client: sync\n", "    client: sync\n    callers: [keyonly]\n"),
)


def test_a_caller_with_api_keys_alone_on_special_category_data_fails_authentication(
    write_manifest: Write,
) -> None:
    """The integration's own client uses oauth2 and mtls, but a caller reaches it by key alone."""
    finding = check(write_manifest(SPECIAL, *KEY_ONLY_CALLER))["authentication"]
    assert finding.status == "fail"
    assert "keyonly" in finding.reason
    assert any("keyonly (api_key)" in line for line in finding.evidence)
    assert any("sync (oauth2, mtls)" in line for line in finding.evidence)


def test_a_key_only_caller_kept_off_by_the_routes_auth_passes(write_manifest: Write) -> None:
    """Routes that require oauth2 or mtls keep the key-only caller out: nothing weak remains."""
    path = write_manifest(
        SPECIAL,
        *KEY_ONLY_CALLER,
        ("        scope: orders.read\n", "        scope: orders.read\n        auth: [mtls]\n"),
        ("        scope: orders.write\n", "        scope: orders.write\n        auth: [oauth2]\n"),
    )
    finding = check(path)["authentication"]
    assert finding.status == "pass", finding.reason
    assert not any("keyonly" in line for line in finding.evidence)


def test_api_keys_on_ordinary_personal_data_pass_with_a_note(write_manifest: Write) -> None:
    """API keys are authentication (the seed counts them); the reason names the weaker choice."""
    finding = check(write_manifest(("auth: [oauth2, mtls]", "auth: [api_key]")))["authentication"]
    assert finding.status == "pass"
    assert "accept only API keys" in finding.reason


def test_a_scope_no_route_requires_fails_least_privilege_at_the_role(
    write_manifest: Write,
) -> None:
    """validate's unused-scope warning becomes the failure, located at the scope."""
    path = write_manifest(("scopes: [orders.read]", "scopes: [orders.read, orders.delete]"))
    finding = check(path)["least_privilege"]
    assert finding.status == "fail"
    assert "roles.reader.scopes[1]" in finding.reason
    assert "orders.delete" in finding.reason
    assert finding.location is not None
    lines = path.read_text().splitlines()
    assert finding.location.line == lines.index("    scopes: [orders.read, orders.delete]") + 1


def test_a_system_without_credentials_needs_evidence(write_manifest: Write) -> None:
    """No outbound credential: Interlock cannot tell whether one exists elsewhere."""
    path = write_manifest(("    credentials: secret://crm/token\n", ""))
    finding = check(path)["secrets_manager"]
    assert finding.status == "needs_evidence"
    assert "crm" in finding.reason
    assert finding.fix is not None
    assert "secret://crm/" in finding.fix


def test_a_client_certificate_counts_as_a_credential(write_manifest: Write) -> None:
    """client_cert: pki:auto is a credential Interlock issues itself: no secret needed."""
    path = write_manifest(("    credentials: secret://crm/token\n", "    client_cert: pki:auto\n"))
    assert check(path)["secrets_manager"].status == "pass"


def test_tls_floors_are_evidence_and_13_is_preferred(write_manifest: Write) -> None:
    """Every system's URL and floor is listed; a 1.2 floor passes with a note."""
    finding = check(write_manifest())["tls_required"]
    assert finding.status == "pass"
    assert "system erp: https://erp.example.de TLS >= 1.2" in finding.evidence
    assert "1.3 is preferred" in finding.reason


def test_trust_anchors_are_the_certificate_evidence(write_manifest: Write) -> None:
    """The named anchor of each system is the evidence of certificate validation."""
    finding = check(write_manifest())["certificates_validated"]
    assert "system erp: trust anchor pki:internal" in finding.evidence
    assert "system crm: trust anchor the operating system's public CAs" in finding.evidence


@pytest.mark.parametrize(
    "change",
    [
        ("url: https://erp.example.de", "url: http://erp.example.de"),
        ("ca: pki:internal", "ca: none"),
        ("credentials: secret://erp/api-key", "credentials: hunter2"),
    ],
)
def test_what_validation_refuses_gives_validates_error_not_a_scorecard(
    write_manifest: Write, change: tuple[str, str]
) -> None:
    """Plain http, no trust anchor and inline secrets fail validate: no partial scorecard."""
    with pytest.raises(ManifestError) as raised:
        run_check(write_manifest(change))
    assert raised.value.diagnostics
    assert "interlock.yaml:" in str(raised.value.diagnostics[0])


def test_a_read_without_a_field_allow_list_fails_minimisation(write_manifest: Write) -> None:
    """Personal data read in full: the route is named and located."""
    path = write_manifest(
        ("        response_fields: [id, email]\n        field_categories: {email: user.contact.email}\n", "")
    )  # fmt: skip
    finding = check(path)["minimisation"]
    assert finding.status == "fail"
    assert "GET /orders/{id} has no response_fields" in finding.reason
    assert finding.location is not None
    assert finding.location.line == path.read_text().splitlines().index("      - method: GET") + 1


def test_a_write_with_an_open_schema_fails_minimisation(write_manifest: Write) -> None:
    """A request schema that admits any other property does not minimise."""
    path = write_manifest(("additionalProperties: false", "additionalProperties: true"))
    finding = check(path)["minimisation"]
    assert finding.status == "fail"
    assert "POST /orders has no request_fields" in finding.reason


def test_minimisation_does_not_apply_without_personal_data(write_manifest: Write) -> None:
    """No user.* category: nothing personal to minimise."""
    path = write_manifest(
        ("data_categories: [user.contact.email]\n    data_subjects: [customer]",
         "data_categories: [system.operations]"),
        ("        field_categories: {email: user.contact.email}\n", ""),
        ("response_fields: [id, email]", "response_fields: [id, total]"),
    )  # fmt: skip
    findings = check(path)
    assert findings["minimisation"].status == "not_applicable"
    assert findings["flows_documented"].status == "pass"


def test_a_body_route_without_a_schema_fails_input_validation(write_manifest: Write) -> None:
    """A POST whose body is forwarded unchecked."""
    path = write_manifest(
        ("        request_schema:\n          type: object\n          additionalProperties: false\n"
         "          properties: {id: {type: string}}\n", "        request_fields: [id]\n"),
    )  # fmt: skip
    finding = check(path)["input_validation"]
    assert finding.status == "fail"
    assert "POST /orders (no request_schema)" in finding.reason
    assert check(path)["minimisation"].status == "pass"  # request_fields minimise


def test_an_unparsed_media_type_fails_input_validation(write_manifest: Write) -> None:
    """A route accepting octet streams forwards bodies no parser checked."""
    path = write_manifest(
        ("        request_schema:", "        content_types: [application/octet-stream]\n"
         "        request_schema:"),
    )  # fmt: skip
    finding = check(path)["input_validation"]
    assert finding.status == "fail"
    assert "unparsed application/octet-stream" in finding.reason


def test_a_get_route_declaring_a_body_without_a_schema_fails_input_validation(
    write_manifest: Write,
) -> None:
    """A GET that declares a JSON body takes one (the gateway forwards it): it needs a schema."""
    path = write_manifest(
        ("        upstream: erp\n        scope: orders.read\n",
         "        upstream: erp\n        scope: orders.read\n"
         "        content_types: [application/json]\n"),
    )  # fmt: skip
    finding = check(path)["input_validation"]
    assert finding.status == "fail"
    assert "GET /orders/{id} (no request_schema)" in finding.reason


def test_a_route_without_rate_limit_fails(write_manifest: Write) -> None:
    """The unlimited route is named; the limited one is evidence."""
    path = write_manifest(
        ("scope: orders.write\n        rate_limit: {per_client: 10/min}\n", "scope: orders.write\n")
    )
    finding = check(path)["rate_limiting"]
    assert finding.status == "fail"
    assert finding.reason == "no rate limit on POST /orders"
    assert "GET /orders/{id}: per_client 10/min" in finding.evidence


def test_a_missing_controller_fails_flows_documented(write_manifest: Write) -> None:
    """Personal data without the organisation block: the Art. 30 record is incomplete."""
    path = write_manifest(
        ("organisation:\n  controller: {name: Example GmbH, contact: privacy@example.de, "
         "country: DE}\n", ""),
    )  # fmt: skip
    finding = check(path)["flows_documented"]
    assert finding.status == "fail"
    assert "Art. 30(1)(a)" in finding.reason
    assert "legal basis: contract (Art. 6(1)(b))" in finding.evidence


def test_personal_data_without_subjects_fails_flows_documented(write_manifest: Write) -> None:
    """Art. 30(1)(c) needs the categories of data subjects."""
    finding = check(write_manifest(("    data_subjects: [customer]\n", "")))["flows_documented"]
    assert finding.status == "fail"
    assert "data_subjects" in finding.reason


def test_best_effort_audit_on_personal_data_fails(write_manifest: Write) -> None:
    """A request may release personal data without a durable record."""
    path = write_manifest(
        ("    retention: P30D\n", "    retention: P30D\n    audit: best_effort\n")
    )
    finding = check(path)["audit_trail"]
    assert finding.status == "fail"
    assert finding.location is not None
    assert (
        finding.location.line == path.read_text().splitlines().index("    audit: best_effort") + 1
    )


def test_retention_and_idempotency_records_are_evidence(write_manifest: Write) -> None:
    """The declared retention bounds idempotency records."""
    path = write_manifest(
        ("scope: orders.write\n", "scope: orders.write\n        idempotency: required\n")
    )
    finding = check(path)["retention"]
    assert finding.status == "pass"
    assert finding.evidence == (
        "retention: 30 days",
        "1 route(s) keep idempotency records, bounded by the retention",
    )
