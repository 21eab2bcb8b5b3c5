"""Tampering with the stored log is caught by ``verify`` and named by its first bad entry."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from interlock.audit.errors import AuditVerificationError
from interlock.audit.service import AuditLog
from interlock.audit.storage import LogStore, StoredCheckpoint, create_audit_engines
from interlock.audit.verify import verify_log
from interlock.audit.witness import FileWitness, read_witness_file
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from tests.audit.conftest import sample_entry

SIZE = 20


def _db(settings: Settings) -> Path:
    return Path(settings.audit_url.removeprefix("sqlite:///"))


def _fill(
    settings: Settings, keyring: Keyring, witness: Path | None = None, offset: int = 0
) -> None:
    log = AuditLog.open(settings, keyring, witnesses=[FileWitness(witness)] if witness else [])
    try:
        for i in range(SIZE):
            log.sink.record(sample_entry(i + offset))
        if log.publisher is not None:
            assert log.publisher.flush()
    finally:
        log.close()


@pytest.fixture
def filled(sqlite_settings: Settings, keyring: Keyring, tmp_path: Path) -> Path:
    """A log of 20 entries (one batch each) with a witness file; returns the witness file."""
    witness = tmp_path / "witness.checkpoint"
    _fill(sqlite_settings, keyring, witness)
    return witness


def _attack(settings: Settings, *statements: str) -> None:
    """What an attacker with the database file can do: drop the triggers and rewrite."""
    with sqlite3.connect(_db(settings)) as connection:
        triggers = connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        ).fetchall()
        for (name,) in triggers:
            connection.execute(f"DROP TRIGGER {name}")
        for statement in statements:
            connection.execute(statement)


def _verify(settings: Settings, witness: Path | None = None) -> None:
    engine, writer = create_audit_engines(settings.audit_url)
    try:
        notes = [read_witness_file(witness)] if witness else []
        verify_log(engine, witnessed=notes)
    finally:
        engine.dispose()
        writer.dispose()


def _caught(settings: Settings, witness: Path | None = None) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as caught:
        _verify(settings, witness)
    return caught.value


def test_the_untouched_log_verifies_with_its_witness(
    sqlite_settings: Settings, filled: Path
) -> None:
    """The baseline: the log and its witnessed tree head agree."""
    _verify(sqlite_settings, filled)


def test_one_changed_byte_names_its_entry(sqlite_settings: Settings, filled: Path) -> None:
    """One byte of entry 7 changed: entry 7 is named."""
    _attack(
        sqlite_settings,
        "UPDATE audit_bodies SET body = CAST(replace(CAST(body AS TEXT), 'req-7', 'req-8') AS BLOB) WHERE idx = 7",
    )
    error = _caught(sqlite_settings)
    assert error.index == 7
    assert "entry 7" in error.message


def test_a_deleted_entry_is_named(sqlite_settings: Settings, filled: Path) -> None:
    """Entry 5 removed entirely: the gap at 5 is named."""
    _attack(
        sqlite_settings,
        "DELETE FROM audit_bodies WHERE idx = 5",
        "DELETE FROM audit_leaves WHERE idx = 5",
    )
    error = _caught(sqlite_settings)
    assert error.index == 5
    assert "entry 5 is missing" in error.message


def test_a_deleted_body_that_was_not_pruned_is_named(
    sqlite_settings: Settings, filled: Path
) -> None:
    """A body deleted outside pruning cannot pass for a pruned one."""
    _attack(sqlite_settings, "DELETE FROM audit_bodies WHERE idx = 11")
    assert _caught(sqlite_settings).index == 11


def test_two_reordered_entries_are_named(sqlite_settings: Settings, filled: Path) -> None:
    """Entries 3 and 4 swapped: entry 3 no longer matches its leaf."""
    _attack(
        sqlite_settings,
        "UPDATE audit_bodies SET idx = -1 WHERE idx = 3",
        "UPDATE audit_bodies SET idx = 3 WHERE idx = 4",
        "UPDATE audit_bodies SET idx = 4 WHERE idx = -1",
    )
    assert _caught(sqlite_settings).index == 3


def test_reordering_leaves_too_is_caught_by_the_tree(
    sqlite_settings: Settings, filled: Path
) -> None:
    """Swapping whole entries 3 and 4 (bodies and leaf hashes): the stored tree disagrees."""
    statements = [
        f"UPDATE {table} SET idx = {new} WHERE idx = {old}"  # noqa: S608  (test's own SQL)
        for table in ("audit_bodies", "audit_leaves")
        for old, new in ((3, -1), (4, 3), (-1, 4))
    ]
    _attack(sqlite_settings, *statements)
    error = _caught(sqlite_settings)
    assert error.index is not None
    assert error.index <= 3
    assert "2..3" in error.message


def test_an_unreadable_database_is_a_verification_failure(
    sqlite_settings: Settings, filled: Path
) -> None:
    """Garbage where a hash should be is reported, with the entry, not a crash."""
    _attack(
        sqlite_settings, "UPDATE audit_leaves SET leaf_hash = CAST(x'ff00' AS TEXT) WHERE idx = 9"
    )
    assert _caught(sqlite_settings).index is not None


def test_a_truncated_tail_is_named(sqlite_settings: Settings, filled: Path) -> None:
    """Entries 15.. removed: tree heads signed at larger sizes give it away."""
    _attack(
        sqlite_settings,
        "DELETE FROM audit_bodies WHERE idx >= 15",
        "DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 15",
        "DELETE FROM audit_leaves WHERE idx >= 15",
    )
    error = _caught(sqlite_settings)
    assert error.index == 15
    assert "truncated" in error.message


def test_a_tail_truncated_with_its_tree_heads_is_caught_by_the_witness(
    sqlite_settings: Settings, filled: Path
) -> None:
    """A careful truncation (tree heads too) passes alone, not against the witness."""
    _attack(
        sqlite_settings,
        "DELETE FROM audit_bodies WHERE idx >= 15",
        "DELETE FROM audit_nodes WHERE ((idx + 1) << level) > 15",
        "DELETE FROM audit_leaves WHERE idx >= 15",
        "DELETE FROM audit_checkpoints WHERE size > 15",
    )
    _verify(sqlite_settings)
    assert _caught(sqlite_settings, filled).index == 15


def test_a_forged_database_with_another_key_contradicts_the_witness(
    sqlite_settings: Settings, filled: Path, tmp_path: Path
) -> None:
    """A whole new, self-consistent log under a new key: the witness's signature does not fit."""
    forged = Settings(data_dir=tmp_path, audit_database_url=f"sqlite:///{tmp_path / 'forged.db'}")
    _fill(forged, Keyring.create(tmp_path / "attacker-keyring.json"), offset=100)
    _verify(forged)
    shutil.copyfile(_db(forged), _db(sqlite_settings))
    for suffix in ("-wal", "-shm"):
        Path(f"{_db(sqlite_settings)}{suffix}").unlink(missing_ok=True)
    error = _caught(sqlite_settings, filled)
    assert "replaced" in error.message


def test_a_forgery_under_the_same_key_contradicts_the_witnessed_root(
    sqlite_settings: Settings, filled: Path, keyring: Keyring, tmp_path: Path
) -> None:
    """An insider with the key rewrites history consistently: the witnessed root disagrees."""
    forged = Settings(data_dir=tmp_path, audit_database_url=f"sqlite:///{tmp_path / 'forged.db'}")
    shutil.copyfile(_db(sqlite_settings), _db(forged))  # keep the key, empty the rest
    tables = (
        "audit_pruned",
        "audit_search",
        "audit_bodies",
        "audit_nodes",
        "audit_checkpoints",
        "audit_leaves",
    )
    _attack(forged, *(f"DELETE FROM {table}" for table in tables))  # noqa: S608
    _fill(forged, keyring, offset=100)
    shutil.copyfile(_db(forged), _db(sqlite_settings))
    for suffix in ("-wal", "-shm"):
        Path(f"{_db(sqlite_settings)}{suffix}").unlink(missing_ok=True)
    _verify(sqlite_settings)  # consistent on its own
    error = _caught(sqlite_settings, filled)
    assert "contradicts" in error.message
    assert read_witness_file(filled).split("\n")[1] == str(SIZE)


def test_entries_appended_while_the_log_is_verified_are_not_called_unsigned(
    sqlite_settings: Settings, keyring: Keyring, filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live log grows during a verification: a batch committed after the tree heads were
    read (with its own head) is no unsigned tail (``interlock check --live`` failed so)."""
    log = AuditLog.open(sqlite_settings, keyring)
    real = LogStore.checkpoints
    appended: list[int] = []

    def heads_then_a_batch(store: LogStore) -> list[StoredCheckpoint]:
        heads = real(store)
        if not appended:  # the first read only: the gateway commits meanwhile
            appended.append(log.sink.record(sample_entry(SIZE)))
        return heads

    monkeypatch.setattr(LogStore, "checkpoints", heads_then_a_batch)
    try:
        _verify(sqlite_settings, filled)
    finally:
        log.close()
    assert appended == [SIZE]


def test_a_tail_without_its_tree_head_is_still_caught(
    sqlite_settings: Settings, filled: Path
) -> None:
    """Entries whose head is gone are unsigned, however often the heads are read."""
    _attack(sqlite_settings, "DELETE FROM audit_checkpoints WHERE size > 15")
    error = _caught(sqlite_settings)
    assert "not covered by a signed tree head" in error.message
    assert error.index == 15


def test_a_forged_head_read_after_the_entries_is_refused(
    sqlite_settings: Settings, keyring: Keyring, filled: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The late head is checked like the others: a root that does not fit is caught."""
    _attack(sqlite_settings, "DELETE FROM audit_checkpoints WHERE size > 15")
    real = LogStore.checkpoints
    calls: list[int] = []

    def later_a_forged_head(store: LogStore) -> list[StoredCheckpoint]:
        heads = real(store)
        calls.append(len(heads))
        if len(calls) == 1:
            return heads
        head = heads[-1]
        return [*heads, StoredCheckpoint(SIZE, head.root, head.note)]

    monkeypatch.setattr(LogStore, "checkpoints", later_a_forged_head)
    with pytest.raises(AuditVerificationError, match="disagrees with its signed note"):
        _verify(sqlite_settings)
