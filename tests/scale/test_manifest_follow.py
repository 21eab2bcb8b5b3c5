"""Store mode: a replica follows the current manifest version and refuses traffic it cannot load.

The harness' gateway stands in for one replica: the follower's ``poll`` is
what its background task runs every ``INTERLOCK_MANIFEST_POLL_SECONDS``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy.exc import OperationalError

from interlock.gateway import manifest_follower, server
from interlock.gateway.manifest_follower import ManifestFollower
from interlock.store.manifest_versions import ManifestMarker, current_version, publish_manifest
from interlock.testing.gateway import Env, lines, running_gateway

pytestmark = pytest.mark.processes


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One gateway (SQLite store) for the module."""
    with running_gateway(tmp_path_factory.mktemp("follow")) as running:
        yield running


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _publish(env: Env, text: str) -> int:
    return publish_manifest(
        env.deployment.engine, text, actor="admin:test", now=datetime.now(UTC)
    ).version


def _poll(env: Env, follower: ManifestFollower) -> None:
    asyncio.run_coroutine_threadsafe(follower.poll(), env.loop).result(timeout=30)


def _follower(env: Env, clock: _Clock) -> ManifestFollower:
    text = env.manifest_path.read_text()
    version = _publish(env, text)
    settings = env.deployment.settings
    follower = ManifestFollower(env.gateway, settings, _marker(env, version), clock)
    env.gateway.enforce("store", version, follower.enforcing.sha256)
    return follower


def _marker(env: Env, version: int) -> ManifestMarker:
    stored = current_version(env.deployment.engine, version)
    assert stored is not None
    return stored.marker


def _ready(env: Env) -> tuple[int, dict[str, object]]:
    status, _, body = env.request("GET", "/readyz")
    manifest = body["manifest"]
    assert isinstance(manifest, dict)
    return status, manifest


def test_a_new_version_is_enforced_reported_and_a_bad_one_refuses_traffic(env: Env) -> None:
    clock = _Clock()
    follower = _follower(env, clock)
    key, _ = env.key()
    auth = {"X-API-Key": key}
    assert env.request("GET", "/orders/1001", auth)[0] == 200
    base = env.manifest_path.read_text()

    # A new version (the same grants, another text): every replica takes it at its next poll.
    version = _publish(env, base + "# v-next\n")
    _poll(env, follower)
    status, reported = _ready(env)
    assert status == 200
    assert reported["version"] == version
    assert reported["source"] == "store"
    assert f"interlock_manifest_version {version}.0" in env.metrics()
    assert env.request("GET", "/orders/1001", auth)[0] == 200

    # A version this replica cannot load (a secret its vault lacks): 503, never the old grants.
    broken = _publish(env, base.replace("secret://erp/api-key", "secret://erp/not-stored"))
    _poll(env, follower)
    status, headers, body = env.request("GET", "/orders/1001", auth)
    assert status == 503
    assert body["type"].endswith(":not-ready")
    # On the audit trail like any refusal (it was not, before the audit of issue 18).
    (entry,) = env.audit_entries(headers["x-request-id"], "gateway.request")
    assert entry["outcome"] == {"result": "failure", "status": 503}
    assert entry["details"]["route"] == "unmatched"
    status, reported = _ready(env)
    assert status == 503
    assert reported == {
        "source": "store",
        "version": version,
        "sha256": reported["sha256"],
        "current": False,
    }
    assert "interlock_manifest_current 0.0" in env.metrics()
    assert env.request("GET", "/healthz")[0] == 200  # alive, only not ready
    assert broken > version

    # The operator fixes it with the next version: traffic flows again.
    fixed = _publish(env, base + "# fixed\n")
    _poll(env, follower)
    assert _ready(env) == (200, {**_ready(env)[1], "version": fixed, "current": True})
    assert env.request("GET", "/orders/1001", auth)[0] == 200


def test_an_unconfirmed_version_refuses_traffic_after_the_staleness_bound(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _Clock()
    follower = _follower(env, clock)

    def unreachable(_engine: object) -> None:
        raise OperationalError("SELECT", {}, ConnectionRefusedError())

    monkeypatch.setattr(manifest_follower, "current_marker", unreachable)
    clock.now += env.deployment.settings.manifest_max_stale_seconds - 1
    _poll(env, follower)
    assert _ready(env)[0] == 200  # within the bound: the version is still the current one
    clock.now += 2
    _poll(env, follower)
    assert _ready(env)[0] == 503
    monkeypatch.undo()
    _poll(env, follower)
    assert _ready(env)[0] == 200


def test_sighup_in_store_mode_polls_at_once(env: Env) -> None:
    follower = _follower(env, _Clock())
    assert follower.reload() is True
    assert follower._wake.is_set()


@pytest.mark.parametrize("error", [ValueError, RuntimeError])
def test_a_version_whose_loading_fails_unexpectedly_refuses_traffic_until_a_good_one(
    env: Env, monkeypatch: pytest.MonkeyPatch, error: type[Exception]
) -> None:
    """Any exception while loading a version (not only InterlockError) fails closed: 503."""
    follower = _follower(env, _Clock())
    key, _ = env.key()
    auth = {"X-API-Key": key}
    base = env.manifest_path.read_text()

    def explode(*_args: object, **_kwargs: object) -> None:
        raise error("embedded null byte")

    monkeypatch.setattr(server, "build_gateway", explode)
    _publish(env, base + f"# {error.__name__}\n")
    _poll(env, follower)  # returns: the failure is the follower's to handle, not its task's end
    status, _, body = env.request("GET", "/orders/1001", auth)
    assert status == 503
    assert body["type"].endswith(":not-ready")
    status, reported = _ready(env)
    assert status == 503
    assert reported["current"] is False
    assert _failures(env) >= 1
    refused = [line for line in lines(env) if line.get("event", "").startswith("manifest version")]
    assert any(error.__name__ in str(line.get("error")) for line in refused)
    assert not any("embedded null byte" in str(line.get("error")) for line in refused)

    monkeypatch.undo()
    fixed = _publish(env, base + f"# fixed after {error.__name__}\n")
    _poll(env, follower)
    assert _ready(env) == (200, {**_ready(env)[1], "version": fixed, "current": True})
    assert env.request("GET", "/orders/1001", auth)[0] == 200


def test_a_failed_poll_never_ends_the_follower_and_refuses_traffic_meanwhile(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run() outlives an exception from a poll; the replica is not ready until one succeeds."""
    follower = _follower(env, _Clock())
    healthy = follower.poll
    failures = 0

    async def broken() -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("unexpected")

    monkeypatch.setattr(follower, "poll", broken)
    task = asyncio.run_coroutine_threadsafe(_start(follower), env.loop).result(timeout=10)
    try:
        env.loop.call_soon_threadsafe(follower.reload)
        _until(lambda: failures >= 1 and _ready(env)[0] == 503)
        assert not task.done()
        env.loop.call_soon_threadsafe(follower.reload)
        _until(lambda: failures >= 2)
        assert not task.done()  # retried at the next wake, still alive
        monkeypatch.setattr(follower, "poll", healthy)
        env.loop.call_soon_threadsafe(follower.reload)
        _until(lambda: _ready(env)[0] == 200)
        assert not task.done()
    finally:
        env.loop.call_soon_threadsafe(task.cancel)


async def _start(follower: ManifestFollower) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(follower.run())


def _until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _failures(env: Env) -> float:
    prefix = 'interlock_manifest_reload_failures_total{source="store"} '
    found = [line for line in env.metrics().splitlines() if line.startswith(prefix)]
    assert len(found) == 1
    return float(found[0].removeprefix(prefix))
