"""``read_window``: the entries of a period, from a log verified first."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from interlock.audit import AuditVerificationError
from interlock.audit.prune import prune
from interlock.audit.service import AuditLog
from interlock.audit.window import read_window
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from tests.audit.conftest import T0, sample_entry


def _open(settings: Settings, keyring: Keyring) -> AuditLog:
    log = AuditLog.open(settings, keyring, witnesses=[])
    for i in range(10):
        log.sink.record(sample_entry(i))
    return log


def test_the_window_holds_its_entries_and_marks_pruned_ones(
    sqlite_settings: Settings, keyring: Keyring
) -> None:
    """Entries with start <= time < end, in log order; a pruned one has no fields."""
    log = _open(sqlite_settings, keyring)
    try:
        prune(log.store, log.keys, {"order-sync": timedelta(0)}, now=T0 + timedelta(minutes=3))
        window = read_window(log.store.engine, T0 + timedelta(minutes=2), T0 + timedelta(minutes=5))
        entries = list(window.entries)
    finally:
        log.close()
    # Entries 0-2 are older than the prune's cut; the prune itself (entry 10) is in the window.
    assert [e.index for e in entries] == [2, 3, 4, 10]
    assert (entries[0].fields, entries[0].integration) == (None, "order-sync")
    assert entries[1].fields is not None
    assert entries[1].fields["correlation_id"] == "req-3"
    assert entries[3].fields is not None
    assert entries[3].fields["action"] == "audit.prune"
    assert window.verified.size == 11


def test_an_entry_changed_after_the_verification_is_refused(
    sqlite_settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    """The window is verified, then a body is rewritten before it is read: refused, named."""
    log = _open(sqlite_settings, keyring)
    try:
        window = read_window(log.store.engine, T0, T0 + timedelta(hours=1))
        with sqlite3.connect(tmp_path / "a.db") as connection:
            for (name,) in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger'"
            ):
                connection.execute(f"DROP TRIGGER {name}")
            connection.execute(
                "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'req-6', "
                "'req-9') AS BLOB) WHERE idx = 6"
            )
        connection.close()
        with pytest.raises(AuditVerificationError) as caught:
            list(window.entries)
    finally:
        log.close()
    assert caught.value.index == 6
