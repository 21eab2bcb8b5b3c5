"""Traffic through the balancer while Redis and PostgreSQL restart, a replica dies and the manifest changes.

What :func:`run_chaos` measures (``Chaos``):

* ``lost`` — requests that got no HTTP answer (a hang ends at the client's 10 s
  timeout), or a 502/504 from nginx (no replica answered); the target is 0
  beyond those in flight to the killed replica;
* ``server_errors`` — 500s (an unhandled failure): the target is 0 in every phase;
* ``refused_redis_down`` — 503s while Redis was down (limits fail closed: refused
  cleanly, by design, see docs/scale.md), counted apart;
* ``refused_postgres_down`` — 503s from PostgreSQL's stop until every live replica
  answers again (the store and the audit log fail closed), counted apart, and
  ``postgres_recovery_seconds``, from PostgreSQL accepting connections again
  to every live replica answering 200 (no replica restarted) — only when the
  fleet runs its own PostgreSQL;
* ``capped_admitted`` — of ``3 x CAPPED_PER_HOUR`` requests of the capped client,
  spread over every replica at once, how many were admitted (the limit: CAPPED_PER_HOUR);
* ``manifest_seconds`` / ``revocation_seconds`` — from the change to the moment
  every live replica enforces it (asked directly, not through the balancer);
* ``audit_clean`` — ``interlock audit verify`` exits 0 afterwards (no gap, every
  leaf and checkpoint consistent), and ``audit_duplicates`` — request entries
  (one correlation id, one action) recorded more than once: the target is 0.

PostgreSQL is restarted only when the fleet runs its own (``Fleet.postgres``):
the machine's is shared with others.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import sqlalchemy as sa

from benchmarks.replicas.fleet import CAPPED_PER_HOUR, Fleet
from interlock.audit.schema import SEARCH

__all__ = ["Chaos", "run_chaos"]


@dataclass
class Chaos:
    """The figures of one run (see the module docstring)."""

    statuses: Counter[int] = field(default_factory=Counter)
    lost: int = 0
    server_errors: int = 0
    refused_redis_down: int = 0
    refused_postgres_down: int = 0
    postgres_restarted: bool = False
    postgres_recovery_seconds: float = 0.0
    capped_admitted: int = 0
    capped_sent: int = 0
    manifest_seconds: float = 0.0
    revocation_seconds: float = 0.0
    audit_clean: bool = False
    audit_output: str = ""
    audit_duplicates: int = -1

    @property
    def over_admission(self) -> float:
        """Admitted beyond the budget, as a fraction of it."""
        return max(0, self.capped_admitted - CAPPED_PER_HOUR) / CAPPED_PER_HOUR

    def lines(self) -> list[str]:
        """A human summary."""
        return [
            f"answers by status: {dict(sorted(self.statuses.items()))}",
            f"lost (no answer, 502, 504): {self.lost}",
            f"server errors (500): {self.server_errors}",
            f"refused while Redis was down (503, fail closed): {self.refused_redis_down}",
            *(
                [
                    "refused while PostgreSQL restarted (503, fail closed): "
                    f"{self.refused_postgres_down}",
                    f"PostgreSQL back to every live replica answering: "
                    f"{self.postgres_recovery_seconds:.2f} s",
                ]
                if self.postgres_restarted
                else []
            ),
            f"capped client: {self.capped_admitted} of {self.capped_sent} admitted "
            f"(budget {CAPPED_PER_HOUR}; over-admission {self.over_admission:.1%})",
            f"manifest change on every live replica: {self.manifest_seconds:.2f} s",
            f"revocation on every live replica: {self.revocation_seconds:.2f} s",
            f"audit verify: {'clean' if self.audit_clean else 'FAILED'}; "
            f"entries recorded twice: {self.audit_duplicates}",
        ]


class _Traffic:
    """Threads sending the bulk client's requests through nginx on keep-alive connections."""

    def __init__(self, fleet: Fleet, threads: int) -> None:
        self.fleet = fleet
        self.stop = threading.Event()
        self.redis_down = threading.Event()
        self.postgres_down = threading.Event()
        self.lock = threading.Lock()
        self.result = Chaos()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def __enter__(self) -> _Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        connection: http.client.HTTPSConnection | None = None
        headers = {"X-API-Key": self.fleet.keys["bulk"]}
        while not self.stop.is_set():
            if connection is None:
                connection = self.fleet.connection()
            down = self.redis_down.is_set()
            pg_down = self.postgres_down.is_set()
            try:
                connection.request("GET", "/orders/1001", headers=headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
                connection = None
            self._count(
                status, down or self.redis_down.is_set(), pg_down or self.postgres_down.is_set()
            )
        if connection is not None:
            connection.close()

    def _count(self, status: int, redis_down: bool, postgres_down: bool) -> None:
        with self.lock:
            self.result.statuses[status] += 1
            if status in {0, 502, 504}:
                self.result.lost += 1
            elif status == 500:
                self.result.server_errors += 1
            elif status == 503 and redis_down:
                self.result.refused_redis_down += 1
            elif status == 503 and postgres_down:
                self.result.refused_postgres_down += 1


def _until(condition: Callable[[], bool], seconds: float = 60) -> float:
    """Seconds until ``condition()`` holds (polled every 20 ms)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > seconds:
            raise RuntimeError(f"not reached within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _capped(fleet: Fleet, result: Chaos) -> None:
    """3x the capped client's budget at once, through the balancer (every replica)."""
    sent = 3 * CAPPED_PER_HOUR
    key = fleet.keys["capped"]
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: fleet.get("/capped/1001", key)[0], range(sent)))
    result.capped_sent = sent
    result.capped_admitted = sum(1 for status in statuses if status == 200)


def _answers_everywhere(fleet: Fleet) -> bool:
    """Every live replica answers the bulk client's request with 200, asked directly."""
    key = fleet.keys["bulk"]
    return all(
        fleet.get("/orders/1001", key, port=port)[0] == 200
        for index, port in enumerate(fleet.replica_ports)
        if fleet.alive(index)
    )


def _restart_postgres(fleet: Fleet, traffic: _Traffic) -> None:
    """Stop PostgreSQL (fast: sessions end mid-transaction), 2 s down, start it again."""
    traffic.postgres_down.set()
    fleet.stop_postgres()
    time.sleep(2)
    fleet.start_postgres()
    traffic.result.postgres_restarted = True
    traffic.result.postgres_recovery_seconds = _until(lambda: _answers_everywhere(fleet))
    traffic.postgres_down.clear()


def run_chaos(fleet: Fleet, *, threads: int = 4, kill: int = 2) -> Chaos:
    """Run the scenario on a started fleet of at least ``kill + 1`` replicas."""
    live = [port for index, port in enumerate(fleet.replica_ports) if index != kill]
    with _Traffic(fleet, threads) as traffic:
        result = traffic.result
        _capped(fleet, result)
        time.sleep(1)
        traffic.redis_down.set()  # Redis restarts (its data is lost: no persistence)
        fleet.stop_redis()
        time.sleep(1)
        fleet.start_redis()
        time.sleep(1)  # a replica notices on its next command
        traffic.redis_down.clear()
        time.sleep(1)
        if fleet.postgres is not None:
            _restart_postgres(fleet, traffic)
            time.sleep(1)
        fleet.kill_replica(kill)  # SIGKILL: requests in flight on it fail
        time.sleep(2)
        version = fleet.publish(fleet.manifest_text + "# chaos: version 2\n")
        started = time.monotonic()

        def enforced() -> bool:
            for port in live:
                ready = fleet.ready(port)
                if ready is None or ready["manifest"]["version"] != version:
                    return False
            return True

        _until(enforced)
        result.manifest_seconds = time.monotonic() - started
        probe = fleet.keys["probe"]
        if not all(fleet.get("/orders/1001", probe, port=p)[0] == 200 for p in live):
            raise RuntimeError("the probe key is refused before its revocation")
        fleet.revoke("probe")
        started = time.monotonic()
        _until(lambda: all(fleet.get("/orders/1001", probe, port=p)[0] == 401 for p in live))
        result.revocation_seconds = time.monotonic() - started
        time.sleep(1)
    verified = fleet.audit_verify()
    result.audit_clean = verified.returncode == 0
    result.audit_output = (verified.stdout + verified.stderr)[-2000:]
    result.audit_duplicates = _recorded_twice(fleet)
    return result


def _recorded_twice(fleet: Fleet) -> int:
    """Entries whose correlation id and action another entry has too (a batch appended twice)."""
    twice = (
        sa.select(SEARCH.c.correlation_id, SEARCH.c.action)
        .where(SEARCH.c.correlation_id.is_not(None))
        .group_by(SEARCH.c.correlation_id, SEARCH.c.action)
        .having(sa.func.count() > 1)
        .subquery()
    )
    with fleet.deployment.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(twice)).scalar_one())
