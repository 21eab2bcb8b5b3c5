"""Tree heads while idle: a head at least every INTERLOCK_AUDIT_CHECKPOINT_SECONDS."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from interlock.audit.entry import decode_entry
from interlock.audit.heartbeat import ACTION
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.audit.verify import verify_log
from interlock.audit.witness import FileWitness, read_witness_file
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from tests.audit.conftest import sample_entry


def _actions(log: AuditLog) -> list[str]:
    with log.store.engine.connect() as connection:
        bodies = connection.execute(select(BODIES.c.body).order_by(BODIES.c.idx)).scalars()
        return [str(decode_entry(bytes(body))["action"]) for body in bodies]


def _wait_for(condition: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_an_idle_log_signs_a_new_head_each_period_and_witnesses_get_it(
    tmp_path: Path, audit_url: str, keyring: Keyring
) -> None:
    """With no traffic, heads keep coming (each with its time in the tree), and verify."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=audit_url, audit_checkpoint_seconds=1
    )
    witness = tmp_path / "witness.note"
    log = AuditLog.open(settings, keyring, witnesses=[FileWitness(witness)], heartbeat=True)
    try:
        log.sink.record(sample_entry(0))
        _wait_for(lambda: log.store.size() >= 3, 10)
        assert _actions(log)[:3] == ["gateway.request", ACTION, ACTION]
        heads = log.store.checkpoints()
        assert [h.size for h in heads][:3] == [1, 2, 3]
        latest = log.store.latest_checkpoint
        _wait_for(lambda: witness.exists() and read_witness_file(witness) == latest().note, 10)  # type: ignore[union-attr]
        assert verify_log(log.store.engine).size == log.store.size()
    finally:
        log.close()


def test_traffic_within_the_period_adds_no_heartbeat(
    tmp_path: Path, audit_url: str, keyring: Keyring
) -> None:
    """A head signed by a batch resets the clock: busy logs carry no extra entries."""
    settings = Settings(
        data_dir=tmp_path / "data", audit_database_url=audit_url, audit_checkpoint_seconds=2
    )
    log = AuditLog.open(settings, keyring, witnesses=[], heartbeat=True)
    try:
        for number in range(12):
            log.sink.record(sample_entry(number))
            time.sleep(0.25)
        assert ACTION not in _actions(log)
    finally:
        log.close()


def test_zero_seconds_or_a_short_lived_open_starts_no_heartbeat(
    tmp_path: Path, keyring: Keyring
) -> None:
    """CLI commands open the log without one; 0 turns it off for a gateway."""
    settings = Settings(data_dir=tmp_path, audit_checkpoint_seconds=0)
    log = AuditLog.open(settings, keyring, witnesses=[], heartbeat=True)
    log.close()
    assert log.heartbeat is None
    settings = Settings(data_dir=tmp_path, audit_checkpoint_seconds=5)
    log = AuditLog.open(settings, keyring, witnesses=[])
    try:
        assert log.heartbeat is None
    finally:
        log.close()
