"""Two gateway *processes* on one PostgreSQL store and one Redis: limits and replay hold across them.

Replica A is the harness' gateway (in this process); replica B is a separate
``interlock serve`` process started with the same settings (data directory
with the keyring, store URL, Redis URL, public URL), as a second machine
behind a load balancer would be. Requests alternate between the two.

Tolerance for the rate limit: none. Each decision is one atomic script on one
Redis, timed by Redis' own clock, so a per-client limit of N admits exactly N
in total, whichever replica a request reaches.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from interlock.testing.gateway import Env, Signer, running_gateway
from interlock.testing.services import REDIS
from tests.conftest import fresh_schema, need
from tests.gateway.test_replicas import _free_port

# A second gateway process sharing PostgreSQL and Redis with the harness' gateway.
pytestmark = [pytest.mark.processes, pytest.mark.postgres, pytest.mark.redis]

_LIMIT_KEYS = "interlock:rl:{order-sync}:*"


@dataclass(frozen=True)
class Replicas:
    """Replica A (``env``, in process) and replica B's port (another process)."""

    env: Env
    other: int


def _wait_healthy(env: Env, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = log.read_text(errors="replace")
            pytest.fail(f"replica B exited with {process.returncode}: {output[-2000:]}")
        try:
            if env.request("GET", "/healthz", port=port)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail("replica B did not become healthy within 60 s")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    """Both replicas, sharing a fresh PostgreSQL schema and the real Redis."""
    port = _free_port()
    public_url = f"https://127.0.0.1:{port}"
    redis_url = need(REDIS)
    workdir = tmp_path_factory.mktemp("replica-processes")
    with (
        fresh_schema() as database_url,
        running_gateway(
            workdir,
            database_url=database_url,
            redis_url=redis_url,
            port=port,
            public_url=public_url,
        ) as env,
    ):
        other = _free_port()
        settings = env.deployment.settings
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith("INTERLOCK_")},
            "INTERLOCK_DATA_DIR": str(Path(settings.data_dir).resolve()),
            "INTERLOCK_DATABASE_URL": database_url,
            "INTERLOCK_REDIS_URL": redis_url,
            "INTERLOCK_PUBLIC_URL": public_url,
            "INTERLOCK_AUTH_FAILURES_PER_IP": "100000/min",
            "INTERLOCK_LOG_FORMAT": "json",
            "INTERLOCK_LOG_LEVEL": "warning",
            "INTERLOCK_METRICS_LISTEN": "127.0.0.1:0",  # replicas each need a port of their own
        }
        log = (workdir / "replica-b.log").open("wb")
        process = subprocess.Popen(  # noqa: S603  (our own interpreter and CLI, no shell)
            [
                sys.executable,
                "-m",
                "interlock",
                "serve",
                "--listen",
                f"127.0.0.1:{other}",
                "--manifest",
                str(env.manifest_path),
            ],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_healthy(env, other, process, workdir / "replica-b.log")
            yield Replicas(env, other)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            log.close()


def _forget_limits() -> None:
    client = redis.Redis.from_url(need(REDIS))
    try:
        for key in client.scan_iter(match=_LIMIT_KEYS):
            client.delete(key)
    finally:
        client.close()


def test_a_per_client_limit_of_n_admits_exactly_n_across_two_processes(
    replicas: Replicas,
) -> None:
    """per_client 3/hour: twelve requests alternating between the processes, three admitted."""
    env = replicas.env
    _forget_limits()
    try:
        token, _ = env.key(["orders.read"])
        headers = {"Authorization": f"Bearer {token}"}
        statuses = [
            env.request("GET", "/limited/1001", headers, port=replicas.other if i % 2 else None)[0]
            for i in range(12)
        ]
    finally:
        _forget_limits()
    assert statuses[:3] == [200, 200, 200]
    assert statuses.count(200) == 3
    assert statuses.count(429) == 9


def test_a_signature_nonce_used_on_one_process_is_refused_on_the_other(
    replicas: Replicas,
) -> None:
    env = replicas.env
    token, _ = env.key(["orders.write"])
    signer = Signer(env)
    try:
        # Behind a load balancer both replicas answer one name; the Host field says A's.
        base = {"Host": f"127.0.0.1:{env.port}", "X-API-Key": token}
        body = b'{"note": "exactly once"}'
        headers = {**base, **signer.headers("POST", "/signed/orders/9", body)}
        status, _, payload = env.request(
            "POST", "/signed/orders/9", headers, body, port=replicas.other
        )
        assert status == 200, payload
        status, _, problem = env.request("POST", "/signed/orders/9", headers, body)
        assert (status, problem["type"]) == (403, "urn:interlock:problem:replayed-request")
        again = {**base, **signer.headers("POST", "/signed/orders/9", body)}
        assert env.request("POST", "/signed/orders/9", again, body)[0] == 200
        status, _, problem = env.request(
            "POST", "/signed/orders/9", again, body, port=replicas.other
        )
        assert (status, problem["type"]) == (403, "urn:interlock:problem:replayed-request")
    finally:
        signer.revoke()


def test_an_idempotency_key_used_on_one_process_is_replayed_on_the_other(
    replicas: Replicas,
) -> None:
    env = replicas.env
    token, _ = env.key(["orders.write"])
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Idempotency-Key": f'"{secrets.token_hex(8)}"',
    }
    body = b'{"amount": 25}'
    status, first_headers, first = env.request(
        "POST", "/orders/1001/payments", headers, body, port=replicas.other
    )
    assert status == 200, first
    status, replayed_headers, again = env.request("POST", "/orders/1001/payments", headers, body)
    assert status == 200
    assert replayed_headers["idempotency-replayed"] == "?1"
    assert again == first
    assert "idempotency-replayed" not in first_headers
    status, _, problem = env.request(
        "POST", "/orders/1001/payments", headers, b'{"amount": 26}', port=replicas.other
    )
    assert status == 422, problem
