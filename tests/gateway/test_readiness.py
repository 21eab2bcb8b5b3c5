"""``/readyz`` checks what every request needs (issue 18 item 12d).

Before, the gateway offered only ``/healthz`` ("alive"): a gateway whose Redis,
store or audit database was gone still looked fit for traffic.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import make_mocked_request

from interlock.errors import Refusal
from interlock.gateway.problems import problem_response
from interlock.gateway.readiness import Readiness
from interlock.testing.gateway import Env, running_gateway
from interlock.testing.services import REDIS
from tests.conftest import need


def test_a_ready_gateway_answers_200_with_its_checks(env: Env) -> None:
    """Store, audit database, signing key and manifest pass (no Redis): 200, the list, the
    manifest enforced (the file's SHA-256)."""
    status, headers, body = env.request("GET", "/readyz")
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    sha = hashlib.sha256(env.manifest_path.read_bytes()).hexdigest()
    assert body == {
        "status": "ready",
        "checks": {"store": "ok", "audit": "ok", "signing_key": "ok", "manifest": "ok"},
        "manifest": {"source": "file", "version": None, "sha256": sha, "current": True},
    }


def test_readyz_answers_for_any_host_name(env: Env) -> None:
    """A probe names the address it dialled (a pod IP), as for /healthz."""
    status, _, _ = env.request("GET", "/readyz", {"Host": "10.1.2.3:8443"})
    assert status == 200


def _failing() -> None:
    raise ConnectionError("redis://secret-host:6379 refused: password=hunter2")


def test_a_failed_check_answers_a_503_problem_naming_only_the_check() -> None:
    """Any check failing: 503 not-ready, the checks' names and states, no error text."""
    readiness = Readiness({"store": lambda: None, "redis": _failing, "signing_key": lambda: None})
    with pytest.raises(Refusal) as refused:
        asyncio.run(readiness(make_mocked_request("GET", "/readyz")))
    response = problem_response(refused.value, "c0ffee", "/readyz")
    assert response.status == 503
    assert isinstance(response.body, bytes)
    body = json.loads(response.body)
    assert body["type"] == "urn:interlock:problem:not-ready"
    assert body["checks"] == {"store": "ok", "redis": "failed", "signing_key": "ok"}
    assert body["detail"] == "not ready: redis unavailable"
    assert "hunter2" not in response.body.decode()
    assert "secret-host" not in response.body.decode()


@pytest.mark.redis
@pytest.mark.processes
def test_a_gateway_with_redis_checks_it(tmp_path: Path) -> None:
    """Redis configured: /readyz lists it among its checks (the wiring, not only the class)."""
    with running_gateway(tmp_path, redis_url=need(REDIS)) as env:
        status, _, body = env.request("GET", "/readyz")
    assert status == 200, body
    assert body["checks"] == {
        "store": "ok",
        "audit": "ok",
        "redis": "ok",
        "signing_key": "ok",
        "manifest": "ok",
    }
