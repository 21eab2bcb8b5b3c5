"""What a data-subject request looks like from outside: views without the identifier.

:class:`RequestView` and :class:`SystemView` are the read side of
:class:`interlock.privacy.requests.PrivacyRequests`: the CLI prints them and
the HTTP API returns :meth:`RequestView.as_json`. They carry the request's
facts (kind, deadline, each system's status and audit entries), never the
person's identifier, corrections or data.
"""

from __future__ import annotations

import calendar
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from interlock.store.base import as_utc

__all__ = [
    "FINAL",
    "OPEN_STATES",
    "RequestView",
    "SystemView",
    "add_months",
    "iso",
    "request_view",
    "trace_of",
]

#: A system's states: ``pending`` (an attempt is due at ``next_attempt``),
#: ``asked`` (an attempt is under way, or was cut short by a crash),
#: ``manual-pending`` (no connector: waiting for the operator's confirmation),
#: and the final ``done``, ``not_found``, ``failed``.
FINAL: Final = frozenset({"done", "not_found", "failed"})
OPEN_STATES: Final = frozenset({"pending", "asked", "manual-pending"})


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus calendar months, the day clamped to the month's last (Art. 12(3))."""
    month0 = moment.month - 1 + months
    year, month = moment.year + month0 // 12, month0 % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def iso(moment: datetime | None) -> str | None:
    """An RFC 3339 UTC time with a ``Z``, or ``None``."""
    if moment is None:
        return None
    return as_utc(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def trace_of(row: Any) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The integrations and lineage audit indexes stored in ``row.integrations``.

    The column holds ``{"integrations": [...], "audit": [...]}``: through which
    integrations the system received the person's data, and the audit entries
    of those requests (the trace found at creation; they go into the receipt).
    """
    document = json.loads(row.integrations)
    return tuple(document.get("integrations", ())), tuple(document.get("audit", ()))


@dataclass(frozen=True)
class SystemView:
    """One system's part in a request."""

    system: str
    connector: str
    status: str
    integrations: tuple[str, ...]
    attempts: int
    next_attempt: datetime | None
    error: str | None
    records: int | None
    answer_digest: str | None
    asked_index: int | None
    answered_index: int | None

    def as_json(self) -> dict[str, Any]:
        """The view as a JSON object."""
        return {
            "system": self.system,
            "connector": self.connector,
            "status": self.status,
            "integrations": list(self.integrations),
            "attempts": self.attempts,
            "next_attempt": iso(self.next_attempt),
            "error": self.error,
            "records": self.records,
            "answer_digest": self.answer_digest,
            "asked_index": self.asked_index,
            "answered_index": self.answered_index,
        }


@dataclass(frozen=True)
class RequestView:
    """A data-subject request as the operator sees it (never the identifier)."""

    id: str
    kind: str
    subject_kind: str
    status: str
    outcome: str | None
    actor: str
    created: datetime
    deadline: datetime
    extension_reason: str | None
    closed: datetime | None
    overdue: bool
    created_index: int | None
    closed_index: int | None
    systems: tuple[SystemView, ...]

    def as_json(self) -> dict[str, Any]:
        """The view as a JSON object."""
        return {
            "id": self.id,
            "kind": self.kind,
            "subject_kind": self.subject_kind,
            "status": self.status,
            "outcome": self.outcome,
            "actor": self.actor,
            "created": iso(self.created),
            "deadline": iso(self.deadline),
            "extension_reason": self.extension_reason,
            "closed": iso(self.closed),
            "overdue": self.overdue,
            "created_index": self.created_index,
            "closed_index": self.closed_index,
            "systems": [s.as_json() for s in self.systems],
        }


def request_view(row: Any, systems: list[Any], now: datetime) -> RequestView:
    """The view of a request's row and its systems' rows (``privacy_requests``,
    ``privacy_request_systems``) at ``now``; ``overdue``: still open past the deadline.
    """
    deadline = as_utc(row.deadline)
    return RequestView(
        id=row.id,
        kind=row.kind,
        subject_kind=row.subject_kind,
        status=row.status,
        outcome=row.outcome,
        actor=row.actor,
        created=as_utc(row.created_at),
        deadline=deadline,
        extension_reason=row.extension_reason,
        closed=None if row.closed_at is None else as_utc(row.closed_at),
        overdue=row.status == "open" and now > deadline,
        created_index=row.created_index,
        closed_index=row.closed_index,
        systems=tuple(
            SystemView(
                system=s.system,
                connector=s.connector,
                status=s.status,
                integrations=trace_of(s)[0],
                attempts=s.attempts,
                next_attempt=None if s.next_attempt is None else as_utc(s.next_attempt),
                error=s.error,
                records=s.records,
                answer_digest=s.answer_digest,
                asked_index=s.asked_index,
                answered_index=s.answered_index,
            )
            for s in sorted(systems, key=lambda s: s.system)
        ),
    )
