"""Tampering with the stored log is caught by ``verify`` and named by its first bad entry."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from interlock.audit.errors import AuditVerificationError
from interlock.audit.keys import log_verifier
from interlock.audit.schema import METADATA
from interlock.audit.service import AuditLog
from interlock.audit.storage import LogStore, StoredCheckpoint, create_audit_engines
from interlock.audit.verify import verify_log
from interlock.audit.witness import FileWitness, read_witness_file
from interlock.config.settings import Settings
from interlock.crypto import Keyring
from interlock.proofs.note import NoteVerifier
from interlock.proofs.rfc9162 import leaf_hash
from tests.audit.conftest import sample_entry

SIZE = 20
_SPARE = 1_000_000  # a free index to swap rows through (CHECK (idx >= 0) rules out -1)


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


def _verify(
    settings: Settings, witness: Path | None = None, trusted: Sequence[NoteVerifier] = ()
) -> None:
    engine, writer = create_audit_engines(settings.audit_url)
    try:
        notes = [read_witness_file(witness)] if witness else []
        verify_log(engine, trusted=trusted, witnessed=notes)
    finally:
        engine.dispose()
        writer.dispose()


def _caught(
    settings: Settings, witness: Path | None = None, trusted: Sequence[NoteVerifier] = ()
) -> AuditVerificationError:
    with pytest.raises(AuditVerificationError) as caught:
        _verify(settings, witness, trusted)
    return caught.value


def _log_key(settings: Settings) -> NoteVerifier:
    engine, writer = create_audit_engines(settings.audit_url)
    try:
        key = log_verifier(engine)
    finally:
        engine.dispose()
        writer.dispose()
    assert key is not None
    return key


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
        "UPDATE audit_bodies SET idx = 1000000 WHERE idx = 3",
        "UPDATE audit_bodies SET idx = 3 WHERE idx = 4",
        "UPDATE audit_bodies SET idx = 4 WHERE idx = 1000000",
    )
    assert _caught(sqlite_settings).index == 3


def test_reordering_leaves_too_is_caught_by_the_tree(
    sqlite_settings: Settings, filled: Path
) -> None:
    """Swapping whole entries 3 and 4 (bodies and leaf hashes): the stored tree disagrees."""
    statements = [
        f"UPDATE {table} SET idx = {new} WHERE idx = {old}"  # noqa: S608  (test's own SQL)
        for table in ("audit_bodies", "audit_leaves")
        for old, new in ((3, _SPARE), (4, 3), (_SPARE, 4))
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
    """A careful truncation (tree heads and search rows too) passes alone, not against the
    witness (a careless one leaves search rows without entries, which verify names)."""
    _attack(
        sqlite_settings,
        "DELETE FROM audit_search WHERE idx >= 15",
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


def _empty(settings: Settings, how: str) -> None:
    """Every audit table emptied (the log's key too), or an empty file in the database's place."""
    if how == "emptied":
        deletions = (f"DELETE FROM {table}" for table in METADATA.tables)  # noqa: S608
        _attack(settings, "PRAGMA foreign_keys=OFF", *deletions)
        return
    _db(settings).unlink()
    _db(settings).touch()
    for suffix in ("-wal", "-shm"):
        Path(f"{_db(settings)}{suffix}").unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["emptied", "replaced by an empty file"])
@pytest.mark.parametrize("given", ["key", "witness", "key and witness"])
def test_an_emptied_log_fails_against_its_pinned_key_or_its_witness(
    sqlite_settings: Settings, filled: Path, how: str, given: str
) -> None:
    """An empty log is no proof of an empty history: a pinned key finds no key in it (the log
    was replaced), a witnessed head of size 20 finds no entries (they were truncated)."""
    key = _log_key(sqlite_settings)
    _empty(sqlite_settings, how)
    _verify(sqlite_settings)  # with nothing to compare it with, an empty log is consistent
    trusted = [key] if "key" in given else []
    witness = filled if "witness" in given else None
    error = _caught(sqlite_settings, witness, trusted)
    expected = "replaced" if "key" in given else "truncated"
    assert expected in error.message


def _plant_at_minus_one(settings: Settings) -> None:
    """An insider's forged entry at index -1 whose leaf, body and search row agree, in a log
    made before the CHECK constraints (an older release's): INSERT only, nothing altered."""
    _attack(settings, "PRAGMA ignore_check_constraints=ON")  # and its triggers dropped
    with sqlite3.connect(_db(settings)) as connection:
        connection.execute("PRAGMA ignore_check_constraints=ON")
        (body,) = connection.execute("SELECT body FROM audit_bodies WHERE idx = 3").fetchone()
        fake = body.replace(b'"req-3"', b'"FORGED-1"')
        connection.execute(
            "INSERT INTO audit_leaves SELECT -1, ?, time_us, integration FROM audit_leaves "
            "WHERE idx = 3",
            (leaf_hash(fake),),
        )
        connection.execute("INSERT INTO audit_bodies VALUES (-1, ?)", (fake,))
        connection.execute(
            "INSERT INTO audit_search SELECT -1, time_us, 'FORGED-1', client, integration, "
            "action FROM audit_search WHERE idx = 3"
        )


def test_an_entry_planted_at_a_negative_index_is_caught(
    sqlite_settings: Settings, filled: Path
) -> None:
    """Rows below index 0 are no entries of the log: verify names the table holding them."""
    _plant_at_minus_one(sqlite_settings)
    error = _caught(sqlite_settings, filled)
    assert "audit_leaves" in error.message
    assert "below index 0" in error.message


def test_a_body_without_its_leaf_is_caught(sqlite_settings: Settings, filled: Path) -> None:
    """A body or search row planted where the log has no entry (foreign keys off) is caught."""
    _attack(
        sqlite_settings,
        "PRAGMA foreign_keys=OFF",
        f"INSERT INTO audit_bodies SELECT {_SPARE}, body FROM audit_bodies WHERE idx = 3",  # noqa: S608
    )
    error = _caught(sqlite_settings, filled)
    assert "audit_bodies" in error.message
