"""Group commit: many callers, one transaction per batch, each caller released once durable.

Callers hand in already-encoded entries and wait on a future. One thread
takes everything queued (up to ``max_batch``), appends it in a single
transaction and resolves every future with its index — or with
:class:`AuditUnavailableError` if the transaction failed. A caller waits at
most ``timeout`` seconds: a hung database or full disk fails it promptly
instead of stalling it. An entry whose caller gave up before its batch
started is dropped; one whose batch was already in flight may still land
(the log then says more than was acknowledged, never less).

Entries nobody waits for (``urgent=False``: best-effort evidence) may linger
up to ``linger`` seconds (default 0.2) so that they share a transaction: at a
steady trickle of requests every entry would otherwise pay a whole commit (an
fsync), and every batch takes the interpreter lock from the gateway's event
loop a few times (measured: 0.2 s instead of 0.025 s gave the gateway 20% more
requests/s). An urgent entry arriving meanwhile ends the wait at once, so
nobody who waits lingers; a crash loses at most that much best-effort
evidence, never an acknowledged entry. Callers who wait are gathered instead,
as a database's group commit gathers them: the next batch waits, at most one
commit's time, for the callers the last one released (:meth:`_gather`).

While it lingers the writer sleeps on an event that only an urgent entry
(or a queue of a whole batch) sets, and then drains the queue in one go:
waking the thread for every entry would hand the interpreter lock back and
forth with the gateway's event loop once per request.

The hand-off takes no lock: entries go on a ``collections.deque``, whose
``append`` and ``popleft`` are atomic in CPython, and an entry nobody waits
for (:meth:`GroupCommitWriter.submit_later`) carries no future — creating
one (a condition variable and its lock) and putting it through
``queue.Queue`` (a mutex and two conditions) cost more than the rest of
queueing an entry, and the producers contended for that mutex.

A best-effort entry the writer cannot take (the queue holds ``max_pending``
entries, or the log is closed) is dropped, counted in :attr:`dropped` and
logged at most once per 10 s with the count
(:class:`~interlock.logs.losses.LossCounter`): an overloaded
log must not also flood the process's log, one line per request. Callers
ask :meth:`GroupCommitWriter.has_room` before encoding an entry, so one the
writer would refuse costs next to nothing; those lost with a failed batch
are counted in :attr:`failed`. ``interlock_audit_entries_lost`` shows both.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from interlock.audit.errors import AuditUnavailableError
from interlock.audit.search_index import SearchHead
from interlock.logs import get_logger
from interlock.logs.losses import LossCounter

__all__ = ["MAX_BATCH", "GroupCommitWriter", "Pending"]

_log = get_logger("interlock.audit")

#: Entries per transaction at most. A batch costs the writer about eight round trips
#: to SQLite or PostgreSQL (begin, size, four inserts, checkpoint, commit), and the
#: thread gives up the interpreter lock for each. When another thread runs Python
#: without pause, the writer gets the lock back only after the switch interval
#: (5 ms), so those waits are per batch and larger batches amortise them: measured on
#: 2 cores with such a thread (benchmarks/audit/producers.py, "busy"), 1,000 entries
#: per batch committed 12,000-13,600 entries/s on SQLite, 5,000 about 29,000. (The
#: gateway's event loop waits on its sockets often enough that, saturated at about
#: 2,000 requests/s, its queue stayed below 500 entries either way.) A batch is that
#: large only while the queue is that deep; 5,000 typical entries are about 2.5 MB.
MAX_BATCH: Final = 5000
#: The longest the writer waits for released callers to come back (:meth:`_gather`).
_MAX_GATHER: Final = 0.01


class Pending(NamedTuple):
    """One encoded entry waiting for its batch; ``future`` is None when nobody waits for it."""

    body: bytes
    time_us: int
    integration: str | None
    future: concurrent.futures.Future[int] | None
    head: SearchHead | None = None  # its search-index fields, when the caller had them

    @property
    def urgent(self) -> bool:
        """A caller waits for it: commit without lingering."""
        return self.future is not None


AppendBatch = Callable[[Sequence[Pending]], list[int]]


class GroupCommitWriter:
    """A background thread that appends queued entries in batches."""

    def __init__(
        self,
        append: AppendBatch,
        *,
        timeout: float,
        max_batch: int = MAX_BATCH,
        max_pending: int = 100_000,
        linger: float = 0.2,
    ) -> None:
        """Start the thread; ``append`` writes a batch durably and returns the indexes."""
        self._append = append
        self.timeout = timeout
        self._linger = linger
        self._max_batch = max_batch
        self._max_pending = max_pending
        self._queue: collections.deque[Pending] = collections.deque()
        self._wake = threading.Event()  # the queue had been empty: something to write
        self._urgent = threading.Event()  # an urgent entry, a full batch or closing: no linger
        # Group commit's gathering (_gather): callers the last batch released, how long
        # that batch took, and an event set once as many entries are queued again.
        self._expect = 0
        self._last_write = 0.0
        self._enough = threading.Event()
        self._closed = False
        self._dropped = LossCounter("interlock.audit", "audit entries dropped", "entries")
        self.failed = 0  # best-effort entries lost with a failed batch
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(
        self,
        body: bytes,
        time_us: int,
        integration: str | None,
        *,
        urgent: bool = True,
        head: SearchHead | None = None,
    ) -> Pending:
        """Queue an entry; raises :class:`AuditUnavailableError` when closed or full.

        ``urgent=False``: nobody waits for it, so it may linger to share a commit
        (:meth:`submit_later` is the same without building a ``Pending`` to return).
        ``head``: the entry's search-index fields, so the writer need not read
        them from ``body`` (they must be the ones ``body`` holds).
        """
        future: concurrent.futures.Future[int] | None = (
            concurrent.futures.Future() if urgent else None
        )
        pending = Pending(body, time_us, integration, future, head)
        self._put(pending)
        if urgent:
            self._urgent.set()
            self._wake.set()
        return pending

    def submit_later(
        self,
        body: bytes,
        time_us: int,
        integration: str | None,
        head: SearchHead | None = None,
    ) -> bool:
        """Queue an entry nobody waits for; never raises.

        False when the writer cannot take it (queue full or closed): the entry
        is dropped and counted (:meth:`drop`).
        """
        try:
            self._put(Pending(body, time_us, integration, None, head))
        except AuditUnavailableError:
            self.drop()
            return False
        return True

    def has_room(self) -> bool:
        """Whether a best-effort entry would be taken now (ask before encoding one)."""
        return not self._closed and len(self._queue) < self._max_pending

    @property
    def lost(self) -> int:
        """Best-effort entries never written: dropped, or in a failed batch."""
        return self.dropped + self.failed

    @property
    def dropped(self) -> int:
        """Best-effort entries refused: the queue was full or the writer closed."""
        return self._dropped.total

    def drop(self, count: int = 1) -> None:
        """Count best-effort entries not taken; one log line per interval, with the count."""
        self._dropped.add(count, "closed" if self._closed else "queue full")

    def _put(self, pending: Pending) -> None:
        queued = self._queue
        if self._closed:
            raise AuditUnavailableError("the audit log is closed")
        was_empty = not queued
        if len(queued) >= self._max_pending:
            raise AuditUnavailableError("the audit log is not keeping up (queue full)")
        queued.append(pending)
        if len(queued) >= self._expect and not self._enough.is_set():
            self._enough.set()  # what a gathering writer waits for is queued (_gather)
        if was_empty:
            self._wake.set()
        elif len(queued) >= self._max_batch and not self._urgent.is_set():
            self._urgent.set()  # a whole batch is waiting: lingering would only grow it

    @property
    def queued(self) -> int:
        """Entries queued and not yet taken for a batch (approximate)."""
        return len(self._queue)

    def wait(self, pending: Pending) -> int:
        """The entry's index once durable; :class:`AuditUnavailableError` after the timeout."""
        future = pending.future
        if future is None:
            raise ValueError("nobody can wait for an entry submitted with urgent=False")
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise AuditUnavailableError(
                f"the audit log did not confirm the entry within {self.timeout:g} s"
            ) from None

    async def wait_async(self, pending: Pending) -> int:
        """As :meth:`wait`, without blocking the event loop."""
        future = pending.future
        if future is None:
            raise ValueError("nobody can wait for an entry submitted with urgent=False")
        try:
            async with asyncio.timeout(self.timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            future.cancel()
            raise AuditUnavailableError(
                f"the audit log did not confirm the entry within {self.timeout:g} s"
            ) from None

    def close(self, timeout: float = 10.0) -> None:
        """Stop taking entries, write what is queued, stop the thread."""
        if self._closed:
            return
        self._closed = True
        self._urgent.set()
        self._wake.set()
        self._enough.set()  # a gathering writer writes what is queued now
        self._thread.join(timeout)

    def _take(self) -> list[Pending]:
        """Up to ``max_batch`` queued entries, without those whose caller already gave up."""
        queued = self._queue
        items: list[Pending] = []
        while len(items) < self._max_batch:
            try:
                pending = queued.popleft()
            except IndexError:
                break
            # A caller that already gave up is dropped; the rest can no longer be cancelled.
            if pending.future is None or pending.future.set_running_or_notify_cancel():
                items.append(pending)
        return items

    def _run(self) -> None:
        queued, wake, urgent = self._queue, self._wake, self._urgent
        while True:
            # Woken by the first entry into an empty queue; the timeout only covers a
            # producer that raced the drain and saw the queue not yet empty.
            woke = wake.wait(self._linger)
            wake.clear()
            if woke and queued and not self._closed:
                # Wait a little for company unless someone waits (see the module doc).
                urgent.wait(self._linger)
            urgent.clear()
            while queued:
                self._gather()
                batch = self._take()
                if batch:
                    self._write(batch)
            if self._closed and not queued:
                return

    def _gather(self) -> None:
        """Wait briefly for the callers the last batch released to queue their next entries.

        A caller released from a batch often submits again within the time a
        commit takes. Committing whatever is queued the moment one entry arrives
        alternated between a batch of that one and a batch of the rest, twice
        the commits (measured: 8 waiting callers, batches of 1 and 7; 64, of 25
        and 39). So the writer waits until the queue holds what it held when the
        last batch was written plus the waiting callers that batch released, at
        most as long as that batch took to write (and never more than 10 ms): a
        caller alone is never delayed (it is the one expected), and when fewer
        come back the commit is late by at most one commit's time. Never when
        closing.
        """
        expect = self._expect
        if len(self._queue) >= expect or self._closed:
            return
        self._enough.clear()
        if len(self._queue) < expect:  # a submit between the test and clear() set it
            self._enough.wait(min(self._last_write, _MAX_GATHER))

    def _write(self, batch: list[Pending]) -> None:
        started = time.perf_counter()
        try:
            indexes = self._append(batch)
        except Exception as exc:  # noqa: BLE001  (every failure fails the batch closed)
            self._expect = 0
            _log.error("audit_batch_failed", entries=len(batch), error=type(exc).__name__)
            self.failed += sum(pending.future is None for pending in batch)
            for pending in batch:
                if pending.future is not None:
                    pending.future.set_exception(
                        AuditUnavailableError("the audit log could not write the entry")
                    )
            return
        self._last_write = time.perf_counter() - started
        # What the next batch can hold at once: what is queued now, and the callers
        # released below, who may be back with their next entries within a commit.
        released = sum(pending.future is not None for pending in batch)
        self._expect = min(len(self._queue) + released, self._max_batch)
        for pending, index in zip(batch, indexes, strict=True):
            if pending.future is not None:
                pending.future.set_result(index)
