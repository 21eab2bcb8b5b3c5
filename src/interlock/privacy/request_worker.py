"""The worker of data-subject requests: ask each system, retry, resume, close.

For each system, :meth:`RequestWorker.run_due`:

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
last; others fail at once. Anything a connector raises is such a failure
(an unexpected exception: retryable, named by its type only). One worker
holds a request at a time, across processes and replicas: a lease taken by a
conditional ``UPDATE``. A request whose step fails otherwise (its sealed
identifier does not open, the store is gone) is logged and left for the next
run: the requests behind it go on.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import structlog
from sqlalchemy import and_, exists, or_, select, update

from interlock.errors import ConfigError
from interlock.privacy import request_audit
from interlock.privacy.connectors import (
    Connector,
    ConnectorAnswer,
    ConnectorError,
    ConnectorFactory,
    answer_digest,
    canonical_data,
)
from interlock.privacy.request_closing import close_request
from interlock.privacy.request_parts import (
    REQUESTS,
    SYSTEMS,
    RequestParts,
    answer_aad,
    request_aad,
)
from interlock.privacy.request_views import FINAL, OPEN_STATES
from interlock.store.base import as_utc

__all__ = ["DEFAULT_RETRY_DELAYS", "LEASE", "RequestWorker"]

_log = structlog.get_logger(__name__)

#: Waits after the 1st, 2nd, ... failed attempt; after the last, the system fails.
DEFAULT_RETRY_DELAYS: Final = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
)
#: How long a worker holds a request (renewed before each system is asked).
LEASE: Final = timedelta(minutes=10)


class RequestWorker:
    """Advances open requests; any number may run, one holds a request at a time."""

    def __init__(
        self,
        parts: RequestParts,
        connectors: ConnectorFactory | None,
        *,
        retry_delays: Sequence[timedelta] = DEFAULT_RETRY_DELAYS,
        worker: str | None = None,
    ) -> None:
        """``connectors`` builds each webhook/SQL system's connector by name (``None``:
        such systems fail as unconfigured); ``worker`` names this process in leases.
        """
        self._parts = parts
        self._connectors = connectors
        self._delays = tuple(retry_delays)
        self.worker = worker or uuid.uuid4().hex

    def run_due(self, now: datetime | None = None, *, limit: int = 50) -> int:
        """Advance the requests with due work (at most ``limit``); how many steps were taken.

        A step is one system asked (answered, failed or scheduled for a retry)
        or one request closed; 0 means nothing was due.
        """
        moment = now or self._parts.clock()
        steps = 0
        for request_id in self._due(moment, limit):
            if not self._claim(request_id, moment):
                continue  # another worker holds it
            try:
                steps += self._advance(request_id, moment)
            except Exception as exc:  # noqa: BLE001  (one request's fault must not stop the rest)
                # The oldest request goes first: were its fault to end the run, every newer
                # one (erasures too) would miss its Art. 12(3) deadline behind it. The next
                # run tries it again. Only the type is logged: the text may hold the identifier.
                _log.warning(
                    "privacy_request_advance_failed", request=request_id, error=type(exc).__name__
                )
            finally:
                self._release(request_id)
        return steps

    def _due(self, now: datetime, limit: int) -> list[str]:
        systems = SYSTEMS.c
        askable = exists().where(
            systems.request_id == REQUESTS.c.id,
            or_(
                systems.status == "asked",
                and_(
                    systems.status == "pending",
                    or_(systems.next_attempt.is_(None), systems.next_attempt <= now),
                ),
            ),
        )
        unfinished = exists().where(
            systems.request_id == REQUESTS.c.id, systems.status.in_(sorted(OPEN_STATES))
        )
        query = (
            select(REQUESTS.c.id)
            .where(
                REQUESTS.c.status == "open",
                or_(REQUESTS.c.lease_until.is_(None), REQUESTS.c.lease_until < now),
                or_(askable, ~unfinished),
            )
            .order_by(REQUESTS.c.created_at)
            .limit(limit)
        )
        with self._parts.engine.connect() as connection:
            return list(connection.execute(query).scalars())

    def _claim(self, request_id: str, now: datetime) -> bool:
        """Take the request's lease if it is free or expired (one conditional UPDATE)."""
        with self._parts.engine.begin() as connection:
            result = connection.execute(
                update(REQUESTS)
                .where(
                    REQUESTS.c.id == request_id,
                    REQUESTS.c.status == "open",
                    or_(REQUESTS.c.lease_until.is_(None), REQUESTS.c.lease_until < now),
                )
                .values(lease_owner=self.worker, lease_until=now + LEASE)
            )
        return result.rowcount == 1

    def _renew(self, request_id: str) -> bool:
        """Extend this worker's lease; False when it was lost (expired and taken)."""
        with self._parts.engine.begin() as connection:
            result = connection.execute(
                update(REQUESTS)
                .where(REQUESTS.c.id == request_id, REQUESTS.c.lease_owner == self.worker)
                .values(lease_until=self._parts.clock() + LEASE)
            )
        return result.rowcount == 1

    def _release(self, request_id: str) -> None:
        with self._parts.engine.begin() as connection:
            connection.execute(
                update(REQUESTS)
                .where(REQUESTS.c.id == request_id, REQUESTS.c.lease_owner == self.worker)
                .values(lease_owner=None, lease_until=None)
            )

    def _advance(self, request_id: str, now: datetime) -> int:
        """Ask every due system of the leased request, then close it if all are final."""
        steps = 0
        with self._parts.engine.connect() as connection:
            request = connection.execute(select(REQUESTS).where(REQUESTS.c.id == request_id)).one()
            systems = list(
                connection.execute(
                    select(SYSTEMS)
                    .where(SYSTEMS.c.request_id == request_id)
                    .order_by(SYSTEMS.c.system)
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
                secret = json.loads(
                    self._parts.keyring.open(request.sealed, request_aad(request_id))
                )
            self._ask(request, system, secret)
            steps += 1
        if self._all_final(request_id):
            close_request(self._parts, request_id)
            steps += 1
        return steps

    def _ask(self, request: Any, system: Any, secret: Mapping[str, Any]) -> None:
        """Steps 1-3 for one system (see the module's docstring)."""
        request_id, name = request.id, system.system
        attempt = system.attempts
        if system.status == "pending":
            attempt += 1
            index = self._parts.audit.record(
                request_audit.asked_entry(
                    request_id, name, system.connector, attempt, time=self._parts.clock()
                )
            )
            with self._parts.engine.begin() as connection:
                moved = connection.execute(
                    update(SYSTEMS)
                    .where(
                        SYSTEMS.c.request_id == request_id,
                        SYSTEMS.c.system == name,
                        SYSTEMS.c.status == "pending",
                        SYSTEMS.c.attempts == system.attempts,
                    )
                    .values(status="asked", attempts=attempt, asked_index=index, next_attempt=None)
                ).rowcount
            if moved != 1:
                return  # changed under us (cannot happen under the lease): leave it
        _log.info("privacy_request_ask", request=request_id, system=name, attempt=attempt)
        try:
            answer = self._call(request, name, secret)
            data = answer.data if request.kind in {"access", "export"} else None
            digest = _digest(data)
        except ConnectorError as exc:
            self._failed_attempt(request_id, name, attempt, exc)
            return
        index = self._parts.audit.record(
            request_audit.answered_entry(
                request_id,
                name,
                answer.status,
                time=self._parts.clock(),
                records=answer.records,
                answer_digest=digest,
            )
        )
        sealed = (
            None
            if data is None
            else self._parts.keyring.seal(canonical_data(data), answer_aad(request_id, name))
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

    def _call(self, request: Any, name: str, secret: Mapping[str, Any]) -> ConnectorAnswer:
        """Ask the system; whatever goes wrong is a :class:`ConnectorError`.

        A connector promises to raise nothing else, but a moved CA file or a
        driver's bug breaks that promise: such a failure may pass (the operator can
        fix it), so it is retried, named by its type only (its text may hold the
        identifier, a path or a secret).
        """
        try:
            return self._connector(name).ask(
                request.kind,
                request.id,
                request.subject_kind,
                secret["identifier"],
                secret.get("corrections") or None,
            )
        except ConnectorError:
            raise
        except Exception as exc:  # noqa: BLE001  (see the docstring)
            raise ConnectorError(
                f"the connector failed unexpectedly ({type(exc).__name__})", retryable=True
            ) from None

    def _connector(self, name: str) -> Connector:
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
            with self._parts.engine.begin() as connection:
                connection.execute(
                    update(SYSTEMS)
                    .where(SYSTEMS.c.request_id == request_id, SYSTEMS.c.system == name)
                    .values(
                        status="pending",
                        next_attempt=self._parts.clock() + self._delays[attempt - 1],
                        error=exc.message,
                    )
                )
            return
        index = self._parts.audit.record(
            request_audit.answered_entry(
                request_id, name, "failed", time=self._parts.clock(), error=exc.message
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
        with self._parts.engine.begin() as connection:
            connection.execute(
                update(SYSTEMS)
                .where(
                    SYSTEMS.c.request_id == request_id,
                    SYSTEMS.c.system == name,
                    SYSTEMS.c.status == "asked",
                )
                .values(next_attempt=None, **values)
            )

    def _all_final(self, request_id: str) -> bool:
        with self._parts.engine.connect() as connection:
            statuses = list(
                connection.execute(
                    select(SYSTEMS.c.status).where(SYSTEMS.c.request_id == request_id)
                ).scalars()
            )
        return all(status in FINAL for status in statuses)


def _digest(data: Any) -> str | None:
    """The answer's digest; a :class:`ConnectorError` when it has no canonical JSON.

    NaN, Infinity, a lone surrogate or a value JSON cannot hold (from a connector
    that did not check) cannot be digested or sealed; the same answer would come
    again, so the system fails at once.
    """
    if data is None:
        return None
    try:
        return answer_digest(data)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ConnectorError(
            f"the system's answer is not JSON that can be stored ({type(exc).__name__})",
            retryable=False,
        ) from None


def _due_now(system: Any, now: datetime) -> bool:
    if system.status == "asked":
        return True  # an attempt cut short: resume at the call
    if system.status != "pending":
        return False
    return system.next_attempt is None or as_utc(system.next_attempt) <= now
