"""A data-subject request's closing receipt: built from a real audit log, verified offline.

The log is opened on SQLite and PostgreSQL; the request's steps are recorded
with :mod:`interlock.privacy.request_audit`'s builders next to another
request's steps and two gateway requests, the statement's digest goes into the
close entry, and the receipt carries the entries with their inclusion proofs.
Every tampering below must be refused, naming what does not hold.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.errors import AuditError
from interlock.audit.evidence import evidence_for
from interlock.audit.service import AuditLog
from interlock.cli.main import main
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.crypto.ed25519 import Ed25519Signer
from interlock.privacy.receipts import (
    RECEIPT_FORMAT,
    Statement,
    SystemOutcome,
    build_receipt,
    statement_digest,
    statement_json,
)
from interlock.privacy.request_audit import (
    answered_entry,
    asked_entry,
    closed_entry,
    created_entry,
)
from interlock.proofs.canonical import canonical_json
from interlock.proofs.checkpoint import Checkpoint
from interlock.proofs.note import NoteVerifier, open_note
from interlock.sdk.receipts import CheckpointError, ProofError, verify_receipt
from tests.audit.conftest import sample_entry
from tests.conftest import isolate_cli

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
REQUEST = "dsr_4f1c2a9e0b7d"
OTHER = "dsr_99aa00bb11cc"
ERP_DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The audit database on each backend: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def audit_log(tmp_path: Path, audit_url: str) -> Iterator[AuditLog]:
    """An open audit log on ``audit_url``, closed afterwards."""
    settings = Settings(data_dir=tmp_path / "data", audit_database_url=audit_url)
    log = AuditLog.open(settings, Keyring.create(tmp_path / "keyring.json"), witnesses=[])
    yield log
    log.close()


@dataclass
class Issued:
    """A closed request in a real log, its statement and its receipt."""

    log: AuditLog
    statement: Statement
    closed: int
    receipt: dict[str, Any]
    other_answer: int  # the other request's answer from erp

    @property
    def trusted(self) -> list[NoteVerifier]:
        """The log's verifier key."""
        return [self.log.keys.verifier]

    def index_of(self, role: str) -> int:
        """The index of one of this request's steps: ``erp.asked``, ``crm.answered``..."""
        system, _, step = role.partition(".")
        found = next(s for s in self.statement.systems if s.system == system)
        index = found.asked_index if step == "asked" else found.answered_index
        assert index is not None
        return index


def _at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def record_steps(log: AuditLog) -> tuple[Statement, int]:
    """Two gateway requests, this request's and another's steps interleaved; the statement."""
    record = log.sink.record
    deadline = T0 + timedelta(days=30)
    traces = (record(sample_entry(1)), record(sample_entry(2)))
    created = record(
        created_entry(
            "admin:alice", REQUEST, "erase", "email", deadline=deadline, systems=2, time=_at(10)
        )
    )
    record(
        created_entry(
            "admin:bob", OTHER, "erase", "email", deadline=deadline, systems=1, time=_at(11)
        )
    )
    erp_asked = record(asked_entry(REQUEST, "erp", "webhook", 1, time=_at(12)))
    crm_asked = record(asked_entry(REQUEST, "crm", "sql", 1, time=_at(13)))
    record(asked_entry(OTHER, "erp", "webhook", 1, time=_at(14)))
    erp_answered = record(
        answered_entry(REQUEST, "erp", "done", time=_at(15), records=3, answer_digest=ERP_DIGEST)
    )
    crm_answered = record(answered_entry(REQUEST, "crm", "not_found", time=_at(16), records=0))
    other_answer = record(answered_entry(OTHER, "erp", "done", time=_at(17), records=1))
    statement = Statement(
        request_id=REQUEST,
        kind="erase",
        subject_kind="email",
        created=_at(10),
        deadline=deadline,
        closed=_at(20),
        outcome="completed",
        extension_reason=None,
        systems=(
            SystemOutcome("erp", "webhook", "done", 3, ERP_DIGEST, None, erp_asked, erp_answered),
            SystemOutcome("crm", "sql", "not_found", 0, None, None, crm_asked, crm_answered),
        ),
        created_index=created,
        trace_indexes=traces,
    )
    return statement, other_answer


def close_request(log: AuditLog, statement: Statement, digest: str | None = None) -> int:
    """Record the close entry with the statement's digest (or ``digest``)."""
    digest = digest or statement_digest(statement)
    entry = closed_entry(
        "admin:alice", statement.request_id, statement.outcome, digest, time=_at(20)
    )
    return log.sink.record(entry)


def _receipt_unchecked(log: AuditLog, statement: Statement, closed: int) -> dict[str, Any]:
    """What build_receipt returns, without its checks (to show the verifier's own)."""
    evidence = evidence_for(log.store.engine, statement.indexes() | {closed})
    return {
        "format": RECEIPT_FORMAT,
        "statement": statement_json(statement),
        "statement_digest": statement_digest(statement),
        "closed_index": closed,
        "checkpoint": evidence.checkpoint,
        "entries": [dict(r) for r in evidence.records],
    }


@pytest.fixture
def issued(audit_log: AuditLog) -> Issued:
    """A completed erasure, closed with its statement's digest, and its receipt."""
    statement, other_answer = record_steps(audit_log)
    closed = close_request(audit_log, statement)
    evidence = evidence_for(audit_log.store.engine, statement.indexes() | {closed})
    receipt = build_receipt(statement, evidence, closed)
    return Issued(audit_log, statement, closed, receipt, other_answer)


def _refused(issued: Issued, receipt: dict[str, Any], match: str) -> None:
    with pytest.raises(ProofError, match=match):
        verify_receipt(json.dumps(receipt), issued.trusted)


def _record_at(receipt: dict[str, Any], index: int) -> dict[str, Any]:
    record: dict[str, Any] = next(r for r in receipt["entries"] if r["index"] == index)
    return record


# --- what a receipt is and proves --------------------------------------------------------------


def test_a_receipt_verifies_offline_and_says_what_each_system_answered(issued: Issued) -> None:
    """The SDK verifies it from its JSON text alone and reports request, outcome and systems."""
    summary = verify_receipt(json.dumps(issued.receipt).encode(), issued.trusted)
    assert summary.request_id == REQUEST
    assert (summary.kind, summary.outcome) == ("erase", "completed")
    assert summary.systems == {"erp": "done", "crm": "not_found"}
    assert summary.checkpoint.size == issued.log.store.size()
    assert issued.receipt["format"] == "interlock-dsr-receipt/1"
    assert issued.receipt["closed_index"] == issued.closed
    # Exactly the entries the statement names, and the close entry.
    indexes = [r["index"] for r in issued.receipt["entries"]]
    assert indexes == sorted(issued.statement.indexes() | {issued.closed})
    assert len(indexes) == 8  # 2 traces, create, 2 asks, 2 answers, close


def test_a_receipt_names_no_person(issued: Issued) -> None:
    """No identifier (not even the traced requests' subjects) and no subject field."""
    text = json.dumps(issued.receipt)
    assert "customer-1@example.com" not in text
    assert "customer-2@example.com" not in text
    assert not {"subject", "subjects"} & issued.receipt["statement"].keys()


def test_the_statement_json_and_its_digest(issued: Issued) -> None:
    """Documented shape; digest = SHA-256 of the canonical JSON; the order of systems is moot."""
    document: dict[str, Any] = statement_json(issued.statement)
    assert document["systems"][0]["system"] == "crm"  # sorted by name
    assert document["created"] == "2025-03-01T09:40:00Z"
    assert document["deadline"] == "2025-03-31T09:30:00Z"
    assert document["trace_indexes"] == sorted(issued.statement.trace_indexes)
    expected = "sha256:" + hashlib.sha256(canonical_json(document, max_bytes=2**20)).hexdigest()
    assert statement_digest(issued.statement) == expected
    swapped = replace(issued.statement, systems=issued.statement.systems[::-1])
    assert statement_digest(swapped) == expected
    assert statement_digest(replace(issued.statement, kind="access")) != expected


def test_a_statement_that_contradicts_itself_cannot_be_built(issued: Issued) -> None:
    """Completed with a failed system, naive times, a system twice, an answer without a status."""
    erp, crm = issued.statement.systems
    failed = replace(crm, status="failed")
    with pytest.raises(ValueError, match="completed"):
        replace(issued.statement, systems=(erp, failed))
    with pytest.raises(ValueError, match="time zone"):
        replace(issued.statement, closed=datetime(2025, 3, 2))  # noqa: DTZ001 - the point
    with pytest.raises(ValueError, match="twice"):
        replace(issued.statement, systems=(erp, erp))
    with pytest.raises(ValueError, match="answered_index"):
        replace(crm, status="pending")
    with pytest.raises(ValueError, match="unknown status"):
        replace(crm, status="erased")


def test_an_incomplete_request_with_a_system_still_waiting_verifies(audit_log: AuditLog) -> None:
    """A system asked but never answering: ``asked``, no answer entry, outcome incomplete."""
    statement, _ = record_steps(audit_log)
    erp, crm = statement.systems
    waiting = replace(crm, status="asked", records=None, answered_index=None)
    statement = replace(statement, outcome="incomplete", systems=(erp, waiting))
    closed = close_request(audit_log, statement)
    evidence = evidence_for(audit_log.store.engine, statement.indexes() | {closed})
    summary = verify_receipt(build_receipt(statement, evidence, closed), [audit_log.keys.verifier])
    assert summary.outcome == "incomplete"
    assert summary.systems == {"erp": "done", "crm": "asked"}


def test_build_receipt_refuses_evidence_that_could_not_verify(issued: Issued) -> None:
    """Missing or extra entries, or a close entry of another digest: no receipt is issued."""
    engine = issued.log.store.engine
    named = issued.statement.indexes()
    with pytest.raises(AuditError, match="lacks audit entry"):
        build_receipt(issued.statement, evidence_for(engine, named), issued.closed)
    with pytest.raises(AuditError, match="does not name"):
        build_receipt(
            issued.statement,
            evidence_for(engine, named | {issued.closed, issued.other_answer}),
            issued.closed,
        )
    changed = replace(issued.statement, extension_reason="complex request")
    with pytest.raises(AuditError, match="another statement's digest"):
        build_receipt(changed, evidence_for(engine, named | {issued.closed}), issued.closed)
    with pytest.raises(AuditError, match="does not close request"):
        build_receipt(
            issued.statement,
            evidence_for(engine, named | {issued.other_answer}),
            issued.other_answer,
        )


# --- tampering ------------------------------------------------------------------------------


def test_a_flipped_system_outcome_in_the_statement_is_refused(issued: Issued) -> None:
    """The statement no longer matches its digest; with the digest recomputed, not the log's."""
    receipt = copy.deepcopy(issued.receipt)
    receipt["statement"]["systems"][0]["status"] = "done"  # crm said not_found
    _refused(issued, receipt, "does not match the receipt's statement_digest")
    recomputed = "sha256:" + hashlib.sha256(canonical_json(receipt["statement"])).hexdigest()
    receipt["statement_digest"] = recomputed
    _refused(issued, receipt, r"the close entry says statement 'sha256:")


def test_a_dropped_entry_is_refused(issued: Issued) -> None:
    """Without erp's answer entry the receipt proves nothing about erp's answer."""
    receipt = copy.deepcopy(issued.receipt)
    answered = issued.index_of("erp.answered")
    receipt["entries"] = [r for r in receipt["entries"] if r["index"] != answered]
    _refused(issued, receipt, rf"system 'erp''s answer \(entry {answered}\) is not in the receipt")


def test_an_entry_of_another_request_is_not_counted_as_this_ones(issued: Issued) -> None:
    """Swapped in under its own index: not named; under this one's index: not in the tree."""
    receipt = copy.deepcopy(issued.receipt)
    answered = issued.index_of("erp.answered")
    other = evidence_for(issued.log.store.engine, [issued.other_answer]).records[0]
    receipt["entries"] = sorted(
        [r for r in receipt["entries"] if r["index"] != answered] + [dict(other)],
        key=lambda r: r["index"],
    )
    _refused(issued, receipt, "is not in the receipt")
    moved = copy.deepcopy(issued.receipt)
    record = _record_at(moved, answered)
    record.update(entry=other["entry"], leaf_hash=other["leaf_hash"])
    _refused(issued, moved, rf"entry {answered}: ")


def test_a_statement_citing_another_requests_answer_is_refused(audit_log: AuditLog) -> None:
    """Even when the service itself closed the request with that statement's digest."""
    statement, other_answer = record_steps(audit_log)
    erp, crm = statement.systems
    lying = replace(
        statement,
        systems=(replace(erp, records=1, answer_digest=None, answered_index=other_answer), crm),
    )
    closed = close_request(audit_log, lying)
    receipt = build_receipt(
        lying, evidence_for(audit_log.store.engine, lying.indexes() | {closed}), closed
    )
    with pytest.raises(ProofError, match=rf"answer \(entry {other_answer}\) belongs to another"):
        verify_receipt(receipt, [audit_log.keys.verifier])


def _erp(statement: Statement, **changes: Any) -> Statement:
    erp, crm = statement.systems
    return replace(statement, systems=(replace(erp, **changes), crm))


@pytest.mark.parametrize(
    ("lie", "match"),
    [
        (
            lambda s: replace(s, kind="access"),
            "the create entry says kind 'erase', the statement 'access'",
        ),
        (lambda s: replace(s, subject_kind="phone"), "says subject_kind 'email'"),
        (lambda s: replace(s, systems=s.systems[:1]), "says systems 2, the statement 1"),
        (lambda s: replace(s, deadline=s.deadline + timedelta(days=30)), "says deadline"),
        (lambda s: _erp(s, connector="sql"), "erp''s ask says connector 'webhook'"),
        (lambda s: _erp(s, records=30), "erp''s answer says records 3, the statement 30"),
        (lambda s: _erp(s, answer_digest=None), "erp''s answer says answer_digest"),
        (lambda s: _erp(s, status="manual"), "erp''s answer says status 'done'"),
        (
            lambda s: _erp(s, asked_index=s.systems[1].asked_index),
            r"entry \d+ is named as system 'erp''s ask and as system 'crm''s ask",
        ),
        (
            lambda s: _erp(s, asked_index=s.systems[0].answered_index),
            r"entry \d+ is named as system 'erp''s ask and as system 'erp''s answer|not a privacy.request.ask",
        ),
    ],
)
def test_a_statement_the_log_contradicts_is_refused(
    audit_log: AuditLog, lie: Any, match: str
) -> None:
    """The service closed the request with a statement its own step entries do not back."""
    statement, _ = record_steps(audit_log)
    lying = lie(statement)
    closed = close_request(audit_log, lying)
    receipt = _receipt_unchecked(audit_log, lying, closed)
    with pytest.raises(ProofError, match=match):
        verify_receipt(receipt, [audit_log.keys.verifier])


def test_a_changed_proof_hash_is_refused(issued: Issued) -> None:
    """One hash of one inclusion proof changed: that entry is not in the tree."""
    receipt = copy.deepcopy(issued.receipt)
    record = _record_at(receipt, issued.index_of("crm.asked"))
    raw = bytearray(base64.b64decode(record["proof"][0]))
    raw[0] ^= 1
    record["proof"][0] = base64.b64encode(bytes(raw)).decode()
    _refused(issued, receipt, rf"entry {record['index']}: ")


def test_a_changed_entry_or_leaf_hash_is_refused(issued: Issued) -> None:
    """The entry's text, or its leaf hash, changed: the content does not match."""
    receipt = copy.deepcopy(issued.receipt)
    record = _record_at(receipt, issued.index_of("erp.answered"))
    record["entry"] = record["entry"].replace('"records":3', '"records":4')
    _refused(issued, receipt, "does not match its leaf hash")


def test_a_note_signed_by_another_key_is_refused(issued: Issued) -> None:
    """The same tree head signed by a stranger under the log's name; or a wrong key trusted."""
    note = issued.receipt["checkpoint"]
    text = open_note(note, issued.trusted)
    forged = Checkpoint.parse(text).sign(issued.log.keys.verifier.name, Ed25519Signer.generate())
    receipt = copy.deepcopy(issued.receipt)
    receipt["checkpoint"] = forged
    with pytest.raises(CheckpointError, match="not signed by a trusted key"):
        verify_receipt(receipt, issued.trusted)
    stranger = NoteVerifier(issued.log.keys.verifier.name, Ed25519Signer.generate().public_key)
    with pytest.raises(CheckpointError, match="not signed by a trusted key"):
        verify_receipt(issued.receipt, [stranger])


def test_a_close_entry_with_another_digest_is_refused(audit_log: AuditLog) -> None:
    """The log closed the request with a different statement: this one is not vouched for."""
    statement, _ = record_steps(audit_log)
    closed = close_request(audit_log, statement, digest="sha256:" + "00" * 32)
    receipt = _receipt_unchecked(audit_log, statement, closed)
    with pytest.raises(ProofError, match="the close entry says statement 'sha256:0000"):
        verify_receipt(receipt, [audit_log.keys.verifier])


def test_extra_pruned_or_misplaced_entries_are_refused(issued: Issued) -> None:
    """An entry the statement does not name, a pruned body, entries out of order."""
    receipt = copy.deepcopy(issued.receipt)
    other = evidence_for(issued.log.store.engine, [issued.other_answer]).records[0]
    receipt["entries"] = sorted([*receipt["entries"], dict(other)], key=lambda r: r["index"])
    _refused(issued, receipt, rf"entry {issued.other_answer} is in the receipt but the statement")
    receipt = copy.deepcopy(issued.receipt)
    receipt["entries"][0]["entry"] = None
    _refused(issued, receipt, "was pruned")
    receipt = copy.deepcopy(issued.receipt)
    receipt["entries"].reverse()
    _refused(issued, receipt, "not in log order")


def test_a_trace_index_must_be_a_gateway_request(audit_log: AuditLog) -> None:
    """A trace index pointing at one of the request's own steps is refused."""
    statement, other_answer = record_steps(audit_log)
    odd = replace(statement, trace_indexes=(*statement.trace_indexes, other_answer))
    closed = close_request(audit_log, odd)
    receipt = _receipt_unchecked(audit_log, odd, closed)
    with pytest.raises(ProofError, match=rf"trace entry {other_answer} .* gateway.request"):
        verify_receipt(receipt, [audit_log.keys.verifier])


def _restate(receipt: dict[str, Any], **changes: object) -> None:
    """Change the statement and its receipt's digest (not the log's close entry)."""
    receipt["statement"].update(changes)
    encoded = canonical_json(receipt["statement"])
    receipt["statement_digest"] = "sha256:" + hashlib.sha256(encoded).hexdigest()


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda r: r.update(format="interlock-dsr-receipt/2"), "format"),
        (lambda r: r.update(extra=1), "unknown member 'extra'"),
        (lambda r: r.pop("closed_index"), "lacks 'closed_index'"),
        (lambda r: r.update(closed_index=True), "closed_index is not"),
        (lambda r: _restate(r, created="yesterday"), "created is not a UTC time"),
        (lambda r: _restate(r, closed="2025-02-30T10:00:00Z"), "closed is not a UTC time"),
        (lambda r: _restate(r, kind="access"), "the close entry says statement"),
        (lambda r: _restate(r, request="dsr\x1b[2J"), "request is not a name"),
        (lambda r: r["statement"].update(outcome=1.5), "canonically"),
    ],
)
def test_malformed_receipts_are_refused_with_a_reason(
    issued: Issued, change: Any, match: str
) -> None:
    """Shape errors name the member at fault."""
    receipt = copy.deepcopy(issued.receipt)
    change(receipt)
    with pytest.raises(ProofError, match=match):
        verify_receipt(receipt, issued.trusted)


def test_text_that_is_not_one_json_object_is_refused(issued: Issued) -> None:
    """Not JSON, a repeated member (parsers disagree on which wins), NaN."""
    text = json.dumps(issued.receipt)
    with pytest.raises(ProofError, match="not JSON"):
        verify_receipt(text[:-1], issued.trusted)
    with pytest.raises(ProofError, match="repeats the member 'format'"):
        verify_receipt('{"format": 1, ' + text[1:], issued.trusted)
    with pytest.raises(ProofError, match="NaN"):
        verify_receipt(
            text.replace('"closed_index": ', '"closed_index": NaN, "x": '), issued.trusted
        )
    with pytest.raises(ProofError, match="not a JSON object"):
        verify_receipt("[]", issued.trusted)


@pytest.mark.parametrize("audit_url", ["sqlite"], indirect=True)
def test_any_changed_byte_of_the_receipt_is_refused(issued: Issued) -> None:
    """Every single-byte change of the compact JSON text fails (statement, entries, proofs, note).

    Compact JSON has no insignificant whitespace, so every byte carries meaning;
    base64 is accepted only in its canonical spelling (a spare bit changed is a
    different text of the same bytes, and must not pass either).
    """
    text = json.dumps(issued.receipt, separators=(",", ":")).encode()
    verify_receipt(text, issued.trusted)
    passed = []
    for position in range(len(text)):
        changed = bytearray(text)
        changed[position] ^= 0x01
        try:
            verify_receipt(bytes(changed), issued.trusted)
        except (ProofError, CheckpointError):
            continue
        passed.append(position)
    assert passed == [], [text[p - 20 : p + 20] for p in passed[:3]]


@pytest.mark.processes
def test_the_sdk_verifier_imports_only_the_foundation() -> None:
    """``interlock.sdk.receipts`` loads no server module, no SQLAlchemy, no pydantic."""
    code = "import json, sys, interlock.sdk.receipts;print(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    loaded = json.loads(done.stdout)
    foundation = {"sdk", "proofs", "crypto", "errors", "secret", "actors", "outbound", "clock"}
    ours = {name.split(".")[1] for name in loaded if name.startswith("interlock.")}
    assert "sdk" in ours
    assert ours <= foundation, ours - foundation
    assert not {"sqlalchemy", "pydantic", "aiohttp", "structlog", "typer"} & {
        name.partition(".")[0] for name in loaded
    }


# --- the command line ------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_verify_receipt_on_the_command_line_needs_only_the_key(
    issued: Issued,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No database, no settings: the receipt file and the key file; one line per system."""
    isolate_cli(monkeypatch, tmp_path / "elsewhere")  # a data directory that was never set up
    receipt, key = tmp_path / "receipt.json", tmp_path / "audit.vkey"
    receipt.write_text(json.dumps(issued.receipt, indent=2))
    key.write_text(issued.log.keys.verifier.vkey + "\n")
    status, out, err = _cli(capsys, "audit", "verify-receipt", str(receipt), "--key", str(key))
    assert status == 0, err
    size = issued.log.store.size()
    assert out.splitlines() == [
        f"request {REQUEST}: erase, completed",
        "  crm: not_found",
        "  erp: done",
        f"ok: verified against tree head of size {size} of {issued.log.keys.verifier.name}",
    ]


def test_verify_receipt_on_the_command_line_refuses_in_one_line(
    issued: Issued,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A tampered receipt, a stranger's key, no key, no file: exit 1 with the reason."""
    isolate_cli(monkeypatch, tmp_path / "elsewhere")
    receipt, key = tmp_path / "receipt.json", tmp_path / "audit.vkey"
    tampered = copy.deepcopy(issued.receipt)
    tampered["statement"]["outcome"] = "incomplete"
    receipt.write_text(json.dumps(tampered))
    key.write_text(issued.log.keys.verifier.vkey)
    stranger = NoteVerifier(issued.log.keys.verifier.name, Ed25519Signer.generate().public_key)
    cases = [
        (
            ("--key", str(key)),
            "interlock: error[audit_proof_invalid]: the statement does not match the "
            "receipt's statement_digest",
        ),
        (
            ("--key", stranger.vkey),
            "interlock: error[audit_checkpoint_invalid]: the note is not signed by a trusted key",
        ),
        ((), "interlock: error[invalid_request]: --key: the log's verifier key is required"),
    ]
    for extra, expected in cases:
        status, out, err = _cli(capsys, "audit", "verify-receipt", str(receipt), *extra)
        assert (status, out) == (1, "")
        assert err.strip().startswith(expected), err
        assert len(err.strip().splitlines()) == 1
    status, _, err = _cli(
        capsys, "audit", "verify-receipt", str(tmp_path / "absent.json"), "--key", str(key)
    )
    assert status == 1
    assert "cannot read" in err
