"""Data-subject requests (GDPR Art. 15-17, 19, 20) as tracked, resumable objects.

:class:`PrivacyRequests` is the one service the CLI (``interlock privacy
request``) and the HTTP API use. A request names a person by an identifier
of a kind the manifest's subject locators declare; the systems it goes to
are those the lineage index found (every system that received the person's
data through an integration) plus any the operator names. Each system is
asked through its connector (webhook, SQL) or, without one, listed for the
operator to act on and confirm (``manual``).

Every step is an audit entry (:mod:`interlock.privacy.request_audit`). The
work is done by :class:`~interlock.privacy.request_worker.RequestWorker`
(:meth:`PrivacyRequests.run_due`): ask, retry, resume after a crash, and
close (:mod:`interlock.privacy.request_closing`) with a receipt listing each
system's outcome and the audit entries' inclusion proofs.
"""

from __future__ import annotations

import builtins
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy import Engine, insert, select, update

from interlock.actors import Actor
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.errors import InvalidRequestError, NotFoundError, did_you_mean
from interlock.gdpr.identifiers import normalise
from interlock.privacy import request_audit
from interlock.privacy.connectors import (
    ACTIONS,
    ConnectorFactory,
    ConnectorKind,
    canonical_data,
    connector_kind,
)
from interlock.privacy.request_closing import store_receipt
from interlock.privacy.request_parts import (
    REQUESTS,
    SYSTEMS,
    LineageLookup,
    RequestParts,
    SubjectDigest,
    answer_aad,
    request_aad,
)
from interlock.privacy.request_views import FINAL, RequestView, add_months, iso, request_view
from interlock.privacy.request_worker import DEFAULT_RETRY_DELAYS, RequestWorker

__all__ = ["PrivacyRequests"]

_log = structlog.get_logger(__name__)

_CORRECTION_FIELD: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MAX_CORRECTIONS: Final = 32
_MAX_CORRECTION_VALUE: Final = 1000
_MAX_REASON: Final = 2000
_EXPORT_FORMAT: Final = "interlock-dsr-export/1"


class PrivacyRequests:
    """Create, advance, extend, confirm and report data-subject requests."""

    def __init__(  # noqa: PLR0917  (the service's parts, in the order the brief fixed)
        self,
        engine: Engine,
        keyring: Keyring,
        manifest: Manifest,
        audit: AuditSink,
        lineage: LineageLookup,
        hasher: SubjectDigest,
        *,
        clock: Clock = utc_now,
        connectors: ConnectorFactory | None = None,
        audit_engine: Engine | None = None,
        retry_delays: Sequence[timedelta] = DEFAULT_RETRY_DELAYS,
        worker: str | None = None,
    ) -> None:
        """The service on the store ``engine``.

        ``connectors`` builds each webhook/SQL system's connector (by name; see
        :func:`interlock.privacy.connectors.connector_factory`); without it
        such systems fail with a clear error when asked. ``audit_engine``: the
        audit log's database, for the receipt's inclusion proofs (without it
        a closed request has no receipt). ``retry_delays``: the waits between
        attempts (``len + 1`` attempts in all). ``worker`` names this process
        in leases (default: a random id).
        """
        self._parts = RequestParts(engine, keyring, audit, lineage, clock, audit_engine)
        self._engine = engine
        self._keyring = keyring
        self._manifest = manifest
        self._audit = audit
        self._lineage = lineage
        self._hasher = hasher
        self._clock = clock
        self.worker = RequestWorker(
            self._parts, connectors, retry_delays=retry_delays, worker=worker
        )

    def run_due(self, now: datetime | None = None, *, limit: int = 50) -> int:
        """Advance the requests with due work (at most ``limit``); how many steps were taken.

        A step is one system asked (answered, failed or scheduled for a retry)
        or one request closed; 0 means nothing was due.
        """
        return self.worker.run_due(now, limit=limit)

    # -- creating ---------------------------------------------------------------

    def create(
        self,
        kind: str,
        subject_kind: str,
        identifier: str,
        *,
        actor: Actor,
        region: str | None = None,
        corrections: Mapping[str, str] | None = None,
        systems: Iterable[str] | None = None,
    ) -> RequestView:
        """Open a request of ``kind`` (access, export, erase, rectify) about one person.

        The identifier is normalised for ``subject_kind`` and kept sealed
        until the request closes; it never reaches the audit trail or a view.
        Raises :class:`InvalidRequestError` for an unknown kind, an identifier
        kind no subject locator declares, a malformed identifier, corrections
        on anything but ``rectify`` (which needs them), or an unknown system.
        """
        if kind not in ACTIONS:
            raise InvalidRequestError(f"a request is one of {', '.join(ACTIONS)}, not {kind!r}")
        declared = self.declared_kinds()
        if subject_kind not in declared:
            hint = did_you_mean(subject_kind, declared)
            raise InvalidRequestError(
                f"identifier kind {subject_kind!r} is not declared by any subject locator"
                + (hint or f"; declared: {', '.join(sorted(declared)) or 'none'}")
            )
        fields = _checked_corrections(kind, corrections)
        named = self._named_systems(systems)
        try:
            normalised = normalise(subject_kind, identifier, region=region)
        except ValueError as exc:
            raise InvalidRequestError(
                f"the {subject_kind} identifier is not valid: {exc}"
            ) from None
        subject = self._hasher.digest(subject_kind, normalised)
        targets = self._targets(subject, named, subject_kind)
        request_id = "dsr_" + secrets.token_urlsafe(18)
        created = self._clock().replace(microsecond=0)
        deadline = add_months(created, 1)
        index = self._audit.record(
            request_audit.created_entry(
                actor.label,
                request_id,
                kind,
                subject_kind,
                deadline=deadline,
                systems=len(targets),
                time=created,
            )
        )
        sealed = self._keyring.seal(
            canonical_data({"identifier": normalised, "corrections": fields}),
            request_aad(request_id),
        )
        with self._engine.begin() as connection:
            connection.execute(
                insert(REQUESTS).values(
                    id=request_id,
                    kind=kind,
                    subject_kind=subject_kind,
                    subject=subject,
                    sealed=sealed,
                    status="open",
                    actor=actor.label,
                    created_at=created,
                    deadline=deadline,
                    created_index=index,
                )
            )
            if targets:
                connection.execute(
                    insert(SYSTEMS),
                    [
                        {
                            "request_id": request_id,
                            "system": name,
                            "connector": connector,
                            "status": "manual-pending" if connector == "manual" else "pending",
                            "integrations": json.dumps(trace),
                            "attempts": 0,
                        }
                        for name, (connector, trace) in sorted(targets.items())
                    ],
                )
        _log.info("privacy_request_created", request=request_id, kind=kind, systems=len(targets))
        return self.get(request_id)

    def declared_kinds(self) -> frozenset[str]:
        """The identifier kinds the manifest's subject locators declare."""
        kinds: set[str] = set()
        for integration in self._manifest.integrations.values():
            kinds.update(locator.kind for locator in integration.subjects)
            for route in integration.routes:
                kinds.update(locator.kind for locator in route.subjects)
        return frozenset(kinds)

    def _named_systems(self, systems: Iterable[str] | None) -> tuple[str, ...]:
        named = tuple(dict.fromkeys(systems or ()))
        unknown = [name for name in named if name not in self._manifest.systems]
        if unknown:
            hint = did_you_mean(unknown[0], self._manifest.systems)
            raise InvalidRequestError(f"no system named {unknown[0]!r} in the manifest{hint}")
        return named

    def _targets(
        self, subject: bytes, named: tuple[str, ...], subject_kind: str
    ) -> dict[str, tuple[ConnectorKind, dict[str, list[Any]]]]:
        """Each system to ask: its connector and the trace (integrations, audit indexes).

        The systems the trace found are every end of a flow that carried the
        person's data: the system that received it and the one it came from (the
        integration's other end), which holds the data too. Named systems are added.
        """
        integrations: dict[str, set[str]] = {}
        audit: dict[str, set[int]] = {}
        for record in self._lineage.find(subject):
            sender = record.source if record.receiver == record.target else record.target
            for holder in dict.fromkeys((record.receiver, sender)):
                integrations.setdefault(holder, set()).add(record.integration)
                if record.audit_index is not None:
                    audit.setdefault(holder, set()).add(int(record.audit_index))
        targets: dict[str, tuple[ConnectorKind, dict[str, list[Any]]]] = {}
        for name in sorted(set(integrations) | set(named)):
            trace: dict[str, builtins.list[Any]] = {
                "integrations": sorted(integrations.get(name, ())),
                "audit": sorted(audit.get(name, ())),
            }
            targets[name] = (self._connector_of(name, subject_kind), trace)
        return targets

    def _connector_of(self, name: str, subject_kind: str) -> ConnectorKind:
        system = self._manifest.systems.get(name)
        if system is None:  # a system the lineage knows but the manifest no longer has
            return "manual"
        privacy = system.privacy
        if privacy is not None and privacy.kinds and subject_kind not in privacy.kinds:
            return "manual"  # its connector cannot look a person up by this kind
        return connector_kind(system)

    # -- reading ----------------------------------------------------------------

    def get(self, request_id: str) -> RequestView:
        """The request ``request_id``; :class:`NotFoundError` when there is none."""
        with self._engine.connect() as connection:
            row = connection.execute(
                select(REQUESTS).where(REQUESTS.c.id == request_id)
            ).one_or_none()
            if row is None:
                ids = connection.execute(select(REQUESTS.c.id)).scalars().all()
                raise NotFoundError.unknown("data-subject request", request_id, ids, where="")
            systems = list(
                connection.execute(select(SYSTEMS).where(SYSTEMS.c.request_id == request_id))
            )
        return request_view(row, systems, self._clock())

    def list(self, status: str | None = None) -> builtins.list[RequestView]:
        """Every request, newest first; ``status`` ``open``/``closed``/``overdue`` filters."""
        if status not in {None, "open", "closed", "overdue"}:
            raise InvalidRequestError("status is open, closed or overdue")
        query = select(REQUESTS).order_by(REQUESTS.c.created_at.desc(), REQUESTS.c.id)
        if status is not None:
            query = query.where(REQUESTS.c.status == ("closed" if status == "closed" else "open"))
        now = self._clock()
        with self._engine.connect() as connection:
            rows = builtins.list(connection.execute(query))
            systems: dict[str, builtins.list[Any]] = {}
            for system in connection.execute(select(SYSTEMS)):
                systems.setdefault(system.request_id, []).append(system)
        views = [request_view(row, systems.get(row.id, []), now) for row in rows]
        return [v for v in views if v.overdue] if status == "overdue" else views

    def receipt(self, request_id: str) -> dict[str, Any] | None:
        """The closed request's receipt (built now if closing could not build it), or None."""
        view = self.get(request_id)
        if view.status != "closed":
            return None
        with self._engine.connect() as connection:
            stored = connection.execute(
                select(REQUESTS.c.receipt).where(REQUESTS.c.id == request_id)
            ).scalar_one()
        if stored is not None:
            document: dict[str, Any] = json.loads(stored)
            return document
        return store_receipt(self._parts, request_id)

    def export_bundle(self, request_id: str, *, actor: Actor) -> dict[str, Any]:
        """The Art. 20 bundle of an access or export request whose systems have all answered.

        ``{"format", "request", "subject_kind", "generated", "sources": [{"system",
        "integrations", "status", "records", "answer_digest"}], "data": {system: data}}``.
        Handing it out is recorded (``privacy.request.export``, durably, before the
        data leaves): the person's data leaves Interlock to ``actor``. Refused once a
        completed erasure of the same person has deleted the answers.
        """
        view = self.get(request_id)
        if view.kind not in {"access", "export"}:
            raise InvalidRequestError(f"a {view.kind} request has no export")
        waiting = [s.system for s in view.systems if s.status not in FINAL]
        if waiting:
            raise InvalidRequestError(
                f"not every system has answered yet (waiting for {', '.join(waiting)})"
            )
        with self._engine.connect() as connection:
            rows = list(
                connection.execute(
                    select(SYSTEMS.c.system, SYSTEMS.c.answer, SYSTEMS.c.answer_digest).where(
                        SYSTEMS.c.request_id == request_id
                    )
                )
            )
        if any(row.answer is None and row.answer_digest is not None for row in rows):
            # An answer with a digest was stored: a completed erasure deleted it since.
            raise InvalidRequestError(
                "the answers of this request were deleted when an erasure of the same person "
                "completed; a new access or export request asks the systems again"
            )
        answers = {row.system: row.answer for row in rows}
        data: dict[str, Any] = {}
        for system in view.systems:
            blob = answers.get(system.system)
            if blob is not None:
                data[system.system] = json.loads(
                    self._keyring.open(blob, answer_aad(request_id, system.system))
                )
        now = self._clock()
        records = sum(s.records or 0 for s in view.systems)
        self._audit.record(
            request_audit.exported_entry(actor.label, request_id, len(data), records, time=now)
        )
        return {
            "format": _EXPORT_FORMAT,
            "request": request_id,
            "subject_kind": view.subject_kind,
            "generated": iso(now),
            "sources": [
                {
                    "system": s.system,
                    "integrations": list(s.integrations),
                    "status": s.status,
                    "records": s.records,
                    "answer_digest": s.answer_digest,
                }
                for s in view.systems
            ],
            "data": data,
        }

    # -- the operator's steps ------------------------------------------------------

    def extend(self, request_id: str, *, months: int, reason: str, actor: Actor) -> RequestView:
        """Extend the deadline by ``months`` (Art. 12(3): two further months at most, in all).

        Only while the request is open and before the first month has passed
        (the person must be told of the extension within it); ``reason`` is
        required and recorded.
        """
        if months not in {1, 2}:
            raise InvalidRequestError("a deadline is extended by 1 or 2 months")
        reason = reason.strip()
        if not reason:
            raise InvalidRequestError("an extension needs a reason (Art. 12(3))")
        if len(reason) > _MAX_REASON:
            raise InvalidRequestError(f"the reason is at most {_MAX_REASON} characters")
        view = self.get(request_id)
        if view.status != "open":
            raise InvalidRequestError("only an open request can be extended")
        now = self._clock()
        first_month = add_months(view.created, 1)
        if now > first_month:
            raise InvalidRequestError(
                "the first month has passed: an extension must be decided and told within it "
                "(Art. 12(3))"
            )
        extended = next(
            (k for k in range(3) if add_months(view.created, 1 + k) == view.deadline), 2
        )
        if extended + months > 2:
            raise InvalidRequestError(
                f"the deadline was extended by {extended} month(s) already; "
                "Art. 12(3) allows two further months in all"
            )
        deadline = add_months(view.created, 1 + extended + months)
        self._audit.record(
            request_audit.extended_entry(actor.label, request_id, deadline, reason, time=now)
        )
        reasons = f"{view.extension_reason}\n{reason}" if view.extension_reason else reason
        with self._engine.begin() as connection:
            connection.execute(
                update(REQUESTS)
                .where(REQUESTS.c.id == request_id, REQUESTS.c.status == "open")
                .values(deadline=deadline, extension_reason=reasons)
            )
        return self.get(request_id)

    def confirm(
        self, request_id: str, system: str, status: str, *, actor: Actor, note: str
    ) -> RequestView:
        """The operator acted on a ``manual`` system: it is ``done`` or holds ``not_found``.

        ``note`` (required) says what was done; write no identifier into it.
        The request closes on the next :meth:`run_due` once every system is final.
        """
        if status not in {"done", "not_found"}:
            raise InvalidRequestError("a manual system is confirmed done or not_found")
        note = note.strip()
        if not note or len(note) > _MAX_REASON:
            raise InvalidRequestError(
                f"a confirmation needs a note of 1 to {_MAX_REASON} characters"
            )
        view = self.get(request_id)
        part = next((s for s in view.systems if s.system == system), None)
        if part is None:
            hint = did_you_mean(system, [s.system for s in view.systems])
            raise NotFoundError(f"request {request_id} does not involve system {system!r}{hint}")
        if part.status != "manual-pending":
            raise InvalidRequestError(
                f"system {system!r} is {part.status}, not waiting for a manual confirmation"
            )
        entry = request_audit.answered_entry(
            request_id, system, "done" if status == "done" else "not_found",
            time=self._clock(), actor=actor.label,
        )  # fmt: skip
        index = self._audit.record(entry.model_copy(update={"reason": note}))
        with self._engine.begin() as connection:
            connection.execute(
                update(SYSTEMS)
                .where(
                    SYSTEMS.c.request_id == request_id,
                    SYSTEMS.c.system == system,
                    SYSTEMS.c.status == "manual-pending",
                )
                .values(status=status, answered_index=index, error=None)
            )
        return self.get(request_id)


def _checked_corrections(kind: str, corrections: Mapping[str, str] | None) -> dict[str, str]:
    if kind != "rectify":
        if corrections:
            raise InvalidRequestError("only a rectify request carries corrections")
        return {}
    if not corrections:
        raise InvalidRequestError("a rectify request needs at least one correction (field=value)")
    if len(corrections) > _MAX_CORRECTIONS:
        raise InvalidRequestError(f"at most {_MAX_CORRECTIONS} corrections")
    checked: dict[str, str] = {}
    for field, value in corrections.items():
        if not _CORRECTION_FIELD.match(field) or field == "subject":
            raise InvalidRequestError(
                "a corrected field's name is a letter or _ then letters, digits or _ "
                "(and not 'subject')"
            )
        if not isinstance(value, str) or len(value) > _MAX_CORRECTION_VALUE:
            raise InvalidRequestError(
                f"a corrected value is text of at most {_MAX_CORRECTION_VALUE} characters"
            )
        checked[field] = value
    return checked
