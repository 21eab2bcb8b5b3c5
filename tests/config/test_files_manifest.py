"""The manifest's partners and files sections, each error at its value."""

from __future__ import annotations

import os
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


_AS2_PARTNER = """\
    as2:
      as2_id: ACME
      our_id: EXAMPLE
      url: "{url}"
      mdn: async
      mdn_url: "{mdn_url}"
      certificate: file:/etc/acme.pem
      our_key: secret://acme/as2-key
      our_certificate: file:/etc/ours.pem
      crl: file:/etc/acme-ca.crl
    notify:
      webhook: {{url: "{webhook}"}}
"""
_GOOD_URL = "https://as2.acme.example/as2"


def as2_manifest(url: str = _GOOD_URL, mdn_url: str = _GOOD_URL, webhook: str = _GOOD_URL) -> str:
    """FILES with an AS2 partner (async MDNs, a notify webhook) at these URLs."""
    section = _AS2_PARTNER.format(url=url, mdn_url=mdn_url, webhook=webhook)
    return FILES.replace("    drop:\n", section + "    drop:\n")


def test_the_as2_partner_urls_are_valid(tmp_path: Path) -> None:
    """The baseline of the URL tests below loads."""
    report = check(tmp_path, as2_manifest())
    assert report.ok, messages(report)


@pytest.mark.parametrize("field", ["url", "mdn_url", "webhook"])
@pytest.mark.parametrize("scheme", ["https", "http"])
@pytest.mark.parametrize("form", ["userinfo", "query"])
def test_credentials_in_partner_urls_are_refused_without_echo(
    tmp_path: Path, field: str, scheme: str, form: str
) -> None:
    """A password in a partner URL is an error at that field; no message repeats it."""
    password = "pw-" + os.urandom(6).hex()
    if form == "userinfo":
        url = f"{scheme}://acme:{password}@as2.acme.example/as2"
    else:
        url = f"{scheme}://as2.acme.example/as2?" + "to" + f"ken={password}"
    report = check(tmp_path, as2_manifest(**{field: url}))
    path = {
        "url": "partners.acme.as2.url",
        "mdn_url": "partners.acme.as2.mdn_url",
        "webhook": "partners.acme.notify.webhook.url",
    }[field]
    assert [d.path for d in report.errors] == [path], messages(report)
    assert password not in "".join(str(d) for d in report.errors)


def test_a_partner_url_without_a_host_is_refused(tmp_path: Path) -> None:
    """https:///path names no endpoint."""
    report = check(tmp_path, as2_manifest(url="https:///as2"))
    assert [d.path for d in report.errors] == ["partners.acme.as2.url"], messages(report)
    assert "no host" in report.errors[0].message


@pytest.mark.parametrize("scheme", ["http", "ftp"])
def test_an_ocsp_url_with_a_password_is_refused_without_echo(tmp_path: Path, scheme: str) -> None:
    """Also where the scheme is wrong: the pattern's message shows the URL masked."""
    password = "pw-" + os.urandom(6).hex()
    text = as2_manifest().replace(
        "      crl: file:/etc/acme-ca.crl\n",
        f'      crl: file:/etc/acme-ca.crl\n      ocsp: "{scheme}://o:{password}@ocsp.acme.example"\n',
    )
    report = check(tmp_path, text)
    assert [d.path for d in report.errors] == ["partners.acme.as2.ocsp"], messages(report)
    assert password not in "".join(str(d) for d in report.errors)
