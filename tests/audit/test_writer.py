"""The group-commit writer fails closed and promptly: a hung or failing database never stalls."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest
from structlog.testing import capture_logs

from interlock.audit import AuditEntry, AuditUnavailableError, MemorySink, Outcome
from interlock.audit.writer import MAX_BATCH, GroupCommitWriter, Pending

ENTRY = AuditEntry(actor="client:a", action="gateway.request", outcome=Outcome(result="success"))


def test_a_hung_database_fails_the_caller_after_the_timeout() -> None:
    """The append hangs: record raises AuditUnavailableError; the abandoned entry is dropped."""
    release = threading.Event()
    written: list[bytes] = []

    def append(batch: Sequence[Pending]) -> list[int]:
        release.wait(10)
        written.extend(p.body for p in batch)
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=0.05)
    try:
        stuck = writer.submit(b"first", 0, None)  # taken into the hung batch
        with pytest.raises(AuditUnavailableError, match="within"):
            writer.wait(stuck)
        abandoned = writer.submit(b"second", 0, None)
        with pytest.raises(AuditUnavailableError):
            writer.wait(abandoned)
        release.set()
    finally:
        writer.close()
    assert b"second" not in written


def test_a_failing_database_fails_every_entry_of_the_batch() -> None:
    """A full disk (OSError) becomes AuditUnavailableError for each caller, without detail."""

    def append(batch: Sequence[Pending]) -> list[int]:
        raise OSError(28, "No space left on device")

    writer = GroupCommitWriter(append, timeout=5)
    try:
        with pytest.raises(AuditUnavailableError) as caught:
            writer.wait(writer.submit(b"x", 0, None))
        assert "space" not in str(caught.value)
    finally:
        writer.close()
    with pytest.raises(AuditUnavailableError, match="closed"):
        writer.submit(b"y", 0, None)


def test_async_waiting_times_out_without_blocking_the_loop() -> None:
    """``wait_async`` gives up after the timeout while the loop keeps running."""
    release = threading.Event()

    def append(batch: Sequence[Pending]) -> list[int]:
        release.wait(10)
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=0.05)

    async def main() -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.ensure_future(tick())
        with pytest.raises(AuditUnavailableError):
            await writer.wait_async(writer.submit(b"x", 0, None))
        ticker.cancel()
        return ticks

    try:
        assert asyncio.run(main()) > 1
    finally:
        release.set()
        writer.close()


def test_the_memory_sink_records_and_can_be_made_unavailable() -> None:
    """The test double keeps entries and simulates an unwritable trail."""
    sink = MemorySink()
    assert sink.record(ENTRY) == 0
    assert asyncio.run(sink.record_async(ENTRY)) == 1
    sink.unavailable = True
    with pytest.raises(AuditUnavailableError):
        sink.record(ENTRY)
    assert len(sink.entries) == 2


def test_best_effort_entries_share_a_commit_and_an_urgent_one_ends_the_wait() -> None:
    """Entries nobody waits for linger to share a transaction; a waiting caller is not delayed."""
    batches: list[list[bytes]] = []
    done = threading.Event()

    def append(batch: Sequence[Pending]) -> list[int]:
        batches.append([p.body for p in batch])
        done.set()
        return list(range(len(batch)))

    writer = GroupCommitWriter(
        append, timeout=5, linger=10.0
    )  # a long linger: only urgency ends it
    try:
        for n in range(5):
            writer.submit(f"later-{n}".encode(), 0, None, urgent=False)
        assert not done.wait(0.2)  # still lingering
        urgent = writer.submit(b"now", 0, None)
        assert writer.wait(urgent) == 5
    finally:
        writer.close()
    assert batches[0] == [b"later-0", b"later-1", b"later-2", b"later-3", b"later-4", b"now"]


def test_closing_writes_what_lingers() -> None:
    written: list[bytes] = []

    def append(batch: Sequence[Pending]) -> list[int]:
        written.extend(p.body for p in batch)
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=5, linger=10.0)
    writer.submit(b"best-effort", 0, None, urgent=False)
    writer.close()
    assert written == [b"best-effort"]


def test_a_full_queue_drops_best_effort_entries_counted_with_one_log_line() -> None:
    """Best effort over the limit: dropped and counted, one error line for the flood; never raised.

    An entry a caller waits for is refused instead (its request fails closed).
    """
    release = threading.Event()

    def append(batch: Sequence[Pending]) -> list[int]:
        release.wait(10)
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=5, max_pending=3, linger=10.0)
    try:
        with capture_logs() as logs:
            taken = [writer.submit_later(f"e{n}".encode(), 0, None) for n in range(50)]
        assert taken == [True] * 3 + [False] * 47
        assert not writer.has_room()
        assert (writer.dropped, writer.lost) == (47, 47)
        dropped = [line for line in logs if line["event"] == "audit entries dropped"]
        assert dropped == [dropped[0]]
        assert (dropped[0]["entries"], dropped[0]["reason"]) == (1, "queue full")
        with pytest.raises(AuditUnavailableError, match="queue full"):
            writer.submit(b"waited-for", 0, None)
    finally:
        release.set()
        writer.close()
    assert not writer.submit_later(b"after close", 0, None)
    assert writer.dropped == 48


def test_best_effort_entries_of_a_failed_batch_are_counted_as_lost() -> None:
    """A batch the database refuses: its best-effort entries count as lost, waiting callers fail."""

    def append(batch: Sequence[Pending]) -> list[int]:
        raise OSError(28, "No space left on device")

    writer = GroupCommitWriter(append, timeout=5, linger=10.0)
    try:
        for n in range(4):
            writer.submit_later(f"e{n}".encode(), 0, None)
        with pytest.raises(AuditUnavailableError):
            writer.wait(writer.submit(b"waited-for", 0, None))  # ends the linger: one batch
    finally:
        writer.close()
    assert (writer.dropped, writer.failed, writer.lost) == (0, 4, 4)


def test_a_deep_queue_is_written_in_batches_of_max_batch() -> None:
    """Entries queued behind a slow batch go in as few transactions as MAX_BATCH allows."""
    sizes: list[int] = []
    started, release = threading.Event(), threading.Event()

    def append(batch: Sequence[Pending]) -> list[int]:
        started.set()
        release.wait(10)
        sizes.append(len(batch))
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=10)
    first = writer.submit(b"first", 0, None)
    assert started.wait(5)  # the writer holds the first entry in its own batch
    queued = 2 * MAX_BATCH + 7
    for number in range(queued):
        assert writer.submit_later(b"%d" % number, number, None)
    release.set()
    assert writer.wait(first) == 0
    writer.close()
    assert sizes == [1, MAX_BATCH, MAX_BATCH, 7]


def test_callers_released_together_are_committed_together_again() -> None:
    """Group commit gathers the callers a batch released instead of committing the first alone.

    Four callers each write ten entries, waiting for each. Committing the
    moment one entry arrives alternated batches of 1 and 3 (20 commits);
    waiting for as many callers as the last batch released takes about one
    commit per round.
    """
    sizes: list[int] = []

    def append(batch: Sequence[Pending]) -> list[int]:
        time.sleep(0.02)  # a commit's fsync: long enough for the released callers to return
        sizes.append(len(batch))
        return list(range(len(batch)))

    writer = GroupCommitWriter(append, timeout=10)

    def caller() -> None:
        for number in range(10):
            writer.wait(writer.submit(b"%d" % number, number, None))

    callers = [threading.Thread(target=caller) for _ in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join()
    writer.close()
    assert sum(sizes) == 40
    assert len(sizes) <= 14, sizes  # 10 rounds, a few split by a caller scheduled late
