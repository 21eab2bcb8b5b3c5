"""The lineage index on SQLite and PostgreSQL: keyed hashes, batched writes, erase, prune."""

from __future__ import annotations

import base64
import pickle
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from structlog.testing import capture_logs

from interlock.audit.service import AuditLog
from interlock.config.manifest import Integration, System
from interlock.privacy.lineage import (
    KEY_NAME,
    LineageIndex,
    LineageRecord,
    RouteLineage,
    SubjectHasher,
    load_subject_hasher,
)
from interlock.privacy.subjects import Sighting
from interlock.privacy.tables import LineageErasedRow, LineageRow
from interlock.store import Deployment
from interlock.store.base import table_of
from interlock.store.tables import SealedSettingRow
from interlock.testing.clock import ManualClock

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
LINEAGE = table_of(LineageRow)
ERASED = table_of(LineageErasedRow)


def record(subject: bytes, number: int = 0, **changes: object) -> LineageRecord:
    """A row about ``subject``, distinct per ``number``."""
    fields: dict[str, object] = {
        "subject": subject,
        "kind": "email",
        "integration": "order-sync",
        "route": "GET /orders/{id}",
        "direction": "response",
        "receiver": "crm",
        "source": "erp",
        "target": "crm",
        "categories": ("user.contact.email", "user.name"),
        "receiver_country": "US",
        "time": T0 + timedelta(minutes=number),
        "audit_index": 100 + number,
        "correlation_id": f"req-{number}",
        "expires_at": T0 + timedelta(days=90, minutes=number),
    }
    fields.update(changes)
    return LineageRecord(**fields)  # type: ignore[arg-type]


@pytest.fixture
def hasher(deployment: Deployment) -> SubjectHasher:
    """The deployment's hasher (its key created on first use)."""
    return load_subject_hasher(deployment.engine, deployment.keyring)


@pytest.fixture
def index(deployment: Deployment, hasher: SubjectHasher) -> Iterator[LineageIndex]:
    """An index on the deployment's store, with a short linger; closed afterwards."""
    opened = LineageIndex(deployment.engine, hasher, linger=0.01, prune_batch=2)
    yield opened
    opened.close()


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(LINEAGE)).scalar_one())


def _erased(engine: Engine) -> dict[tuple[str, str], int]:
    with engine.connect() as connection:
        rows = connection.execute(select(ERASED)).all()
    return {(r.integration, r.receiver): r.rows for r in rows}


def test_the_hash_is_hmac_sha256_of_kind_nul_value_and_hides_its_key() -> None:
    hasher = SubjectHasher(b"k" * 32)
    digest = hasher.digest("email", "ada@example.com")
    assert len(digest) == 32
    assert digest != hasher.digest("customer_id", "ada@example.com")  # domain-separated
    assert digest != hasher.digest("email", "ada@example.co")
    assert "k" * 8 not in repr(hasher)
    with pytest.raises(TypeError):
        pickle.dumps(hasher)
    with pytest.raises(ValueError, match="256 bits"):
        SubjectHasher(b"short")


def test_two_opens_agree_on_one_sealed_key(deployment: Deployment) -> None:
    first = load_subject_hasher(deployment.engine, deployment.keyring)
    again = load_subject_hasher(deployment.engine, deployment.keyring)
    assert first.digest("email", "a@b.example") == again.digest("email", "a@b.example")
    table = table_of(SealedSettingRow)
    with deployment.engine.connect() as connection:
        sealed = connection.execute(
            select(table.c.value).where(table.c.name == KEY_NAME)
        ).scalar_one()
    assert len(bytes(sealed)) > 32  # sealed, not the raw key


def test_concurrent_first_opens_agree(deployment: Deployment) -> None:
    """Replicas starting at once: every one ends up with the winner's key."""
    barrier = threading.Barrier(6)
    digests: list[bytes] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            barrier.wait()
            loaded = load_subject_hasher(deployment.engine, deployment.keyring)
            digests.append(loaded.digest("email", "a@b.example"))
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(digests) == 6
    assert len(set(digests)) == 1


def test_the_key_is_not_the_audit_pseudonym_key(
    deployment: Deployment, hasher: SubjectHasher
) -> None:
    log = AuditLog.open(deployment.settings, deployment.keyring, witnesses=[])
    try:
        pseudonym = log.keys.pseudonymiser.pseudonym("subject", "ada@example.com")
    finally:
        log.close()
    audit_digest = base64.urlsafe_b64decode(pseudonym.removeprefix("hmac-sha256:") + "=")
    assert hasher.digest("subject", "ada@example.com") != audit_digest


def test_recorded_rows_are_found_by_subject_after_flush(
    index: LineageIndex, hasher: SubjectHasher
) -> None:
    ada, bob = hasher.digest("email", "ada@example.com"), hasher.digest("email", "bob@example.com")
    index.record_later([record(ada, 1), record(ada, 0, receiver="erp", direction="request")])
    index.record_later([record(bob, 2)])
    assert index.flush() is True
    found = index.find(ada)
    assert [r.correlation_id for r in found] == ["req-0", "req-1"]  # oldest first
    assert found[1] == record(ada, 1)  # every column round-trips, times aware UTC
    assert found[0].receiver == "erp"
    assert found[0].time.tzinfo is not None
    assert index.find(hasher.digest("email", "nobody@example.com")) == []
    assert {(r.receiver, r.integration) for r in found} == {
        ("crm", "order-sync"),
        ("erp", "order-sync"),
    }
    assert {(r.receiver, r.integration) for r in index.find(bob)} == {("crm", "order-sync")}


def test_close_writes_what_is_queued(deployment: Deployment, hasher: SubjectHasher) -> None:
    index = LineageIndex(deployment.engine, hasher, linger=5.0)  # would linger long
    subject = hasher.digest("email", "ada@example.com")
    index.record_later([record(subject, n) for n in range(3)])
    index.close()
    assert len(index.find(subject)) == 3
    index.record_later([record(subject, 9)])  # after close: dropped and counted, not raised
    assert index.dropped == 1


def test_a_full_queue_drops_counts_and_logs_without_blocking(
    deployment: Deployment, hasher: SubjectHasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = LineageIndex(deployment.engine, hasher, max_pending=2)
    monkeypatch.setattr(index, "_ensure_thread", lambda: None)  # a writer that never comes
    subject = hasher.digest("email", "ada@example.com")
    with capture_logs() as logs:
        index.record_later([record(subject, 0)])
        index.record_later([record(subject, 1)])
        index.record_later([record(subject, 2), record(subject, 3)])
        assert index.reserve() is False  # the gateway withholds such a request
        for number in range(1000):  # a flood of drops: one log line, with the count
            index.record_later([record(subject, 10 + number)])
    assert index.dropped == 1002
    assert index.queued == 2  # the two that fitted, still waiting
    assert [e["event"] for e in logs] == ["lineage records dropped"]
    assert logs[0]["log_level"] == "error"
    assert logs[0]["records"] == 2
    assert "ada" not in repr(logs)


def test_a_reserved_place_is_used_or_given_back(
    deployment: Deployment, hasher: SubjectHasher
) -> None:
    index = LineageIndex(deployment.engine, hasher, max_pending=1)
    subject = hasher.digest("email", "ada@example.com")
    assert index.reserve() is True
    assert index.reserve() is False  # the one place is taken
    index.record_later((), reserved=True)  # given back (the audit entry failed)
    assert index.reserve() is True
    assert index.record_later([record(subject, 1)], reserved=True) is True
    assert index.flush() is True
    assert len(index.find(subject)) == 1
    assert index.reserve() is True  # written: the place is free again
    index.record_later((), reserved=True)
    index.close()


def test_a_failed_batch_is_counted_and_the_writer_goes_on(
    index: LineageIndex, hasher: SubjectHasher
) -> None:
    subject = hasher.digest("email", "ada@example.com")
    broken = record(subject, 0, categories=(object(),))  # cannot be encoded
    with capture_logs() as logs:
        index.record_later([broken])
        assert index.flush() is True
    assert index.failed == 1
    assert index.lost == 1
    assert [e["event"] for e in logs] == ["lineage batch failed"]
    index.record_later([record(subject, 1)])
    assert index.flush() is True
    assert [r.correlation_id for r in index.find(subject)] == ["req-1"]


def test_erase_deletes_the_subject_and_keeps_counts(
    deployment: Deployment, index: LineageIndex, hasher: SubjectHasher
) -> None:
    ada, bob = hasher.digest("email", "ada@example.com"), hasher.digest("email", "bob@example.com")
    index.record_later(
        [
            record(ada, 0),
            record(ada, 1),
            record(ada, 2, receiver="erp", direction="request"),
            record(ada, 3, integration="billing"),
            record(bob, 4),
        ]
    )
    index.flush()
    assert index.erase(ada) == 4
    assert index.find(ada) == []
    assert len(index.find(bob)) == 1
    assert _erased(deployment.engine) == {
        ("order-sync", "crm"): 2,
        ("order-sync", "erp"): 1,
        ("billing", "crm"): 1,
    }
    assert index.erase(ada) == 0  # nothing left: counts unchanged
    index.record_later([record(bob, 5)])
    index.flush()
    assert index.erase(bob) == 2  # added to the existing count (upsert)
    assert _erased(deployment.engine)[("order-sync", "crm")] == 4
    assert _count(deployment.engine) == 0


def test_erase_keeps_the_rows_that_name_a_system_to_keep(
    deployment: Deployment, index: LineageIndex, hasher: SubjectHasher
) -> None:
    """A system that did not erase keeps every row naming it (either end or the receiver)."""
    ada = hasher.digest("email", "ada@example.com")
    index.record_later(
        [
            record(ada, 0),  # erp -> crm
            record(ada, 1, receiver="billing", source="billing", target="billing"),
            record(ada, 2, receiver="shop", source="shop", target="crm"),
        ]
    )
    index.flush()
    assert index.erase(ada, keep=["crm"]) == 1
    assert [r.receiver for r in index.find(ada)] == ["crm", "shop"]
    assert _erased(deployment.engine) == {("order-sync", "billing"): 1}
    assert index.erase(ada, keep=["erp"]) == 1
    assert [r.receiver for r in index.find(ada)] == ["crm"]


def test_prune_deletes_expired_rows_in_batches(
    deployment: Deployment, index: LineageIndex, hasher: SubjectHasher
) -> None:
    subject = hasher.digest("email", "ada@example.com")
    index.record_later([record(subject, n, expires_at=T0 + timedelta(days=n)) for n in range(1, 8)])
    index.flush()
    assert index.prune(T0 + timedelta(days=5)) == 5  # batches of 2: 2 + 2 + 1
    assert [r.expires_at for r in index.find(subject)] == [
        T0 + timedelta(days=6),
        T0 + timedelta(days=7),
    ]
    assert index.prune(T0 + timedelta(days=5)) == 0
    assert _erased(deployment.engine) == {}  # expiry is no erasure


def test_prune_defaults_to_the_injected_clock(
    deployment: Deployment, hasher: SubjectHasher
) -> None:
    clock = ManualClock(T0 + timedelta(days=2))
    index = LineageIndex(deployment.engine, hasher, clock=clock, linger=0.01)
    subject = hasher.digest("email", "ada@example.com")
    index.record_later([record(subject, 0, expires_at=T0 + timedelta(days=1)), record(subject, 1)])
    index.flush()
    assert index.prune() == 1
    index.close()
    assert len(index.find(subject)) == 1


def test_a_route_turns_sightings_into_records_per_receiver() -> None:
    integration = Integration.model_validate(
        {
            "source": "erp",
            "target": "crm",
            "client": "crm-sync",
            "purpose": "Sync orders",
            "legal_basis": "contract",
            "data_categories": ["user.contact.email"],
            "retention": "P30D",
        }
    )
    systems = {
        "erp": System.model_validate({"url": "https://erp.example", "location": "DE"}),
        "crm": System.model_validate({"url": "https://crm.example", "location": "US"}),
    }
    route = RouteLineage.of("order-sync", integration, "GET /orders/{id}", "erp", systems)
    hasher = SubjectHasher(b"k" * 32)
    sightings = [
        Sighting("email", "ada@example.com", "upstream", "request"),
        Sighting("email", "ada@example.com", "caller", "response"),
        Sighting("email", "ada@example.com", "caller", "response"),  # twice in one body
    ]
    records = route.records(sightings, hasher, time=T0, audit_index=7, correlation_id="c")
    assert [(r.receiver, r.receiver_country, r.direction) for r in records] == [
        ("erp", "DE", "request"),
        ("crm", "US", "response"),
    ]
    assert {r.subject for r in records} == {hasher.digest("email", "ada@example.com")}
    assert records[0].expires_at == T0 + timedelta(days=30)
    assert records[0].categories == ("user.contact.email",)
    assert (records[0].audit_index, records[0].source, records[0].target) == (7, "erp", "crm")
    # A push route (upstream is the target): the caller is the source.
    push = RouteLineage.of("order-sync", integration, "POST /orders", "crm", systems)
    assert push.receivers == {"upstream": ("crm", "US"), "caller": ("erp", "DE")}
