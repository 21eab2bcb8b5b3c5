"""Audit appends with 1, 8 and 64 producers, and the gateway's audit cost on its event loop.

* **Durable appends/s**: ``producers`` threads each call ``sink.record(entry)``
  (returns once the batch is committed; an urgent entry: SQLite
  ``synchronous=FULL``), on SQLite and PostgreSQL.
* **Queued appends/s**: the same producers hand entries over without waiting
  (``record_later``, best effort: what the gateway does for most decisions);
  the clock stops once the writer has committed every one of them (the log's
  size is read back, so an entry that did not land is not counted). A
  producer that finds the writer's queue full (``has_room``) waits 1 ms
  rather than offering entries the log would drop: the figure is what the
  log commits, not what refusing costs (entries dropped are printed).
* **Appends/s while the interpreter is busy**: 50,000 encoded entries queued
  at once (``submit_later``) while another thread runs Python without pause;
  the writer gives up the interpreter lock for each database round trip and
  waits for it after each, so this is what it commits when it must take the
  lock back from a thread that never waits (the worst case: the gateway's
  event loop waits on its sockets; for information, the batch size decides
  it, see ``MAX_BATCH``).
* **Event-loop cost per decision**: CPU time of the loop's thread
  (``time.thread_time``) per ``GatewayAudit.request`` for a forwarded,
  best-effort request, while the writer commits in the background.

The peer, side by side in the same run: Python's ``sqlite3`` inserting the
same encoded entries, 1,000 rows per transaction with ``executemany``, the
same pragmas (WAL, ``synchronous=FULL``) — a database doing no hashing, no
tree and no signing; the ratio says how close the log's writer gets to it.

Run: ``.venv/bin/python benchmarks/audit/producers.py`` (PostgreSQL at
INTERLOCK_TEST_POSTGRES_URL or 127.0.0.1:5432; skipped with a note if absent).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp.test_utils import make_mocked_request

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import postgres_schema
from benchmarks.results import report
from interlock.audit import AuditEntry, Outcome, Volume
from interlock.audit.entry import encode_entry
from interlock.audit.pseudonyms import Pseudonymiser
from interlock.audit.service import AuditLog
from interlock.config.manifest import Integration
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.gateway.audit_trail import GatewayAudit
from interlock.identity.grants import Principal
from interlock.testing.services import POSTGRES, unreachable

PRODUCERS = (1, 8, 64)
SECONDS = 3.0


def entry(number: int) -> AuditEntry:
    """A typical gateway decision (about 450 bytes encoded)."""
    return AuditEntry(
        actor="client:order-sync",
        action="gateway.request",
        integration="order-sync",
        source="erp",
        target="crm",
        data_categories=("user.contact.email", "user.name"),
        volume=Volume(records=1, bytes=812),
        outcome=Outcome(result="success", status=200),
        correlation_id=f"req-{number:012d}",
        details={"route": "GET /orders/{id}", "method": "GET", "credential": "api-key ab12cd34"},
        client_ip="192.0.2.10",
    )


def run_threads(producers: int, work: Callable[[int], int]) -> tuple[int, float]:
    """Run ``work(slot)`` in ``producers`` threads; (total count, seconds)."""
    counts = [0] * producers

    def body(slot: int) -> None:
        counts[slot] = work(slot)

    started = time.perf_counter()
    threads = [threading.Thread(target=body, args=(i,)) for i in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts), time.perf_counter() - started


def durable(log: AuditLog, producers: int) -> float:
    """Durable records/s: every producer waits for each of its entries."""
    stop = time.perf_counter() + SECONDS
    sink = log.sink

    def work(slot: int) -> int:
        done = 0
        while time.perf_counter() < stop:
            sink.record(entry(slot * 10_000_000 + done))
            done += 1
        return done

    count, seconds = run_threads(producers, work)
    return count / seconds


def room(log: AuditLog) -> Callable[[], bool]:
    """Whether the writer takes a best-effort entry now (always, before ``has_room``)."""
    return getattr(log.writer, "has_room", lambda: True)


def dropped(log: AuditLog) -> int:
    """Best-effort entries the writer refused (0 before it counted them)."""
    return int(getattr(log.writer, "dropped", 0))


def queued(settings: Settings, keyring: Keyring, producers: int) -> float:
    """Best-effort records/s, counted once committed (a fresh log; its size is read back)."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    before = log.store.size()
    stop = time.perf_counter() + SECONDS
    sink = log.sink
    has_room = room(log)

    def work(slot: int) -> int:
        done = 0
        while time.perf_counter() < stop:
            if not has_room():  # back-pressure: wait for the writer instead of being dropped
                time.sleep(0.001)
                continue
            sink.record_later(entry(slot * 10_000_000 + done))
            done += 1
        return done

    started = time.perf_counter()
    run_threads(producers, work)
    log.writer.close(timeout=120)
    elapsed = time.perf_counter() - started
    written = log.store.size() - before
    if dropped(log):
        print(f"  queued, {producers} producers: {dropped(log):,} entries dropped", flush=True)
    log.close()
    return written / elapsed


def busy(settings: Settings, keyring: Keyring, bodies: list[bytes]) -> float:
    """Appends/s of queued entries while another thread keeps the interpreter busy."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    before = log.store.size()
    running = [True]

    def spin() -> None:
        count = 0
        while running[0]:
            count += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        started = time.perf_counter()
        now = time.time_ns() // 1000
        for body in bodies[:50_000]:
            log.writer.submit_later(body, now, "order-sync")
        log.writer.close(timeout=120)
        elapsed = time.perf_counter() - started
    finally:
        running[0] = False
        spinner.join()
    written = log.store.size() - before
    log.close()
    return written / elapsed


def decisions(settings: Settings, keyring: Keyring, producers: int) -> float | None:
    """As :func:`queued`, through the gateway's model-free path (None where there is none)."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    sink = log.sink
    record = getattr(sink, "record_decision_later", None)
    if record is None:
        log.close()
        return None
    from interlock.audit.entry import Decision  # absent before this path: imported here

    before = log.store.size()
    stop = time.perf_counter() + SECONDS
    details: dict[str, str | int | bool] = {"route": "GET /orders/{id}", "method": "GET"}
    has_room = room(log)

    def work(slot: int) -> int:
        done = 0
        while time.perf_counter() < stop:
            if not has_room():  # back-pressure, as in queued()
                time.sleep(0.001)
                continue
            record(
                Decision(
                    time.time_ns() // 1000, "client:order-sync", "gateway.request",
                    "order-sync", "erp", "crm", ("user.contact.email", "user.name"), 1, 812,
                    "success", 200, f"req-{slot * 10_000_000 + done:012d}", None,
                    {**details, "credential": "api-key ab12cd34"}, "192.0.2.10",
                )
            )  # fmt: skip
            done += 1
        return done

    started = time.perf_counter()
    run_threads(producers, work)
    log.writer.close(timeout=120)
    elapsed = time.perf_counter() - started
    written = log.store.size() - before
    if dropped(log):
        print(f"  decisions, {producers} producers: {dropped(log):,} entries dropped", flush=True)
    log.close()
    return written / elapsed


def peer(path: Path, bodies: list[bytes]) -> float:
    """Rows/s: sqlite3 inserting the same bodies, 1,000 per transaction, WAL + FULL."""
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("CREATE TABLE IF NOT EXISTS t (idx INTEGER PRIMARY KEY, body BLOB)")
        started = time.perf_counter()
        for start in range(0, len(bodies), 1000):
            connection.execute("BEGIN IMMEDIATE")
            connection.executemany(
                "INSERT INTO t (body) VALUES (?)", [(b,) for b in bodies[start : start + 1000]]
            )
            connection.execute("COMMIT")
        return len(bodies) / (time.perf_counter() - started)
    finally:
        connection.close()


def integration() -> Integration:
    """A best-effort integration (no personal data)."""
    return Integration.model_validate(
        {
            "source": "erp",
            "target": "crm",
            "client": "order-sync",
            "purpose": "orders",
            "legal_basis": "contract",
            "data_categories": ["system.operations"],
            "audit": "best_effort",
            "retention": "P30D",
        }
    )


def loop_cost(log: AuditLog, decisions: int = 20_000) -> float:
    """µs of the loop thread's CPU per recorded gateway decision."""
    audit = GatewayAudit(log.sink)
    flow = integration()
    principal = Principal("order-sync", frozenset({"orders:read"}), "api-key ab12cd34ef56")
    request = make_mocked_request("GET", "/orders/42")

    async def run() -> float:
        started = time.thread_time()
        for number in range(decisions):
            await audit.request(
                request,
                integration_name="order-sync",
                integration=flow,
                label="GET /orders/{id}",
                status=200,
                forwarded=True,
                principal=principal,
                reason=None,
                correlation_id=f"req-{number:012d}",
                response_bytes=812,
                removed_fields=0,
            )
            if number % 100 == 99:
                await asyncio.sleep(0)  # the writer gets its turn, as between requests
        return (time.thread_time() - started) / decisions * 1e6

    return asyncio.run(run())


@contextmanager
def postgres_url() -> Iterator[str | None]:
    """A fresh schema on the test PostgreSQL (None when unreachable), dropped afterwards."""
    reason = unreachable(POSTGRES)
    if reason is not None:
        print(f"postgresql skipped: {reason}")
        yield None
        return
    with postgres_schema() as url:
        yield url


def measure(
    name: str, url: str, keyring: Keyring, work: Path, bodies: list[bytes]
) -> tuple[dict[str, float], float]:
    """Durable and queued appends/s for every producer count on one backend; busy appends/s."""
    settings = Settings(data_dir=work, audit_database_url=url)
    found: dict[str, float] = {}
    for producers in PRODUCERS:
        log = AuditLog.open(settings, keyring, witnesses=[])
        try:
            found[f"durable-{producers}"] = durable(log, producers)
        finally:
            log.close()
        found[f"queued-{producers}"] = queued(settings, keyring, producers)
        fast = decisions(settings, keyring, producers)
        if fast is not None:
            found[f"decisions-{producers}"] = fast
        print(
            f"{name:10s} {producers:2d} producers: durable {found[f'durable-{producers}']:9,.0f}/s"
            f"   queued {found[f'queued-{producers}']:9,.0f}/s"
            f"   gateway decisions {'n/a' if fast is None else f'{fast:9,.0f}/s'}",
            flush=True,
        )
    crowded = busy(settings, keyring, bodies)
    print(f"{name:10s} queued while another thread runs Python: {crowded:9,.0f}/s", flush=True)
    return found, crowded


def main() -> None:
    """Run both backends, the peer and the loop cost; one ratio line per target."""
    work = Path(tempfile.mkdtemp(prefix="interlock-audit-producers-"))
    try:
        keyring = Keyring.create(work / "keyring.json")
        pseudonymiser = Pseudonymiser(b"k" * 32)
        bodies = [encode_entry(entry(i), pseudonymiser) for i in range(100_000)]
        raw = peer(work / "peer.db", bodies)
        print(f"peer sqlite3 executemany, 1,000 rows per commit: {raw:9,.0f}/s", flush=True)
        sqlite, sqlite_busy = measure(
            "sqlite", f"sqlite:///{work / 'appends.db'}", keyring, work, bodies
        )
        raw = (raw + peer(work / "peer.db", bodies)) / 2  # before and after ours: the mean
        settings = Settings(data_dir=work, audit_database_url=f"sqlite:///{work / 'loop.db'}")
        log = AuditLog.open(settings, keyring, witnesses=[])
        try:
            cost = loop_cost(log)
        finally:
            log.close()
        print(f"gateway decision on the event loop: {cost:6.1f} µs CPU", flush=True)
        with postgres_url() as url:
            postgres, postgres_busy = (
                measure("postgresql", url, keyring, work, bodies) if url else ({}, 0.0)
            )

        best = max(sqlite.values())
        report(
            "audit-producers",
            "audit-appends-sqlite-vs-sqlite3",
            best / raw,
            target=None,
            peer="sqlite3 executemany of the same bodies, 1,000 per commit, WAL, synchronous=FULL",
            note=f"ours {best:,.0f}/s, peer {raw:,.0f}/s",
        )
        report(
            "audit-producers",
            "audit-appends-per-s-sqlite",
            best,
            target=50_000,
            peer="",
            digits=0,
            note=(
                "best over 1/8/64 producers of durable (record), queued (record_later) and "
                "gateway decisions (record_decision_later), counted once committed"
            ),
        )
        busy_note = (
            "50,000 queued entries while another thread runs Python throughout "
            "(the worst case for the writer)"
        )
        report(
            "audit-producers",
            "audit-appends-per-s-sqlite-busy-interpreter",
            sqlite_busy,
            target=None,
            peer="",
            digits=0,
            note=busy_note,
        )
        if postgres:
            report(
                "audit-producers",
                "audit-appends-per-s-postgresql-busy-interpreter",
                postgres_busy,
                target=None,
                peer="",
                digits=0,
                note=busy_note,
            )
            report(
                "audit-producers",
                "audit-appends-per-s-postgresql",
                max(postgres.values()),
                target=20_000,
                peer="",
                digits=0,
                note="best over 1/8/64 producers of durable, queued and gateway decisions",
            )
        report(
            "audit-producers",
            "audit-loop-us-per-decision",
            cost,
            target=20,
            direction="<=",
            peer="",
            digits=1,
            note="CPU of the event loop's thread per GatewayAudit.request, best effort, SQLite",
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
