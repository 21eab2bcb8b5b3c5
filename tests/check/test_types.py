"""Integration types: inferred REST, declared types' mitigations, unknown types asked for."""

from __future__ import annotations

from interlock.check.catalogue import item
from interlock.check.run import run_check
from interlock.check.types import TYPE_ITEMS
from tests.check.conftest import BASE, Write, by_item

# A second integration with no routes, next to the REST one.
NO_ROUTES = (
    BASE
    + """\
  nightly-files:
    source: erp
    target: crm
    client: sync
    purpose: Nightly order files for the CRM's batch import
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P7D
"""
)


def test_an_integration_with_routes_is_rest_and_adds_nothing(write_manifest: Write) -> None:
    """REST is covered by the 13 items: no type.* finding."""
    findings = by_item(run_check(write_manifest()))
    assert not [i for i in findings if i.startswith("type.")]


def test_no_routes_and_no_type_asks_for_the_type_never_passes(write_manifest: Write) -> None:
    """Route-level items need evidence, and the type itself is asked for."""
    findings = by_item(run_check(write_manifest(text=NO_ROUTES)), "nightly-files")
    assert findings["type.unknown"].status == "needs_evidence"
    statuses = {item_id: f.status for item_id, f in findings.items()}
    # What the manifest still shows: the systems' transport, trust and credentials, the
    # register facts and the retention. Everything on the traffic itself needs evidence.
    passing = {"secrets_manager", "tls_required", "certificates_validated", "flows_documented",
               "retention"}  # fmt: skip
    assert {i for i, status in statuses.items() if status == "pass"} == passing
    assert {i for i, status in statuses.items() if status != "pass"} == {
        "type.unknown", "authentication", "least_privilege", "encryption_at_rest",
        "minimisation", "input_validation", "rate_limiting", "sanitised_errors", "audit_trail",
    }  # fmt: skip
    assert findings["rate_limiting"].reason.startswith("the integration has no routes")
    assert set(statuses.values()) == {"pass", "needs_evidence"}


def test_a_declared_type_adds_its_mitigations_with_manual_steps(write_manifest: Write) -> None:
    """File transfer without a files: section (moved some other way): the manual steps."""
    text = NO_ROUTES.replace("  nightly-files:\n", "  nightly-files:\n    type: file_transfer\n")
    findings = by_item(run_check(write_manifest(text=text)), "nightly-files")
    kinds = sorted(i for i in findings if i.startswith("type."))
    assert kinds == [
        "type.file_transfer.drop_access",
        "type.file_transfer.secure_transport",
        "type.file_transfer.validate_before_processing",
    ]
    drop = findings["type.file_transfer.drop_access"]
    assert drop.status == "needs_evidence"
    assert drop.fix is not None
    assert "drop folder" in drop.fix
    assert drop.location is not None
    assert drop.location.line == text.splitlines().index("  nightly-files:") + 1


def test_every_type_item_resolves_through_items_item() -> None:
    """Renderers look type items up like checklist items."""
    for entry in TYPE_ITEMS:
        assert item(entry.id) == entry
        assert entry.severity in {"high", "medium", "low"}
