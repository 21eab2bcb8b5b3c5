"""The audit entries of a data-subject request's steps: one shape, written and verified.

Every step of a request is evidence (issue 20, docs/privacy.md): the request
created, each system asked (per attempt), each system's answer, a deadline
extended, the request closed. The entries name the request by its id and the
system by its manifest name, never the person: the identifier stays out of
the append-only log. :mod:`interlock.privacy.receipts` and the SDK's receipt
verifier read these same fields back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final, Literal

from interlock.audit.entry import AuditEntry, Outcome, Volume

__all__ = [
    "ANSWER",
    "ASK",
    "CLOSE",
    "CREATE",
    "EXPORT",
    "EXTEND",
    "SystemStatus",
    "answered_entry",
    "asked_entry",
    "closed_entry",
    "created_entry",
    "exported_entry",
    "extended_entry",
    "iso_seconds",
]

CREATE: Final = "privacy.request.create"
ASK: Final = "privacy.request.ask"
ANSWER: Final = "privacy.request.answer"
EXTEND: Final = "privacy.request.extend"
EXPORT: Final = "privacy.request.export"
CLOSE: Final = "privacy.request.close"
ACTOR: Final = "system:privacy"

#: A system's part in a request: ``done`` (acted, or answered with its data),
#: ``not_found`` (holds nothing about the person), ``failed`` (no usable answer
#: after the last retry), ``manual`` (no connector: the operator confirmed it).
SystemStatus = Literal["done", "not_found", "failed", "manual"]


def iso_seconds(moment: datetime) -> str:
    """``moment`` in UTC to the second, as the entries (and a receipt's statement) write it."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def created_entry(
    actor: str,
    request_id: str,
    kind: str,
    subject_kind: str,
    *,
    deadline: datetime,
    systems: int,
    time: datetime,
) -> AuditEntry:
    """The request was created (``systems``: how many systems it will ask)."""
    return AuditEntry(
        time=time,
        actor=actor,
        action=CREATE,
        outcome=Outcome(result="success"),
        details={
            "request": request_id,
            "kind": kind,
            "subject_kind": subject_kind,
            "deadline": iso_seconds(deadline),
            "systems": systems,
        },
    )


def asked_entry(
    request_id: str, system: str, connector: str, attempt: int, *, time: datetime
) -> AuditEntry:
    """Interlock asked ``system`` (its ``attempt``-th try) through ``connector``."""
    return AuditEntry(
        time=time,
        actor=ACTOR,
        action=ASK,
        target=system,
        outcome=Outcome(result="success"),
        details={
            "request": request_id,
            "system": system,
            "connector": connector,
            "attempt": attempt,
        },
    )


def answered_entry(
    request_id: str,
    system: str,
    status: SystemStatus,
    *,
    time: datetime,
    records: int | None = None,
    answer_digest: str | None = None,
    error: str | None = None,
    actor: str = ACTOR,
) -> AuditEntry:
    """``system``'s final answer: its status, records and the digest of its data."""
    details: dict[str, str | int | bool] = {"request": request_id, "system": system,
                                            "status": status}  # fmt: skip
    if records is not None:
        details["records"] = records
    if answer_digest is not None:
        details["answer_digest"] = answer_digest
    return AuditEntry(
        time=time,
        actor=actor,
        action=ANSWER,
        target=system,
        outcome=Outcome(result="failure" if status == "failed" else "success"),
        reason=error[:2000] if error else None,
        details=details,
    )


def extended_entry(
    actor: str, request_id: str, deadline: datetime, reason: str, *, time: datetime
) -> AuditEntry:
    """The deadline was extended to ``deadline`` (Art. 12(3)), for ``reason``."""
    return AuditEntry(
        time=time,
        actor=actor,
        action=EXTEND,
        outcome=Outcome(result="success"),
        reason=reason[:2000],
        details={"request": request_id, "deadline": iso_seconds(deadline)},
    )


def exported_entry(
    actor: str, request_id: str, systems: int, records: int, *, time: datetime
) -> AuditEntry:
    """The Art. 20 bundle was handed out (personal data leaving Interlock): to whom, how much."""
    return AuditEntry(
        time=time,
        actor=actor,
        action=EXPORT,
        outcome=Outcome(result="success"),
        volume=Volume(records=records),
        details={"request": request_id, "systems": systems},
    )


def closed_entry(
    actor: str, request_id: str, outcome: str, statement_digest: str, *, time: datetime
) -> AuditEntry:
    """The request closed with ``outcome``; ``statement_digest`` binds the receipt's content."""
    return AuditEntry(
        time=time,
        actor=actor,
        action=CLOSE,
        outcome=Outcome(result="success" if outcome == "completed" else "partial_failure"),
        details={"request": request_id, "outcome": outcome, "statement": statement_digest},
    )
