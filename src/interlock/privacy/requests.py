"""Data-subject requests (GDPR Art. 15-17, 19, 20) as tracked, resumable objects.

:class:`PrivacyRequests` is the one service the CLI (``interlock privacy
request``) and the HTTP API use. A request names a person by an identifier
of a kind the manifest's subject locators declare; the systems it goes to
are those the lineage index found (every system that received the person's
data through an integration) plus any the operator names. Each system is
asked through its connector (webhook, SQL) or, without one, listed for the
operator to act on and confirm (``manual``).

Every step is an audit entry (:mod:`interlock.privacy.request_audit`), and
the work survives crashes. For each system, :meth:`PrivacyRequests.run_due`:

1. records the ``ask`` entry (durably), then in one transaction marks the
   system ``asked`` with the entry's index and counts the attempt — the
   decision to call;
2. calls the connector (the same ``Idempotency-Key`` every time);
3. records the ``answer`` entry (durably), then stores the final status, the
   record count and the answer (sealed) with its digest.

A process that dies between 1 and 3 leaves the system ``asked``: the next
run calls again (step 2) without a second ``ask`` entry for that attempt.
(Only a death in the instant between an entry becoming durable and the row
update that follows it can repeat that one entry.) Retryable failures wait
``retry_delays`` (1 min, 5 min, 30 min, 2 h by default) and fail after the
last; others fail at once. One worker holds a request at a time, across
processes and replicas: a lease taken by a conditional ``UPDATE``.

When every system is final the request closes: an erasure removes the
person's lineage rows (keeping the counts), the closing statement's digest is
recorded in the ``close`` entry, the sealed identifier is dropped, and the
receipt (:mod:`interlock.privacy.receipts`) lists each system's outcome with
the audit entries' inclusion proofs.
"""

from __future__ import annotations

import builtins
import importlib
import json
import re
import secrets
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

import structlog
from sqlalchemy import Engine, and_, exists, insert, or_, select, update

from interlock.actors import Actor
from interlock.audit.errors import AuditError
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.errors import ConfigError, InvalidRequestError, NotFoundError
from interlock.privacy import request_audit
from interlock.privacy.connectors import (
    ACTIONS,
    ConnectorError,
    ConnectorFactory,
    ConnectorKind,
    answer_digest,
    canonical_data,
    connector_kind,
)
from interlock.privacy.request_views import (
    FINAL,
    OPEN_STATES,
    RequestView,
    add_months,
    iso,
    request_view,
    trace_of,
)
from interlock.privacy.tables import RequestRow, RequestSystemRow
from interlock.store.base import as_utc, table_of

__all__ = [
    "DEFAULT_RETRY_DELAYS",
    "LEASE",
    "LineageLookup",
    "PrivacyRequests",
    "SubjectDigest",
]

_log = structlog.get_logger(__name__)

_REQUESTS: Final = table_of(RequestRow)
_SYSTEMS: Final = table_of(RequestSystemRow)

#: Waits after the 1st, 2nd, ... failed attempt; after the last, the system fails.
DEFAULT_RETRY_DELAYS: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
#: How long a worker holds a request (renewed before each system is asked).
LEASE: Final = timedelta(minutes=10)
_CORRECTION_FIELD: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MAX_CORRECTIONS: Final = 32
_MAX_CORRECTION_VALUE: Final = 1000
_MAX_REASON: Final = 2000
_EXPORT_FORMAT: Final = "interlock-dsr-export/1"


class SubjectDigest(Protocol):
    """The lineage key's keyed hash (``interlock.privacy.lineage.SubjectHasher``)."""

    def digest(self, kind: str, normalised: str) -> bytes:
        """The 32-byte keyed hash of ``kind`` and the normalised identifier."""
        ...


class LineageLookup(Protocol):
    """What requests need of ``interlock.privacy.lineage.LineageIndex``."""

    def find(self, subject: bytes) -> Sequence[Any]:
        """The subject's lineage records (with ``receiver``, ``integration``, ``audit_index``)."""
        ...

    def systems(self, subject: bytes) -> Mapping[str, frozenset[str]]:
        """Receiving system -> the integrations through which it received the data."""
        ...

    def erase(self, subject: bytes) -> int:
        """Delete the subject's rows (keeping the counts); how many went."""
        ...


def _request_aad(request_id: str) -> bytes:
    return f"interlock:privacy:request:{request_id}".encode()


def _answer_aad(request_id: str, system: str) -> bytes:
    return f"interlock:privacy:answer:{request_id}:{system}".encode()


def _normalise(kind: str, value: str, region: str | None) -> str:
    """The identifier normalised by ``interlock.gdpr.identifiers`` (IdentifierError: ValueError).

    Imported when first needed (the subjects helper's module; TODO(integrator):
    a plain import once ``interlock.gdpr.identifiers`` is on main).
    """
    identifiers = importlib.import_module("interlock.gdpr.identifiers")
    normalised = identifiers.normalise(kind, value, region=region)
    if not isinstance(normalised, str):
        raise TypeError("normalise returned no string")
    return normalised


def _receipts() -> Any:
    """``interlock.privacy.receipts`` (the receipts helper's module).

    TODO(integrator): a plain import of ``Statement``, ``SystemOutcome``,
    ``statement_digest`` and ``build_receipt`` once the module is on main.
    """
    return importlib.import_module("interlock.privacy.receipts")


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
        self._engine = engine
        self._keyring = keyring
        self._manifest = manifest
        self._audit = audit
        self._lineage = lineage
        self._hasher = hasher
        self._clock = clock
        self._connectors = connectors
        self._audit_engine = audit_engine
        self._delays = tuple(retry_delays)
        self.worker = worker or uuid.uuid4().hex

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
            raise InvalidRequestError(
                f"identifier kind {subject_kind!r} is not declared by any subject locator; "
                f"declared: {', '.join(sorted(declared)) or 'none'}"
            )
        fields = _checked_corrections(kind, corrections)
        named = self._named_systems(systems)
        try:
            normalised = _normalise(subject_kind, identifier, region)
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
            _request_aad(request_id),
        )
        with self._engine.begin() as connection:
            connection.execute(
                insert(_REQUESTS).values(
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
                    insert(_SYSTEMS),
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
            raise InvalidRequestError(f"no system named {unknown[0]!r} in the manifest")
        return named

    def _targets(
        self, subject: bytes, named: tuple[str, ...], subject_kind: str
    ) -> dict[str, tuple[ConnectorKind, dict[str, list[Any]]]]:
        """Each system to ask: its connector and the trace (integrations, audit indexes)."""
        found = self._lineage.systems(subject)
        audit: dict[str, set[int]] = {}
        for record in self._lineage.find(subject):
            if record.audit_index is not None:
                audit.setdefault(record.receiver, set()).add(int(record.audit_index))
        targets: dict[str, tuple[ConnectorKind, dict[str, list[Any]]]] = {}
        for name in sorted(set(found) | set(named)):
            trace: dict[str, builtins.list[Any]] = {
                "integrations": sorted(found.get(name, ())),
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
                select(_REQUESTS).where(_REQUESTS.c.id == request_id)
            ).one_or_none()
            if row is None:
                raise NotFoundError(f"no data-subject request {request_id!r}")
            systems = list(
                connection.execute(select(_SYSTEMS).where(_SYSTEMS.c.request_id == request_id))
            )
        return request_view(row, systems, self._clock())

    def list(self, status: str | None = None) -> builtins.list[RequestView]:
        """Every request, newest first; ``status`` ``open``/``closed``/``overdue`` filters."""
        if status not in {None, "open", "closed", "overdue"}:
            raise InvalidRequestError("status is open, closed or overdue")
        query = select(_REQUESTS).order_by(_REQUESTS.c.created_at.desc(), _REQUESTS.c.id)
        if status is not None:
            query = query.where(_REQUESTS.c.status == ("closed" if status == "closed" else "open"))
        now = self._clock()
        with self._engine.connect() as connection:
            rows = builtins.list(connection.execute(query))
            systems: dict[str, builtins.list[Any]] = {}
            for system in connection.execute(select(_SYSTEMS)):
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
                select(_REQUESTS.c.receipt).where(_REQUESTS.c.id == request_id)
            ).scalar_one()
        if stored is not None:
            document: dict[str, Any] = json.loads(stored)
            return document
        return self._store_receipt(request_id)

    def export_bundle(self, request_id: str) -> dict[str, Any]:
        """The Art. 20 bundle of an access or export request whose systems have all answered.

        ``{"format", "request", "subject_kind", "generated", "sources": [{"system",
        "integrations", "status", "records", "answer_digest"}], "data": {system: data}}``.
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
            answers = {
                row.system: row.answer
                for row in connection.execute(
                    select(_SYSTEMS.c.system, _SYSTEMS.c.answer).where(
                        _SYSTEMS.c.request_id == request_id
                    )
                )
            }
        data: dict[str, Any] = {}
        for system in view.systems:
            blob = answers.get(system.system)
            if blob is not None:
                data[system.system] = json.loads(
                    self._keyring.open(blob, _answer_aad(request_id, system.system))
                )
        return {
            "format": _EXPORT_FORMAT,
            "request": request_id,
            "subject_kind": view.subject_kind,
            "generated": iso(self._clock()),
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
                update(_REQUESTS)
                .where(_REQUESTS.c.id == request_id, _REQUESTS.c.status == "open")
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
            raise NotFoundError(f"request {request_id} does not involve system {system!r}")
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
                update(_SYSTEMS)
                .where(
                    _SYSTEMS.c.request_id == request_id,
                    _SYSTEMS.c.system == system,
                    _SYSTEMS.c.status == "manual-pending",
                )
                .values(status=status, answered_index=index, error=None)
            )
        return self.get(request_id)

    # -- the worker ---------------------------------------------------------------

    def run_due(self, now: datetime | None = None, *, limit: int = 50) -> int:
        """Advance the requests with due work (at most ``limit``); how many steps were taken.

        A step is one system asked (answered, failed or scheduled for a retry)
        or one request closed; 0 means nothing was due.
        """
        moment = now or self._clock()
        steps = 0
        for request_id in self._due(moment, limit):
            if not self._claim(request_id, moment):
                continue  # another worker holds it
            try:
                steps += self._advance(request_id, moment)
            finally:
                self._release(request_id)
        return steps

    def _due(self, now: datetime, limit: int) -> builtins.list[str]:
        systems = _SYSTEMS.c
        askable = exists().where(
            systems.request_id == _REQUESTS.c.id,
            or_(
                systems.status == "asked",
                and_(
                    systems.status == "pending",
                    or_(systems.next_attempt.is_(None), systems.next_attempt <= now),
                ),
            ),
        )
        unfinished = exists().where(
            systems.request_id == _REQUESTS.c.id, systems.status.in_(sorted(OPEN_STATES))
        )
        query = (
            select(_REQUESTS.c.id)
            .where(
                _REQUESTS.c.status == "open",
                or_(_REQUESTS.c.lease_until.is_(None), _REQUESTS.c.lease_until < now),
                or_(askable, ~unfinished),
            )
            .order_by(_REQUESTS.c.created_at)
            .limit(limit)
        )
        with self._engine.connect() as connection:
            return builtins.list(connection.execute(query).scalars())

    def _claim(self, request_id: str, now: datetime) -> bool:
        """Take the request's lease if it is free or expired (one conditional UPDATE)."""
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_REQUESTS)
                .where(
                    _REQUESTS.c.id == request_id,
                    _REQUESTS.c.status == "open",
                    or_(_REQUESTS.c.lease_until.is_(None), _REQUESTS.c.lease_until < now),
                )
                .values(lease_owner=self.worker, lease_until=now + LEASE)
            )
        return result.rowcount == 1

    def _renew(self, request_id: str) -> bool:
        """Extend this worker's lease; False when it was lost (expired and taken)."""
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_REQUESTS)
                .where(_REQUESTS.c.id == request_id, _REQUESTS.c.lease_owner == self.worker)
                .values(lease_until=self._clock() + LEASE)
            )
        return result.rowcount == 1

    def _release(self, request_id: str) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(_REQUESTS)
                .where(_REQUESTS.c.id == request_id, _REQUESTS.c.lease_owner == self.worker)
                .values(lease_owner=None, lease_until=None)
            )

    def _advance(self, request_id: str, now: datetime) -> int:
        """Ask every due system of the leased request, then close it if all are final."""
        steps = 0
        with self._engine.connect() as connection:
            request = connection.execute(
                select(_REQUESTS).where(_REQUESTS.c.id == request_id)
            ).one()
            systems = builtins.list(
                connection.execute(
                    select(_SYSTEMS)
                    .where(_SYSTEMS.c.request_id == request_id)
                    .order_by(_SYSTEMS.c.system)
                )
            )
        if request.status != "open":
            return 0
        secret: dict[str, Any] | None = None
        for system in systems:
            if not _due_now(system, now):
                continue
            if not self._renew(request_id):
                return steps
            if secret is None:
                secret = json.loads(self._keyring.open(request.sealed, _request_aad(request_id)))
            self._ask(request, system, secret)
            steps += 1
        if self._all_final(request_id):
            self._close(request_id)
            steps += 1
        return steps

    def _ask(self, request: Any, system: Any, secret: Mapping[str, Any]) -> None:
        """Steps 1-3 for one system (see the module's docstring)."""
        request_id, name = request.id, system.system
        attempt = system.attempts
        if system.status == "pending":
            attempt += 1
            index = self._audit.record(
                request_audit.asked_entry(
                    request_id, name, system.connector, attempt, time=self._clock()
                )
            )
            with self._engine.begin() as connection:
                moved = connection.execute(
                    update(_SYSTEMS)
                    .where(
                        _SYSTEMS.c.request_id == request_id,
                        _SYSTEMS.c.system == name,
                        _SYSTEMS.c.status == "pending",
                        _SYSTEMS.c.attempts == system.attempts,
                    )
                    .values(status="asked", attempts=attempt, asked_index=index, next_attempt=None)
                ).rowcount
            if moved != 1:
                return  # changed under us (cannot happen under the lease): leave it
        _log.info("privacy_request_ask", request=request_id, system=name, attempt=attempt)
        try:
            connector = self._connector(name)
            answer = connector.ask(
                request.kind,
                request_id,
                request.subject_kind,
                secret["identifier"],
                secret.get("corrections") or None,
            )
        except ConnectorError as exc:
            self._failed_attempt(request_id, name, attempt, exc)
            return
        data = answer.data if request.kind in {"access", "export"} else None
        digest = answer_digest(data) if data is not None else None
        index = self._audit.record(
            request_audit.answered_entry(
                request_id,
                name,
                answer.status,
                time=self._clock(),
                records=answer.records,
                answer_digest=digest,
            )
        )
        sealed = (
            None
            if data is None
            else self._keyring.seal(canonical_data(data), _answer_aad(request_id, name))
        )
        self._finish(
            request_id,
            name,
            status=answer.status,
            records=answer.records,
            answer=sealed,
            answer_digest=digest,
            answered_index=index,
            error=None,
        )

    def _connector(self, name: str) -> Any:
        if self._connectors is None:
            raise ConnectorError(
                "no connectors are configured in this process (the vault and signing keys "
                "are needed)",
                retryable=True,
            )
        try:
            return self._connectors(name)
        except ConfigError as exc:
            raise ConnectorError(exc.message, retryable=False) from None

    def _failed_attempt(
        self, request_id: str, name: str, attempt: int, exc: ConnectorError
    ) -> None:
        _log.warning(
            "privacy_request_attempt_failed",
            request=request_id,
            system=name,
            attempt=attempt,
            retryable=exc.retryable,
            error=exc.message,
        )
        if exc.retryable and attempt <= len(self._delays):
            with self._engine.begin() as connection:
                connection.execute(
                    update(_SYSTEMS)
                    .where(_SYSTEMS.c.request_id == request_id, _SYSTEMS.c.system == name)
                    .values(
                        status="pending",
                        next_attempt=self._clock() + self._delays[attempt - 1],
                        error=exc.message,
                    )
                )
            return
        index = self._audit.record(
            request_audit.answered_entry(
                request_id, name, "failed", time=self._clock(), error=exc.message
            )
        )
        self._finish(
            request_id,
            name,
            status="failed",
            records=None,
            answer=None,
            answer_digest=None,
            answered_index=index,
            error=exc.message,
        )

    def _finish(self, request_id: str, name: str, **values: Any) -> None:
        with self._engine.begin() as connection:
            connection.execute(
                update(_SYSTEMS)
                .where(
                    _SYSTEMS.c.request_id == request_id,
                    _SYSTEMS.c.system == name,
                    _SYSTEMS.c.status == "asked",
                )
                .values(next_attempt=None, **values)
            )

    def _all_final(self, request_id: str) -> bool:
        with self._engine.connect() as connection:
            statuses = builtins.list(
                connection.execute(
                    select(_SYSTEMS.c.status).where(_SYSTEMS.c.request_id == request_id)
                ).scalars()
            )
        return all(status in FINAL for status in statuses)

    # -- closing ------------------------------------------------------------------

    def _close(self, request_id: str) -> None:
        with self._engine.connect() as connection:
            request = connection.execute(
                select(_REQUESTS).where(_REQUESTS.c.id == request_id)
            ).one()
            systems = builtins.list(
                connection.execute(select(_SYSTEMS).where(_SYSTEMS.c.request_id == request_id))
            )
        if request.kind == "erase":
            # The index must not itself remain a record of the person (issue 20, item 5).
            self._lineage.erase(bytes(request.subject))
        outcome = "completed" if all(s.status != "failed" for s in systems) else "incomplete"
        closed = self._clock().replace(microsecond=0)
        receipts = _receipts()
        statement = _statement(receipts, request, systems, closed, outcome)
        index = self._audit.record(
            request_audit.closed_entry(
                request_audit.ACTOR,
                request_id,
                outcome,
                receipts.statement_digest(statement),
                time=closed,
            )
        )
        with self._engine.begin() as connection:
            connection.execute(
                update(_REQUESTS)
                .where(_REQUESTS.c.id == request_id, _REQUESTS.c.status == "open")
                .values(
                    status="closed",
                    outcome=outcome,
                    closed_at=closed,
                    closed_index=index,
                    sealed=None,  # the identifier goes with the open request
                )
            )
        _log.info("privacy_request_closed", request=request_id, outcome=outcome)
        self._store_receipt(request_id)

    def _store_receipt(self, request_id: str) -> dict[str, Any] | None:
        """Build and keep the closed request's receipt; None without the audit database."""
        if self._audit_engine is None:
            return None
        from interlock.audit.evidence import evidence_for

        with self._engine.connect() as connection:
            request = connection.execute(
                select(_REQUESTS).where(_REQUESTS.c.id == request_id)
            ).one()
            systems = builtins.list(
                connection.execute(select(_SYSTEMS).where(_SYSTEMS.c.request_id == request_id))
            )
        if request.status != "closed" or request.closed_index is None:
            return None
        receipts = _receipts()
        statement = _statement(
            receipts, request, systems, as_utc(request.closed_at), request.outcome
        )
        indexes = {request.created_index, request.closed_index}
        for system in systems:
            indexes.update({system.asked_index, system.answered_index})
            indexes.update(trace_of(system)[1])
        try:
            evidence = evidence_for(self._audit_engine, [i for i in indexes if i is not None])
        except AuditError as exc:
            _log.warning("privacy_receipt_deferred", request=request_id, error=exc.message)
            return None
        receipt: dict[str, Any] = receipts.build_receipt(statement, evidence, request.closed_index)
        with self._engine.begin() as connection:
            connection.execute(
                update(_REQUESTS)
                .where(_REQUESTS.c.id == request_id)
                .values(receipt=json.dumps(receipt, sort_keys=True))
            )
        return receipt


def _due_now(system: Any, now: datetime) -> bool:
    if system.status == "asked":
        return True  # an attempt cut short: resume at the call
    if system.status != "pending":
        return False
    return system.next_attempt is None or as_utc(system.next_attempt) <= now


def _statement(
    receipts: Any, request: Any, systems: builtins.list[Any], closed: datetime, outcome: str
) -> Any:
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
