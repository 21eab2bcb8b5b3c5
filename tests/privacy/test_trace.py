"""``trace_subject``: per receiving system, when, how, on what terms, with provable entries."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from interlock.audit import AuditEntry, Outcome
from interlock.audit.service import AuditLog
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.privacy.lineage import (
    LineageIndex,
    LineageRecord,
    SubjectHasher,
    load_subject_hasher,
)
from interlock.privacy.trace import (
    AUTOMATED_DECISIONS,
    COMPLAINT,
    RIGHTS,
    UnknownKindError,
    trace_subject,
)
from interlock.sdk.audit import open_checkpoint, verify_entry
from interlock.store import Deployment
from interlock.testing.clock import ManualClock

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
ADA = "ada@example.com"

MANIFEST = """\
version: 1
systems:
  erp: {url: "https://erp.example", location: DE, owner: ERP team}
  crm: {url: "https://crm.example", location: US, owner: Sales operations}
roles:
  reader: {scopes: [orders.read]}
clients:
  crm-sync: {auth: [api_key], roles: [reader]}
integrations:
  order-sync:
    source: erp
    target: crm
    client: crm-sync
    purpose: Sync confirmed orders to the CRM for account managers
    legal_basis: contract
    data_categories: [user.contact.email, user.name]
    data_subjects: [customer]
    recipients: [Account managers]
    retention: P90D
    transfer: {destination: US, safeguard: SCC}
    subjects:
      - {kind: email, in: response, json: /customer/email}
    routes:
      - method: GET
        path: /orders/{id}
        upstream: erp
        scope: orders.read
        subjects: [{kind: customer_id, in: path, param: id}]
"""


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    """Two systems, one integration (ERP to a CRM in the US under SCC) with locators."""
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    return load_manifest(path)


@pytest.fixture
def hasher(deployment: Deployment) -> SubjectHasher:
    """The deployment's lineage hasher."""
    return load_subject_hasher(deployment.engine, deployment.keyring)


@pytest.fixture
def lineage(deployment: Deployment, hasher: SubjectHasher) -> Iterator[LineageIndex]:
    """The deployment's lineage index."""
    index = LineageIndex(deployment.engine, hasher, linger=0.01)
    yield index
    index.close()


@pytest.fixture
def audit_log(deployment: Deployment) -> Iterator[AuditLog]:
    """The deployment's audit log (its own database)."""
    log = AuditLog.open(deployment.settings, deployment.keyring, witnesses=[])
    yield log
    log.close()


def _request(log: AuditLog, minute: int) -> tuple[int, str]:
    """A gateway entry, as the gateway records one that identified a person."""
    correlation = f"req-{minute}"
    entry = AuditEntry(
        time=T0 + timedelta(minutes=minute),
        actor="client:crm-sync",
        action="gateway.request",
        integration="order-sync",
        source="erp",
        target="crm",
        data_categories=("user.contact.email", "user.name"),
        outcome=Outcome(result="success", status=200),
        correlation_id=correlation,
        details={"route": "GET /orders/{id}", "subjects": 2},
    )
    return log.sink.record(entry), correlation


def _row(
    subject: bytes, index: int, correlation: str, minute: int, **changes: Any
) -> LineageRecord:
    fields: dict[str, Any] = {
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
        "time": T0 + timedelta(minutes=minute),
        "audit_index": index,
        "correlation_id": correlation,
        "expires_at": T0 + timedelta(days=90, minutes=minute),
    }
    fields.update(changes)
    return LineageRecord(**fields)


@pytest.fixture
def seen(audit_log: AuditLog, lineage: LineageIndex, hasher: SubjectHasher) -> list[int]:
    """Ada's email went to the CRM twice (responses) and her address to the ERP once."""
    ada = hasher.digest("email", ADA)
    indexes = []
    for minute in (1, 5):
        index, correlation = _request(audit_log, minute)
        indexes.append(index)
        lineage.record_later([_row(ada, index, correlation, minute)])
    index, correlation = _request(audit_log, 9)
    indexes.append(index)
    lineage.record_later(
        [
            _row(
                ada,
                index,
                correlation,
                9,
                direction="request",
                receiver="erp",
                receiver_country="DE",
            )
        ]
    )
    assert lineage.flush()
    _request(audit_log, 20)  # somebody else's request: not in Ada's report
    return indexes


def test_a_traced_person_gets_each_receiving_system_with_its_terms_and_proofs(
    manifest: Manifest,
    lineage: LineageIndex,
    hasher: SubjectHasher,
    audit_log: AuditLog,
    seen: list[int],
) -> None:
    clock = ManualClock(T0 + timedelta(days=1))
    report = trace_subject(
        manifest, lineage, hasher, audit_log.store.engine, "email", ADA, now=clock
    )
    document = report.as_json()
    assert document["found"] is True
    assert document["kind"] == "email"
    assert document["subject"] == hasher.digest("email", ADA).hex()
    assert document["automated_decision_making"] == AUTOMATED_DECISIONS  # Art. 15(1)(h)
    # Art. 15(1)(e) and (f): the rights to rectification, erasure, restriction and
    # objection, and to lodge a complaint with a supervisory authority.
    assert document["rights"] == RIGHTS
    assert all(f"Art. {n}" in RIGHTS for n in (16, 17, 18, 21))
    assert "Art. 15(1)(e)" in RIGHTS
    assert document["complaint"] == COMPLAINT
    assert "Art. 77" in COMPLAINT
    assert "Art. 15(1)(f)" in COMPLAINT
    assert document["generated_at"] == "2026-03-03T08:00:00.000000Z"
    crm, erp = document["systems"]
    assert (crm["system"], crm["owner"], crm["location"], crm["countries"]) == (
        "crm",
        "Sales operations",
        "US",
        ["US"],
    )
    assert (crm["requests"], crm["first_seen"], crm["last_seen"]) == (
        2,
        "2026-03-02T08:01:00.000000Z",
        "2026-03-02T08:05:00.000000Z",
    )
    assert crm["received_from"] == ["erp"]  # Art. 15(1)(g)
    assert crm["audit_entries"] == seen[:2]
    (flow,) = crm["integrations"]
    assert flow["purpose"] == "Sync confirmed orders to the CRM for account managers"
    assert (flow["legal_basis"], flow["legal_basis_article"]) == ("contract", "Art. 6(1)(b)")
    assert flow["categories"] == ["user.contact.email", "user.name"]
    assert flow["data_subjects"] == ["customer"]
    assert flow["recipients"] == ["Account managers"]
    assert flow["retention"] == "P90D"
    assert flow["routes"] == ["GET /orders/{id}"]
    # Art. 15(2): the CRM is in a third country; the safeguard declared for it.
    (transfer,) = crm["transfers"]
    assert (transfer["destination"], transfer["safeguard"], transfer["article"]) == (
        "US",
        "SCC",
        "Art. 46(2)(c)",
    )
    assert (erp["system"], erp["location"], erp["transfers"], erp["directions"]) == (
        "erp",
        "DE",
        [],
        ["request"],
    )
    assert erp["received_from"] == ["crm"]
    # The entries, provable offline against the signed tree head.
    evidence = document["evidence"]
    checkpoint = open_checkpoint(evidence["checkpoint"], [audit_log.keys.verifier])
    assert [e["index"] for e in evidence["entries"]] == seen
    for record in evidence["entries"]:
        verify_entry(
            checkpoint,
            record["index"],
            record["entry"].encode(),
            base64.b64decode(record["leaf_hash"]),
            [base64.b64decode(p) for p in record["proof"]],
        )
    assert ADA not in json.dumps(document)


@pytest.mark.usefixtures("seen")
def test_a_person_never_seen_gets_the_same_shape_and_the_same_query(
    manifest: Manifest,
    lineage: LineageIndex,
    hasher: SubjectHasher,
    audit_log: AuditLog,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    statements: list[str] = []
    hashed: list[str] = []
    digest = SubjectHasher.digest

    def counting(self: SubjectHasher, kind: str, normalised: str) -> bytes:
        hashed.append(kind)
        return digest(self, kind, normalised)

    monkeypatch.setattr(SubjectHasher, "digest", counting)

    def count(*args: Any) -> None:
        statements.append(str(args[2]).split()[0])

    engine: Engine = lineage.engine  # the store
    event.listen(engine, "before_cursor_execute", count)
    try:
        found = trace_subject(manifest, lineage, hasher, audit_log.store.engine, "email", ADA)
        seen_statements, statements[:] = list(statements), []
        unseen = trace_subject(
            manifest, lineage, hasher, audit_log.store.engine, "email", "nobody@example.com"
        )
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert seen_statements == statements == ["SELECT"]  # one indexed query, either way
    assert hashed == ["email", "email"]
    assert found.found
    assert not unseen.found
    empty = unseen.as_json()
    assert empty["systems"] == []
    assert empty["evidence"]["entries"] == []
    assert empty["evidence"]["checkpoint"]
    assert set(empty) == set(found.as_json())


def test_without_the_audit_database_the_report_lists_indexes_only(
    manifest: Manifest, lineage: LineageIndex, hasher: SubjectHasher, seen: list[int]
) -> None:
    report = trace_subject(manifest, lineage, hasher, None, "email", ADA)
    assert report.evidence is None
    assert report.as_json()["evidence"] is None
    assert [s.audit_entries for s in report.systems] == [tuple(seen[:2]), (seen[2],)]


def test_an_undeclared_kind_is_refused_naming_the_declared_ones(
    manifest: Manifest, lineage: LineageIndex, hasher: SubjectHasher
) -> None:
    with pytest.raises(UnknownKindError) as refused:
        trace_subject(manifest, lineage, hasher, None, "phone", "+4930123456")
    assert "customer_id, email" in refused.value.message
    assert "+4930123456" not in refused.value.message


def test_an_integration_gone_from_the_manifest_keeps_what_was_recorded(
    tmp_path: Path, lineage: LineageIndex, hasher: SubjectHasher, seen: list[int]
) -> None:
    path = tmp_path / "renamed.yaml"
    path.write_text(MANIFEST.replace("order-sync:", "order-feed:"))
    report = trace_subject(load_manifest(path), lineage, hasher, None, "email", ADA)
    crm = report.as_json()["systems"][0]
    (flow,) = crm["integrations"]
    assert (flow["integration"], flow["declared"], flow["purpose"]) == ("order-sync", False, None)
    assert (flow["source"], flow["target"], flow["categories"]) == (
        "erp",
        "crm",
        ["user.contact.email", "user.name"],
    )
    assert crm["transfers"] == []  # nothing declared for it any more
