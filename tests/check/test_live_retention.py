"""``--live`` ``retention``: audit bodies and lineage rows kept past the integration's retention.

The deployment runs on SQLite and on PostgreSQL (store and audit log both);
pruning is the real one: ``interlock audit prune`` through the CLI, and
``LineageIndex.prune``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.audit.service import AuditLog
from interlock.check.live_retention import (
    AUDIT_PRUNE_PERIOD,
    LINEAGE_PRUNE_PERIOD,
    retention_findings,
)
from interlock.check.results import Finding
from interlock.cli.main import main
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.config.settings import Settings, load_settings
from interlock.privacy.lineage import LineageIndex, LineageRecord, load_subject_hasher
from interlock.store import Deployment, open_deployment
from interlock.store.manifest_versions import publish_manifest
from tests.audit.conftest import sample_entry
from tests.check.conftest import Write
from tests.conftest import isolate_cli

# BASE (tests/check/conftest.py): one integration, sync, with retention P30D.
RETENTION = timedelta(days=30)


@pytest.fixture
def deployed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_url: str
) -> Iterator[Deployment]:
    """``interlock init`` on each backend; on PostgreSQL the audit log is there too."""
    extra = {"DATABASE_URL": store_url}
    if store_url.startswith("postgresql"):
        extra["AUDIT_DATABASE_URL"] = store_url
    deployment = _init(monkeypatch, tmp_path, **extra)
    yield deployment
    deployment.close()


def _init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> Deployment:
    isolate_cli(monkeypatch, tmp_path, **env)
    assert main(["init"]) == 0
    return open_deployment(load_settings())


def _record(settings: Settings, deployment: Deployment, *times: datetime) -> None:
    log = AuditLog.open(settings, deployment.keyring)
    try:
        for number, time in enumerate(times):
            log.sink.record(sample_entry(number, integration="sync", time=time))
        log.sink.record(sample_entry(99, integration=None))  # kept by every prune
    finally:
        log.close()


def _sync(manifest: Manifest, deployment: Deployment, now: datetime) -> Finding:
    found = retention_findings(manifest, deployment.settings, deployment.engine, now)
    [finding] = [f for f in found if f.integration == "sync"]
    assert finding.live
    assert finding.item == "retention"
    return finding


def test_bodies_past_the_retention_fail_until_audit_prune_removes_them(
    deployed: Deployment, write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """Three bodies far past 30 days fail sync's retention; `interlock audit prune` clears it."""
    path = write_manifest()
    manifest = load_manifest(path)
    now = datetime.now(UTC)
    old = now - RETENTION - timedelta(days=400)
    _record(deployed.settings, deployed, old, old, old, now - timedelta(days=10))
    finding = _sync(manifest, deployed, now)
    assert finding.status == "fail"
    assert "3 audit entry bodies are older than the retention (P30D)" in finding.reason
    assert finding.fix is not None
    assert "interlock audit prune" in finding.fix
    assert "3 entry bodies" in finding.evidence[1]

    assert main(["audit", "prune", "--manifest", str(path)]) == 0
    assert "sync: 3 bodies" in capsys.readouterr().out
    finding = _sync(manifest, deployed, now)
    assert finding.status == "pass", finding.reason
    assert "0 entry bodies" in finding.evidence[1]


def test_a_body_may_outlive_the_retention_by_one_prune_period(
    deployed: Deployment, write_manifest: Write
) -> None:
    """Half a prune period past the retention passes; judged a period later, it fails."""
    manifest = load_manifest(write_manifest())
    now = datetime.now(UTC)
    _record(deployed.settings, deployed, now - RETENTION - AUDIT_PRUNE_PERIOD / 2)
    assert _sync(manifest, deployed, now).status == "pass"
    late = _sync(manifest, deployed, now + AUDIT_PRUNE_PERIOD)
    assert late.status == "fail"
    assert "1 audit entry bodies" in late.reason


def test_bodies_of_a_removed_integration_fail_for_the_deployment_until_pruned(
    deployed: Deployment, write_manifest: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    """An integration gone from the manifest: its bodies outlive no retention unnoticed.

    Without a stored manifest version that declares it, every body of it is
    kept without a bound (a failure naming it); once a version gives its last
    retention, only bodies past it fail, and `interlock audit prune` removes
    them. Before, the check and the prune looked at the manifest's
    integrations only.
    """
    retired_text = write_manifest(("  sync:", "  retired:")).read_text()  # what was declared
    current = write_manifest()
    manifest = load_manifest(current)
    now = datetime.now(UTC)
    old = now - RETENTION - timedelta(days=400)
    log = AuditLog.open(deployed.settings, deployed.keyring)
    try:
        for number in range(3):
            log.sink.record(sample_entry(number, integration="retired", time=old))
        log.sink.record(sample_entry(7, integration="retired", time=now))
    finally:
        log.close()
    [unbounded] = [
        f
        for f in retention_findings(manifest, deployed.settings, deployed.engine, now)
        if f.integration is None
    ]
    assert unbounded.status == "fail"
    assert "kept without a bound: retired" in unbounded.reason
    assert unbounded.fix is not None
    assert "--removed-retention" in unbounded.fix

    publish_manifest(deployed.engine, retired_text, actor="admin:test", now=now)
    [past] = [
        f
        for f in retention_findings(manifest, deployed.settings, deployed.engine, now)
        if f.integration is None
    ]
    assert "of integrations no longer in the manifest: retired (3)" in past.reason

    assert main(["audit", "prune", "--manifest", str(current)]) == 0
    assert "retired: 3 bodies" in capsys.readouterr().out
    found = retention_findings(manifest, deployed.settings, deployed.engine, now)
    assert [(f.integration, f.status) for f in found] == [("sync", "pass")]


def _lineage(integration: str, expires_at: datetime) -> LineageRecord:
    return LineageRecord(
        subject=b"\x01" * 32,
        kind="email",
        integration=integration,
        route="GET /orders/{id}",
        direction="response",
        receiver="crm",
        source="erp",
        target="crm",
        categories=("user.contact.email",),
        receiver_country="DE",
        time=expires_at - RETENTION,
        audit_index=None,
        correlation_id=None,
        expires_at=expires_at,
    )


def test_lineage_rows_past_their_expiry_fail_until_pruned(
    deployed: Deployment, write_manifest: Write
) -> None:
    """Rows over an hour past expires_at fail (orphans for the deployment); the prune clears it."""
    manifest = load_manifest(write_manifest())
    now = datetime.now(UTC)
    hasher = load_subject_hasher(deployed.engine, deployed.keyring)
    index = LineageIndex(deployed.engine, hasher, linger=0.01)
    try:
        stale = now - LINEAGE_PRUNE_PERIOD - timedelta(minutes=10)
        recent = now - LINEAGE_PRUNE_PERIOD / 2  # expired, but within one prune period
        index.record_later([_lineage("sync", stale), _lineage("sync", stale)])
        index.record_later([_lineage("sync", recent), _lineage("retired", stale)])
        assert index.flush()
        found = retention_findings(manifest, deployed.settings, deployed.engine, now)
        sync = _sync(manifest, deployed, now)
        assert sync.status == "fail"
        assert "2 lineage rows are more than PT1H past their expiry" in sync.reason
        assert sync.fix is not None
        assert "gateway" in sync.fix
        [orphan] = [f for f in found if f.integration is None]
        assert orphan.status == "fail"
        assert "retired (1)" in orphan.reason

        assert index.prune(now) == 4
    finally:
        index.close()
    found = retention_findings(manifest, deployed.settings, deployed.engine, now)
    assert [(f.integration, f.status) for f in found] == [("sync", "pass")]


def test_no_audit_log_holds_no_bodies_and_is_not_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, write_manifest: Write
) -> None:
    """Before anything is recorded there is nothing to prune; the probe creates no file."""
    deployment = _init(monkeypatch, tmp_path)  # SQLite: an audit log that can be absent
    try:
        audit_file = Path(deployment.settings.audit_url.removeprefix("sqlite:///"))
        assert not audit_file.exists()
        finding = _sync(load_manifest(write_manifest()), deployment, datetime.now(UTC))
    finally:
        deployment.close()
    assert finding.status == "pass", finding.reason
    assert "none at" in finding.evidence[1]
    assert not audit_file.exists()
