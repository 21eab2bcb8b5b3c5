"""Closing a data-subject request: lineage erased, statement recorded, receipt kept.

When every system's part is final, :func:`close_request` erases the person's
lineage rows (an erasure; those naming a system that failed stay) and, once
an erasure completed, the answers kept for the person's other requests,
builds the closing statement from the stored rows, records its digest in
the ``privacy.request.close`` entry, drops the sealed identifier and keeps
the receipt (:func:`store_receipt`): each system's outcome with the
inclusion proofs of every step's audit entry and of the trace's entries. A
receipt that cannot be built yet (no tree head covers the entries) is built
when it is first asked for.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import select, update

from interlock.audit.errors import AuditError
from interlock.privacy import receipts, request_audit
from interlock.privacy.request_parts import REQUESTS, SYSTEMS, RequestParts
from interlock.privacy.request_views import trace_of
from interlock.store.base import as_utc

__all__ = ["close_request", "store_receipt"]

_log = structlog.get_logger(__name__)


def close_request(parts: RequestParts, request_id: str) -> None:
    """Close the request whose systems are all final; record it and keep its receipt."""
    with parts.engine.connect() as connection:
        request = connection.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).one()
        systems = list(
            connection.execute(select(SYSTEMS).where(SYSTEMS.c.request_id == request_id))
        )
    outcome: Literal["completed", "incomplete"] = (
        "completed" if all(s.status != "failed" for s in systems) else "incomplete"
    )
    closed = parts.clock().replace(microsecond=0)
    statement = _statement(request, systems, closed, outcome)
    if request.kind == "erase":
        # The index must not itself remain a record of the person (issue 20, item 5),
        # except where a system failed: it still holds the data, and the rows are how a
        # new erasure finds it (without them a retry asked nobody and closed completed).
        # Before the close entry: a crash in between repeats the erasure (it is idempotent).
        failed = [s.system for s in systems if s.status == "failed"]
        parts.lineage.erase(bytes(request.subject), keep=failed)
        if outcome == "completed":
            _erase_answers(parts, request)
    index = parts.audit.record(
        request_audit.closed_entry(
            request_audit.ACTOR,
            request_id,
            outcome,
            receipts.statement_digest(statement),
            time=closed,
        )
    )
    with parts.engine.begin() as connection:
        connection.execute(
            update(REQUESTS)
            .where(REQUESTS.c.id == request_id, REQUESTS.c.status == "open")
            .values(
                status="closed",
                outcome=outcome,
                closed_at=closed,
                closed_index=index,
                sealed=None,  # the identifier goes with the open request
            )
        )
    _log.info("privacy_request_closed", request=request_id, outcome=outcome)
    store_receipt(parts, request_id)


def _erase_answers(parts: RequestParts, erasure: Any) -> None:
    """Delete the sealed answers of the person's other requests (their digests stay).

    Every system's access/export answer is kept sealed for the export bundle: a
    copy of the person's data in Interlock itself, which a completed erasure must
    not leave behind (Art. 17). The same person is the same keyed hash of the
    same identifier kind. The receipts keep proving what was answered: the
    digests are not touched. Idempotent, like the lineage erasure before it.
    """
    others = select(REQUESTS.c.id).where(
        REQUESTS.c.subject == erasure.subject, REQUESTS.c.id != erasure.id
    )
    with parts.engine.begin() as connection:
        erased = connection.execute(
            update(SYSTEMS)
            .where(SYSTEMS.c.request_id.in_(others), SYSTEMS.c.answer.is_not(None))
            .values(answer=None)
        ).rowcount
    if erased:
        _log.info("privacy_request_answers_erased", request=erasure.id, answers=erased)


def store_receipt(parts: RequestParts, request_id: str) -> dict[str, Any] | None:
    """Build and keep the closed request's receipt; None without the audit database."""
    if parts.audit_engine is None:
        return None
    from interlock.audit.evidence import evidence_for

    with parts.engine.connect() as connection:
        request = connection.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).one()
        systems = list(
            connection.execute(select(SYSTEMS).where(SYSTEMS.c.request_id == request_id))
        )
    if request.status != "closed" or request.closed_index is None:
        return None
    outcome: Literal["completed", "incomplete"] = (
        "completed" if request.outcome == "completed" else "incomplete"
    )
    statement = _statement(request, systems, as_utc(request.closed_at), outcome)
    indexes = {request.created_index, request.closed_index}
    for system in systems:
        indexes.update({system.asked_index, system.answered_index})
        indexes.update(trace_of(system)[1])
    try:
        evidence = evidence_for(parts.audit_engine, [i for i in indexes if i is not None])
    except AuditError as exc:
        _log.warning("privacy_receipt_deferred", request=request_id, error=exc.message)
        return None
    receipt: dict[str, Any] = receipts.build_receipt(statement, evidence, request.closed_index)
    with parts.engine.begin() as connection:
        connection.execute(
            update(REQUESTS)
            .where(REQUESTS.c.id == request_id)
            .values(receipt=json.dumps(receipt, sort_keys=True))
        )
    return receipt


def _statement(
    request: Any, systems: list[Any], closed: datetime, outcome: Literal["completed", "incomplete"]
) -> receipts.Statement:
    """The receipt's statement, from the stored rows (the same bytes whenever it is rebuilt)."""
    ordered = sorted(systems, key=lambda s: s.system)
    return receipts.Statement(
        request_id=request.id,
        kind=request.kind,
        subject_kind=request.subject_kind,
        created=as_utc(request.created_at),
        deadline=as_utc(request.deadline),
        closed=closed,
        outcome=outcome,
        extension_reason=request.extension_reason,
        systems=tuple(
            receipts.SystemOutcome(
                system=s.system,
                connector=s.connector,
                status=s.status,
                records=s.records,
                answer_digest=s.answer_digest,
                error=s.error,
                asked_index=s.asked_index,
                answered_index=s.answered_index,
            )
            for s in ordered
        ),
        created_index=request.created_index,
        trace_indexes=tuple(sorted({i for s in ordered for i in trace_of(s)[1]})),
    )
