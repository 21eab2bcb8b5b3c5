"""The state of a rotation in progress and its lock, in ``vault_rotations``.

One row per secret being rotated: the step reached, for which pending
version. The row is also the lock, held as a lease (``locked_by`` until
``locked_until``): taking it is one conditional ``INSERT`` or ``UPDATE``, so
two processes or replicas never run the same secret's rotation at once, on
SQLite and PostgreSQL alike. Every write of a step is conditional on still
holding the lock (a fencing check): a holder whose lease lapsed and was taken
over stops instead of racing its successor. A holder that dies without
releasing the lock loses it when the lease lapses.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from sqlalchemy import Engine, delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.errors import InterlockError
from interlock.secrets.tables import VaultRotationRow
from interlock.store.base import as_utc, table_of

__all__ = ["DEFAULT_LEASE", "LockLostError", "RotationLock", "RotationLockedError", "RotationState"]

DEFAULT_LEASE: Final = timedelta(minutes=2)
_TABLE: Final = table_of(VaultRotationRow)
_ERROR_CHARS: Final = 500

#: started (lock taken) -> created (pending version stored) -> set -> tested;
#: the row goes once the version is promoted. ``retiring``: only a retire runs.
Step = Literal["started", "created", "set", "tested", "retiring"]


class RotationLockedError(InterlockError):
    """Another process holds the secret's rotation lock."""

    code = "rotation_locked"


class LockLostError(InterlockError):
    """This process's lease lapsed and another took the lock; it must stop."""

    code = "rotation_lock_lost"


@dataclass(frozen=True)
class RotationState:
    """Where a secret's rotation stands."""

    name: str
    step: Step
    pending_version: int
    started_at: datetime
    updated_at: datetime
    attempts: int
    last_error: str | None
    locked_by: str | None
    locked_until: datetime | None


class RotationLock:
    """The rotation lock and recorded step of one secret, held by this process."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        lease: timedelta = DEFAULT_LEASE,
        now: Clock = utc_now,
    ) -> None:
        """Bind to ``name``'s row; nothing is taken until :meth:`acquire`."""
        self._engine = engine
        self._name = name
        self._lease = lease
        self._now = now
        self.holder = secrets.token_hex(16)

    def acquire(self, step: Step) -> RotationState:
        """Take the lock; a new row starts at ``step``, an existing one resumes where it was.

        :class:`RotationLockedError` when another holder's lease has not lapsed.
        """
        now = self._now()
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _TABLE.insert().values(
                        name=self._name,
                        pending_version=0,
                        step=step,
                        started_at=now,
                        updated_at=now,
                        attempts=1,
                        locked_by=self.holder,
                        locked_until=now + self._lease,
                    )
                )
        except IntegrityError:  # a rotation was left in progress, or is running
            with self._engine.begin() as connection:
                taken = connection.execute(
                    update(_TABLE)
                    .where(
                        _TABLE.c.name == self._name,
                        or_(_TABLE.c.locked_by.is_(None), _TABLE.c.locked_until < now),
                    )
                    .values(
                        locked_by=self.holder,
                        locked_until=now + self._lease,
                        attempts=_TABLE.c.attempts + 1,
                        updated_at=now,
                    )
                )
            if taken.rowcount != 1:
                held = state(self._engine, self._name)
                until = f" until {held.locked_until:%Y-%m-%d %H:%M:%S} UTC" if held else ""
                raise RotationLockedError(
                    f"{self._name} is being rotated by another process (lock held{until})"
                ) from None
        found = state(self._engine, self._name)
        if found is None:  # cannot happen while we hold it: fail closed
            raise LockLostError(f"the rotation record of {self._name} vanished")
        return found

    def advance(self, step: Step, pending_version: int | None = None) -> None:
        """Record that ``step`` is done (and the lease renewed), if the lock is still ours."""
        now = self._now()
        values: dict[str, object] = {
            "step": step,
            "updated_at": now,
            "locked_until": now + self._lease,
            "last_error": None,
        }
        if pending_version is not None:
            values["pending_version"] = pending_version
        self._fenced(values)

    def release(self, error: str | None = None) -> None:
        """Give the lock up, leaving the step recorded (with ``error``) so a later run resumes."""
        values: dict[str, object] = {"locked_by": None, "locked_until": None}
        if error is not None:
            values["last_error"] = error[:_ERROR_CHARS]
        with contextlib.suppress(LockLostError):  # someone else holds it: nothing of ours
            self._fenced(values)

    def finish(self) -> None:
        """The rotation is complete: remove its row (and with it the lock)."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(_TABLE).where(_TABLE.c.name == self._name, _TABLE.c.locked_by == self.holder)
            )

    def _fenced(self, values: dict[str, object]) -> None:
        with self._engine.begin() as connection:
            done = connection.execute(
                update(_TABLE)
                .where(_TABLE.c.name == self._name, _TABLE.c.locked_by == self.holder)
                .values(**values)
            )
        if done.rowcount != 1:
            raise LockLostError(
                f"the rotation lock of {self._name} lapsed and was taken by another process"
            )


def state(engine: Engine, name: str) -> RotationState | None:
    """The recorded rotation of ``name``, or ``None`` when none is in progress."""
    with engine.connect() as connection:
        row = connection.execute(select(_TABLE).where(_TABLE.c.name == name)).first()
    if row is None:
        return None
    return RotationState(
        name=row.name,
        step=row.step,
        pending_version=row.pending_version,
        started_at=as_utc(row.started_at),
        updated_at=as_utc(row.updated_at),
        attempts=row.attempts,
        last_error=row.last_error,
        locked_by=row.locked_by,
        locked_until=as_utc(row.locked_until) if row.locked_until else None,
    )


def in_progress(engine: Engine) -> list[RotationState]:
    """Every recorded rotation (interrupted ones included), by name."""
    with engine.connect() as connection:
        names = connection.execute(select(_TABLE.c.name).order_by(_TABLE.c.name)).scalars().all()
    return [s for s in (state(engine, n) for n in names) if s is not None]
