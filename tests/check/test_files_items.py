"""The checklist of file-transfer and B2B integrations: answered from the files section."""

from __future__ import annotations

from pathlib import Path

import pytest

from interlock.check.run import run_check
from tests.check.conftest import by_item
from tests.config.test_files_manifest import FILES

FLOW = "nightly-orders"


def _statuses(tmp_path: Path, text: str = FILES) -> dict[str, str]:
    path = tmp_path / "interlock.yaml"
    path.write_text(text)
    return {item: f.status for item, f in by_item(run_check(path), FLOW).items()}


def test_sftp_with_pinned_keys_and_quarantine_pass(tmp_path: Path) -> None:
    """What the section shows passes; whole files and partner volume need evidence."""
    statuses = _statuses(tmp_path)
    assert {i for i, s in statuses.items() if s != "pass"} == {
        "encryption_at_rest",
        "minimisation",
        "rate_limiting",
    }
    assert statuses["type.file_transfer.secure_transport"] == "pass"
    assert statuses["type.file_transfer.validate_before_processing"] == "pass"


_AS2 = (
    "    as2:\n      as2_id: ACME\n      our_id: EXAMPLE\n"
    "      url: https://as2.acme.example/as2\n      certificate: file:/etc/acme.pem\n"
    "      our_key: secret://acme/as2-key\n      our_certificate: file:/etc/ours.pem\n"
)


def _as2(extra: str = "") -> str:
    return FILES.replace("    drop:\n", _AS2 + extra + "    drop:\n").replace(
        "transport: sftp", "transport: as2"
    )


def test_as2_is_answered_from_the_profile(tmp_path: Path) -> None:
    """AS2 carried by Interlock: its transport items pass from the partner's profile."""
    statuses = _statuses(tmp_path, _as2("      crl: file:/etc/acme-ca.crl\n"))
    for item in (
        "authentication",
        "tls_required",
        "secrets_manager",
        "certificates_validated",
        "type.file_transfer.secure_transport",
        "type.file_transfer.drop_access",
    ):
        assert statuses[item] == "pass", item


def test_as2_without_a_crl_needs_evidence_of_revocation(tmp_path: Path) -> None:
    """No CRL declared: certificate validation is not a pass (revocation is unchecked)."""
    statuses = _statuses(tmp_path, _as2())
    assert statuses["certificates_validated"] == "needs_evidence"
    assert statuses["authentication"] == "pass"


@pytest.mark.parametrize(
    "weakening",
    ["      key_transport: rsa-pkcs1\n", "      require_signed: false\n",
     "      require_encrypted: false\n"],
)  # fmt: skip
def test_a_weakened_as2_profile_is_never_a_silent_pass(tmp_path: Path, weakening: str) -> None:
    """RSA PKCS#1 v1.5, unsigned or unencrypted allowed: the transport items need evidence."""
    statuses = _statuses(tmp_path, _as2("      crl: file:/etc/acme-ca.crl\n" + weakening))
    for item in ("authentication", "tls_required", "type.file_transfer.secure_transport"):
        assert statuses[item] == "needs_evidence", item


def test_b2b_edi_reports_the_partner_agreement(tmp_path: Path) -> None:
    """B2B: the agreement passes from the manifest; partner certificates need evidence."""
    statuses = _statuses(tmp_path, FILES.replace("type: file_transfer", "type: b2b_edi"))
    assert statuses["type.b2b_edi.partner_agreement"] == "pass"
    assert statuses["type.b2b_edi.partner_certificates"] == "needs_evidence"
    assert statuses["type.b2b_edi.secure_transport"] == "pass"


def test_as2_compression_is_shown_in_the_evidence_and_still_passes(tmp_path: Path) -> None:
    """RFC 5402 compression is not a weakening; the evidence says it is on, and how."""
    path = tmp_path / "interlock.yaml"
    path.write_text(_as2("      crl: file:/etc/acme-ca.crl\n      compress: true\n"))
    finding = by_item(run_check(path), FLOW)["type.file_transfer.secure_transport"]
    assert finding.status == "pass"
    assert any("compression before-signing (RFC 5402" in line for line in finding.evidence)


def test_quarantine_kept_past_the_retention_fails_retention(tmp_path: Path) -> None:
    """Refused files stay 30 days (the default); a 7-day retention is contradicted."""
    assert _statuses(tmp_path)["retention"] == "pass"
    shorter = FILES.replace("    retention: P30D\n", "    retention: P7D\n", 1)
    assert shorter != FILES
    path = tmp_path / "interlock.yaml"
    path.write_text(shorter)
    finding = by_item(run_check(path), FLOW)["retention"]
    assert finding.status == "fail"
    assert "files.quarantine_retention (30 days)" in finding.reason
    assert finding.fix is not None
    assert "files.quarantine_retention" in finding.fix
