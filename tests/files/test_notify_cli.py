"""`interlock files transfer` tells the partner of a refused file; `quarantine --json` shows it.

The partner's SFTP server is the asyncssh stand-in of tests/cli/test_files_cli.py; the
commands run as an operator's would, the client key in the vault.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interlock.cli.main import main
from interlock.files.notify import report_name
from tests.cli.test_evidence import _entries
from tests.cli.test_files_cli import ORDERS, partner
from tests.cli.test_json_output import check, run, run_json
from tests.files.sftp_support import Keys

__all__ = ["partner"]  # the fixture, shared


def test_a_refused_pull_is_reported_to_the_partner_and_listed(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The report lands in the partner's notify.sftp_path; --json says sent, and when."""
    path, _, root = partner
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace("  globex:\n", "    notify: {sftp_path: /rejections}\n  globex:\n", 1),
        encoding="utf-8",
    )
    (root / "rejections").mkdir()
    (root / "outbound" / "orders" / "b.csv").write_bytes(ORDERS)  # no checksum sidecar
    out = run(capsys, "files", "transfer", "nightly-orders", "-m", str(path))
    assert "refused" in out
    listing = run_json(capsys, "files", "quarantine", "nightly-orders", "-m", str(path))
    check("interlock files quarantine", listing)
    (refused,) = listing["refused"]
    assert refused["name"] == "b.csv"
    assert refused["notified"] == "sent"
    assert refused["notified_at"]
    (way,) = refused["notifications"]
    assert (way["way"], way["state"], way["attempts"], way["error"]) == ("sftp", "sent", 1, None)
    report = root / "rejections" / report_name("b.csv", refused["sha256"])
    document = json.loads(report.read_bytes())
    assert document["correlation_id"] == refused["correlation_id"]
    assert document["reasons"] == refused["reasons"]
    notes = [e for e in _entries() if e["action"] == "files.notify"]
    assert [e["outcome"]["result"] for e in notes] == ["success"]
    capsys.readouterr()
    assert main(["files", "quarantine", "nightly-orders", "-m", str(path), "--notify"]) == 0
    assert "delivered again 0 rejection report(s)" in capsys.readouterr().err


def test_a_failed_notification_keeps_the_refusal_and_notify_delivers_it_later(
    partner: tuple[Path, Keys, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The partner's directory is missing: failed, file still refused; --notify sends it."""
    path, _, root = partner
    text = path.read_text(encoding="utf-8")
    path.write_text(
        text.replace(
            "  globex:\n", "    notify: {sftp_path: /rejections, attempts: 1}\n  globex:\n", 1
        ),
        encoding="utf-8",
    )
    (root / "outbound" / "orders" / "b.csv").write_bytes(ORDERS)
    run(capsys, "files", "transfer", "nightly-orders", "-m", str(path))
    listing = run_json(capsys, "files", "quarantine", "nightly-orders", "-m", str(path))
    (refused,) = listing["refused"]
    assert refused["notified"] == "failed"
    assert refused["notified_at"] is None
    assert refused["reasons"]
    assert refused["notifications"][0]["error"]
    (root / "rejections").mkdir()
    run(capsys, "files", "quarantine", "nightly-orders", "-m", str(path), "--notify")
    listing = run_json(capsys, "files", "quarantine", "nightly-orders", "-m", str(path))
    (refused,) = listing["refused"]
    assert refused["notified"] == "sent"
    assert (root / "rejections" / report_name("b.csv", refused["sha256"])).exists()
    results = [e["outcome"]["result"] for e in _entries() if e["action"] == "files.notify"]
    assert results == ["failure", "success"]
