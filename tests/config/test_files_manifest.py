"""The manifest's partners and files sections, each error at its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.manifests import check, messages

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
FILES = f"""\
version: 1
organisation:
  controller: {{name: Example GmbH, contact: privacy@example.com}}
systems:
  erp: {{url: "https://erp.example:9443", location: DE}}
  crm: {{url: "https://crm.example", location: DE}}
partners:
  acme:
    location: NL
    agreement: "TPA-2025-017 (signed 2025-03-01)"
    sftp:
      host: sftp.acme.example
      user: interlock
      host_keys: ["{KEY} acme"]
      key: secret://acme/sftp-key
    drop:
      keys: ["{KEY} acme-upload"]
clients:
  file-sync: {{auth: [mtls]}}
integrations:
  nightly-orders:
    type: file_transfer
    source: erp
    target: crm
    client: file-sync
    purpose: Nightly order files from ACME
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    files:
      partner: acme
      direction: inbound
      transport: sftp
      remote_path: /outbound/orders
      pattern: "*.csv"
      format: csv
      csv_columns: [order_id, email, total]
      checksum: sha256-sidecar
"""


def test_the_files_manifest_is_valid(tmp_path: Path) -> None:
    """Partners and a file integration load with no warning."""
    report = check(tmp_path, FILES)
    assert report.ok, messages(report)
    assert report.warnings == ()
    manifest = report.manifest
    assert manifest is not None
    assert manifest.partners["acme"].sftp is not None
    spec = manifest.integrations["nightly-orders"].files
    assert spec is not None
    assert spec.csv_columns == ("order_id", "email", "total")


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ("key: secret://acme/sftp-key", "key: -----BEGIN OPENSSH PRIVATE KEY-----",
         "partners.acme.sftp.key", "reference"),
        (f'host_keys: ["{KEY} acme"]', "host_keys: []", "partners.acme.sftp.host_keys",
         "at least 1"),
        (f'host_keys: ["{KEY} acme"]', 'host_keys: ["any"]', "partners.acme.sftp.host_keys[0]",
         "one OpenSSH line"),
        ("partner: acme", "partner: globex", "integrations.nightly-orders.files.partner",
         "unknown partner"),
        ("transport: sftp", "transport: as2", "integrations.nightly-orders.files.transport",
         "no as2"),
        ("      remote_path: /outbound/orders\n", "", "integrations.nightly-orders.files",
         "remote_path"),
        ("direction: inbound", "direction: outbound\n      transport: drop",
         "integrations.nightly-orders.files", None),
        ("format: csv", "format: json", "integrations.nightly-orders.files", "csv_columns"),
        ("    type: file_transfer\n", "    type: messaging\n", "integrations.nightly-orders",
         "files: section"),
    ],
)  # fmt: skip
def test_files_errors_point_at_the_value(
    tmp_path: Path, old: str, new: str, path: str, fragment: str | None
) -> None:
    """Each mistake is an error at the value that holds it."""
    assert old in FILES, old
    report = check(tmp_path, FILES.replace(old, new, 1))
    found = [(d.path, d.message) for d in report.errors]
    matching = [message for where, message in found if where == path]
    assert matching, found
    if fragment is not None:
        assert fragment in matching[0]


def test_a_partner_without_any_transport_is_refused(tmp_path: Path) -> None:
    """A partner must say how files move with it."""
    text = FILES.replace(
        "clients:\n", "  globex:\n    location: FR\n    agreement: none yet\nclients:\n", 1
    )
    report = check(tmp_path, text)
    assert any(d.path == "partners.globex" and "sftp, as2 or drop" in d.message
               for d in report.errors)  # fmt: skip


def test_outbound_files_to_a_partner_outside_the_eea_need_a_transfer(tmp_path: Path) -> None:
    """Sending personal data to a US partner is a transfer; receiving from it is not."""
    us = FILES.replace("    location: NL\n", "    location: US\n", 1)
    assert check(tmp_path, us).ok
    out = us.replace("direction: inbound", "direction: outbound")
    found = [(d.path, d.message) for d in check(tmp_path, out).errors]
    assert any(p == "integrations.nightly-orders.files.partner" and "outside the EEA" in m
               for p, m in found), found  # fmt: skip
