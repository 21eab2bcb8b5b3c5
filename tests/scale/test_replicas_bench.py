"""Three replicas behind nginx over a PostgreSQL and a Redis of their own, under chaos.

Traffic runs while Redis restarts, PostgreSQL restarts, a replica is killed
(SIGKILL), a new manifest version is applied and an API key is revoked
(benchmarks/replicas/chaos.py). PostgreSQL is a server of the test's own
(:mod:`interlock.testing.postgres_node`): the machine's is shared with others
and is never restarted.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.replicas.chaos import run_chaos
from benchmarks.replicas.fleet import CAPPED_PER_HOUR, Fleet, fleet
from interlock.config.settings import load_settings
from interlock.testing import postgres_node, require_env

# Three replicas start in about a minute on this shared 2-core machine; the scenario ~30 s.
pytestmark = [pytest.mark.processes, pytest.mark.timeout(600)]


@pytest.fixture
def three(tmp_path: Path) -> Iterator[Fleet]:
    """Three replicas, nginx, a test-owned redis-server and PostgreSQL."""
    for tool in ("nginx", "redis-server"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install nginx-light redis-server)")
    reason = postgres_node.unavailable()
    if reason is not None:
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    load_settings()  # the environment's settings are valid (the replicas inherit none)
    with (
        postgres_node.started() as postgres,
        fleet(tmp_path, postgres.url, replicas=3, postgres=postgres) as running,
    ):
        yield running


def test_three_replicas_lose_nothing_and_agree_under_chaos(three: Fleet) -> None:
    result = run_chaos(three)
    # No request without an answer, beyond those in flight on the killed replica (nginx
    # retries a GET whose connection failed on another replica, so those are few). A
    # request that hangs while PostgreSQL is down ends at the client's timeout: lost too.
    assert result.lost <= 4, result.lines()
    assert result.statuses[200] > 0
    # Every failure is answered cleanly (503 problem), never with a 500.
    assert result.server_errors == 0, result.lines()
    # PostgreSQL came back and every replica served again without being restarted.
    assert result.postgres_restarted, result.lines()
    assert result.postgres_recovery_seconds < 30, result.lines()
    # One budget across three replicas: never more than 1 % over it.
    assert result.capped_admitted <= CAPPED_PER_HOUR * 1.01, result.lines()
    assert result.capped_admitted >= CAPPED_PER_HOUR * 0.9, result.lines()
    # Every live replica follows a change within a few poll intervals (0.5 s), after
    # PostgreSQL's restart: the manifest follower survived it.
    assert result.manifest_seconds < 10, result.lines()
    assert result.revocation_seconds < 10, result.lines()
    assert result.audit_clean, result.audit_output
    assert result.audit_duplicates == 0, result.lines()
