"""The store's PostgreSQL stops and starts under a running gateway (issue 28, point 6).

Before: a request that needed the store while it was down (an API key not in
the cache) ended in the catch-all 500 ``internal-error`` with a stack trace in
the log per request. Now: 503 ``store-unavailable`` with ``Retry-After``, a
one-line log, and the same gateway serves again once PostgreSQL is back.
The PostgreSQL is the test's own (:mod:`interlock.testing.postgres_node`); the
audit log stays in SQLite, so the refusal is on the trail. A statement that
fails on a live database is not an outage and stays a 500.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from interlock.testing import postgres_node, require_env
from interlock.testing.gateway import Env, lines, running_gateway
from interlock.testing.postgres_node import PostgresNode

pytestmark = [pytest.mark.processes]


@pytest.fixture
def over_own_postgres(tmp_path: Path) -> Iterator[tuple[Env, PostgresNode]]:
    """The test gateway with its store on a PostgreSQL of the test's own."""
    reason = postgres_node.unavailable()
    if reason is not None:
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    with (
        postgres_node.started() as postgres,
        running_gateway(tmp_path, database_url=postgres.url) as env,
    ):
        yield env, postgres


def test_a_request_needing_the_stopped_store_is_a_503_and_served_once_it_is_back(
    over_own_postgres: tuple[Env, PostgresNode],
) -> None:
    env, postgres = over_own_postgres
    token, _ = env.key(["orders.read"])  # never used yet: not in the key cache
    postgres.stop()
    status, headers, problem = env.request("GET", "/orders/1001", {"X-API-Key": token})
    assert status == 503, problem
    assert headers["content-type"] == "application/problem+json"
    assert headers["retry-after"] == "1"
    assert problem["type"] == "urn:interlock:problem:store-unavailable"
    assert "psycopg" not in str(problem)  # nothing internal reaches the caller
    assert "Traceback" not in str(problem)
    correlation_id = problem["correlation_id"]
    (entry,) = env.audit_entries(correlation_id, "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 503}
    logged = [line for line in lines(env) if line.get("correlation_id") == correlation_id]
    assert any(line.get("event") == "store unavailable" for line in logged)
    assert not any("exception" in line for line in logged)  # no stack per request

    postgres.start()
    # The same gateway, not restarted: its pool replaces the dead connections (pre-ping).
    deadline = time.monotonic() + 30
    while (status := env.request("GET", "/orders/1001", {"X-API-Key": token})[0]) != 200:
        assert status == 503
        assert time.monotonic() < deadline, "the gateway did not recover"
        time.sleep(0.1)


def test_a_statement_error_is_still_a_500_with_its_stack(tmp_path: Path) -> None:
    """Only the connection failing is an outage: SQLite's "no such table" (an
    OperationalError too) is a bug or a missing migration, answered 500 and logged in full."""
    with running_gateway(tmp_path) as env:
        token, _ = env.key(["orders.read"])  # not in the key cache: the table is read
        with env.deployment.engine.begin() as connection:
            connection.execute(text("ALTER TABLE api_keys RENAME TO api_keys_gone"))
        status, _, problem = env.request("GET", "/orders/1001", {"X-API-Key": token})
        assert status == 500, problem
        assert problem["type"] == "urn:interlock:problem:internal-error"
        logged = [
            line for line in lines(env) if line.get("correlation_id") == problem["correlation_id"]
        ]
        assert any(
            line.get("event") == "unhandled error" and "exception" in line for line in logged
        )
