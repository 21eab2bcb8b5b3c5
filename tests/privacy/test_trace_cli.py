"""``interlock privacy trace``: the report per system, JSON, stdin, and one-line errors."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.audit import AuditEntry, Outcome
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import Settings
from interlock.privacy.lineage import LineageIndex, LineageRecord, load_subject_hasher
from interlock.store import initialise
from tests.conftest import isolate_cli
from tests.privacy.test_trace import MANIFEST

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ADA = "ada@example.com"


@pytest.fixture
def manifest(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A deployment where Ada's email reached the CRM once; the manifest's path."""
    isolate_cli(monkeypatch, tmp_path)
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    try:
        log = AuditLog.open(deployment.settings, deployment.keyring, witnesses=[])
        try:
            index = log.sink.record(
                AuditEntry(
                    time=T0,
                    actor="client:crm-sync",
                    action="gateway.request",
                    integration="order-sync",
                    outcome=Outcome(result="success", status=200),
                    correlation_id="req-1",
                    details={"subjects": 1},
                )
            )
        finally:
            log.close()
        hasher = load_subject_hasher(deployment.engine, deployment.keyring)
        lineage = LineageIndex(deployment.engine, hasher)
        lineage.record_later(
            [
                LineageRecord(
                    subject=hasher.digest("email", ADA),
                    kind="email",
                    integration="order-sync",
                    route="GET /orders/{id}",
                    direction="response",
                    receiver="crm",
                    source="erp",
                    target="crm",
                    categories=("user.contact.email",),
                    receiver_country="US",
                    time=T0,
                    audit_index=index,
                    correlation_id="req-1",
                    expires_at=T0 + timedelta(days=90),
                )
            ]
        )
        lineage.close()
    finally:
        deployment.close()
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    return path


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["privacy", "trace", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_report_for_an_identifier_written_any_case(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "Ada@Example.COM", "--json", "--manifest", str(manifest))
    assert status == 0, err
    report = json.loads(out)
    assert report["found"] is True
    (crm,) = report["systems"]
    assert crm["system"] == "crm"
    assert len(report["evidence"]["entries"]) == 1
    assert ADA not in out.lower()
    assert ADA not in err.lower()


def test_the_identifier_can_come_from_standard_input(
    manifest: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{ADA}\n".encode())))
    status, out, err = _run(capsys, "-", "--kind", "email", "--json", "-m", str(manifest))
    assert status == 0, err
    assert json.loads(out)["systems"][0]["system"] == "crm"


def test_the_text_report_has_a_table_per_system(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, ADA, "--manifest", str(manifest))
    assert status == 0, err
    assert "1 system received this person's data" in out
    assert "crm (US, owner Sales operations): 1 request" in out
    assert "Sync confirmed orders" in out  # cells wrap at the terminal's width
    assert "contract (Art." in out
    assert "P90D" in out
    assert "transfer to US under SCC (Art. 46(2)(c)) via order-sync" in out
    assert "no automated decision" in out
    assert "Art. 15(1)(e)" in out  # rectification, erasure, restriction, objection
    assert "Art. 15(1)(f)" in out  # a complaint to a supervisory authority
    assert ADA not in out


def test_a_person_never_seen_is_an_empty_report_not_an_error(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "bob@example.com", "--manifest", str(manifest))
    assert status == 0, err
    assert "no system received this person's data" in out
    status, out, _ = _run(capsys, "bob@example.com", "--json", "--manifest", str(manifest))
    assert json.loads(out)["systems"] == []


def test_an_unknown_kind_is_one_line_naming_the_declared_kinds(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "+4930123456", "--kind", "phone", "--manifest", str(manifest))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "error[unknown_kind]" in err
    assert "(declared: customer_id, email)" in err
    assert "4930123456" not in err


def test_a_malformed_identifier_is_one_line_without_the_value(
    manifest: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _run(capsys, "ada-at-example", "--manifest", str(manifest))
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "error[invalid_identifier]" in err
    assert "ada-at-example" not in err


def test_help_warns_about_shell_history(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["privacy", "trace", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert status == 0
    assert "Shell history" in out
    assert "pass - to read it from standard input" in out
