"""The rotation engine: four resumable steps, then a retire once the overlap is over.

A rotation of a secret with a configured rotator runs

1. **create** - the rotator makes a new value, stored as the *pending* version;
2. **set** - the target is made to accept it (while it still accepts the current one);
3. **test** - the new value is used against the target;
4. **promote** - the pending version becomes current; the one before becomes
   *previous*, still valid for the secret's overlap;

and, once that overlap is over, **retire**: the target stops accepting the
previous value (where it can hold two credentials) and the vault ends it.

Each step is recorded in ``vault_rotations`` before the next begins
(:mod:`interlock.secrets.rotation_lock`), so a rotation interrupted anywhere
resumes at the step it reached; rotators make every operation safe to repeat.
A secret is rotated by one process at a time (the rotation lock). Every step
and its outcome go on the audit trail as ``secret.rotate.<step>`` — values
never do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, TypeVar

from sqlalchemy import Engine

from interlock.actors import Operator
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.clock import Clock
from interlock.errors import InterlockError, InvalidRequestError
from interlock.secrets.errors import VersionConflictError
from interlock.secrets.rotation_lock import (
    DEFAULT_LEASE,
    LockLostError,
    RotationLock,
    RotationState,
    in_progress,
)
from interlock.secrets.rotators.base import ROTATION_ACTOR, Credential, RotationError, Rotator
from interlock.secrets.vault import SecretInfo, Stage, Vault, VersionInfo

__all__ = ["Done", "RotationAbandonedError", "RotationEngine", "due", "overdue"]

StepName = Literal["create", "set", "test", "promote", "retire"]
_T = TypeVar("_T")
_REASON_CHARS: Final = 300


class RotationAbandonedError(VersionConflictError):
    """The secret was written while its rotation ran: that write stands, the rotation ended.

    Its pending value was retired at the target and in the vault; rotate again to
    rotate from the value now current.
    """


@dataclass(frozen=True)
class Done:
    """What one secret's scheduled work came to (for ``rotate --due``)."""

    name: str
    action: Literal["rotated", "retired", "failed", "skipped"]
    version: int | None = None
    detail: str | None = None


def due(vault: Vault, now: datetime) -> list[SecretInfo]:
    """Secrets whose schedule (``rotate_every`` since the last rotation) has come."""
    listed = vault.secrets(actor=ROTATION_ACTOR)
    return [i for i in listed if (at := i.due_at()) is not None and now >= at]


def overdue(vault: Vault, now: datetime) -> list[SecretInfo]:
    """Secrets older than their maximum age: they should have been rotated already."""
    return [i for i in vault.secrets(actor=ROTATION_ACTOR) if i.overdue(now)]


class RotationEngine:
    """Rotates the vault's secrets through their rotators, resumably and one process at a time.

    ``rotators`` builds the rotator a secret is configured with (normally
    :func:`interlock.secrets.rotators.build` over a context); ``on_step`` is
    told of each step once its state is recorded (progress output).
    """

    def __init__(
        self,
        vault: Vault,
        engine: Engine,
        rotators: Callable[[SecretInfo], Rotator],
        *,
        audit: AuditSink,
        actor: Operator = ROTATION_ACTOR,
        lease: timedelta = DEFAULT_LEASE,
        on_step: Callable[[str, StepName, int], None] | None = None,
        now: Clock | None = None,
    ) -> None:
        """Bind to the vault and the store holding its rotation records.

        ``now`` decides what is due and when an overlap is over; by default
        it is the vault's own clock, so both agree on the time.
        """
        self._vault = vault
        self._engine = engine
        self._rotators = rotators
        self._audit = audit
        self._actor = actor
        self._lease = lease
        self._on_step = on_step
        self._now: Clock = now if now is not None else vault.now

    # -- one secret ------------------------------------------------------------

    def rotate(self, name: str, *, force: bool = False) -> int:
        """Rotate ``name`` (or resume its interrupted rotation); the new current version.

        A previous version still in its overlap is retired first only with
        ``force`` (its holders may not have switched yet); one whose overlap is
        over is retired first always.
        """
        info, rotator = self._prepare(name)
        lock = RotationLock(self._engine, name, lease=self._lease, now=self._now)
        state = lock.acquire("started")
        try:
            version = self._run(info, rotator, lock, state, force=force)
        except LockLostError:
            raise
        except RotationAbandonedError:
            lock.finish()  # nothing is left to resume
            raise
        except Exception as error:
            lock.release(error=_reason(error))
            raise
        lock.finish()
        return version

    def retire(self, name: str, *, force: bool = False) -> int | None:
        """Retire ``name``'s previous version if its overlap is over (or ``force``).

        Returns the retired version, or ``None`` when there was nothing to do
        (no previous version, still in its overlap, or a rotation in progress,
        which retires it itself).
        """
        previous = self._previous(name)
        if previous is None or not (force or self._overlap_over(previous)):
            return None
        info, rotator = self._prepare(name)
        lock = RotationLock(self._engine, name, lease=self._lease, now=self._now)
        state = lock.acquire("retiring")
        if state.step not in {"started", "retiring"}:
            lock.release()
            return None
        try:
            retired = self._retire_previous(info, rotator, force=force)
        except LockLostError:
            raise
        except Exception as error:
            lock.release(error=_reason(error))
            raise
        lock.finish()
        return retired

    # -- the schedule ------------------------------------------------------------

    def run_due(self) -> list[Done]:
        """Retire what finished its overlap, resume interrupted rotations, rotate what is due.

        One secret's failure does not stop the others; each is reported.
        """
        now = self._now()
        done = [
            self._guarded(info.name, "retired", self.retire)
            for info in self._vault.secrets(actor=self._actor)
            if info.rotator is not None
        ]
        names = {i.name for i in due(self._vault, now)}
        names |= {s.name for s in in_progress(self._engine)}
        done.extend(self._guarded(name, "rotated", self.rotate) for name in sorted(names))
        return [d for d in done if d.action != "skipped"]

    def _guarded(
        self, name: str, action: Literal["rotated", "retired"], work: Callable[..., int | None]
    ) -> Done:
        try:
            version = work(name)
        except InterlockError as error:
            return Done(name, "failed", None, _reason(error))
        return Done(name, action, version) if version is not None else Done(name, "skipped")

    # -- the steps -------------------------------------------------------------

    def _prepare(self, name: str) -> tuple[SecretInfo, Rotator]:
        info = self._vault.info(name, actor=self._actor)
        if info.rotator is None:
            raise InvalidRequestError(
                f"{name} has no rotator; configure one with "
                "`interlock secrets configure NAME --rotator ...`"
            )
        return info, self._rotators(info)

    def _run(
        self,
        info: SecretInfo,
        rotator: Rotator,
        lock: RotationLock,
        state: RotationState,
        *,
        force: bool,
    ) -> int:
        name = info.name
        step = state.step
        version = state.pending_version
        if step in {"started", "retiring"}:
            self._retire_previous(info, rotator, force=force)
            current = self._credential(name, stage="current")
            value = self._step("create", name, None, lambda: rotator.generate(current))
            version = self._vault.write(name, value, actor=self._actor, stage="pending").version
            lock.advance("created", version)
            self._told(name, "create", version)
            step = "created"
        pending_info = self._pending(name, version)
        if pending_info.stage == "current":  # promoted before the record of it was removed
            return version
        pending = self._credential(name, version=version)
        if step == "created":
            current = self._credential(name, stage="current")
            self._step("set", name, version, lambda: rotator.set(pending, current))
            lock.advance("set")
            self._told(name, "set", version)
            step = "set"
        if step == "set":
            self._step("test", name, version, lambda: rotator.test(pending))
            lock.advance("tested")
            self._told(name, "test", version)
        try:
            self._step(
                "promote",
                name,
                version,
                lambda: self._vault.promote(name, version, actor=self._actor),
            )
        except VersionConflictError as conflict:
            self._abandon(name, rotator, version)
            raise RotationAbandonedError(
                f"{conflict}; the rotation is abandoned (version {version} retired at the "
                f"target and in the vault): rotate again to rotate from the current value"
            ) from None
        self._told(name, "promote", version)
        return version

    def _abandon(self, name: str, rotator: Rotator, version: int) -> None:
        """End pending ``version`` at the target and in the vault: a newer write won."""
        pending = self._credential(name, version=version)
        current = self._credential(name, stage="current")
        # The target was set to accept the pending value: without this it would keep
        # accepting a credential the vault no longer serves, with nobody to end it.
        self._step("retire", name, version, lambda: rotator.retire(pending, current))
        self._vault.retire(name, version, actor=self._actor)
        self._told(name, "retire", version)

    def _retire_previous(self, info: SecretInfo, rotator: Rotator, *, force: bool) -> int | None:
        name = info.name
        previous = self._previous(name)
        if previous is None:
            return None
        if not previous.readable:
            return self._end_unreadable(name, previous, force=force)
        if not (force or self._overlap_over(previous)):
            until = f"{previous.valid_until:%Y-%m-%d %H:%M} UTC" if previous.valid_until else "-"
            raise InvalidRequestError(
                f"version {previous.version} of {name} is still valid for its overlap (until "
                f"{until}); rotate after that, or with --force to end it now"
            )
        old = self._credential(name, version=previous.version)
        current = self._credential(name, stage="current")
        self._step("retire", name, previous.version, lambda: rotator.retire(old, current))
        self._vault.retire(name, previous.version, actor=self._actor)
        self._told(name, "retire", previous.version)
        return previous.version

    def _end_unreadable(self, name: str, previous: VersionInfo, *, force: bool) -> int:
        """A previous version deleted or destroyed (before the vault refused it).

        Its value is what tells the target which credential to stop accepting. A
        deleted one comes back with ``undelete``. A destroyed one cannot: the
        operator revokes it at the target by hand, then ``--force`` ends it in the
        vault, on record as a retire the target was not told of. Never silently.
        """
        version = previous.version
        if previous.destroyed_at is None:
            raise RotationError(
                f"version {version} of {name}, the previous version, is deleted, and its "
                "rotator needs its value to retire it at the target: run `interlock secrets "
                f"undelete {name} -v {version}`, then rotate"
            )
        if not force:
            raise RotationError(
                f"version {version} of {name}, the previous version, was destroyed, so its "
                "rotator cannot make the target stop accepting it: revoke it at the target "
                f"by hand, then `interlock secrets rotate {name} --force` ends it here"
            )
        self._record(
            "retire",
            name,
            version,
            RotationError("the value was destroyed: the target was not told (--force)"),
        )
        self._vault.retire(name, version, actor=self._actor)
        return version

    def _previous(self, name: str) -> VersionInfo | None:
        found = [v for v in self._vault.versions(name, actor=self._actor) if v.stage == "previous"]
        return found[0] if found else None

    def _overlap_over(self, previous: VersionInfo) -> bool:
        return previous.valid_until is None or self._now() >= previous.valid_until

    def _pending(self, name: str, version: int) -> VersionInfo:
        found = [v for v in self._vault.versions(name, actor=self._actor) if v.version == version]
        if not found or found[0].stage not in {"pending", "current"} or not found[0].readable:
            raise RotationError(
                f"the rotation of {name} was left at pending version {version}, which is no "
                "longer pending; inspect `interlock secrets show` and write a new version"
            )
        return found[0]

    def _credential(
        self, name: str, *, version: int | None = None, stage: Stage | None = None
    ) -> Credential:
        secret, info = self._vault.read(name, actor=self._actor, version=version, stage=stage)
        return Credential(name, info.version, secret)

    def _step(self, step: StepName, name: str, version: int | None, work: Callable[[], _T]) -> _T:
        try:
            result = work()
        except Exception as error:
            self._record(step, name, version, error)
            raise
        self._record(step, name, version, None)
        return result

    def _told(self, name: str, step: StepName, version: int) -> None:
        if self._on_step is not None:
            self._on_step(name, step, version)

    def _record(
        self, step: StepName, name: str, version: int | None, error: Exception | None
    ) -> None:
        details: dict[str, str | int | bool] = {"secret": name}
        if version is not None:
            details["version"] = version
        entry = AuditEntry(
            actor=self._actor.label,
            action=f"secret.rotate.{step}",
            target=f"secret://{name}"[:200],
            outcome=Outcome(result="failure" if error else "success"),
            reason=None if error is None else _reason(error),
            details=details,
        )
        if error is None:
            self._audit.record(entry)  # the step is done: its record must be durable
        else:
            self._audit.record_later(entry)  # never hide the step's own error


def _reason(error: BaseException) -> str:
    """What went wrong, for the record: our own messages (never values), else the type only."""
    if isinstance(error, InterlockError):
        return f"{type(error).__name__}: {error}"[:_REASON_CHARS]
    return type(error).__name__
