"""The rotation engine: four steps, resumed after a crash at each, the lock, retire, schedules."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from interlock.actors import Client, Operator
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.errors import InvalidRequestError
from interlock.secrets.errors import VersionConflictError
from interlock.secrets.rotation import RotationEngine, StepName, due, overdue
from interlock.secrets.rotation_lock import LockLostError, RotationLock, RotationLockedError, state
from interlock.secrets.rotators.base import RotationError
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from tests.secrets.rotation_support import ADMIN, MemoryRotator, Target, rotators_for

NAME = "erp/api-key"


class CrashError(Exception):
    """Stands for the process dying right after a step's state was recorded."""


@pytest.fixture
def deployment(tmp_path: Path, store_url: str) -> Iterator[Deployment]:
    """A fresh deployment on each store backend."""
    opened = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    yield opened
    opened.close()


@pytest.fixture
def sink() -> MemorySink:
    """Where evidence goes."""
    return MemorySink()


@pytest.fixture
def vault(deployment: Deployment, sink: MemorySink) -> Vault:
    """A vault holding one secret, configured with a rotator, whose target accepts it."""
    opened = Vault(deployment.engine, deployment.keyring, audit=sink, cache_seconds=0)
    opened.write(NAME, b"initial-value", actor=ADMIN, kind="api_key")
    opened.configure(NAME, actor=ADMIN, rotator="memory", rotator_config={"x": "1"})
    return opened


@pytest.fixture
def target() -> Target:
    """The system the secret is for; it accepts the first value."""
    return Target(accepted={b"initial-value"})


def _engine(
    vault: Vault, deployment: Deployment, rotator: MemoryRotator, sink: MemorySink, **kw: object
) -> RotationEngine:
    return RotationEngine(
        vault,
        deployment.engine,
        rotators_for(rotator),
        audit=sink,
        actor=ADMIN,
        **kw,  # type: ignore[arg-type]
    )


def test_a_rotation_creates_sets_tests_and_promotes_and_the_old_value_overlaps(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """The new version is current, the old one previous and still accepted, all on record."""
    version = _engine(vault, deployment, MemoryRotator(target), sink).rotate(NAME)
    assert version == 2
    current, info = vault.read(NAME, actor=ADMIN)
    assert info.stage == "current"
    previous, old = vault.read(NAME, actor=ADMIN, stage="previous")
    assert old.version == 1
    assert old.valid_until is not None
    assert target.accepts(current.reveal())
    assert target.accepts(previous.reveal())
    assert [c[0] for c in target.calls] == ["generate", "set", "test"]
    assert state(deployment.engine, NAME) is None
    actions = [e.action for e in sink.entries if e.action.startswith("secret.rotate.")]
    assert actions == [
        "secret.rotate.create",
        "secret.rotate.set",
        "secret.rotate.test",
        "secret.rotate.promote",
    ]
    encoded = b"".join(sink.encoded)
    assert current.reveal() not in encoded
    assert b"initial-value" not in encoded


@pytest.mark.parametrize("crash_after", ["create", "set", "test", "promote"])
def test_a_rotation_interrupted_after_each_step_resumes_from_there(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink, crash_after: StepName
) -> None:
    """A crash right after a step is recorded: the next run goes on from it, once, to the end."""

    def crash(_name: str, step: StepName, _version: int) -> None:
        if step == crash_after:
            raise CrashError(step)

    rotator = MemoryRotator(target)
    with pytest.raises(CrashError):
        _engine(vault, deployment, rotator, sink, on_step=crash).rotate(NAME)
    recorded = state(deployment.engine, NAME)
    assert recorded is not None
    assert recorded.locked_by is None
    assert recorded.step == {"create": "created", "set": "set", "test": "tested"}.get(
        crash_after, "tested"
    )
    assert recorded.pending_version == 2
    done_before = list(target.calls)

    assert _engine(vault, deployment, rotator, sink).rotate(NAME) == 2
    resumed = [c[0] for c in target.calls[len(done_before) :]]
    remaining = {"create": ["set", "test"], "set": ["test"], "test": [], "promote": []}
    assert resumed == remaining[crash_after]
    assert [c[0] for c in target.calls].count("generate") == 1  # one new value, not two
    current, info = vault.read(NAME, actor=ADMIN)
    assert info.version == 2
    assert target.accepts(current.reveal())
    assert state(deployment.engine, NAME) is None


@pytest.mark.parametrize("failing", ["set", "test"])
def test_a_failing_step_stops_the_rotation_and_the_next_run_repeats_only_that_step(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink, failing: str
) -> None:
    """The current value is untouched by a failure; the error is recorded, without values."""
    rotator = MemoryRotator(target, fail=failing)
    with pytest.raises(RotationError):
        _engine(vault, deployment, rotator, sink).rotate(NAME)
    assert vault.read(NAME, actor=ADMIN)[1].version == 1
    recorded = state(deployment.engine, NAME)
    assert recorded is not None
    assert recorded.last_error is not None
    assert "simulated" in recorded.last_error
    failures = [e for e in sink.entries if e.outcome.result == "failure"]
    assert [e.action for e in failures] == [f"secret.rotate.{failing}"]
    assert _engine(vault, deployment, rotator, sink).rotate(NAME) == 2
    assert [c[0] for c in target.calls].count("generate") == 1


def test_the_previous_version_is_retired_on_the_target_after_the_overlap(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """Not before its overlap is over (nor can another rotation start); then it stops working."""
    vault.configure(NAME, actor=ADMIN, overlap=3600)
    engine = _engine(vault, deployment, MemoryRotator(target), sink)
    engine.rotate(NAME)
    assert engine.retire(NAME) is None
    with pytest.raises(InvalidRequestError, match="overlap"):
        engine.rotate(NAME)
    assert target.accepts(b"initial-value")

    later = datetime.now(UTC) + timedelta(hours=2)
    assert (
        _engine(vault, deployment, MemoryRotator(target), sink, now=lambda: later).retire(NAME) == 1
    )
    assert not target.accepts(b"initial-value")
    assert [(v.version, v.stage) for v in vault.versions(NAME, actor=Operator("admin:test"))] == [
        (1, None),
        (2, "current"),
    ]
    assert "secret.rotate.retire" in [e.action for e in sink.entries]


def test_forcing_a_rotation_during_the_overlap_retires_the_previous_version_first(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """Never two valid previous versions: the older one is ended on the target before."""
    vault.configure(NAME, actor=ADMIN, overlap=3600)
    engine = _engine(vault, deployment, MemoryRotator(target), sink)
    engine.rotate(NAME)
    assert engine.rotate(NAME, force=True) == 3
    assert not target.accepts(b"initial-value")
    assert len(target.accepted) == 2  # version 2 (previous, in its overlap) and 3


def test_the_lock_keeps_a_second_process_out_until_the_lease_lapses(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """A held lock refuses others; a lapsed one is taken over and its old holder is fenced off."""
    holder = RotationLock(deployment.engine, NAME, lease=timedelta(minutes=5))
    holder.acquire("started")
    with pytest.raises(RotationLockedError):
        _engine(vault, deployment, MemoryRotator(target), sink).rotate(NAME)

    later = datetime.now(UTC) + timedelta(minutes=6)
    assert (
        _engine(vault, deployment, MemoryRotator(target), sink, now=lambda: later).rotate(NAME) == 2
    )
    with pytest.raises(LockLostError):
        holder.advance("created", 9)


def test_two_concurrent_rotations_of_one_secret_one_runs_the_other_is_refused(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """While one rotation is in its set step, a second (another engine, another thread) fails."""
    inside, release = threading.Event(), threading.Event()

    def hold() -> None:
        inside.set()
        release.wait(10)

    first = _engine(vault, deployment, MemoryRotator(target, before_set=hold), sink)
    results: list[object] = []
    worker = threading.Thread(target=lambda: results.append(first.rotate(NAME)))
    worker.start()
    assert inside.wait(10)
    with pytest.raises(RotationLockedError):
        _engine(vault, deployment, MemoryRotator(target), sink).rotate(NAME)
    release.set()
    worker.join(10)
    assert results == [2]
    assert [c[0] for c in target.calls].count("generate") == 1


def test_due_and_overdue_follow_the_policy(vault: Vault, deployment: Deployment) -> None:
    """API keys: due after 90 days, overdue after 100; a rotation resets the clock."""
    now = datetime.now(UTC)
    assert due(vault, now) == []
    assert overdue(vault, now) == []
    assert [i.name for i in due(vault, now + timedelta(days=91))] == [NAME]
    assert overdue(vault, now + timedelta(days=91)) == []
    assert [i.name for i in overdue(vault, now + timedelta(days=101))] == [NAME]
    with deployment.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE vault_secrets SET last_rotated_at = :t"),
            {"t": now + timedelta(days=95)},
        )
    assert overdue(vault, now + timedelta(days=101)) == []


def test_run_due_rotates_what_is_due_and_resumes_what_was_interrupted(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """The schedule's work: nothing at first; a due secret is rotated, an interrupted one resumed."""
    vault.write("crm/token", b"crm-initial", actor=ADMIN, kind="api_key")
    vault.configure("crm/token", actor=ADMIN, rotator="memory", rotator_config={})
    target.accepted.add(b"crm-initial")
    assert _engine(vault, deployment, MemoryRotator(target), sink).run_due() == []

    with pytest.raises(RotationError):
        _engine(vault, deployment, MemoryRotator(target, fail="test"), sink).rotate("crm/token")
    later = datetime.now(UTC) + timedelta(days=91)
    done = _engine(vault, deployment, MemoryRotator(target), sink, now=lambda: later).run_due()
    assert sorted((d.name, d.action, d.version) for d in done) == [
        ("crm/token", "rotated", 2),
        (NAME, "rotated", 2),
    ]


def test_a_secret_without_a_rotator_cannot_be_rotated(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """Deny by default: no rotator, no rotation (and nothing recorded as begun)."""
    vault.write("plain/secret", b"v", actor=ADMIN)
    with pytest.raises(InvalidRequestError, match="no rotator"):
        _engine(vault, deployment, MemoryRotator(target), sink).rotate("plain/secret")
    assert state(deployment.engine, "plain/secret") is None


def test_a_write_made_during_a_rotation_stands_and_the_rotation_ends_in_a_conflict(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """Promote no longer undoes it: the rotation's value is retired at the target instead."""
    vault.policy.grant("order-sync", "erp/*", ["read", "write"])
    client = Client("order-sync")
    written: list[int] = []

    def client_writes() -> None:
        written.append(vault.write(NAME, b"written-by-client", actor=client, cas=1).version)

    rotator = MemoryRotator(target, before_set=client_writes)
    with pytest.raises(VersionConflictError, match="written while its rotation ran"):
        _engine(vault, deployment, rotator, sink).rotate(NAME)
    assert written == [3]
    current, info = vault.read(NAME, actor=ADMIN)
    assert (current.reveal(), info.version) == (b"written-by-client", 3)
    assert [(v.version, v.stage) for v in vault.versions(NAME, actor=ADMIN)] == [
        (1, "previous"),
        (2, None),
        (3, "current"),
    ]
    abandoned, _ = vault.read(NAME, actor=ADMIN, version=2)
    assert not target.accepts(abandoned.reveal())  # set, then retired: not valid anywhere
    assert state(deployment.engine, NAME) is None  # nothing left to resume
    failures = [e.action for e in sink.entries if e.outcome.result == "failure"]
    assert failures == ["secret.rotate.promote"]
    assert vault.write(NAME, b"next", actor=client, cas=3).version == 4  # the client's own cas


def test_promote_refuses_when_the_current_version_moved_past_the_pending_one(
    vault: Vault,
) -> None:
    """A pending version is newer than the version current when it was staged."""
    pending = vault.write(NAME, b"staged", actor=ADMIN, stage="pending").version
    vault.write(NAME, b"written", actor=ADMIN)
    with pytest.raises(VersionConflictError):
        vault.promote(NAME, pending, actor=ADMIN)
    assert vault.info(NAME, actor=ADMIN).current_version == pending + 1


@pytest.mark.parametrize("how", ["delete", "destroy"])
def test_the_previous_version_is_kept_until_the_rotation_has_retired_it(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink, how: str
) -> None:
    """Deleting or destroying it would leave the old credential valid at the target for good."""
    engine = _engine(vault, deployment, MemoryRotator(target), sink)
    engine.rotate(NAME)
    remove = getattr(vault, how)
    with pytest.raises(InvalidRequestError, match="rotate erp/api-key --force") as refused:
        remove(NAME, [1], actor=ADMIN)
    assert "is the previous version" in str(refused.value)
    assert vault.read(NAME, actor=ADMIN, version=1)[0].reveal() == b"initial-value"
    assert engine.rotate(NAME, force=True) == 3  # retires version 1 at the target first
    assert not target.accepts(b"initial-value")
    assert remove(NAME, [1], actor=ADMIN) == [1]


def test_a_pending_version_is_kept_while_its_rotation_is_in_progress(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """A rotation interrupted after create resumes with it; removing it would strand the rotation."""
    with pytest.raises(RotationError):
        _engine(vault, deployment, MemoryRotator(target, fail="set"), sink).rotate(NAME)
    for remove in (vault.delete, vault.destroy):
        with pytest.raises(InvalidRequestError, match="is pending"):
            remove(NAME, [2], actor=ADMIN)
    assert _engine(vault, deployment, MemoryRotator(target), sink).rotate(NAME) == 2


def test_a_previous_version_destroyed_earlier_stops_the_rotation_with_the_fix_named(
    vault: Vault, deployment: Deployment, target: Target, sink: MemorySink
) -> None:
    """Left by an older release: the target cannot be told, so the operator is, until --force."""
    engine = _engine(vault, deployment, MemoryRotator(target), sink)
    engine.rotate(NAME)
    with deployment.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE vault_versions SET value = NULL, destroyed_at = :t WHERE version = 1"),
            {"t": datetime.now(UTC)},
        )
    with pytest.raises(RotationError, match="revoke it at the target by hand"):
        engine.rotate(NAME)
    later = datetime.now(UTC) + timedelta(days=2)
    done = _engine(vault, deployment, MemoryRotator(target), sink, now=lambda: later).run_due()
    assert done
    assert {(d.name, d.action) for d in done} == {(NAME, "failed")}
    assert all("revoke it at the target by hand" in (d.detail or "") for d in done)
    assert engine.rotate(NAME, force=True) == 3
    first = vault.versions(NAME, actor=ADMIN)[0]
    assert (first.version, first.stage) == (1, None)
    skipped = [e for e in sink.entries if e.action == "secret.rotate.retire"]
    assert [(e.outcome.result, e.details["version"]) for e in skipped] == [("failure", 1)]
