"""``interlock doctor`` and ``serve``'s preflight: each check failing for its real reason.

Every failure is produced the way it happens in the field (a chmod, another
deployment's keyring, a downgraded schema, a port someone holds, a database
on a port where nothing listens, a clock that is off), never by patching the
check.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from interlock.actors import Operator
from interlock.cli.doctor import diagnose
from interlock.cli.main import main
from interlock.cli.preflight import Check
from interlock.cli.vault_session import open_vault_session
from interlock.config.settings import load_settings
from interlock.pki.authority import Pki
from interlock.store import open_deployment
from interlock.store.engine import create_store_engine
from interlock.store.migrate import downgrade, head_revision
from interlock.testing.clock import ManualClock
from interlock.testing.services import REDIS
from tests.conftest import isolate_cli, need

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "interlock.yaml"
SECRETS = ("erp/api-key", "crm/oauth-client", "warehouse/ingest-token", "crm/readonly-url")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Own data directory; metrics on any free port (never 9464: tests run side by side)."""
    isolate_cli(monkeypatch, tmp_path, METRICS_LISTEN="127.0.0.1:0", MANIFEST=str(EXAMPLE))


def _init(*names: str) -> Path:
    """``interlock init``, then store ``names`` in the vault; the data directory."""
    assert main(["init"]) == 0
    with open_vault_session() as session:
        for name in names:
            session.vault.write(name, b"not-a-real-secret", actor=Operator("admin:test"))
    return load_settings().data_dir


@pytest.fixture
def healthy() -> Path:
    """A deployment of the example manifest with every secret it names stored."""
    return _init(*SECRETS)


def _doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Check]]:
    """Run ``doctor --json``; the exit status and the checks by name."""
    capsys.readouterr()
    status = main(["doctor", "--listen", "127.0.0.1:0", "--json", *args])
    document = json.loads(capsys.readouterr().out)
    checks = {
        c["name"]: Check(c["name"], c["status"], c["detail"], c["hint"] or "")
        for c in document["checks"]
    }
    assert document["ok"] is (status == 0)
    return status, checks


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_healthy_deployment_passes_every_check(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 0, every line ok (or skip: no Redis, embedded clock); one line per check."""
    capsys.readouterr()
    assert main(["doctor", "--listen", "127.0.0.1:0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    names = [line.split()[1] for line in lines]
    assert names == [
        "manifest", "data-dir", "keyring", "store-database", "audit-database", "audit-schema",
        "migrations", "store-binding", "secrets", "certificates", "secret-rotation",
        "trust-anchors", "redis", "clock-skew", "listener-port", "metrics-port",
    ]  # fmt: skip
    statuses = {line.split()[1]: line.split()[0] for line in lines}
    assert statuses.pop("redis") == "skip"
    assert statuses.pop("clock-skew") == "skip"
    assert set(statuses.values()) == {"ok"}, lines
    assert "embedded: same clock" in "\n".join(lines)


def test_json_has_the_documented_shape(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``{"checks": [{name, status, detail, hint}], "ok": bool}``; hint null when there is none."""
    capsys.readouterr()
    assert main(["doctor", "--listen", "127.0.0.1:0", "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"checks", "ok"}
    assert document["ok"] is True
    for check in document["checks"]:
        assert set(check) == {"name", "status", "detail", "hint"}
        assert check["status"] in {"ok", "warn", "fail", "skip"}
        assert isinstance(check["detail"], str)
        assert "\n" not in check["detail"]
    assert {c["hint"] for c in document["checks"] if c["status"] == "ok"} == {None}


def test_a_keyring_readable_by_others_fails_and_serve_refuses(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """0644: FAIL keyring naming the mode and the chmod; serve refuses with the same message."""
    keyring = healthy / "keyring.json"
    keyring.chmod(0o644)
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["keyring"].status == "fail"
    assert "mode 0644" in checks["keyring"].detail
    assert f"chmod 600 {keyring}" in checks["keyring"].detail
    assert checks["store-binding"].status == "skip"
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 1
    refusal = capsys.readouterr().err.strip()
    assert len(refusal.splitlines()) == 1
    assert checks["keyring"].detail in refusal


def test_an_open_data_directory_fails(healthy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """0755 on the data directory: FAIL data-dir with the chmod that fixes it."""
    healthy.chmod(0o755)
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["data-dir"].status == "fail"
    assert "mode 0755" in checks["data-dir"].detail
    assert checks["data-dir"].hint == f"run `chmod 700 {healthy}`"


def test_another_deployments_keyring_fails_the_binding(
    healthy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A second deployment's keyring.json copied in: FAIL store-binding, and serve refuses."""
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "other"))
    assert main(["init"]) == 0
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(healthy))
    shutil.copy2(tmp_path / "other" / "keyring.json", healthy / "keyring.json")
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["keyring"].status == "ok"
    binding = checks["store-binding"]
    assert binding.status == "fail"
    assert "the keyring does not belong to this database" in binding.detail
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 1
    assert "error[store_keyring_mismatch]" in capsys.readouterr().err


def test_a_store_one_revision_behind_warns_and_migrate_fixes_it(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Downgraded one revision: warn (serve applies it at start), exit 0; after migrate, ok."""
    engine = create_store_engine(load_settings().store_url)
    try:
        downgrade(engine, "-1")
    finally:
        engine.dispose()
    status, checks = _doctor(capsys)
    assert status == 0
    assert checks["migrations"].status == "warn"
    assert f"1 migration(s) pending up to {head_revision()}" in checks["migrations"].detail
    assert "interlock migrate" in checks["migrations"].hint
    assert main(["migrate"]) == 0
    assert _doctor(capsys)[1]["migrations"].status == "ok"


def test_a_store_from_a_newer_release_fails_and_serve_refuses(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A revision this release does not know: FAIL migrations; serve refuses in one line."""
    engine = create_store_engine(load_settings().store_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0099_future'"))
    finally:
        engine.dispose()
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["migrations"].status == "fail"
    assert "0099_future, which this release does not know" in checks["migrations"].detail
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 1
    refusal = capsys.readouterr().err
    assert "error[store_error]" in refusal
    assert "0099_future, which this release does not know" in refusal


def test_a_missing_secret_fails_with_a_near_miss_named_and_serve_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Names only: the missing reference, where it is, the stored name it is close to."""
    _init("erp/api-key", "crm/oauth-client", "warehouse/ingest-token", "crm/readonly-uri")
    status, checks = _doctor(capsys)
    assert status == 1
    secrets = checks["secrets"]
    assert secrets.status == "fail"
    assert secrets.detail == (
        "not in the vault: secret://crm/readonly-url "
        "(rules.account_active.database; did you mean 'crm/readonly-uri'?)"
    )
    assert "erp/api-key" not in secrets.detail
    assert "not-a-real-secret" not in secrets.detail
    assert main(["serve", "--listen", "127.0.0.1:0"]) == 1
    refusal = capsys.readouterr().err.strip()
    assert len(refusal.splitlines()) == 1
    assert f"secrets: {secrets.detail}" in refusal
    assert not (load_settings().data_dir / "ca.pem").exists()  # refused before anything was issued


def test_with_missing_secrets_start_a_missing_secret_only_warns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_MISSING_SECRETS=start: serve would start, so the doctor warns (exit 0)."""
    _init(*SECRETS[:-1])
    monkeypatch.setenv("INTERLOCK_MISSING_SECRETS", "start")
    status, checks = _doctor(capsys)
    assert (status, checks["secrets"].status) == (0, "warn")


def test_a_certificate_expiring_soon_warns(healthy: Path) -> None:
    """A 30-day certificate seen 20 days later (a test clock): warn naming its serial."""
    clock = ManualClock(datetime.now(UTC))
    deployment = open_deployment(load_settings())
    try:
        pki = Pki(
            deployment.engine, deployment.keyring, deployment.deployment_id, "x.test", now=clock
        )
        issued = pki.issue_server(["svc.example.test"], timedelta(days=30))
    finally:
        deployment.close()
    current = load_settings()
    assert (
        _by_name(diagnose(current, EXAMPLE, "127.0.0.1", 0, now=clock))["certificates"].status
        == "ok"
    )
    clock.advance(timedelta(days=20))
    certificates = _by_name(diagnose(current, EXAMPLE, "127.0.0.1", 0, now=clock))["certificates"]
    assert certificates.status == "warn"
    assert issued.serial in certificates.detail
    assert "9 days left" in certificates.detail
    assert "interlock pki renew --within 14d" in certificates.hint


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_a_port_in_use_fails_and_serve_refuses_before_issuing(
    healthy: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone listens on the port: FAIL listener-port; serve says the same in one line."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        capsys.readouterr()
        assert main(["doctor", "--listen", f"127.0.0.1:{port}"]) == 1
        line = next(x for x in capsys.readouterr().out.splitlines() if "listener-port" in x)
        assert line.startswith("FAIL  listener-port")
        assert f"port 127.0.0.1:{port} is in use" in line
        assert main(["serve", "--listen", f"127.0.0.1:{port}"]) == 1
    refusal = capsys.readouterr().err.strip()
    assert refusal == (
        f"interlock: error[config_invalid]: listener-port: port 127.0.0.1:{port} is in use; "
        "stop what holds it, or pick another --listen"
    )
    assert not (healthy / "ca.pem").exists()


def test_a_metrics_port_in_use_fails(
    healthy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The metrics listener's port is probed too."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setenv("INTERLOCK_METRICS_LISTEN", f"127.0.0.1:{taken.getsockname()[1]}")
        status, checks = _doctor(capsys)
    assert status == 1
    assert checks["metrics-port"].status == "fail"
    assert "INTERLOCK_METRICS_LISTEN" in checks["metrics-port"].hint


def test_an_unreachable_postgresql_fails(
    healthy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_DATABASE_URL on a port where nothing listens: FAIL store-database, rest skipped."""
    port = _free_port()
    monkeypatch.setenv(
        "INTERLOCK_DATABASE_URL", f"postgresql://interlock@127.0.0.1:{port}/interlock"
    )
    status, checks = _doctor(capsys)
    assert status == 1
    database = checks["store-database"]
    assert database.status == "fail"
    assert f"127.0.0.1:{port}/interlock is unreachable" in database.detail
    for name in ("migrations", "store-binding", "secrets", "clock-skew"):
        assert checks[name].status == "skip", name


def test_a_database_url_is_shown_with_its_query_values_masked(
    healthy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whatever the query holds, doctor shows the parameter names only (and the role)."""
    tag = "tag-" + os.urandom(6).hex()
    port = _free_port()
    monkeypatch.setenv(
        "INTERLOCK_DATABASE_URL",
        f"postgresql://interlock@127.0.0.1:{port}/interlock?application_name={tag}",
    )
    status, checks = _doctor(capsys)
    assert status == 1
    detail = checks["store-database"].detail
    assert tag not in detail
    assert f"interlock@127.0.0.1:{port}/interlock?application_name=***" in detail


@pytest.mark.redis
def test_a_configured_redis_is_reached(
    healthy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_REDIS_URL set and Redis up: ok with PONG."""
    monkeypatch.setenv("INTERLOCK_REDIS_URL", need(REDIS))
    status, checks = _doctor(capsys)
    assert status == 0
    assert checks["redis"].status == "ok"
    assert "PONG" in checks["redis"].detail


def test_an_unreachable_redis_fails(
    healthy: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """INTERLOCK_REDIS_URL on a port where nothing listens: FAIL redis."""
    monkeypatch.setenv("INTERLOCK_REDIS_URL", f"redis://127.0.0.1:{_free_port()}/0")
    status, checks = _doctor(capsys)
    assert (status, checks["redis"].status) == (1, "fail")


@pytest.fixture
def on_postgres(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A healthy deployment whose store is PostgreSQL (a fresh schema)."""
    monkeypatch.setenv("INTERLOCK_DATABASE_URL", postgres_url)
    return _init(*SECRETS)


def test_clock_skew_against_postgresql(on_postgres: Path) -> None:
    """The store's now() against this host's clock: ok in step, FAIL two minutes off."""
    current = load_settings()
    in_step = _by_name(diagnose(current, EXAMPLE, "127.0.0.1", 0))["clock-skew"]
    assert in_step.status == "ok", in_step
    behind = ManualClock(datetime.now(UTC) - timedelta(minutes=2))
    skewed = _by_name(diagnose(current, EXAMPLE, "127.0.0.1", 0, now=behind))["clock-skew"]
    assert skewed.status == "fail"
    assert "store's clock is off by +1" in skewed.detail  # about +120 s
    assert "NTP" in skewed.hint


def test_an_unreadable_trust_anchor_fails(
    healthy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A system's ``ca: file:`` that holds no certificate: FAIL trust-anchors naming where."""
    bundle = tmp_path / "erp-ca.pem"
    bundle.write_text("not a certificate\n")
    manifest = tmp_path / "interlock.yaml"
    manifest.write_text(EXAMPLE.read_text().replace("ca: pki:internal", f"ca: file:{bundle}", 1))
    status, checks = _doctor(capsys, "-m", str(manifest))
    assert status == 1
    anchors = checks["trust-anchors"]
    assert anchors.status == "fail", anchors
    assert anchors.detail.startswith(f"systems.erp.ca: file:{bundle} cannot be loaded")


def test_an_empty_postgresql_database_fails_once(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reachable but never initialised: FAIL migrations; what needs the schema is skipped."""
    assert main(["init"]) == 0  # the keyring and a SQLite store; the doctor then looks elsewhere
    monkeypatch.setenv("INTERLOCK_DATABASE_URL", postgres_url)
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["store-database"].status == "ok"
    assert (checks["migrations"].status, checks["migrations"].detail) == (
        "fail",
        "the store has no schema",
    )
    for name in ("store-binding", "secrets", "certificates", "secret-rotation"):
        assert checks[name].status == "skip", name
    assert checks["clock-skew"].status == "ok"
