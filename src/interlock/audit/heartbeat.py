"""Tree heads while the log is idle: a signed, timestamped head at least every period.

Every committed batch signs a tree head. A log with no traffic would sign none,
and a witness (or an auditor) could not tell an idle log from a stopped or a
truncated one. So a running gateway appends an ``audit.tree_head`` entry —
actor ``system:audit``, its time inside the signed tree — whenever no tree head
has been signed, by this process or any other writing the same database, for
``INTERLOCK_AUDIT_CHECKPOINT_SECONDS``. The new head goes to the witnesses like
any other.

The C2SP checkpoint has no time field (extension lines are not recommended),
and the signature over an unchanged tree is the same bytes, so a new head needs
a new entry.
"""

from __future__ import annotations

import threading
import time
from typing import Final

from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.audit.storage import LogStore
from interlock.logs import get_logger

__all__ = ["ACTION", "TreeHeadHeartbeat"]

ACTION: Final = "audit.tree_head"
_MIN_WAIT: Final = 1.0
_log = get_logger("interlock.audit")


class TreeHeadHeartbeat:
    """A thread that keeps the newest tree head at most ``period`` seconds old."""

    def __init__(self, store: LogStore, sink: AuditSink, period: float) -> None:
        """Start watching ``store``; append through ``sink`` when it has been quiet."""
        if period <= 0:
            raise ValueError("the period must be positive")
        self._store = store
        self._sink = sink
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="audit-heartbeat", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (an append in progress finishes first)."""
        self._stop.set()
        self._thread.join(10.0)

    def beat(self) -> float:
        """Append a head if the newest is a period old; the seconds until the next check."""
        last = self._store.last_checkpoint_us()
        age = self._period if last is None else time.time() - last / 1_000_000
        if age < self._period:
            return max(_MIN_WAIT, self._period - age)
        self._sink.record(
            AuditEntry(
                actor="system:audit",
                action=ACTION,
                outcome=Outcome(result="success"),
                details={"idle_seconds": int(age)} if last is not None else {},
            )
        )
        return self._period

    def _run(self) -> None:
        wait = self._period
        while not self._stop.wait(wait):
            try:
                wait = self.beat()
            except Exception as exc:  # noqa: BLE001  (a failed beat is retried; the log goes on)
                _log.warning("audit_tree_head_failed", error=type(exc).__name__)
                wait = self._period
