"""A small valid manifest that tests change one thing at a time."""

from __future__ import annotations

from pathlib import Path

from interlock.config.loader import ManifestReport, check_manifest

VALID = """\
version: 1
organisation: {controller: {name: Example GmbH, contact: privacy@example.com, country: DE}}
systems:
  erp: {url: "https://erp.internal:9443", location: DE, ca: "pki:internal", credentials: "secret://erp/api-key"}
  crm: {url: "https://crm.example.com", location: US}
roles:
  order-reader: {scopes: [orders.read]}
  account-writer: {scopes: [crm.accounts.write]}
clients:
  order-sync: {auth: [oauth2, mtls], roles: [order-reader, account-writer]}
integrations:
  order-sync:
    source: erp
    target: crm
    client: order-sync
    purpose: Sync confirmed orders to CRM
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P90D
    transfer: {destination: US, safeguard: SCC}
    routes:
      - {method: GET, path: "/orders/{id}", upstream: erp, scope: orders.read}
      - {method: POST, path: "/accounts/{id}/orders", upstream: crm, scope: crm.accounts.write}
"""


def check(tmp_path: Path, text: str) -> ManifestReport:
    """Write ``text`` as a manifest and check it."""
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return check_manifest(path)


def messages(report: ManifestReport) -> list[str]:
    """Every error as its printed line, minus the file name."""
    return [str(d).split(":", 1)[1] for d in report.errors]


def assert_error_after_edit(tmp_path: Path, old: str, new: str, path: str, fragment: str) -> None:
    """Replace ``old`` by ``new`` in VALID; an error at ``path`` must mention ``fragment``."""
    assert old in VALID
    report = check(tmp_path, VALID.replace(old, new, 1))
    matching = [d for d in report.errors if d.path == path]
    assert matching, messages(report)
    assert fragment in matching[0].message
