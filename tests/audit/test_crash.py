"""SIGKILL the writer mid-batch, 50 times: every acknowledged entry survives, the log verifies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from interlock.audit.entry import decode_entry
from interlock.audit.keys import load_keys
from interlock.audit.schema import BODIES
from interlock.audit.service import AuditLog
from interlock.audit.storage import create_audit_engines
from interlock.audit.verify import verify_log
from interlock.config.settings import Settings
from interlock.crypto import Keyring

# Writers in child processes, killed mid-batch.
pytestmark = pytest.mark.processes

KILLS = 50
ZYGOTE = Path(__file__).with_name("crash_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _wait_for_acks(acks: Path, beyond: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if acks.exists() and acks.stat().st_size > beyond:
            return
        time.sleep(0.005)


def test_killed_writers_lose_no_acknowledged_entry(tmp_path: Path, keyring: Keyring) -> None:
    """Each writer is killed at a random moment after it began acknowledging entries."""
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    AuditLog.open(
        Settings(data_dir=tmp_path, audit_database_url=url), keyring, witnesses=[]
    ).close()
    acks = tmp_path / "acks.txt"
    chance = random.Random(8)  # noqa: S311  (kill timing, not cryptography)
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"}
    zygote = subprocess.Popen(  # noqa: S603  (our interpreter and test module, no shell)
        [sys.executable, str(ZYGOTE)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert zygote.stdin is not None
    assert zygote.stdout is not None
    try:
        for kill in range(KILLS):
            before = acks.stat().st_size if acks.exists() else 0
            zygote.stdin.write(f"run {url} {keyring.path} {acks} k{kill}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            _wait_for_acks(acks, before, time.monotonic() + 10)
            time.sleep(chance.uniform(0.0, 0.03))
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write(f"reap {pid}\n")
            zygote.stdin.flush()
            status = int(zygote.stdout.readline())
            assert os.WIFSIGNALED(status)
            assert os.WTERMSIG(status) == signal.SIGKILL
    finally:
        zygote.stdin.close()
        zygote.wait(10)
        zygote.stdout.close()

    acknowledged = [line.split() for line in acks.read_text().splitlines()]
    assert len(acknowledged) >= KILLS
    engine, writer = create_audit_engines(url)
    try:
        with engine.connect() as connection:
            bodies = dict(connection.execute(select(BODIES.c.idx, BODIES.c.body)).all())
        for index, correlation in acknowledged:
            assert decode_entry(bytes(bodies[int(index)]))["correlation_id"] == correlation
        # The key survived the kills too: unsealing it gives the one every head is signed with.
        trusted = load_keys(engine, keyring, "interlock.local/audit").verifier
        report = verify_log(engine, trusted=[trusted])
        assert report.size == len(bodies) >= len(acknowledged)
    finally:
        engine.dispose()
        writer.dispose()
