"""``AuditSink``: how every package records evidence, and an in-memory sink for tests.

The contract every sink keeps:

* :meth:`AuditSink.record` returns the entry's index in the log only once the
  entry is durable; otherwise it raises :class:`AuditUnavailableError`
  promptly (within the sink's timeout), never blocks indefinitely;
* :meth:`AuditSink.record_async` is the same for code on an event loop: it
  never blocks the loop while waiting;
* :meth:`AuditSink.record_later` queues an entry for the next batch without
  waiting (best effort: a failure is logged, never raised) — for evidence
  whose loss must not stop the caller.

A caller that handles personal data fails closed (503) on
:class:`AuditUnavailableError`.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Protocol, runtime_checkable

from interlock.audit.entry import AuditEntry, Decision, decision_entry, encode_entry
from interlock.audit.errors import AuditUnavailableError
from interlock.audit.pseudonyms import Pseudonymiser

__all__ = ["AuditSink", "MemorySink", "record_decision"]


@runtime_checkable
class AuditSink(Protocol):
    """Where audit entries go."""

    def record(self, entry: AuditEntry) -> int:
        """Make ``entry`` durable and return its index; raise ``AuditUnavailableError`` if not."""
        ...

    async def record_async(self, entry: AuditEntry) -> int:
        """:meth:`record` without blocking the event loop."""
        ...

    def record_later(self, entry: AuditEntry) -> None:
        """Queue ``entry`` without waiting; never raises (a failure is logged)."""
        ...


class MemorySink:
    """An ``AuditSink`` that keeps encoded entries in a list (tests, demos).

    Set :attr:`unavailable` to make every record fail as a full disk would.
    """

    def __init__(self, pseudonymiser: Pseudonymiser | None = None) -> None:
        """An empty sink; entries are pseudonymised with a fixed test key by default."""
        self._pseudonymiser = pseudonymiser or Pseudonymiser(
            b"memory-sink-test-key".ljust(32, b".")
        )
        self._lock = threading.Lock()
        self.entries: list[AuditEntry] = []
        self.encoded: list[bytes] = []
        self.unavailable = False

    def record(self, entry: AuditEntry) -> int:
        """Append ``entry``; raise :class:`AuditUnavailableError` when marked unavailable."""
        if self.unavailable:
            raise AuditUnavailableError("the audit trail cannot be written")
        encoded = encode_entry(entry, self._pseudonymiser)
        with self._lock:
            self.entries.append(entry)
            self.encoded.append(encoded)
            return len(self.entries) - 1

    async def record_async(self, entry: AuditEntry) -> int:
        """As :meth:`record` (it never blocks)."""
        await asyncio.sleep(0)
        return self.record(entry)

    def record_later(self, entry: AuditEntry) -> None:
        """As :meth:`record`, dropping the entry when marked unavailable."""
        if not self.unavailable:
            self.record(entry)


async def record_decision(sink: AuditSink, decision: Decision) -> None:
    """Make ``decision``'s entry durable: without its model where the sink can.

    The sink's ``record_decision_async`` (the durable log's: the same bytes as
    the model's, :func:`~interlock.audit.entry.encode_decision`) when it has
    one and the decision is within its bounds; ``record_async`` of the model
    otherwise. :class:`AuditUnavailableError` if it cannot be made durable;
    pydantic's ``ValidationError`` if the model refuses a value.
    """
    durable = getattr(sink, "record_decision_async", None)
    if durable is None or await durable(decision) is None:
        await sink.record_async(decision_entry(decision))
