"""``--live`` evidence at rest: the audit log verifies and is fresh; stored values are sealed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from interlock.actors import Operator
from interlock.audit.service import AuditLog
from interlock.audit.sink import MemorySink
from interlock.check.live_store import audit_findings, checkpoint_limit, sealing_findings
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.secrets.tables import VaultVersionRow
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.store.base import table_of
from interlock.tables import sealed_columns
from tests.audit.conftest import sample_entry

_ADMIN = Operator("admin:test")


@pytest.fixture
def local(tmp_path: Path) -> Iterator[Deployment]:
    """A deployment on SQLite, its audit log holding five entries."""
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    log = AuditLog.open(deployment.settings, deployment.keyring)
    try:
        for number in range(5):
            log.sink.record(sample_entry(number))
    finally:
        log.close()
    yield deployment
    deployment.close()


def _audit_db(settings: Settings) -> Path:
    return Path(settings.audit_url.removeprefix("sqlite:///"))


def test_a_verified_fresh_audit_log_passes(local: Deployment) -> None:
    """``audit verify`` passes and the newest tree head was signed just now."""
    [finding] = audit_findings(local.settings, datetime.now(UTC))
    assert finding.status == "pass", finding.reason
    assert finding.live
    assert "5 entries" in finding.evidence[0]


def test_a_stale_audit_log_fails(local: Deployment) -> None:
    """Two checkpoint periods without a signed tree head: the writer is not running."""
    later = datetime.now(UTC) + checkpoint_limit(local.settings) + timedelta(minutes=1)
    [finding] = audit_findings(local.settings, later)
    assert finding.status == "fail"
    assert "newest signed tree head is" in finding.reason


def test_the_checkpoint_limit_follows_the_setting(tmp_path: Path) -> None:
    """Twice the period; 24 h when heads are only signed per batch."""
    assert checkpoint_limit(Settings(data_dir=tmp_path)) == timedelta(minutes=10)
    idle = Settings(data_dir=tmp_path, audit_checkpoint_seconds=0)
    assert checkpoint_limit(idle) == timedelta(hours=24)


def test_a_tampered_audit_log_fails(local: Deployment) -> None:
    """An entry rewritten in the database (its triggers dropped first) is caught."""
    with sqlite3.connect(_audit_db(local.settings)) as connection:
        for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            connection.execute(f"DROP TRIGGER {name}")
        connection.execute(
            "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'req-2', 'req-9') "
            "AS BLOB) WHERE idx = 2"
        )
    connection.close()
    [finding] = audit_findings(local.settings, datetime.now(UTC))
    assert finding.status == "fail"
    assert "does not verify" in finding.reason
    assert "entry 2" in finding.reason


def test_an_empty_audit_log_fails_freshness(tmp_path: Path) -> None:
    """Nothing recorded yet: it verifies, but there is no signed tree head to show."""
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    AuditLog.open(deployment.settings, deployment.keyring).close()
    try:
        [finding] = audit_findings(deployment.settings, datetime.now(UTC))
    finally:
        deployment.close()
    assert finding.status == "fail"
    assert "no signed tree head" in finding.reason


def _vault(deployment: Deployment) -> Vault:
    return Vault(deployment.engine, deployment.keyring, audit=MemorySink())


def test_sealed_values_pass_and_name_the_backend(deployment: Deployment) -> None:
    """Values the vault sealed open their wrapping under this keyring (SQLite and PostgreSQL)."""
    _vault(deployment).write("erp/api-key", b"not-a-real-key-" + bytes(8), actor=_ADMIN)
    [finding] = sealing_findings(deployment.engine, deployment.keyring, sealed_columns())
    assert finding.status == "pass", finding.reason
    assert "KEK backend file" in finding.evidence[0]
    assert "sampled" in finding.evidence[1]
    assert not finding.evidence[1].startswith("0 ")


def test_a_plaintext_value_at_rest_fails_without_showing_it(deployment: Deployment) -> None:
    """A value written around the vault is found; the finding names the column, not the value."""
    _vault(deployment).write("erp/api-key", b"placeholder", actor=_ADMIN)
    plain = b"plaintext-" + bytes(range(65, 75))
    versions = table_of(VaultVersionRow)
    with deployment.engine.begin() as connection:
        connection.execute(update(versions).values(value=plain))
    [finding] = sealing_findings(deployment.engine, deployment.keyring, sealed_columns())
    assert finding.status == "fail"
    assert "vault_versions.value (1 of 1)" in finding.reason
    assert plain.decode() not in repr(finding)


def test_a_value_sealed_by_another_keyring_fails(local: Deployment, tmp_path: Path) -> None:
    """A blob of a foreign keyring is not this deployment's sealing."""
    _vault(local).write("erp/api-key", b"placeholder", actor=_ADMIN)
    other = Keyring.create(tmp_path / "other-keyring.json")
    versions = table_of(VaultVersionRow)
    with local.engine.begin() as connection:
        connection.execute(update(versions).values(value=other.seal(b"x", b"aad")))
    [finding] = sealing_findings(local.engine, local.keyring, sealed_columns())
    assert finding.status == "fail"


def test_an_empty_store_passes_with_the_keyring_named(tmp_path: Path) -> None:
    """Nothing sealed yet: the keyring is in place, and that is said."""
    deployment = initialise(Settings(data_dir=tmp_path / "data"))
    try:
        [finding] = sealing_findings(deployment.engine, deployment.keyring, sealed_columns())
    finally:
        deployment.close()
    assert finding.status == "pass"


def test_a_missing_audit_log_fails_and_is_not_created(tmp_path: Path) -> None:
    """No audit database file: a failed finding, and the check leaves none behind."""
    settings = Settings(data_dir=tmp_path / "data")
    [finding] = audit_findings(settings, datetime.now(UTC))
    assert finding.status == "fail"
    assert "no audit log at" in finding.reason
    assert not _audit_db(settings).exists()


def test_a_missing_configured_witness_file_fails(tmp_path: Path) -> None:
    """A witness file configured but gone while the log holds entries: fail, naming it."""
    witness = tmp_path / "witness"
    deployment = initialise(Settings(data_dir=tmp_path / "data", audit_witness_file=witness))
    log = AuditLog.open(deployment.settings, deployment.keyring)
    try:
        log.sink.record(sample_entry(0))
    finally:
        log.close()
    try:
        [finding] = audit_findings(deployment.settings, datetime.now(UTC))
        assert finding.status == "pass", finding.reason
        witness.unlink()
        [finding] = audit_findings(deployment.settings, datetime.now(UTC))
    finally:
        deployment.close()
    assert finding.status == "fail"
    assert f"witness file {witness} is missing" in finding.reason
