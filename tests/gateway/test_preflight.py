"""What ``serve`` checks before serving (issue 18 item 12b, 12c).

Before, ``serve`` on a port in use said ``internal error (OSError)`` after
issuing a listener certificate; and it started although the vault lacked a
``secret://`` value the manifest names, so callers later got a 503 naming an
internal rule ("rule product_sellable: its database URL is unusable").
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from interlock.config.loader import load_manifest
from interlock.errors import ConfigError
from interlock.gateway.preflight import secret_references
from interlock.gateway.server import ListenerConfig, RunningGateway, start_gateway
from interlock.pki.inventory import TABLE
from interlock.store import Deployment, open_deployment
from interlock.testing.gateway import Env

_PRESENT = "secret://catalogue/readonly-url"
_ABSENT = "secret://catalogue/not-stored-url"
_ORDER = (
    b'{"customer_id":"C-1234","lines":[{"sku":"SKU-1","quantity":1,"unit_price":10}],"total":10}'
)


def _certificates(env: Env) -> int:
    with env.deployment.engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(TABLE)).scalar_one())


@pytest.mark.processes
def test_serve_on_a_port_in_use_says_so_in_one_line_and_issues_nothing(env: Env) -> None:
    """Exit non-zero with "port 127.0.0.1:N is in use"; no certificate was issued."""
    settings = env.deployment.settings
    before = _certificates(env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(  # noqa: S603  (our own CLI, fixed arguments)
            [
                sys.executable,
                "-m",
                "interlock",
                "serve",
                "--manifest",
                str(env.manifest_path),
                "--listen",
                f"127.0.0.1:{port}",
            ],
            env={
                **os.environ,
                "INTERLOCK_DATA_DIR": str(settings.data_dir),
                "INTERLOCK_DATABASE_URL": settings.store_url,
                "INTERLOCK_METRICS_LISTEN": "127.0.0.1:0",  # never 9464: tests run side by side
                "INTERLOCK_LOG_FORMAT": "json",
                "INTERLOCK_LOG_LEVEL": "error",
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert f"port 127.0.0.1:{port} is in use" in lines[0]
    assert "internal error" not in lines[0]
    assert _certificates(env) == before


def _manifest(env: Env, tmp_path: Path, reference: str) -> Path:
    path = tmp_path / "interlock.yaml"
    path.write_text(env.manifest_path.read_text().replace(_PRESENT, reference))
    return path


def _start(env: Env, deployment: Deployment, path: Path) -> RunningGateway:
    return asyncio.run_coroutine_threadsafe(
        start_gateway(deployment, load_manifest(path), ListenerConfig(port=0), path), env.loop
    ).result(timeout=60)


def _stop(env: Env, running: RunningGateway) -> None:
    asyncio.run_coroutine_threadsafe(running.stop(), env.loop).result(timeout=60)


def test_every_secret_reference_of_the_manifest_is_found(env: Env) -> None:
    """Systems' credentials and rules' database URLs, with where they are."""
    manifest = env.gateway.gateway.manifest
    found = {(r.where, r.reference) for r in secret_references(manifest)}
    assert found == {
        ("systems.erp.credentials", "secret://erp/api-key"),
        ("systems.rogue.credentials", "secret://erp/api-key"),
        *((f"rules.{name}.database", rule.database) for name, rule in manifest.rules.items()),
    }
    assert ("rules.product_sellable.database", _PRESENT) in found


def test_serve_refuses_to_start_when_a_referenced_secret_is_missing(
    env: Env, tmp_path: Path
) -> None:
    """A ConfigError naming the reference and where it is; nothing keeps listening."""
    path = _manifest(env, tmp_path, _ABSENT)
    with pytest.raises(ConfigError) as refused:
        _stop(env, _start(env, env.deployment, path))  # stopped again if it did start
    message = refused.value.message
    assert _ABSENT in message
    assert "rules.product_sellable.database" in message
    assert "\n" not in message


@pytest.fixture
def lenient(env: Env) -> Iterator[Deployment]:
    """The harness's deployment opened with INTERLOCK_MISSING_SECRETS=start."""
    settings = env.deployment.settings.model_copy(update={"missing_secrets": "start"})
    deployment = open_deployment(settings)
    try:
        yield deployment
    finally:
        deployment.close()


def test_with_missing_secrets_start_callers_get_a_generic_503(
    env: Env, lenient: Deployment, tmp_path: Path
) -> None:
    """It starts; the route whose rule lacks its database answers 503 naming no rule."""
    running = _start(env, lenient, _manifest(env, tmp_path, _ABSENT))
    try:
        token, _ = env.key(["orders.write"])
        headers = {"X-API-Key": token, "Content-Type": "application/json"}
        status, _, body = env.request("POST", "/v/orders", headers, _ORDER, port=running.port)
        assert status == 503, body
        assert body["type"] == "urn:interlock:problem:rule-unavailable"
        assert "product_sellable" not in str(body)
        assert "database" not in str(body)
    finally:
        _stop(env, running)


def test_a_reload_that_names_a_missing_secret_is_refused(env: Env, tmp_path: Path) -> None:
    """SIGHUP with such a manifest keeps the previous one."""
    path = _manifest(env, tmp_path, _PRESENT)
    running = _start(env, env.deployment, path)
    try:
        path.write_text(path.read_text().replace(_PRESENT, _ABSENT))
        assert running.reload() is False
        assert _ABSENT not in str(secret_references(running.gateway.manifest))
    finally:
        _stop(env, running)


def test_with_missing_secrets_start_a_route_without_its_system_credential_is_a_generic_503(
    env: Env, lenient: Deployment, tmp_path: Path
) -> None:
    """The system's credential is not in the vault: 503 route-unavailable naming nothing internal.

    Before, it answered 502 upstream-failure, blaming the upstream for the
    gateway's own missing secret.
    """
    path = tmp_path / "interlock.yaml"
    path.write_text(
        env.manifest_path.read_text().replace("secret://erp/api-key", "secret://erp/not-stored")
    )
    running = _start(env, lenient, path)
    try:
        token, _ = env.key(["orders.read"])
        status, _, body = env.request(
            "GET", "/orders/1001", {"X-API-Key": token}, port=running.port
        )
        assert status == 503, body
        assert body["type"] == "urn:interlock:problem:route-unavailable"
        assert "erp" not in str(body)
        assert "not-stored" not in str(body)
        assert "credential" not in str(body)
    finally:
        _stop(env, running)
