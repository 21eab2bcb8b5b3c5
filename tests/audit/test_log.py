"""Recording through the durable sink: indexes, group commit, checkpoints, proofs."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select

from interlock.audit import AuditSink
from interlock.audit.entry import decode_entry
from interlock.audit.proofs import ProofReader
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.checkpoint import open_checkpoint
from interlock.proofs.rfc9162 import leaf_hash, verify_consistency, verify_inclusion
from tests.audit.conftest import sample_entry


def test_record_returns_consecutive_indexes_and_signs_a_tree_head(audit_log: AuditLog) -> None:
    """Each acknowledged entry has its index, and a signed checkpoint covers it."""
    sink: AuditSink = audit_log.sink
    assert isinstance(sink, AuditSink)
    assert [sink.record(sample_entry(i)) for i in range(5)] == [0, 1, 2, 3, 4]
    latest = audit_log.latest_checkpoint()
    assert latest is not None
    head = open_checkpoint(latest.note, [audit_log.keys.verifier], origin="interlock.local/audit")
    assert head.size == 5
    assert verify_log(audit_log.store.engine).size == 5


def test_concurrent_records_are_group_committed(audit_log: AuditLog) -> None:
    """Many threads at once: fewer tree heads than entries (batches), all entries distinct."""
    sink = audit_log.sink
    with ThreadPoolExecutor(16) as pool:
        indexes = list(pool.map(lambda i: sink.record(sample_entry(i)), range(200)))
    assert sorted(indexes) == list(range(200))
    report = verify_log(audit_log.store.engine)
    assert report.size == 200
    assert report.checkpoints < 200


def test_async_record(audit_log: AuditLog) -> None:
    """``record_async`` awaits durability without blocking the loop."""

    async def main() -> list[int]:
        return list(
            await asyncio.gather(*(audit_log.sink.record_async(sample_entry(i)) for i in range(20)))
        )

    assert sorted(asyncio.run(main())) == list(range(20))


def test_sensitive_values_are_stored_as_keyed_pseudonyms(audit_log: AuditLog) -> None:
    """Subjects and the client IP never reach the database in clear; equal values match."""
    index = audit_log.sink.record(sample_entry(1))
    other = audit_log.sink.record(sample_entry(2, subjects=("customer-1@example.com",)))
    with audit_log.store.engine.connect() as connection:
        bodies = [
            bytes(b)
            for b in connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).scalars()
        ]
    assert b"customer-1@example.com" not in bodies[index]
    assert b"192.0.2.10" not in bodies[index]
    first, second = decode_entry(bodies[index]), decode_entry(bodies[other])
    assert first["subjects"][0].startswith("hmac-sha256:")
    assert first["subjects"] == second["subjects"]
    assert "customer" not in repr(sample_entry(1))
    assert json.loads(bodies[index]) == first


def test_proofs_from_storage_verify_against_signed_heads(audit_log: AuditLog) -> None:
    """Inclusion of every entry and consistency between every pair of sizes (up to 21)."""
    sink = audit_log.sink
    for i in range(21):
        sink.record(sample_entry(i))
    engine = audit_log.store.engine
    with engine.connect() as connection:
        reader = ProofReader(connection, 21)
        roots = {n: reader.root(n) for n in range(1, 22)}
        leaves = [reader.leaf(i) for i in range(21)]
        for size in range(1, 22):
            for index in range(size):
                verify_inclusion(
                    index, size, leaves[index], reader.inclusion(index, size), roots[size]
                )
            for old in range(1, size + 1):
                verify_consistency(
                    old, size, roots[old], roots[size], reader.consistency(old, size)
                )
        body = connection.execute(select(BODIES.c.body).where(BODIES.c.idx == 7)).scalar_one()
    assert leaf_hash(bytes(body)) == leaves[7]


def test_reopening_continues_the_same_log(settings: Settings, keyring: Keyring) -> None:
    """A second open (another process, a restart) appends after the first and keeps the key."""
    first = AuditLog.open(settings, keyring, witnesses=[])
    first.sink.record(sample_entry(0))
    key = first.keys.verifier
    first.close()
    second = AuditLog.open(settings, keyring, witnesses=[])
    try:
        assert second.sink.record(sample_entry(1)) == 1
        assert second.keys.verifier == key
        assert verify_log(second.store.engine, trusted=[key]).size == 2
    finally:
        second.close()
