"""A worker process killed mid-call: the next worker resumes; no step lost or done twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.actors import Operator
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.clock import utc_now
from interlock.config.settings import Settings
from interlock.privacy import request_audit
from interlock.privacy.request_worker import LEASE
from interlock.privacy.requests import PrivacyRequests
from interlock.store import initialise
from interlock.testing.clock import ManualClock
from tests.privacy.request_support import (
    MANIFEST,
    Scripted,
    factory,
    manifest,
    open_lineage,
)

pytestmark = pytest.mark.processes

WORKER = Path(__file__).with_name("crash_request_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def actions(settings: Settings, request_id: str) -> list[str]:
    """The audit log's actions about ``request_id``, in log order."""
    engine = sa.create_engine(settings.audit_url)
    with engine.connect() as connection:
        bodies = [
            bytes(b)
            for b in connection.execute(sa.select(BODIES.c.body).order_by(BODIES.c.idx)).scalars()
        ]
    engine.dispose()
    entries = [json.loads(body) for body in bodies]
    return [e["action"] for e in entries if e.get("details", {}).get("request") == request_id]


def test_a_killed_worker_is_resumed_by_the_next_without_a_repeated_step(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    deployment = initialise(settings)
    path = tmp_path / "interlock.yaml"
    path.write_text(MANIFEST)
    loaded = manifest(tmp_path)
    log = AuditLog.open(settings, deployment.keyring, witnesses=[])
    lineage, hasher = open_lineage(deployment.engine, deployment.keyring)
    try:
        view = PrivacyRequests(
            deployment.engine, deployment.keyring, loaded, log.sink, lineage, hasher
        ).create(
            "access", "email", "ada@example.com", actor=Operator("admin:alice"), systems=["erp"]
        )
    finally:
        log.close()
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    died = subprocess.run(  # noqa: S603  (our interpreter and test module, no shell)
        [sys.executable, str(WORKER), str(settings.data_dir), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == 3, died.stderr
    assert actions(settings, view.id) == [request_audit.CREATE, request_audit.ASK]
    # The dead worker's lease holds until it expires; then another worker resumes.
    erp = Scripted()
    log = AuditLog.open(settings, deployment.keyring, witnesses=[])
    try:
        clock = ManualClock(utc_now())
        service = PrivacyRequests(
            deployment.engine,
            deployment.keyring,
            loaded,
            log.sink,
            lineage,
            hasher,
            clock=clock,
            connectors=factory({"erp": erp}),
        )
        assert service.get(view.id).systems[0].status == "asked"
        assert service.run_due() == 0  # still leased by the dead worker
        clock.advance(LEASE + timedelta(minutes=1))
        assert service.run_due() == 2  # the call resumed, the request closed
        done = service.get(view.id)
    finally:
        log.close()
        lineage.close()
        deployment.close()
    assert done.status == "closed"
    assert (done.systems[0].status, done.systems[0].attempts) == ("done", 1)
    assert [call[1] for call in erp.calls] == [view.id]
    assert actions(settings, view.id) == [
        request_audit.CREATE,
        request_audit.ASK,
        request_audit.ANSWER,
        request_audit.CLOSE,
    ]
