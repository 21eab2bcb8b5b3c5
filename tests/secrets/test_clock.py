"""The vault, its rotations and the rotation lock decide by the injected clock, not the real one.

The manual clock starts in 2040, years after any real "now" these tests run
at: a decision taken by the real clock would come out the other way (a
version stamped now would be due at once in 2040; a lease or overlap ending
in 2040 would never end by the real clock).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.sink import MemorySink
from interlock.config.settings import Settings
from interlock.secrets.rotation import RotationEngine, due
from interlock.secrets.rotation_lock import RotationLock, RotationLockedError
from interlock.secrets.vault import Vault
from interlock.store import Deployment, initialise
from interlock.testing.clock import ManualClock
from tests.secrets.rotation_support import ADMIN, MemoryRotator, Target, rotators_for

NAME = "erp/api-key"
START = datetime(2040, 1, 1, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    """A clock far from the real one."""
    return ManualClock(START)


@pytest.fixture
def deployment(tmp_path: Path, store_url: str) -> Iterator[Deployment]:
    """A fresh deployment on each store backend."""
    opened = initialise(Settings(data_dir=tmp_path / "d", database_url=store_url))
    yield opened
    opened.close()


@pytest.fixture
def vault(deployment: Deployment, clock: ManualClock) -> Vault:
    """A vault on the manual clock holding one API key with a rotator."""
    opened = Vault(
        deployment.engine, deployment.keyring, audit=MemorySink(), cache_seconds=0, now=clock
    )
    opened.write(NAME, b"initial-value", actor=ADMIN, kind="api_key")
    opened.configure(NAME, actor=ADMIN, rotator="memory", rotator_config={})
    return opened


def test_versions_and_metadata_are_stamped_by_the_injected_clock(
    vault: Vault, clock: ManualClock
) -> None:
    """Creation, update and the previous version's overlap all count from the vault's ``now``."""
    clock.advance(timedelta(hours=1))
    vault.write(NAME, b"second-value", actor=ADMIN)
    first, second = vault.versions(NAME, actor=Operator("admin:test"))
    assert first.created_at == START
    assert second.created_at == START + timedelta(hours=1)
    assert first.valid_until == START + timedelta(hours=1, days=1)  # api_key overlap: one day
    assert first.valid_at(clock.now)
    assert not first.valid_at(clock.now + timedelta(days=1))
    info = vault.info(NAME, actor=Operator("admin:test"))
    assert info.created_at == START
    assert info.updated_at == START + timedelta(hours=1)
    assert vault.now() == clock.now


def test_a_grant_is_stamped_by_the_vaults_clock(vault: Vault, deployment: Deployment) -> None:
    """The access policy the vault opens shares its clock."""
    import sqlalchemy as sa

    vault.policy.grant("order-sync", "erp/*", ["read"])
    with deployment.engine.connect() as connection:
        stamped = connection.execute(sa.text("SELECT created_at FROM vault_grants")).scalar_one()
    if isinstance(stamped, str):  # SQLite hands back naive text
        stamped = datetime.fromisoformat(stamped).replace(tzinfo=UTC)
    assert stamped == START


def test_a_rotation_falls_due_and_its_overlap_ends_by_the_vaults_clock(
    vault: Vault, deployment: Deployment, clock: ManualClock
) -> None:
    """The engine asks the vault's clock by default: due after 90 days, retired after the overlap."""
    vault.configure(NAME, actor=ADMIN, overlap=3600)
    target = Target(accepted={b"initial-value"})
    engine = RotationEngine(
        vault,
        deployment.engine,
        rotators_for(MemoryRotator(target)),
        actor=ADMIN,
        audit=MemorySink(),
    )
    assert engine.run_due() == []
    assert due(vault, clock.now) == []

    clock.advance(timedelta(days=91))
    done = engine.run_due()
    assert [(d.name, d.action, d.version) for d in done] == [(NAME, "rotated", 2)]
    assert vault.info(NAME, actor=Operator("admin:test")).last_rotated_at == clock.now
    assert engine.retire(NAME) is None  # the old value is in its one-hour overlap
    assert target.accepts(b"initial-value")

    clock.advance(timedelta(minutes=61))
    assert engine.retire(NAME) == 1
    assert not target.accepts(b"initial-value")


def test_a_rotation_lock_lease_lapses_by_the_injected_clock(
    vault: Vault, deployment: Deployment, clock: ManualClock
) -> None:
    """A held lock refuses another holder until its lease has passed on the injected clock."""
    holder = RotationLock(deployment.engine, NAME, lease=timedelta(minutes=5), now=clock)
    holder.acquire("started")
    other = RotationLock(deployment.engine, NAME, lease=timedelta(minutes=5), now=clock)
    clock.advance(timedelta(minutes=4))
    with pytest.raises(RotationLockedError, match="2040-01-01 00:05:00"):
        other.acquire("started")
    clock.advance(timedelta(minutes=2))
    assert other.acquire("started").locked_until == clock.now + timedelta(minutes=5)
