"""The secrets vault: versioned secrets sealed by the keyring, under an access policy.

Every secret has a path-like name (``erp/api-key``), metadata (owner, kind,
rotation policy) and versions 1, 2, ... Each version is sealed with envelope
encryption bound to its name *and* version, so a sealed value copied to
another name or version fails to open. A version is ``pending`` (a rotation's
new value, not yet served), ``current`` (exactly one), ``previous`` (the one
before, still valid for the secret's overlap) or superseded. Versions can be
soft-deleted (and undeleted) or destroyed (the sealed value is erased; the
record that it existed stays).

Writes may be check-and-set (``cas``): ``0`` means "only if the secret does
not exist", ``n`` "only if version ``n`` is current"; otherwise they fail
with :class:`VersionConflictError` and change nothing. The check is one
conditional ``UPDATE``, so it holds across processes and replicas.

Every read of a value and every change goes on the audit trail (the value
never does); a refusal by the access policy too. When the audit trail cannot
record a read, the value is not released.

The vault is the gateway's :class:`~interlock.secrets.resolver.SecretResolver`:
``secret://name`` resolves to the current version, cached for
``cache_seconds``, so a rotated value is picked up without a restart.

A version whose value holds a PEM certificate (a ``tls_certificate`` bundle,
or any other) records the certificate's validity: its rotation falls due at
two thirds of the certificate's life and it is overdue at five sixths, if the
schedule does not say so earlier (cert-manager and ACME clients renew at the
same two thirds), so a certificate is replaced well before it expires.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine, Select, and_, func, select, update
from sqlalchemy.exc import IntegrityError

from interlock.actors import Actor, Operator
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.crypto import Keyring
from interlock.crypto.pkix import load_certificate_pem
from interlock.errors import InvalidRequestError, NotFoundError, did_you_mean
from interlock.secret import Secret
from interlock.secrets.errors import AccessDeniedError, VersionConflictError
from interlock.secrets.policy import AccessPolicy, Capability, matches
from interlock.secrets.tables import VaultSecretRow, VaultVersionRow
from interlock.store.base import as_utc, table_of

__all__ = [
    "DEFAULT_POLICIES",
    "KINDS",
    "MAX_SECRET_BYTES",
    "SecretInfo",
    "Vault",
    "VersionInfo",
    "check_name",
    "resolvable_names",
]

MAX_SECRET_BYTES: Final = 64 * 1024
# Matched whole (fullmatch): with match() and "$", "erp/api-key\n" was a valid name.
_NAME: Final = re.compile(r"[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)*")
_SCHEME: Final = "secret://"
_SECRETS: Final = table_of(VaultSecretRow)
_VERSIONS: Final = table_of(VaultVersionRow)
_DAY: Final = 86_400

Kind = Literal[
    "generic", "api_key", "database_password", "oauth_client_secret", "tls_certificate", "webhook"
]
Stage = Literal["pending", "current", "previous"]
KINDS: Final[tuple[str, ...]] = (
    "generic",
    "api_key",
    "database_password",
    "oauth_client_secret",
    "tls_certificate",
    "webhook",
)


@dataclass(frozen=True)
class RotationPolicy:
    """Defaults by kind: rotate every, overdue after (max age), overlap; in seconds."""

    rotate_every: int | None
    max_age: int | None
    overlap: int


#: Database passwords 30-90 days, API keys 90 days; TLS certificates are
#: renewed well before expiry by the PKI (its own schedule), so their secret
#: rotates when the certificate does.
DEFAULT_POLICIES: Final[Mapping[str, RotationPolicy]] = {
    "generic": RotationPolicy(None, None, _DAY),
    "api_key": RotationPolicy(90 * _DAY, 100 * _DAY, _DAY),
    "database_password": RotationPolicy(30 * _DAY, 90 * _DAY, 3600),
    "oauth_client_secret": RotationPolicy(90 * _DAY, 100 * _DAY, _DAY),
    "tls_certificate": RotationPolicy(60 * _DAY, 80 * _DAY, _DAY),
    "webhook": RotationPolicy(90 * _DAY, 100 * _DAY, _DAY),
}


@dataclass(frozen=True)
class VersionInfo:
    """What is known about one version (never its value)."""

    name: str
    version: int
    stage: Stage | None
    created_at: datetime
    created_by: str
    valid_until: datetime | None
    deleted_at: datetime | None
    destroyed_at: datetime | None

    @property
    def readable(self) -> bool:
        """Whether the value can be read (neither deleted nor destroyed)."""
        return self.deleted_at is None and self.destroyed_at is None

    def valid_at(self, now: datetime) -> bool:
        """Whether the version may still be used: current, or previous within its overlap."""
        if not self.readable:
            return False
        if self.stage == "current":
            return True
        return self.stage == "previous" and self.valid_until is not None and now < self.valid_until


@dataclass(frozen=True)
class SecretInfo:
    """A secret's metadata (never a value)."""

    name: str
    owner: str | None
    kind: str
    description: str | None
    rotate_every: int | None
    max_age: int | None
    overlap: int
    rotator: str | None
    rotator_config: Mapping[str, Any]
    current_version: int
    created_at: datetime
    updated_at: datetime
    last_rotated_at: datetime | None
    # The validity of the current value's certificate, when it holds one.
    not_before: datetime | None = None
    not_after: datetime | None = None

    @property
    def age_since(self) -> datetime:
        """When the current value was set by a rotation (or first stored)."""
        return self.last_rotated_at or self.created_at

    def _life(self, part: float) -> datetime | None:
        if self.not_before is None or self.not_after is None:
            return None
        return self.not_before + (self.not_after - self.not_before) * part

    def due_at(self) -> datetime | None:
        """When the next rotation is due: by schedule, or at 2/3 of a certificate's life."""
        times = [self._life(2 / 3)]
        if self.rotate_every is not None:
            times.append(self.age_since + timedelta(seconds=self.rotate_every))
        return min((t for t in times if t is not None), default=None)

    def overdue_at(self) -> datetime | None:
        """When the value is overdue: past its maximum age, or 5/6 of a certificate's life."""
        times = [self._life(5 / 6)]
        if self.max_age is not None:
            times.append(self.age_since + timedelta(seconds=self.max_age))
        return min((t for t in times if t is not None), default=None)

    def overdue(self, now: datetime) -> bool:
        """Whether the value is older than its maximum age or its certificate nearly expired."""
        at = self.overdue_at()
        return at is not None and now >= at


def check_name(name: str) -> str:
    """``name`` if it is a valid secret name, else :class:`InvalidRequestError`."""
    if not _NAME.fullmatch(name) or len(name) > 200:
        raise InvalidRequestError(
            f"invalid secret name {name!r}: lower-case path segments like erp/api-key"
        )
    return name


def name_of(reference: str) -> str:
    """The name in ``secret://name``."""
    if not reference.startswith(_SCHEME):
        raise InvalidRequestError(f"not a secret reference: {reference!r}")
    return check_name(reference.removeprefix(_SCHEME))


def _aad(name: str, version: int, legacy: bool) -> bytes:
    # Bound to name and version; the first store's values only to the name.
    suffix = "" if legacy else f"#{version}"
    return f"interlock:secret:{name}{suffix}".encode()


def _version(row: Any) -> VersionInfo:
    return VersionInfo(
        name=row.name,
        version=row.version,
        stage=row.stage,
        created_at=as_utc(row.created_at),
        created_by=row.created_by,
        valid_until=as_utc(row.valid_until) if row.valid_until else None,
        deleted_at=as_utc(row.deleted_at) if row.deleted_at else None,
        destroyed_at=as_utc(row.destroyed_at) if row.destroyed_at else None,
    )


def _validity(value: bytes) -> tuple[datetime | None, datetime | None]:
    """notBefore and notAfter of the first PEM certificate in ``value`` (else ``None``)."""
    if b"-----BEGIN CERTIFICATE-----" not in value:
        return None, None
    try:
        leaf = load_certificate_pem(value)  # the first certificate of a bundle
    except ValueError:
        return None, None
    return leaf.not_valid_before_utc, leaf.not_valid_after_utc


def _info_query() -> Select[Any]:
    """Secrets with the certificate validity of their current version."""
    current = and_(
        _VERSIONS.c.name == _SECRETS.c.name, _VERSIONS.c.version == _SECRETS.c.current_version
    )
    return select(_SECRETS, _VERSIONS.c.not_before, _VERSIONS.c.not_after).outerjoin(
        _VERSIONS, current
    )


def resolvable_names(engine: Engine) -> frozenset[str]:
    """Names whose current version can be read (neither deleted nor destroyed).

    Metadata only: no value is opened and nothing is recorded (``interlock doctor``
    and ``serve``'s preflight ask which ``secret://`` references would resolve).
    """
    query = select(_SECRETS.c.name).join(
        _VERSIONS,
        and_(
            _VERSIONS.c.name == _SECRETS.c.name,
            _VERSIONS.c.version == _SECRETS.c.current_version,
            _VERSIONS.c.deleted_at.is_(None),
            _VERSIONS.c.destroyed_at.is_(None),
        ),
    )
    with engine.connect() as connection:
        return frozenset(connection.execute(query).scalars())


def _info(row: Any) -> SecretInfo:
    return SecretInfo(
        name=row.name,
        owner=row.owner,
        kind=row.kind,
        description=row.description,
        rotate_every=row.rotate_every,
        max_age=row.max_age,
        overlap=row.overlap,
        rotator=row.rotator,
        rotator_config=json.loads(row.rotator_config) if row.rotator_config else {},
        current_version=row.current_version,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
        last_rotated_at=as_utc(row.last_rotated_at) if row.last_rotated_at else None,
        not_before=as_utc(row.not_before) if row.not_before else None,
        not_after=as_utc(row.not_after) if row.not_after else None,
    )


def _to_change(name: str, action: str, found: Sequence[VersionInfo], *, rotated: bool) -> list[int]:
    """Which of ``found`` a delete, undelete or destroy changes; refuses what it must not."""
    if action == "secret.undelete":
        destroyed = sorted(v.version for v in found if v.destroyed_at is not None)
        if destroyed:
            raise InvalidRequestError(
                f"version {', '.join(map(str, destroyed))} of {name} was destroyed: its value "
                "is erased for good and cannot be restored"
            )
        return sorted(v.version for v in found if v.deleted_at is not None)
    verb = action.removeprefix("secret.")
    for info in found:
        _check_unneeded(name, info, verb, rotated=rotated)
    return sorted(v.version for v in found)


def _check_unneeded(name: str, info: VersionInfo, verb: str, *, rotated: bool) -> None:
    """Refuse to delete or destroy a version a rotation still needs to read.

    The rotation engine reads the previous value to make the target stop accepting
    it (retire), and a pending one to set and test it: without the value the old
    credential would stay valid at the target, and every later rotation would fail.
    """
    if info.stage == "pending":
        raise InvalidRequestError(
            f"version {info.version} of {name} is pending: the rotation in progress needs it; "
            f"finish it with `interlock secrets rotate {name}` first"
        )
    if info.stage == "previous" and rotated:
        raise InvalidRequestError(
            f"version {info.version} of {name} is the previous version, which its rotator "
            "must still retire at the target (until then the target accepts it): run "
            f"`interlock secrets rotate {name} --force`, or let `interlock secrets rotate "
            f"--due` retire it once its overlap is over, then {verb} it"
        )


#: Who resolves ``secret://`` references for the gateway's upstream calls and rules.
GATEWAY: Final = Operator("system:gateway")


class Vault:
    """Versioned, policy-guarded, audited secrets of one deployment (a ``SecretResolver``).

    Every method names who acts (:mod:`interlock.actors`): a
    :class:`~interlock.actors.Client` is checked against the access policy
    first; an :class:`~interlock.actors.Operator` (the CLI run by someone
    holding the keyring, the gateway itself, the rotation engine) is not, and
    only operators may promote, retire, configure, delete or destroy. Both are
    recorded on the audit trail under their label; the audit sink is required.
    """

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        audit: AuditSink,
        cache_seconds: float = 5.0,
        resolver: Operator = GATEWAY,
        now: Clock = utc_now,
    ) -> None:
        """Bind to the store; ``cache_seconds`` bounds how stale a resolved value may be.

        ``now`` is the wall clock that stamps versions and decides overlaps
        (:mod:`interlock.clock`); the resolver cache's age is monotonic time.
        """
        self._engine = engine
        self._now = now
        self._keyring = keyring
        self._audit = audit
        self._ttl = cache_seconds
        self._resolver = resolver
        self._cache: dict[str, tuple[float, Secret]] = {}
        self._lock = threading.Lock()
        self.policy = AccessPolicy(engine, now=now)

    def now(self) -> datetime:
        """The vault's clock (injected in tests): rotation asks it what time it is."""
        return self._now()

    # -- writing -------------------------------------------------------------

    def write(
        self,
        name: str,
        value: bytes,
        *,
        actor: Actor,
        cas: int | None = None,
        stage: Literal["current", "pending"] = "current",
        kind: str | None = None,
    ) -> VersionInfo:
        """Store a new version of ``name``; it becomes current (or pending, for a rotation).

        A new secret gets the rotation defaults of ``kind`` (``generic`` if not
        given). When a version becomes current, the one before becomes
        ``previous``, valid for the secret's overlap.
        """
        check_name(name)
        self._authorise(actor, "write", name)
        if not value:
            raise InvalidRequestError("a secret cannot be empty")
        if len(value) > MAX_SECRET_BYTES:
            raise InvalidRequestError(f"a secret is at most {MAX_SECRET_BYTES} bytes")
        if kind is not None and kind not in KINDS:
            raise InvalidRequestError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        now = self._now()
        try:
            with self._engine.begin() as connection:
                info = self._write(connection, name, value, actor, cas, stage, kind, now)
        except IntegrityError:  # another writer created the secret or the version first
            raise VersionConflictError(
                f"{name} was changed concurrently; read it again and retry"
            ) from None
        self._forget(name)
        self._record(
            actor,
            "secret.write",
            name,
            info.version,
            details={"stage": stage} if stage != "current" else None,
        )
        return info

    def _write(  # noqa: PLR0917  (the one transaction behind write())
        self,
        connection: Connection,
        name: str,
        value: bytes,
        actor: Actor,
        cas: int | None,
        stage: str,
        kind: str | None,
        now: datetime,
    ) -> VersionInfo:
        row = connection.execute(
            select(_SECRETS).where(_SECRETS.c.name == name).with_for_update()
        ).first()
        current = row.current_version if row is not None else 0
        if cas is not None and cas != current:
            raise VersionConflictError(
                f"check-and-set failed: {name} is at version {current}, not {cas}"
            )
        if row is None and stage == "pending":
            raise self._no_secret(connection, name, actor, "to stage a new version of")
        version = self._next_version(connection, name)
        if row is None:
            policy = DEFAULT_POLICIES[kind or "generic"]
            connection.execute(
                _SECRETS.insert().values(
                    name=name,
                    kind=kind or "generic",
                    rotate_every=policy.rotate_every,
                    max_age=policy.max_age,
                    overlap=policy.overlap,
                    current_version=version,
                    created_at=now,
                    updated_at=now,
                )
            )
        elif stage == "current":
            self._advance(connection, name, current, version, row.overlap, now)
        else:  # a new pending version replaces an older pending one
            connection.execute(
                update(_VERSIONS)
                .where(_VERSIONS.c.name == name, _VERSIONS.c.stage == "pending")
                .values(stage=None)
            )
        sealed = self._keyring.seal(value, _aad(name, version, legacy=False))
        not_before, not_after = _validity(value)
        connection.execute(
            _VERSIONS.insert().values(
                name=name,
                version=version,
                value=sealed,
                stage=stage,
                created_at=now,
                created_by=actor.label[:200],
                legacy_binding=False,
                not_before=not_before,
                not_after=not_after,
            )
        )
        return VersionInfo(name, version, stage, now, actor.label, None, None, None)  # type: ignore[arg-type]

    @staticmethod
    def _next_version(connection: Connection, name: str) -> int:
        highest = connection.execute(
            select(func.max(_VERSIONS.c.version)).where(_VERSIONS.c.name == name)
        ).scalar()
        return (highest or 0) + 1

    @staticmethod
    def _advance(  # noqa: PLR0917  (one step of a transaction)
        connection: Connection, name: str, current: int, version: int, overlap: int, now: datetime
    ) -> None:
        """Make ``version`` current if ``current`` still is; the old one becomes previous."""
        moved = connection.execute(
            update(_SECRETS)
            .where(_SECRETS.c.name == name, _SECRETS.c.current_version == current)
            .values(current_version=version, updated_at=now)
        )
        if moved.rowcount != 1:
            raise VersionConflictError(f"{name} was changed concurrently; read it again and retry")
        connection.execute(
            update(_VERSIONS)
            .where(_VERSIONS.c.name == name, _VERSIONS.c.stage == "previous")
            .values(stage=None)
        )
        connection.execute(
            update(_VERSIONS)
            .where(_VERSIONS.c.name == name, _VERSIONS.c.version == current)
            .values(stage="previous", valid_until=now + timedelta(seconds=overlap))
        )

    def promote(self, name: str, version: int, *, actor: Operator) -> VersionInfo:
        """Make pending ``version`` current (the last step of a rotation); idempotent.

        The version that was current becomes previous, valid for the overlap. A
        pending version is numbered after the one current when it was staged, so a
        current version above it was written while the rotation ran: that write
        stands, and promoting is refused with :class:`VersionConflictError`.
        """
        now = self._now()
        with self._engine.begin() as connection:
            row = connection.execute(
                select(_SECRETS).where(_SECRETS.c.name == name).with_for_update()
            ).first()
            if row is None:
                raise self._no_secret(connection, name, actor)
            if row.current_version == version:  # promoted already (a resumed rotation)
                return self._version_info(connection, name, version)
            if row.current_version > version:
                raise VersionConflictError(
                    f"{name} was written while its rotation ran: version "
                    f"{row.current_version} is current, newer than pending version {version}, "
                    "which is not promoted over it"
                )
            target = self._version_info(connection, name, version)
            if target.stage != "pending" or not target.readable:
                raise InvalidRequestError(f"version {version} of {name} is not pending")
            self._advance(connection, name, row.current_version, version, row.overlap, now)
            connection.execute(
                update(_VERSIONS)
                .where(_VERSIONS.c.name == name, _VERSIONS.c.version == version)
                .values(stage="current")
            )
            connection.execute(
                update(_SECRETS).where(_SECRETS.c.name == name).values(last_rotated_at=now)
            )
            info = self._version_info(connection, name, version)
        self._forget(name)
        self._record(actor, "secret.promote", name, version)
        return info

    def retire(self, name: str, version: int, *, actor: Operator) -> None:
        """End ``version``'s overlap now: it is no longer valid (kept, readable by version)."""
        with self._engine.begin() as connection:
            connection.execute(
                update(_VERSIONS)
                .where(
                    _VERSIONS.c.name == name,
                    _VERSIONS.c.version == version,
                    _VERSIONS.c.stage.in_(("previous", "pending")),
                )
                .values(stage=None, valid_until=None)
            )
        self._record(actor, "secret.retire", name, version)

    def configure(
        self,
        name: str,
        *,
        actor: Operator,
        owner: str | None = None,
        kind: str | None = None,
        description: str | None = None,
        rotate_every: int | None = None,
        max_age: int | None = None,
        overlap: int | None = None,
        rotator: str | None = None,
        rotator_config: Mapping[str, Any] | None = None,
        clear_schedule: bool = False,
    ) -> SecretInfo:
        """Change metadata of an existing secret; ``None`` leaves a field as it is."""
        values: dict[str, Any] = {}
        if kind is not None:
            if kind not in KINDS:
                raise InvalidRequestError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
            values["kind"] = kind
        for field, value in (("owner", owner), ("description", description)):
            if value is not None:
                if len(value) > (200 if field == "owner" else 500):
                    raise InvalidRequestError(f"the {field} is too long")
                values[field] = value
        for field, seconds in (
            ("rotate_every", rotate_every),
            ("max_age", max_age),
            ("overlap", overlap),
        ):
            if seconds is not None:
                if seconds < 0 or (field != "overlap" and seconds == 0):
                    raise InvalidRequestError(f"{field.replace('_', ' ')} must be positive")
                values[field] = seconds
        if clear_schedule:
            values.update(rotate_every=None, max_age=None)
        if rotator is not None:
            values["rotator"] = rotator
            values["rotator_config"] = json.dumps(dict(rotator_config or {}), sort_keys=True)
        if not values:
            return self.info(name, actor=actor)
        values["updated_at"] = self._now()
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(_SECRETS).where(_SECRETS.c.name == check_name(name)).values(**values)
            )
        if changed.rowcount == 0:
            with self._engine.connect() as connection:
                raise self._no_secret(connection, name, actor)
        self._record(actor, "secret.configure", name, None)
        return self.info(name, actor=actor)

    def delete(self, name: str, versions: Sequence[int], *, actor: Operator) -> list[int]:
        """Soft-delete ``versions`` (they stop being readable; :meth:`undelete` restores)."""
        return self._mark(name, versions, actor, "secret.delete", deleted_at=self._now())

    def undelete(self, name: str, versions: Sequence[int], *, actor: Operator) -> list[int]:
        """Restore soft-deleted ``versions``; the ones restored (a version not deleted is not).

        A destroyed version cannot come back: naming one is refused and nothing changes.
        """
        return self._mark(name, versions, actor, "secret.undelete", deleted_at=None)

    def destroy(self, name: str, versions: Sequence[int], *, actor: Operator) -> list[int]:
        """Erase the sealed values of ``versions`` for good; the record of them stays."""
        return self._mark(
            name, versions, actor, "secret.destroy", value=None, destroyed_at=self._now()
        )

    def _mark(
        self, name: str, versions: Sequence[int], actor: Operator, action: str, **values: Any
    ) -> list[int]:
        """Change ``versions`` of ``name``; returns (and records) only those it changed."""
        check_name(name)
        if not versions:
            raise InvalidRequestError("name at least one version")
        chosen = and_(_VERSIONS.c.name == name, _VERSIONS.c.version.in_(versions))
        with self._engine.begin() as connection:
            rows = connection.execute(select(_VERSIONS).where(chosen).with_for_update()).all()
            missing = sorted(set(versions) - {row.version for row in rows})
            if not rows and not self._stored(connection, name):
                raise self._no_secret(connection, name, actor)
            if missing:
                raise NotFoundError(f"{name} has no version {', '.join(map(str, missing))}")
            rotator = connection.execute(
                select(_SECRETS.c.rotator).where(_SECRETS.c.name == name)
            ).scalar()
            found = [_version(row) for row in rows]
            changed = _to_change(name, action, found, rotated=rotator is not None)
            if changed:
                query = update(_VERSIONS).where(_VERSIONS.c.name == name)
                query = query.where(_VERSIONS.c.version.in_(changed))
                if action == "secret.undelete":
                    query = query.where(_VERSIONS.c.destroyed_at.is_(None))
                connection.execute(query.values(**values))
        self._forget(name)
        for version in changed:
            self._record(actor, action, name, version)
        return changed

    # -- reading -------------------------------------------------------------

    def read(
        self,
        name: str,
        *,
        actor: Actor,
        version: int | None = None,
        stage: Stage | None = None,
    ) -> tuple[Secret, VersionInfo]:
        """The value of ``version`` (or of ``stage``, default current) and what it is.

        A pending version is served to operators only (the rotation engine tests it);
        to a client it is :class:`NotFoundError`, by stage or by number.
        Recorded on the audit trail before the value is returned; if it cannot
        be recorded, :class:`~interlock.audit.errors.AuditUnavailableError`.
        """
        check_name(name)
        self._authorise(actor, "read", name)
        with self._engine.connect() as connection:
            if version is None:
                found = self._staged(connection, name, stage or "current")
                if found is None and (
                    stage in {None, "current"} or not self._stored(connection, name)
                ):
                    raise self._no_secret(connection, name, actor)
                if found is None:
                    raise NotFoundError(f"no {stage} version of {name!r}")
                version = found
            info, sealed, legacy = self._sealed(connection, name, version)
        if info.stage == "pending" and not isinstance(actor, Operator):
            # Untested until its rotation promotes it: the target may not accept it yet.
            raise NotFoundError(
                f"version {version} of {name} is pending (a rotation's new value, not yet "
                "tested): not served to clients"
            )
        if info.destroyed_at is not None or sealed is None:
            raise NotFoundError(f"version {version} of {name} was destroyed")
        if info.deleted_at is not None:
            raise NotFoundError(f"version {version} of {name} is deleted; undelete it to read it")
        secret = Secret(self._keyring.open(sealed, _aad(name, version, legacy)))
        self._record(actor, "secret.read", name, version)
        return secret, info

    def info(self, name: str, *, actor: Actor) -> SecretInfo:
        """The metadata of ``name``."""
        check_name(name)
        self._authorise(actor, "list", name)
        with self._engine.connect() as connection:
            row = connection.execute(_info_query().where(_SECRETS.c.name == name)).first()
            if row is None:
                raise self._no_secret(connection, name, actor)
        return _info(row)

    def versions(self, name: str, *, actor: Actor) -> list[VersionInfo]:
        """Every version of ``name``, oldest first."""
        info = self.info(name, actor=actor)
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(_VERSIONS).where(_VERSIONS.c.name == info.name).order_by(_VERSIONS.c.version)
            ).all()
        return [_version(r) for r in rows]

    def secrets(self, prefix: str = "", *, actor: Actor) -> list[SecretInfo]:
        """Metadata of every secret under ``prefix`` (a client sees only what it may list)."""
        query = _info_query().order_by(_SECRETS.c.name)
        if prefix:
            check_name(prefix.rstrip("/"))
            base = prefix.rstrip("/")
            query = query.where(
                (_SECRETS.c.name == base) | _SECRETS.c.name.startswith(base + "/", autoescape=True)
            )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        visible = self._listable(actor)
        return [info for info in (_info(r) for r in rows) if visible(info.name)]

    def _listable(self, actor: Actor) -> Callable[[str], bool]:
        """Whether ``actor`` may see a name: an operator every one, a client those it may list."""
        if isinstance(actor, Operator):
            return lambda _: True
        grants = self.policy.grants(actor.name)
        return lambda name: any(
            "list" in g.capabilities and matches(g.pattern, name) for g in grants
        )

    def _no_secret(
        self, connection: Connection, name: str, actor: Actor, where: str = ""
    ) -> NotFoundError:
        """``no secret named 'x'; did you mean 'y'?``, suggesting only names ``actor`` may see.

        A client calling /v1/secrets is never told of a name its grants do not let
        it list: a suggestion must not be a way to enumerate the vault.
        """
        visible = self._listable(actor)
        names = connection.execute(select(_SECRETS.c.name)).scalars()
        return NotFoundError.unknown("secret named", name, filter(visible, names), where=where)

    @staticmethod
    def _stored(connection: Connection, name: str) -> bool:
        found = connection.execute(select(_SECRETS.c.name).where(_SECRETS.c.name == name))
        return found.first() is not None

    @staticmethod
    def _staged(connection: Connection, name: str, stage: Stage) -> int | None:
        if stage == "current":
            version = connection.execute(
                select(_SECRETS.c.current_version).where(_SECRETS.c.name == name)
            ).scalar()
        else:
            version = connection.execute(
                select(_VERSIONS.c.version).where(
                    _VERSIONS.c.name == name, _VERSIONS.c.stage == stage
                )
            ).scalar()
        return None if version is None else int(version)

    @staticmethod
    def _version_info(connection: Connection, name: str, version: int) -> VersionInfo:
        row = connection.execute(
            select(_VERSIONS).where(_VERSIONS.c.name == name, _VERSIONS.c.version == version)
        ).first()
        if row is None:
            raise NotFoundError(f"{name} has no version {version}")
        return _version(row)

    @staticmethod
    def _sealed(
        connection: Connection, name: str, version: int
    ) -> tuple[VersionInfo, bytes | None, bool]:
        row = connection.execute(
            select(_VERSIONS).where(_VERSIONS.c.name == name, _VERSIONS.c.version == version)
        ).first()
        if row is None:
            raise NotFoundError(f"{name} has no version {version}")
        return _version(row), row.value, bool(row.legacy_binding)

    # -- SecretResolver --------------------------------------------------------

    def cached(self, reference: str) -> Secret | None:
        """The value behind ``reference`` if cached and fresh; never asks the store."""
        with self._lock:
            entry = self._cache.get(reference.removeprefix(_SCHEME))
        if entry is None or time.monotonic() - entry[0] >= self._ttl:
            return None
        return entry[1]

    def resolve(self, reference: str) -> Secret:
        """The current value behind ``secret://name`` (cached up to ``cache_seconds``)."""
        name = name_of(reference)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[0] < self._ttl:
            return cached[1]
        try:
            secret, _ = self.read(name, actor=self._resolver)
        except NotFoundError:
            with self._engine.connect() as connection:
                names = connection.execute(select(_SECRETS.c.name)).scalars().all()
            hint = "" if name in names else did_you_mean(name, names)
            hint = hint or "; store it with `interlock secrets put`"
            raise NotFoundError(f"no current value for secret://{name}{hint}") from None
        with self._lock:
            self._cache[name] = (now, secret)
        return secret

    def _forget(self, name: str) -> None:
        with self._lock:
            self._cache.pop(name, None)

    # -- policy and evidence ---------------------------------------------------

    def _authorise(self, actor: Actor, capability: Capability, name: str) -> None:
        """An operator passes (and is recorded); a client needs a grant, or is refused."""
        if isinstance(actor, Operator) or self.policy.allows(actor.name, capability, name):
            return
        self._record(
            actor,
            "secret.denied",
            name,
            None,
            result="failure",
            reason=f"no grant of {capability} on this path",
        )
        raise AccessDeniedError(f"{actor.name} may not {capability} {name}")

    def _record(
        self,
        actor: Actor,
        action: str,
        name: str,
        version: int | None,
        *,
        result: Literal["success", "failure"] = "success",
        reason: str | None = None,
        details: Mapping[str, str] | None = None,
    ) -> None:
        facts: dict[str, str | int | bool] = {"secret": name}
        if version is not None:
            facts["version"] = version
        facts.update(details or {})
        entry = AuditEntry(
            actor=actor.label[:200],
            action=action,
            target=f"secret://{name}"[:200],
            outcome=Outcome(result=result),
            reason=reason,
            details=facts,
        )
        # A read is on record before its value is released; a change is made
        # already, so its entry must be durable too: the caller learns of a
        # failure. A refusal is best effort (the refusal itself stands).
        if result == "success":
            self._audit.record(entry)
        else:
            self._audit.record_later(entry)
