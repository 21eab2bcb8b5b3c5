"""`interlock audit search` and the --json documents of the audit commands."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.evidence import evidence_for
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.crypto import Keyring
from interlock.privacy.receipts import build_receipt
from interlock.proofs.checkpoint import open_checkpoint
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import leaf_hash, verify_inclusion
from tests.audit.conftest import sample_entry
from tests.cli.test_json_output import check
from tests.conftest import isolate_cli
from tests.privacy.test_receipts import REQUEST, close_request, record_steps

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Own data directory, no inherited INTERLOCK_* settings."""
    isolate_cli(monkeypatch, tmp_path)


@pytest.fixture
def recorded(capsys: pytest.CaptureFixture[str]) -> None:
    """An initialised deployment: 10 entries of 2025 (req-0..9) and one of now (req-now)."""
    assert main(["init"]) == 0
    settings = load_settings()
    log = AuditLog.open(settings, Keyring.load(settings.keyring_path), witnesses=[])
    for i in range(10):
        log.sink.record(sample_entry(i, integration="order-sync" if i < 7 else "billing"))
    log.sink.record(sample_entry(99, time=datetime.now(UTC), correlation_id="req-now"))
    log.close()
    capsys.readouterr()


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    status, out, err = _run(capsys, *args, "--json")
    assert status == 0, err
    return json.loads(out)


def test_search_by_correlation_id_prints_the_entry_with_its_whole_ids(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The table holds the index, time and correlation id uncut, and says the tree size."""
    status, out, err = _run(capsys, "audit", "search", "--correlation-id", "req-3")
    assert status == 0, err
    assert "req-3" in out
    assert "2025-01-01T00:03:00Z" in out
    assert "gateway.request" in out
    assert "1 entry in the tree of size 11" in out
    status, out, _ = _run(capsys, "audit", "search", "--correlation-id", "req-3", "--proofs")
    assert "inclusion proofs in the tree of size 11" in out
    assert out.rstrip().splitlines()[-1].startswith("\u2014 ")  # the note's signature line


def test_search_json_with_proofs_verifies_against_the_printed_head(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json --proofs: every entry's proof checks its canonical bytes against the checkpoint."""
    verifier = NoteVerifier.parse(_run(capsys, "audit", "key")[1])
    doc = _json(capsys, "audit", "search", "--integration", "billing", "--proofs")
    check("interlock audit search", doc, _json(capsys, "audit", "search", "--limit", "1"))
    assert set(doc) == {
        "entries", "tree_size", "checkpoint", "truncated", "pruned", "backfill_pending", "hints"
    }  # fmt: skip
    assert doc["hints"] == []  # something was found
    assert (doc["tree_size"], doc["truncated"], doc["pruned"]) == (11, False, 0)
    head = open_checkpoint(doc["checkpoint"], [verifier])
    assert [e["index"] for e in doc["entries"]] == [9, 8, 7]
    for entry in doc["entries"]:
        assert entry["integration"] == "billing"
        assert entry["actor"] == "client:order-sync"
        assert (entry["result"], entry["status"]) == ("success", 200)
        leaf = leaf_hash(entry["entry"].encode())
        assert base64.b64decode(entry["leaf_hash"]) == leaf
        proof = [base64.b64decode(h) for h in entry["proof"]]
        verify_inclusion(entry["index"], head.size, leaf, proof, head.root)
    plain = _json(capsys, "audit", "search", "--integration", "billing")
    assert {e["proof"] for e in plain["entries"]} == {None}


def test_since_and_until_take_rfc3339_and_durations(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """30d back from now finds only today's entry; an RFC 3339 window finds its minutes."""
    recent = _json(capsys, "audit", "search", "--since", "30d")
    assert [e["correlation_id"] for e in recent["entries"]] == ["req-now"]
    older = _json(capsys, "audit", "search", "--until", "PT1H", "--client", "order-sync")
    assert len(older["entries"]) == 10
    window = _json(
        capsys,
        "audit",
        "search",
        "--since",
        "2025-01-01T00:02:00Z",
        "--until",
        "2025-01-01T00:05:00+00:00",
    )
    assert [e["index"] for e in window["entries"]] == [4, 3, 2]
    assert window["entries"][0]["time"] == "2025-01-01T00:04:00Z"
    limited = _json(capsys, "audit", "search", "--limit", "2")
    assert (len(limited["entries"]), limited["truncated"]) == (2, True)


def test_a_bad_time_is_one_line_naming_the_option(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """--since yesterday: neither a time nor a duration; one line, exit 1."""
    status, _, err = _run(capsys, "audit", "search", "--since", "yesterday")
    assert status == 1
    assert "--since: 'yesterday' is neither an RFC 3339 time nor a duration" in err
    assert len(err.strip().splitlines()) == 1


def test_search_after_pruning_says_pruned_entries_are_not_searchable(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The example manifest's retention prunes order-sync's 2025 entries; search says so."""
    manifest = str(REPO / "examples" / "interlock.yaml")
    # billing is not in the example manifest, and no stored version declares it: its
    # bodies are kept unless given a retention (a century here: none is pruned).
    doc = _json(capsys, "audit", "prune", "--manifest", manifest, "--removed-retention", "P36500D")
    check("interlock audit prune", doc)
    pruned = {r["integration"]: r for r in doc["integrations"]}
    assert (pruned["billing"]["removed"], pruned["billing"]["pruned"], doc["kept"]) == (True, 0, [])
    assert pruned["order-sync"]["pruned"] == 7
    assert pruned["order-sync"]["before"].endswith("Z")
    assert isinstance(pruned["order-sync"]["entry_index"], int)
    status, out, _ = _run(capsys, "audit", "search", "--client", "order-sync")
    assert status == 0
    assert "pruned (retention): not searchable" in out
    found = _json(capsys, "audit", "search", "--client", "order-sync")
    assert [e["correlation_id"] for e in found["entries"]] == ["req-now", "req-9", "req-8", "req-7"]
    assert found["pruned"] == 7


def test_verify_key_and_checkpoint_json(
    recorded: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The documents name the same key and tree as the plain output."""
    key = _json(capsys, "audit", "key")
    check("interlock audit key", key)
    assert key["vkey"] == _run(capsys, "audit", "key")[1].strip()
    verifier = NoteVerifier.parse(key["vkey"])
    assert (key["name"], key["key_id"]) == (verifier.name, verifier.key_id.hex())
    head = _json(capsys, "audit", "checkpoint")
    check("interlock audit checkpoint", head)
    assert head["note"] == _run(capsys, "audit", "checkpoint")[1]
    opened = open_checkpoint(head["note"], [verifier])
    assert (head["size"], head["origin"]) == (opened.size, opened.origin)
    assert base64.b64decode(head["root"]) == opened.root
    verified = _json(capsys, "audit", "verify")
    check("interlock audit verify", verified)
    assert verified["ok"] is True
    assert (verified["size"], verified["bodies"], verified["pruned"]) == (11, 11, 0)
    assert verified["origin"] == opened.origin
    assert verified["cosigned"] == []

    output = tmp_path / "day.jsonl"
    status, _, err = _run(
        capsys, "audit", "export", "--from", "2025-01-01", "--to", "2025-01-02", "-o", str(output)
    )
    assert status == 0, err
    key_file = tmp_path / "audit.vkey"
    key_file.write_text(key["vkey"])
    checked = _json(capsys, "audit", "verify-export", str(output), "--key", str(key_file))
    check("interlock audit verify-export", checked)
    assert (checked["ok"], checked["entries"], checked["pruned"]) == (True, 10, 0)
    assert checked["tree_size"] == 11


def test_verify_receipt_json(
    audit_log: AuditLog, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A data-subject request's receipt: request, outcome and each system, as JSON."""
    statement, _ = record_steps(audit_log)
    closed = close_request(audit_log, statement)
    evidence = evidence_for(audit_log.store.engine, statement.indexes() | {closed})
    receipt, key = tmp_path / "receipt.json", tmp_path / "audit.vkey"
    receipt.write_text(json.dumps(build_receipt(statement, evidence, closed)))
    key.write_text(audit_log.keys.verifier.vkey)
    doc = _json(capsys, "audit", "verify-receipt", str(receipt), "--key", str(key))
    check("interlock audit verify-receipt", doc)
    assert doc["request_id"] == REQUEST
    assert (doc["kind"], doc["outcome"]) == ("erase", "completed")
    assert doc["systems"] == {"crm": "not_found", "erp": "done"}
    assert doc["tree_size"] == audit_log.store.size()


def test_a_mistyped_integration_gets_did_you_mean_in_text_and_json(
    recorded: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """'0 entries' alone left a typo unexplained: the names the trail holds are suggested."""
    status, out, err = _run(capsys, "audit", "search", "--integration", "order-snc")
    assert status == 0, err
    assert "0 entries in the tree of size 11" in out
    assert "no indexed entry names integration 'order-snc'; did you mean 'order-sync'?" in out
    document = _json(capsys, "audit", "search", "--integration", "order-snc")
    assert document["hints"] == [
        "no indexed entry names integration 'order-snc'; did you mean 'order-sync'?"
    ]
