"""The closing receipt of a data-subject request: what each system answered, proven by the log.

A closed request is summed up in a :class:`Statement`: the request (id, kind,
the kind of identifier), its times, its outcome and each system's part, with
the audit-log indexes of the steps that back them (created, each system asked
and answered, and the ``gateway.request`` entries the trace found). The
statement's digest (:func:`statement_digest`: SHA-256 of its canonical JSON,
:mod:`interlock.proofs.canonical`) is written into the request's
``privacy.request.close`` entry, so the log itself vouches for the statement.

:func:`build_receipt` puts the statement next to those entries and their
inclusion proofs against one signed tree head (:func:`interlock.audit.evidence.evidence_for`).
Anyone holding the log's verifier key checks it offline with
:func:`interlock.sdk.receipts.verify_receipt` (or ``interlock audit
verify-receipt``). The receipt names no person: no identifier and no hash of
one, only the request id the requester was given.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from interlock.audit.errors import AuditError
from interlock.audit.evidence import Evidence
from interlock.privacy.request_audit import CLOSE, iso_seconds
from interlock.proofs.canonical import JsonValue, canonical_json

__all__ = [
    "FINAL_STATUSES",
    "MAX_STATEMENT_BYTES",
    "RECEIPT_FORMAT",
    "Statement",
    "SystemOutcome",
    "build_receipt",
    "statement_digest",
    "statement_json",
]

RECEIPT_FORMAT: Final = "interlock-dsr-receipt/1"
#: The canonical statement's size cap (hundreds of systems fit; the SDK refuses more).
MAX_STATEMENT_BYTES: Final = 1024 * 1024

#: A system's status once it answered (or the operator confirmed it): these have an
#: ``answered_index``. ``pending`` and ``asked`` are systems still waiting when the
#: request closed (an ``incomplete`` one).
FINAL_STATUSES: Final = frozenset({"done", "not_found", "failed", "manual"})
_STATUSES: Final = FINAL_STATUSES | {"pending", "asked"}
#: A ``completed`` request: every system acted, held nothing, or was confirmed by hand.
_SUCCESSES: Final = frozenset({"done", "not_found", "manual"})


def _index(value: int | None, name: str) -> None:
    if value is not None and (isinstance(value, bool) or not 0 <= value < 2**53):
        raise ValueError(f"{name} is not an audit-log index")


@dataclass(frozen=True)
class SystemOutcome:
    """One system's part in a closed request, and the log entries that back it.

    ``asked_index``: the entry of the last ``privacy.request.ask`` (None when no
    connector was asked: a ``manual`` system). ``answered_index``: the
    ``privacy.request.answer`` entry, present exactly when ``status`` is final.
    ``records``/``answer_digest`` are the answer entry's; ``error`` is the
    service's last error text (informational: bound by the digest, not by an entry).
    """

    system: str
    connector: str
    status: str
    records: int | None
    answer_digest: str | None
    error: str | None
    asked_index: int | None
    answered_index: int | None

    def __post_init__(self) -> None:
        """Refuse a status the receipt format does not know, or indexes that are not ones."""
        if self.status not in _STATUSES:
            raise ValueError(f"system {self.system!r}: unknown status {self.status!r}")
        if (self.answered_index is not None) != (self.status in FINAL_STATUSES):
            raise ValueError(
                f"system {self.system!r}: an answered_index goes with a final status, only"
            )
        if self.records is not None and (isinstance(self.records, bool) or self.records < 0):
            raise ValueError(f"system {self.system!r}: records is a count")
        _index(self.asked_index, f"system {self.system!r}: asked_index")
        _index(self.answered_index, f"system {self.system!r}: answered_index")


@dataclass(frozen=True)
class Statement:
    """What a closed data-subject request says about itself (the receipt's signed content).

    Times are aware datetimes (written in UTC to the second). ``extension_reason``
    is set when the deadline was extended (Art. 12(3)). ``trace_indexes``: the
    ``gateway.request`` entries through which the systems received the data.
    """

    request_id: str
    kind: str
    subject_kind: str
    created: datetime
    deadline: datetime
    closed: datetime
    outcome: Literal["completed", "incomplete"]
    extension_reason: str | None
    systems: tuple[SystemOutcome, ...]
    created_index: int
    trace_indexes: tuple[int, ...]

    def __post_init__(self) -> None:
        """Refuse a statement that contradicts itself."""
        for name in ("created", "deadline", "closed"):
            if getattr(self, name).tzinfo is None:
                raise ValueError(f"{name} must carry a time zone")
        if self.outcome not in ("completed", "incomplete"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        names = [s.system for s in self.systems]
        if len(set(names)) != len(names):
            raise ValueError("a system appears twice in the statement")
        if self.outcome == "completed" and any(s.status not in _SUCCESSES for s in self.systems):
            raise ValueError("a completed request has every system done, not_found or manual")
        _index(self.created_index, "created_index")
        for index in self.trace_indexes:
            _index(index, "a trace index")
        if len(set(self.trace_indexes)) != len(self.trace_indexes):
            raise ValueError("a trace index appears twice")

    def indexes(self) -> frozenset[int]:
        """Every log index the statement names (the close entry's aside)."""
        named = {self.created_index, *self.trace_indexes}
        for system in self.systems:
            named.update(i for i in (system.asked_index, system.answered_index) if i is not None)
        return frozenset(named)


def _system_json(system: SystemOutcome) -> dict[str, JsonValue]:
    return {
        "system": system.system,
        "connector": system.connector,
        "status": system.status,
        "records": system.records,
        "answer_digest": system.answer_digest,
        "error": system.error,
        "asked_index": system.asked_index,
        "answered_index": system.answered_index,
    }


def statement_json(statement: Statement) -> dict[str, JsonValue]:
    """The statement as the receipt's JSON object (docs/privacy.md, "Receipts").

    Systems in order of name, trace indexes ascending, times as
    ``YYYY-MM-DDTHH:MM:SSZ``: one object per statement, so one digest.
    """
    traces: list[JsonValue] = []
    traces.extend(sorted(statement.trace_indexes))
    return {
        "request": statement.request_id,
        "kind": statement.kind,
        "subject_kind": statement.subject_kind,
        "created": iso_seconds(statement.created),
        "deadline": iso_seconds(statement.deadline),
        "closed": iso_seconds(statement.closed),
        "outcome": statement.outcome,
        "extension_reason": statement.extension_reason,
        "systems": [_system_json(s) for s in sorted(statement.systems, key=lambda s: s.system)],
        "created_index": statement.created_index,
        "trace_indexes": traces,
    }


def statement_digest(statement: Statement) -> str:
    """``sha256:`` and the hex SHA-256 of the statement's canonical JSON.

    The close entry records it (``details.statement``); the SDK recomputes it.
    """
    encoded = canonical_json(statement_json(statement), max_bytes=MAX_STATEMENT_BYTES)
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


def build_receipt(statement: Statement, evidence: Evidence, closed_index: int) -> dict[str, Any]:
    """The receipt: the statement, its digest, and the entries that back it with their proofs.

    ``evidence`` must hold exactly the entries the statement names plus the
    close entry at ``closed_index``, none pruned, and the close entry must
    record this statement's digest: otherwise :class:`AuditError` (a receipt
    that could not verify is never issued).
    """
    _index(closed_index, "closed_index")
    digest = statement_digest(statement)
    wanted = statement.indexes() | {closed_index}
    held = {record["index"]: record for record in evidence.records}
    missing = sorted(wanted - held.keys())
    if missing:
        raise AuditError(f"the evidence lacks audit entry {missing[0]} the statement names")
    extra = sorted(held.keys() - wanted)
    if extra:
        raise AuditError(
            f"the evidence holds audit entry {extra[0]}, which the statement does not name"
        )
    pruned = sorted(i for i, record in held.items() if record["entry"] is None)
    if pruned:
        raise AuditError(f"audit entry {pruned[0]} was pruned: a receipt cannot show it")
    closing = json.loads(held[closed_index]["entry"])
    details = closing.get("details", {})
    if closing.get("action") != CLOSE or details.get("request") != statement.request_id:
        raise AuditError(
            f"audit entry {closed_index} does not close request {statement.request_id}"
        )
    if details.get("statement") != digest:
        raise AuditError(f"audit entry {closed_index} records another statement's digest")
    return {
        "format": RECEIPT_FORMAT,
        "statement": statement_json(statement),
        "statement_digest": digest,
        "closed_index": closed_index,
        "checkpoint": evidence.checkpoint,
        "entries": [dict(record) for record in evidence.records],
    }
