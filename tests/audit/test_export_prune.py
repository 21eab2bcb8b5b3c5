"""Retention pruning keeps the log verifiable; exports verify offline with the SDK."""

from __future__ import annotations

import base64
import io
import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, update
from sqlalchemy.exc import DBAPIError

from interlock.audit.errors import AuditVerificationError
from interlock.audit.export import export_log
from interlock.audit.prune import prune
from interlock.audit.schema import BODIES, CHECKPOINTS, LEAVES, NODES
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.sdk.audit import (
    CheckpointError,
    NoteVerifier,
    ProofError,
    verify_csv_export,
    verify_export,
)
from tests.audit.conftest import T0, sample_entry


def _fill(log: AuditLog) -> None:
    for i in range(30):
        log.sink.record(sample_entry(i, integration="order-sync" if i % 3 else "analytics"))


def test_pruning_removes_old_bodies_and_the_log_still_verifies(audit_log: AuditLog) -> None:
    """Bodies older than retention go, leaf hashes and heads stay, the prune is itself logged."""
    _fill(audit_log)
    now = T0 + timedelta(minutes=20, days=1)
    reports = prune(audit_log.store, audit_log.keys, {"order-sync": timedelta(days=1)}, now=now)
    assert [r.pruned for r in reports] == [sum(1 for i in range(20) if i % 3)]
    report = verify_log(audit_log.store.engine, trusted=[audit_log.keys.verifier])
    assert (report.size, report.pruned) == (31, reports[0].pruned)
    audit_log.sink.record(sample_entry(99))
    assert verify_log(audit_log.store.engine).size == 32


def test_only_pruning_may_delete_a_body(audit_log: AuditLog) -> None:
    """After a prune, a plain DELETE of another body is still refused by the trigger."""
    _fill(audit_log)
    prune(audit_log.store, audit_log.keys, {"analytics": timedelta(0)}, now=T0 + timedelta(days=1))
    verify_log(audit_log.store.engine)
    with pytest.raises(DBAPIError), audit_log.store.engine.begin() as connection:
        connection.execute(delete(BODIES).where(BODIES.c.idx == 1))


def test_the_application_cannot_update_or_delete_the_log(audit_log: AuditLog) -> None:
    """Triggers refuse UPDATE and DELETE on every table, and REPLACE on SQLite."""
    _fill(audit_log)
    engine = audit_log.store.engine
    for statement in (
        update(LEAVES).where(LEAVES.c.idx == 0).values(leaf_hash=b"\0" * 32),
        delete(LEAVES).where(LEAVES.c.idx == 29),
        update(BODIES).where(BODIES.c.idx == 0).values(body=b"{}"),
        delete(BODIES).where(BODIES.c.idx == 0),
        delete(NODES),
        update(CHECKPOINTS).values(note=""),
        delete(CHECKPOINTS),
    ):
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.execute(statement)
    if engine.dialect.name == "sqlite":
        with pytest.raises(DBAPIError), engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT OR REPLACE INTO audit_bodies (idx, body) VALUES (0, x'7b7d')"
            )
    verify_log(engine)


def test_jsonl_and_csv_exports_verify_offline(audit_log: AuditLog) -> None:
    """An export of a period and an integration, with a pruned entry, verifies with the SDK."""
    _fill(audit_log)
    prune(
        audit_log.store,
        audit_log.keys,
        {"order-sync": timedelta(days=1)},
        now=T0 + timedelta(days=1, minutes=3),
    )
    key = NoteVerifier.parse(audit_log.keys.verifier.vkey)
    jsonl = io.StringIO()
    report = export_log(
        audit_log.store.engine,
        jsonl,
        start=T0,
        end=T0 + timedelta(minutes=15),
        integration="order-sync",
    )
    assert (report.entries, report.pruned) == (10, 2)
    summary = verify_export(io.StringIO(jsonl.getvalue()), [key])
    assert (summary.entries, summary.pruned, summary.checkpoint.size) == (8, 2, 31)
    table = io.StringIO()
    report = export_log(
        audit_log.store.engine, table, start=T0, end=T0 + timedelta(hours=1), fmt="csv"
    )
    assert verify_csv_export(io.StringIO(table.getvalue()), report.checkpoint, [key]).entries == 28

    tampered = jsonl.getvalue().replace("req-7", "req-9")
    with pytest.raises(ProofError, match="line"):
        verify_export(io.StringIO(tampered), [key])
    stranger = NoteVerifier("interlock.local/audit", bytes(32))
    with pytest.raises(CheckpointError):
        verify_export(io.StringIO(jsonl.getvalue()), [stranger])
    # A leaf hash spelled with other spare bits decodes to the same bytes: refused all
    # the same, so an export has exactly one byte form.
    lines = jsonl.getvalue().splitlines()
    record = json.loads(lines[1])
    leaf = record["leaf_hash"]  # 32 bytes: 44 characters, one '=' and 2 spare bits
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    record["leaf_hash"] = leaf[:42] + alphabet[alphabet.index(leaf[42]) ^ 1] + leaf[43:]
    assert base64.b64decode(record["leaf_hash"]) == base64.b64decode(leaf)
    respelled = "\n".join([lines[0], json.dumps(record), *lines[2:]])
    with pytest.raises(ProofError, match="canonical base64"):
        verify_export(io.StringIO(respelled), [key])


def test_a_pruned_body_cannot_be_faked_as_pruned(audit_log: AuditLog) -> None:
    """Verification still names a deletion that used the pruned marker of another prune."""
    _fill(audit_log)
    prune(
        audit_log.store, audit_log.keys, {"analytics": timedelta(0)}, now=T0 + timedelta(minutes=4)
    )
    engine = audit_log.store.engine
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO audit_pruned (idx, prune_idx) VALUES (1, 30)")
        connection.execute(delete(BODIES).where(BODIES.c.idx == 1))
    with pytest.raises(AuditVerificationError) as caught:
        verify_log(engine)
    assert caught.value.index == 0
