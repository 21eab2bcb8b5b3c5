"""The lineage index: which systems received data about which person, as keyed hashes.

For each request that identified a person (the manifest's ``subjects``
locators, :class:`~interlock.privacy.subjects.Sighting`), the gateway writes
one :class:`LineageRecord` per person and receiving system: the person only as
``HMAC-SHA256(lineage key, kind "\\0" normalised identifier)``, with the
integration, route, direction, systems, categories, time and the index of the
request's audit entry. ``interlock privacy trace`` hashes an identifier the
same way and looks it up (:mod:`interlock.privacy.trace`).

* The lineage key is 32 random bytes created once per deployment and kept in
  the store's ``sealed_settings`` sealed by the keyring (name
  ``privacy.lineage_key``, bound to that name by the seal's associated data).
  It is not the audit log's pseudonym key: the audit log lives in another
  database, and a copy of one must not link its rows with the other's.
* Writing never blocks the event loop: :meth:`LineageIndex.record_later`
  queues (bounded); one thread inserts in batches. When the queue is full the
  records are dropped, counted (:attr:`LineageIndex.dropped`) and logged: the
  audit entry of the request (recorded durably before) still says how many
  persons it identified.
* Rows expire with the integration's retention (:meth:`LineageIndex.prune`)
  and an erasure removes a person's rows, keeping only counts per integration
  and receiver (:meth:`LineageIndex.erase`), so the index is not itself a
  lasting record of the person.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import queue
import secrets
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, NoReturn

from sqlalchemy import ColumnElement, Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from interlock.clock import Clock, utc_now
from interlock.config.manifest import Integration, System
from interlock.crypto import Keyring
from interlock.logs import get_logger
from interlock.logs.losses import LossCounter
from interlock.privacy.subjects import Sighting
from interlock.privacy.tables import LineageErasedRow, LineageRow
from interlock.store.base import table_of
from interlock.store.sealed_values import sealed_setting

__all__ = [
    "KEY_NAME",
    "LineageIndex",
    "LineageRecord",
    "RouteLineage",
    "SubjectHasher",
    "expired_counts",
    "keep_pruned",
    "load_subject_hasher",
]

KEY_NAME: Final = "privacy.lineage_key"
KEY_SIZE: Final = 32
PRUNE_SECONDS: Final = 3600.0

_LINEAGE: Final = table_of(LineageRow)
_ERASED: Final = table_of(LineageErasedRow)
_log = get_logger("interlock.privacy.lineage")


class SubjectHasher:
    """Keyed hashes of subject identifiers; the key never leaves the handle."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        """Use ``key`` (at least 256 bits), freshly unsealed from the keyring."""
        if len(key) < KEY_SIZE:
            raise ValueError("the lineage key must be at least 256 bits")
        self._key = key

    def digest(self, kind: str, normalised: str) -> bytes:
        """The 32-byte HMAC-SHA256 of ``kind``, a NUL and the normalised identifier."""
        message = kind.encode() + b"\x00" + normalised.encode("utf-8")
        return hmac.digest(self._key, message, "sha256")  # one-shot, OpenSSL

    def __repr__(self) -> str:
        return "SubjectHasher(key=<sealed>)"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("a SubjectHasher cannot be pickled")

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SubjectHasher cannot be pickled")


def load_subject_hasher(
    store_engine: Engine, keyring: Keyring, *, now: Clock = utc_now
) -> SubjectHasher:
    """The deployment's hasher; its key is created (and sealed) on first use.

    Two processes creating it at once agree on one key: the loser of the
    insert race reads the winner's.
    """
    key = sealed_setting(
        store_engine, keyring, KEY_NAME, lambda: secrets.token_bytes(KEY_SIZE), now=now
    )
    return SubjectHasher(key)


@dataclass(frozen=True, slots=True)
class LineageRecord:
    """One row of the index: ``receiver`` got data about the person hashed as ``subject``."""

    subject: bytes = field(repr=False)
    kind: str
    integration: str
    route: str
    direction: str  # request | response
    receiver: str
    source: str
    target: str
    categories: tuple[str, ...]
    receiver_country: str | None
    time: datetime
    audit_index: int | None
    correlation_id: str | None
    expires_at: datetime

    def row(self) -> dict[str, Any]:
        """The values of its ``privacy_lineage`` row."""
        return {
            "subject": self.subject,
            "kind": self.kind,
            "integration": self.integration,
            "route": self.route[:500],
            "direction": self.direction,
            "receiver": self.receiver,
            "source": self.source,
            "target": self.target,
            "categories": json.dumps(list(self.categories)),
            "receiver_country": self.receiver_country,
            "time": self.time,
            "audit_index": self.audit_index,
            "correlation_id": self.correlation_id,
            "expires_at": self.expires_at,
        }

    @classmethod
    def of_row(cls, row: Any) -> LineageRecord:
        """A record read back from the table."""
        return cls(
            subject=bytes(row.subject),
            kind=row.kind,
            integration=row.integration,
            route=row.route,
            direction=row.direction,
            receiver=row.receiver,
            source=row.source,
            target=row.target,
            categories=tuple(json.loads(row.categories)),
            receiver_country=row.receiver_country,
            time=_aware(row.time),
            audit_index=row.audit_index,
            correlation_id=row.correlation_id,
            expires_at=_aware(row.expires_at),
        )


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class RouteLineage:
    """What a route's sightings become, resolved once per route (the receivers' names)."""

    integration: str
    route: str
    source: str
    target: str
    categories: tuple[str, ...]
    retention: timedelta
    # "upstream" / "caller" -> (receiving system, its country)
    receivers: Mapping[str, tuple[str, str | None]]

    @classmethod
    def of(
        cls,
        integration_name: str,
        integration: Integration,
        route: str,
        upstream: str,
        systems: Mapping[str, System],
    ) -> RouteLineage:
        """The route ``route`` (its label) of ``integration``, forwarding to ``upstream``.

        The caller is the integration's other end: its source when the route's
        upstream is its target, else its target (:meth:`Integration.caller_of`).
        """
        caller = integration.caller_of(upstream)

        def located(name: str) -> tuple[str, str | None]:
            system = systems.get(name)
            return name, system.location if system is not None else None

        return cls(
            integration_name,
            route,
            integration.source,
            integration.target,
            tuple(integration.data_categories),
            integration.retention,
            {"upstream": located(upstream), "caller": located(caller)},
        )

    def records(
        self,
        sightings: Iterable[Sighting],
        hasher: SubjectHasher,
        *,
        time: datetime,
        audit_index: int | None,
        correlation_id: str | None,
    ) -> list[LineageRecord]:
        """One record per distinct (person, receiver, direction) among ``sightings``."""
        seen: set[tuple[str, str, str, str]] = set()
        out: list[LineageRecord] = []
        expires_at = time + self.retention
        for sighting in sightings:
            key = (sighting.kind, sighting.value, sighting.receiver, sighting.direction)
            if key in seen:
                continue
            seen.add(key)
            receiver, country = self.receivers[sighting.receiver]
            out.append(
                LineageRecord(
                    subject=hasher.digest(sighting.kind, sighting.value),
                    kind=sighting.kind,
                    integration=self.integration,
                    route=self.route,
                    direction=sighting.direction,
                    receiver=receiver,
                    source=self.source,
                    target=self.target,
                    categories=self.categories,
                    receiver_country=country,
                    time=time,
                    audit_index=audit_index,
                    correlation_id=correlation_id,
                    expires_at=expires_at,
                )
            )
        return out


class LineageIndex:
    """The ``privacy_lineage`` table: written in batches off the event loop, read by subject."""

    def __init__(
        self,
        engine: Engine,
        hasher: SubjectHasher,
        *,
        clock: Clock = utc_now,
        max_pending: int = 10_000,
        max_batch: int = 1000,
        linger: float = 0.2,
        prune_batch: int = 1000,
    ) -> None:
        """Index into the store ``engine``; nothing runs until the first :meth:`record_later`.

        ``max_pending``: requests' records queued or being written at most: a
        request must :meth:`reserve` its place first (the gateway withholds a
        response it cannot record: fail closed); ``linger``: how long the writer
        waits for company before a batch (one transaction for many requests, as
        the audit writer does).
        """
        self.engine = engine
        self.hasher = hasher
        self.clock = clock
        # One item per request (its records); None stops the writer.
        # Unbounded itself: reservations (at most max_pending) bound what it holds.
        self._queue: queue.Queue[Sequence[LineageRecord] | None] = queue.Queue()
        self._max_pending = max_pending
        self._max_batch = max_batch
        self._linger = linger
        self._prune_batch = prune_batch
        self._hurry = threading.Event()  # ends a linger: flush() or close()
        self._idle = threading.Condition()
        self._outstanding = 0  # queued or being written
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()
        self._closed = False
        self._dropped = LossCounter(
            "interlock.privacy.lineage", "lineage records dropped", "records"
        )
        self.failed = 0  # records lost to a failed batch

    # -- writing ---------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Requests' records queued and not yet taken (approximate, as ``Queue.qsize``)."""
        return self._queue.qsize()

    @property
    def dropped(self) -> int:
        """Records never queued: no place left, or closed."""
        return self._dropped.total

    @property
    def lost(self) -> int:
        """Records never written: dropped (queue full, closed) or in a failed batch."""
        return self.dropped + self.failed

    def reserve(self) -> bool:
        """Claim a place for one request's records; False when ``max_pending`` are taken.

        Never blocks. A caller that got True must hand its records (possibly
        none) to :meth:`record_later` with ``reserved=True``.
        """
        with self._idle:
            if self._closed or self._outstanding >= self._max_pending:
                return False
            self._outstanding += 1
            return True

    def record_later(self, records: Sequence[LineageRecord], *, reserved: bool = False) -> bool:
        """Queue ``records`` for the writer thread; never blocks, never raises.

        Without a reservation it takes one; False when there was no place (the
        records are dropped, counted and logged at most once per interval).
        """
        if not reserved and not self.reserve():
            self._drop(len(records), "closed" if self._closed else "no place left")
            return False
        if not records:
            self._done(1)
            return True
        self._ensure_thread()
        self._queue.put_nowait(records)
        return True

    def _drop(self, count: int, why: str) -> None:
        # One line per interval, however many were dropped: a flood must not flood the log.
        self._dropped.add(count, why)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far is written (or failed); False on timeout."""
        self._hurry.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._outstanding == 0, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Write what is queued, then stop the writer thread."""
        if self._closed:
            return
        self.flush(timeout)
        self._closed = True
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            self._hurry.set()
            thread.join(timeout)

    def _ensure_thread(self) -> None:
        if self._thread is not None:
            return
        with self._start:
            if self._thread is None:
                thread = threading.Thread(target=self._run, name="lineage-writer", daemon=True)
                thread.start()
                self._thread = thread

    def _done(self, items: int) -> None:
        with self._idle:
            self._outstanding -= items
            if self._outstanding == 0:
                self._idle.notify_all()

    def _take(self) -> tuple[list[Sequence[LineageRecord]], bool]:
        first = self._queue.get()
        if first is None:
            return [], True
        if self._queue.empty():  # a trickle: wait for company (one transaction for many)
            self._hurry.wait(self._linger)
            self._hurry.clear()
        items = [first]
        rows = len(first)
        while rows < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                return items, True
            items.append(item)
            rows += len(item)
        return items, False

    def _run(self) -> None:
        stop = False
        while not stop:
            items, stop = self._take()
            if not items:
                continue
            count = sum(len(records) for records in items)
            try:
                rows = [record.row() for records in items for record in records]
                with self.engine.begin() as connection:
                    connection.execute(_LINEAGE.insert(), rows)
            except Exception as exc:  # noqa: BLE001  (the writer must outlive any one batch)
                self.failed += count
                _log.error("lineage batch failed", records=count, error=type(exc).__name__)
            finally:
                self._done(len(items))

    # -- reading, erasing, expiring ---------------------------------------------------

    def find(self, subject: bytes) -> list[LineageRecord]:
        """The person's rows, oldest first (one indexed query)."""
        query = (
            select(_LINEAGE)
            .where(_LINEAGE.c.subject == subject)
            .order_by(_LINEAGE.c.time, _LINEAGE.c.id)
        )
        with self.engine.connect() as connection:
            return [LineageRecord.of_row(row) for row in connection.execute(query)]

    def erase(self, subject: bytes, *, keep: Iterable[str] = ()) -> int:
        """Delete the person's rows, adding their counts to ``privacy_lineage_erased``.

        A row naming a system in ``keep`` (as receiver, source or target) stays:
        the systems whose erasure failed still hold the data, and the row is how a
        later erasure finds them again. One transaction: the counts are those of
        the rows this call deleted (``DELETE ... RETURNING``), so a concurrent
        erasure is not counted twice.
        """
        kept = sorted(set(keep))
        query = delete(_LINEAGE).where(_LINEAGE.c.subject == subject)
        if kept:
            query = query.where(
                _LINEAGE.c.receiver.not_in(kept),
                _LINEAGE.c.source.not_in(kept),
                _LINEAGE.c.target.not_in(kept),
            )
        with self.engine.begin() as connection:
            deleted = connection.execute(
                query.returning(_LINEAGE.c.integration, _LINEAGE.c.receiver)
            ).all()
            counts = Counter((row.integration, row.receiver) for row in deleted)
            for (integration, receiver), rows in sorted(counts.items()):
                connection.execute(_add_erased(self.engine, integration, receiver, rows))
        return len(deleted)

    def prune(self, now: datetime | None = None) -> int:
        """Delete rows whose retention ended by ``now`` (default: the clock), in batches."""
        moment = now if now is not None else self.clock()
        total = 0
        while True:
            with self.engine.begin() as connection:
                ids = (
                    connection.execute(
                        select(_LINEAGE.c.id)
                        .where(_expired(moment))
                        .order_by(_LINEAGE.c.expires_at)
                        .limit(self._prune_batch)
                    )
                    .scalars()
                    .all()
                )
                if ids:
                    connection.execute(delete(_LINEAGE).where(_LINEAGE.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < self._prune_batch:
                return total


def expired_counts(engine: Engine, now: datetime) -> dict[str, int]:
    """Rows :meth:`LineageIndex.prune` would delete at ``now``, counted by integration.

    The same condition as the prune (:func:`_expired`); counting needs no subject
    hasher, so ``interlock check --live`` calls this with the store's engine.
    """
    query = (
        select(_LINEAGE.c.integration, func.count())
        .where(_expired(now))
        .group_by(_LINEAGE.c.integration)
    )
    with engine.connect() as connection:
        return dict(connection.execute(query).all())


def _expired(moment: datetime) -> ColumnElement[bool]:
    """Rows whose retention ended by ``moment``: the one condition pruning and counting share."""
    return _LINEAGE.c.expires_at <= moment


def _add_erased(engine: Engine, integration: str, receiver: str, rows: int) -> Any:
    """An upsert adding ``rows`` to the erased count of (integration, receiver)."""
    values = {"integration": integration, "receiver": receiver, "rows": rows}
    keys = [_ERASED.c.integration, _ERASED.c.receiver]
    name = engine.dialect.name
    if name == "postgresql":
        pg = postgresql.insert(_ERASED).values(values)
        return pg.on_conflict_do_update(
            index_elements=keys, set_={"rows": _ERASED.c.rows + pg.excluded.rows}
        )
    if name == "sqlite":
        lite = sqlite.insert(_ERASED).values(values)
        return lite.on_conflict_do_update(
            index_elements=keys, set_={"rows": _ERASED.c.rows + lite.excluded.rows}
        )
    raise ValueError(f"the store does not run on {name}")  # store.engine refuses it earlier


async def keep_pruned(index: LineageIndex, *, every: float = PRUNE_SECONDS) -> None:
    """Prune expired rows now and then every ``every`` seconds, until cancelled."""
    while True:
        try:
            pruned = await asyncio.to_thread(index.prune)
        except SQLAlchemyError as exc:
            _log.warning("lineage pruning failed; retrying later", error=type(exc).__name__)
        else:
            if pruned:
                _log.info("lineage rows past their retention pruned", rows=pruned)
        await asyncio.sleep(every)
