"""The checklist of file-transfer and B2B integrations: answered from the files section."""

from __future__ import annotations

from pathlib import Path

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


def test_as2_is_never_a_silent_pass(tmp_path: Path) -> None:
    """AS2 is declared but not carried by Interlock yet: the transport items need evidence."""
    text = FILES.replace(
        "    drop:\n",
        "    as2:\n      as2_id: ACME\n      our_id: EXAMPLE\n"
        "      url: https://as2.acme.example/as2\n      certificate: file:/etc/acme.pem\n"
        "      our_key: secret://acme/as2-key\n      our_certificate: file:/etc/ours.pem\n"
        "    drop:\n",
    ).replace("transport: sftp", "transport: as2")
    statuses = _statuses(tmp_path, text)
    for item in ("authentication", "tls_required", "type.file_transfer.secure_transport"):
        assert statuses[item] == "needs_evidence", item


def test_b2b_edi_reports_the_partner_agreement(tmp_path: Path) -> None:
    """B2B: the agreement passes from the manifest; partner certificates need evidence."""
    statuses = _statuses(tmp_path, FILES.replace("type: file_transfer", "type: b2b_edi"))
    assert statuses["type.b2b_edi.partner_agreement"] == "pass"
    assert statuses["type.b2b_edi.partner_certificates"] == "needs_evidence"
    assert statuses["type.b2b_edi.secure_transport"] == "pass"
