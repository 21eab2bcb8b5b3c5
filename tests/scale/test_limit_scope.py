"""Limits honest about their scope: several processes never silently multiply a budget.

Without Redis, several processes either refuse to start or each enforce
``1/N`` of every budget; with Redis, ``INTERLOCK_RATE_LIMIT_FAILURE`` decides
what three replicas do while Redis (a test-owned redis-server) is down.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from interlock.cli.main import main
from interlock.config.settings import load_settings
from interlock.config.units import Rate
from interlock.errors import ConfigError
from interlock.limits import (
    FailureMode,
    FailurePolicy,
    Limit,
    LimitsUnavailableError,
    MemoryLimiter,
    Quota,
    RedisLimiter,
    bucket_key,
)
from interlock.limits.scope import in_process_shares
from tests.cli.test_clients import MANIFEST
from tests.conftest import isolate_cli
from tests.limits.test_failure_policy import Server, server

__all__ = ["server"]

LIMIT = 30
QUOTA = Quota("per_client", Rate(LIMIT, timedelta(hours=1)))


def test_several_processes_without_redis_are_refused_by_default() -> None:
    with pytest.raises(ConfigError, match="INTERLOCK_LOCAL_LIMITS=divide"):
        in_process_shares(shared_backend=False, workers=3, local_limits="refuse")
    with pytest.raises(ConfigError, match="INTERLOCK_REDIS_URL"):
        in_process_shares(shared_backend=False, workers=1, local_limits="refuse", reuse_port=True)


def test_reuse_port_with_divide_needs_the_declared_worker_count() -> None:
    with pytest.raises(ConfigError, match="INTERLOCK_WORKERS=N"):
        in_process_shares(shared_backend=False, workers=1, local_limits="divide", reuse_port=True)


def test_divide_is_chosen_explicitly_and_warns_loudly() -> None:
    with capture_logs() as logs:
        shares = in_process_shares(shared_backend=False, workers=4, local_limits="divide")
    assert shares == 4
    assert [entry["log_level"] for entry in logs] == ["warning"]
    assert in_process_shares(shared_backend=False, workers=1, local_limits="refuse") == 1
    # With Redis the budget is shared; the declared count divides only the open fallback.
    assert in_process_shares(shared_backend=True, workers=4, local_limits="refuse") == 4


def test_the_settings_name_the_choice() -> None:
    settings = load_settings(workers=3, local_limits="divide")
    assert (settings.workers, settings.local_limits) == (3, "divide")
    with pytest.raises(ConfigError, match="INTERLOCK_LOCAL_LIMITS"):
        load_settings(local_limits="ignore")


def _admitted(limiters: list[MemoryLimiter] | list[FailurePolicy], key: str, tries: int) -> int:
    limits = (Limit(QUOTA, bucket_key("scale", "client", key)),)
    admitted = 0
    for attempt in range(tries):
        if limiters[attempt % len(limiters)].decide(limits).allowed:
            admitted += 1
    return admitted


def test_three_divided_processes_admit_no_more_than_the_budget_together() -> None:
    undivided = [MemoryLimiter() for _ in range(3)]
    assert _admitted(undivided, "a", 200) == 3 * LIMIT  # the silent multiplication
    divided = [MemoryLimiter(shares=3) for _ in range(3)]
    assert _admitted(divided, "a", 200) == LIMIT


def _replicas(server: Server, mode: FailureMode) -> tuple[list[FailurePolicy], list[redis.Redis]]:
    clients = [
        redis.Redis(host="127.0.0.1", port=server.port, retry=Retry(NoBackoff(), 1))
        for _ in range(3)
    ]
    policies = [
        FailurePolicy(RedisLimiter(client), mode, fallback=MemoryLimiter(shares=3))
        for client in clients
    ]
    return policies, clients


@pytest.mark.processes
@pytest.mark.parametrize("mode", ["closed", "open"])
def test_rate_limit_failure_with_three_replicas_while_redis_restarts(
    server: Server, mode: FailureMode
) -> None:
    """Up: one budget for all three. Down: closed refuses every decision (503); open falls
    back to in-process shares, together still within the budget. Back: shared again."""
    replicas, clients = _replicas(server, mode)
    try:
        assert _admitted(replicas, "up", 100) == LIMIT
        server.stop()
        if mode == "closed":
            for replica in replicas:
                with pytest.raises(LimitsUnavailableError):
                    _admitted([replica], "down", 1)
        else:
            assert _admitted(replicas, "down", 100) == LIMIT
        server.start()
        assert _admitted(replicas, "back", 100) == LIMIT
        assert not any(replica.down for replica in replicas)
    finally:
        for client in clients:
            client.close()


def test_serve_with_reuse_port_and_no_redis_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    isolate_cli(monkeypatch, tmp_path)
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST)
    assert main(["serve", "-m", str(manifest), "--reuse-port", "--listen", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err
    assert "INTERLOCK_REDIS_URL" in err
    assert "INTERLOCK_LOCAL_LIMITS=divide" in err


def test_serve_with_declared_workers_and_no_redis_refuses_before_issuing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_WORKERS=2 without Redis: refused first, no certificate issued, no CRL."""
    isolate_cli(monkeypatch, tmp_path, WORKERS="2")
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(MANIFEST)
    assert main(["init"]) == 0
    capsys.readouterr()
    assert main(["serve", "-m", str(manifest), "--listen", "127.0.0.1:0"]) == 1
    err = capsys.readouterr().err
    assert "INTERLOCK_LOCAL_LIMITS=divide" in err
    assert "certificate issued" not in err
    assert "revocation list published" not in err
