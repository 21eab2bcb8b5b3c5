"""Audit log: durable appends/s with group commit, verification vs hashlib, proofs at 10^6.

* Durable appends per second through the real sink (``AuditLog.sink.record``,
  which returns only once the batch is committed; SQLite with
  ``synchronous=FULL``), from 1 thread (no batching possible) and from 64
  threads (group commit), on SQLite and on PostgreSQL.
* Verification throughput: recomputing the tree from the entries (RFC 9162
  leaf hash of every entry, every node, the root) against the peer, hashlib
  SHA-256 over the same entry bytes (one digest per entry). Also ``audit
  verify`` from storage (database reads included), for reference.
* Proofs at 10^6 entries: hashes per inclusion and consistency proof (at
  most ceil(log2 n), resp. about 2 log2 n), and generation time from the
  stored tree, against 10^3 entries. The proof size is fixed by the
  algorithm, so it is reported as a property check (the longest proof over
  ceil(log2 n), target <= 1), not as a speed.

Run: ``.venv/bin/python benchmarks/audit/run.py`` (PostgreSQL at
INTERLOCK_TEST_POSTGRES_URL or 127.0.0.1:5432; skipped with a note if absent).
"""

from __future__ import annotations

import hashlib
import math
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

if __package__ in {None, ""}:  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import postgres_schema
from benchmarks.results import report
from interlock.audit import AuditEntry, Outcome, Volume
from interlock.audit.entry import encode_entry
from interlock.audit.keys import load_keys
from interlock.audit.proofs import ProofReader
from interlock.audit.service import AuditLog
from interlock.audit.storage import LogStore, create_audit_engines
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.checkpoint import Checkpoint
from interlock.proofs.rfc9162 import leaf_hashes, root_of
from interlock.sdk.audit import verify_tree
from interlock.testing.services import POSTGRES, unreachable

BIG = 1_000_000
SMALL = 1_000


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
        subjects=(f"customer-{number}@example.com",),
        client_ip="192.0.2.10",
    )


def appends_per_second(log: AuditLog, threads: int, seconds: float) -> float:
    """Durable records per second from ``threads`` callers."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(slot: int) -> None:
        sink = log.sink
        while time.perf_counter() < stop:
            sink.record(entry(slot * 10_000_000 + counts[slot]))
            counts[slot] += 1

    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(counts) / (time.perf_counter() - started)


def measure_appends(name: str, url: str, keyring: Keyring, work: Path) -> dict[str, float]:
    """Appends/s with 1 and 64 callers."""
    settings = Settings(data_dir=work, audit_database_url=url)
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        single = appends_per_second(log, 1, 3.0)
        grouped = appends_per_second(log, 64, 5.0)
    finally:
        log.close()
    print(
        f"{name:10s} durable appends/s: 1 caller {single:9,.0f}   64 callers (group commit) {grouped:9,.0f}"
    )
    return {f"{name}-1": single, f"{name}-64": grouped}


def best_of(runs: int, task: Callable[[], object]) -> float:
    """The fastest of ``runs`` timings of ``task`` (seconds)."""
    best = math.inf
    for _ in range(runs):
        started = time.perf_counter()
        task()
        best = min(best, time.perf_counter() - started)
    return best


def recompute(bodies: list[bytes], head: Checkpoint) -> None:
    """Offline verification of a complete export: every leaf hash, every node, the root."""
    verify_tree(bodies, head)


def hashlib_peer(bodies: list[bytes]) -> list[bytes]:
    """The peer: one SHA-256 per entry over the same bytes."""
    sha256 = hashlib.sha256
    return [sha256(body).digest() for body in bodies]


def build(store: LogStore, keyring: Keyring, size: int) -> list[bytes]:
    """Append ``size`` entries in batches of 10,000 (one transaction each); returns the bodies."""
    keys = load_keys(store.engine, keyring, "bench.example/audit")
    bodies: list[bytes] = []
    for start in range(0, size, 10_000):
        chunk = [
            encode_entry(entry(i), keys.pseudonymiser)
            for i in range(start, min(size, start + 10_000))
        ]
        with store.appending(keys) as batch:
            for body in chunk:
                batch.add(body, 0, "order-sync")
        bodies.extend(chunk)
    return bodies


@dataclass(frozen=True)
class ProofCosts:
    """Inclusion and consistency proofs over 200 random picks: hashes and generation time."""

    inclusion_mean: float  # hashes
    inclusion_max: int
    inclusion_ms: float
    consistency_mean: float
    consistency_ms: float


def proof_costs(store: LogStore, size: int) -> ProofCosts:
    """Mean inclusion and consistency proof length (hashes) and generation time (ms)."""
    pick = random.Random(9)  # noqa: S311  (benchmark sampling)
    lengths, times, clengths, ctimes = [], [], [], []
    with store.engine.connect() as connection:
        for _ in range(200):
            reader = ProofReader(connection, size)  # a fresh cache: every proof reads the database
            index = pick.randrange(size)
            started = time.perf_counter()
            proof = reader.inclusion(index, size)
            times.append(time.perf_counter() - started)
            lengths.append(len(proof))
            reader = ProofReader(connection, size)
            old = pick.randrange(1, size)
            started = time.perf_counter()
            proof = reader.consistency(old, size)
            ctimes.append(time.perf_counter() - started)
            clengths.append(len(proof))
    mean = statistics.fmean
    return ProofCosts(
        mean(lengths), max(lengths), mean(times) * 1000, mean(clengths), mean(ctimes) * 1000
    )


def main() -> None:
    """Run everything; end with one ratio line per target."""
    work = Path(tempfile.mkdtemp(prefix="interlock-audit-bench-"))
    try:
        keyring = Keyring.create(work / "keyring.json")
        measure_appends("sqlite", f"sqlite:///{work / 'appends.db'}", keyring, work)
        reason = unreachable(POSTGRES)
        if reason is None:
            with postgres_schema() as url:
                measure_appends("postgresql", url, keyring, work)
        else:
            print(f"postgresql skipped: {reason}")

        results: dict[int, ProofCosts] = {}
        bodies: list[bytes] = []
        for size in (SMALL, BIG):
            engine, writer = create_audit_engines(f"sqlite:///{work / f'proofs-{size}.db'}")
            store = LogStore(engine, writer)
            started = time.perf_counter()
            bodies = build(store, keyring, size)
            built = time.perf_counter() - started
            results[size] = proof_costs(store, size)
            if size == BIG:
                started = time.perf_counter()
                verified = verify_log(engine)
                stored = time.perf_counter() - started
                print(
                    f"built {size:,} entries in {built:.1f} s; audit verify from SQLite: "
                    f"{verified.size / stored:,.0f} entries/s"
                )
            store.dispose()

        megabytes = sum(len(b) for b in bodies) / 1e6
        head = Checkpoint("bench.example/audit", len(bodies), root_of(leaf_hashes(bodies)))
        # Interleaved, best of 5 each: a burst of load elsewhere hits both sides alike.
        ours, theirs = math.inf, math.inf
        for _ in range(5):
            ours = min(ours, best_of(1, lambda: recompute(bodies, head)))
            theirs = min(theirs, best_of(1, lambda: hashlib_peer(bodies)))
        print(
            f"verification (sdk verify_tree) {len(bodies) / ours:12,.0f} entries/s {megabytes / ours:8.1f} MB/s"
        )
        print(
            f"hashlib sha256 same bytes      {len(bodies) / theirs:12,.0f} entries/s {megabytes / theirs:8.1f} MB/s"
        )
        for size, costs in results.items():
            print(
                f"n={size:>9,}: inclusion proof {costs.inclusion_mean:5.1f} hashes "
                f"({costs.inclusion_mean * 32:6.0f} B, at most {costs.inclusion_max}) in "
                f"{costs.inclusion_ms:6.3f} ms; consistency proof {costs.consistency_mean:5.1f} "
                f"hashes in {costs.consistency_ms:6.3f} ms"
            )
        small, big = results[SMALL], results[BIG]
        print(
            f"proof generation time 10^6 vs 10^3: x{big.inclusion_ms / small.inclusion_ms:.2f} "
            f"(entries x1000, log2 x{math.log2(BIG) / math.log2(SMALL):.1f})"
        )
        report(
            "audit",
            "verify-vs-hashlib",
            theirs / ours,
            target=0.5,
            peer="hashlib sha256, one digest per entry over the same bytes",
            note=f"{len(bodies):,} entries; ours: leaf hash + tree + root (sdk verify_tree)",
        )
        # Fixed by the algorithm, not by speed: a property check. RFC 9162 §2.1.3.1: an
        # inclusion proof in a tree of n leaves has at most ceil(log2 n) hashes.
        bound = math.ceil(math.log2(BIG))
        report(
            "audit",
            "inclusion-proof-max-hashes-per-ceil-log2n-at-1e6",
            big.inclusion_max / bound,
            target=1.0,
            direction="<=",
            peer="",
            kind="property",
            note=(
                f"longest of 200 inclusion proofs at n={BIG:,}: {big.inclusion_max} hashes; "
                f"ceil(log2 n) = {bound}; mean {big.inclusion_mean:.2f}"
            ),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
