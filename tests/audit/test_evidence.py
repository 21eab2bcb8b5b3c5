"""Chosen entries with inclusion proofs against the newest tree head, checked offline."""

from __future__ import annotations

import base64

import pytest

from interlock.audit.errors import AuditError
from interlock.audit.evidence import evidence_for
from interlock.audit.service import AuditLog
from interlock.proofs.errors import ProofError
from interlock.sdk.audit import open_checkpoint, verify_entry
from tests.audit.conftest import sample_entry


def test_every_record_verifies_offline_and_a_changed_entry_does_not(audit_log: AuditLog) -> None:
    indexes = [audit_log.sink.record(sample_entry(n)) for n in range(7)]
    evidence = evidence_for(audit_log.store.engine, [indexes[5], indexes[1], indexes[5]])
    checkpoint = open_checkpoint(evidence.checkpoint, [audit_log.keys.verifier])
    assert [r["index"] for r in evidence.records] == [indexes[1], indexes[5]]
    for record in evidence.records:
        verify_entry(
            checkpoint,
            record["index"],
            record["entry"].encode(),
            base64.b64decode(record["leaf_hash"]),
            [base64.b64decode(p) for p in record["proof"]],
        )
    record = evidence.records[0]
    with pytest.raises(ProofError):
        verify_entry(
            checkpoint,
            record["index"],
            record["entry"].replace("order-sync", "order-sink").encode(),
            base64.b64decode(record["leaf_hash"]),
            [base64.b64decode(p) for p in record["proof"]],
        )
    assert evidence.as_json()["size"] == checkpoint.size


def test_an_index_beyond_the_tree_head_is_refused(audit_log: AuditLog) -> None:
    audit_log.sink.record(sample_entry(1))
    with pytest.raises(AuditError, match="not covered"):
        evidence_for(audit_log.store.engine, [99])
