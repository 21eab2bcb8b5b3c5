"""Token-signing keys: sealed, published ahead of use, retired after their tokens expire.

The rules that keep verifiers working through a rotation (RFC 7517 key sets,
OpenID Connect's key rollover practice):

* a new key is **published** in the JWKS ``publish_ahead`` before it signs
  anything, so verifiers that cache the JWKS already know it;
* the previous key **keeps signing** until the new one activates, then stays
  **published** until every token it signed has expired (``max_token_lifetime``
  plus clock ``leeway``), then it is deleted;
* keys rotate on a schedule (``rotate_every``) through :meth:`SigningKeys.ensure`,
  or at once with ``interlock oauth rotate-keys``.

Private keys are sealed by the keyring, bound to their ``kid``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, delete, select, update

from interlock.crypto import Keyring
from interlock.crypto.jose import SigningKey as JoseKey
from interlock.crypto.jose import (
    generate_signing_key,
    load_private_jwk,
    private_jwk,
    public_jwk,
)
from interlock.errors import KeyringError, NotFoundError
from interlock.oauth.tables import SigningKeyRow
from interlock.store.base import as_utc, table_of

__all__ = ["KeyTimings", "SigningKey", "SigningKeyInfo", "SigningKeys"]

_TABLE: Final = table_of(SigningKeyRow)
# How long this process trusts its copy of the key rows. A rotation by another
# replica or the CLI publishes the new key ``publish_ahead`` (15 min) before it
# signs, so a few seconds of staleness never makes a replica sign with a key
# that verifiers do not know yet.
ROWS_TTL: Final = 5.0
_FOREVER: Final = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class KeyTimings:
    """How keys roll over."""

    publish_ahead: timedelta = timedelta(minutes=15)
    max_token_lifetime: timedelta = timedelta(hours=1)
    leeway: timedelta = timedelta(minutes=2)
    rotate_every: timedelta = timedelta(days=30)


@dataclass(frozen=True)
class SigningKey:
    """The key that signs now."""

    kid: str
    alg: str
    key: JoseKey = field(repr=False)  # the private key never reaches a repr or a log


@dataclass(frozen=True)
class SigningKeyInfo:
    """A published key as listed (never the private part).

    ``state`` is ``pending`` (published, not signing yet), ``active`` (signs
    now) or ``retiring`` (published until the tokens it signed expire).
    """

    kid: str
    alg: str
    created_at: datetime
    activates_at: datetime
    retires_at: datetime | None
    state: str


class SigningKeys:
    """The deployment's token-signing keys."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        alg: str = "ES256",
        timings: KeyTimings | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Bind to the store; nothing is created until :meth:`ensure` or :meth:`rotate`."""
        self._engine = engine
        self._keyring = keyring
        self.alg = alg
        self.timings = timings or KeyTimings()
        self._now = now
        # The rows are re-read at most every ROWS_TTL seconds, and each private key is
        # unsealed once: issuing a token then costs a signature, not a query and an unseal.
        self._rows_cache: list[Any] = []
        self._rows_read = float("-inf")
        self._unsealed: dict[str, SigningKey] = {}
        self._current: tuple[SigningKey, datetime] | None = None  # signer, valid until
        self._lock = threading.Lock()

    def ensure(self) -> str | None:
        """Create the first key, rotate on schedule, and delete retired keys.

        Returns the kid of a key this call created (``None`` when none was due).
        """
        now = self._now()
        rows = self._rows()
        if not rows:
            return self._insert(activates_at=now)
        created = None
        newest = max(rows, key=lambda r: r.activates_at)
        if as_utc(newest.activates_at) <= now - self.timings.rotate_every:
            created = self._rotate(only_after=newest.kid)
        self._purge(now)
        self._forget()
        return created

    def rotate(self) -> str:
        """Publish a successor now; it signs after ``publish_ahead``. Returns its kid."""
        kid = self._rotate(only_after=None)
        if kid is None:  # unconditional rotation always inserts; fail loudly if it did not
            raise KeyringError("the signing key rotation inserted no key")
        return kid

    def _rotate(self, only_after: str | None) -> str | None:
        """Rotate; with ``only_after``, only if that key is still the current one.

        Replicas running the schedule at the same moment race on one UPDATE: the
        one that retires ``only_after`` inserts the successor, the others see
        no row change and leave it.
        """
        now = self._now()
        activates = now + self.timings.publish_ahead
        retire_old = activates + self.timings.max_token_lifetime + self.timings.leeway
        current = _TABLE.c.retires_at.is_(None)
        with self._engine.begin() as connection:
            if only_after is not None:
                won = connection.execute(
                    update(_TABLE)
                    .where(current, _TABLE.c.kid == only_after)
                    .values(retires_at=retire_old)
                ).rowcount
                if not won:
                    return None
            connection.execute(update(_TABLE).where(current).values(retires_at=retire_old))
        return self._insert(activates_at=activates)

    def signer(self) -> SigningKey:
        """The key to sign with now: the newest one that has activated."""
        now = self._now()
        current = self._current
        if current is not None and now < current[1] and self._rows_fresh():
            return current[0]
        rows = self._cached_rows()
        active = [r for r in rows if as_utc(r.activates_at) <= now and not _retired(r, now)]
        if not active:
            raise NotFoundError("no active signing key; run `interlock oauth rotate-keys`")
        row = max(active, key=lambda r: r.activates_at)
        unsealed = self._unsealed.get(row.kid)
        if unsealed is None:
            sealed = self._keyring.open(row.private_jwk, _aad(row.kid))
            unsealed = SigningKey(row.kid, row.alg, load_private_jwk(sealed))
            with self._lock:
                self._unsealed[row.kid] = unsealed
        # The choice holds until a key activates or retires (or the rows are re-read).
        changes = [as_utc(r.activates_at) for r in rows if as_utc(r.activates_at) > now]
        changes += [as_utc(r.retires_at) for r in rows if r.retires_at is not None]
        self._current = (unsealed, min((t for t in changes if t > now), default=_FOREVER))
        return unsealed

    def in_memory(self) -> bool:
        """Whether :meth:`signer` can answer from memory, without reading the store."""
        current = self._current
        return current is not None and self._now() < current[1] and self._rows_fresh()

    def _rows_fresh(self) -> bool:
        return time.monotonic() - self._rows_read < ROWS_TTL

    def _cached_rows(self) -> list[Any]:
        if time.monotonic() - self._rows_read >= ROWS_TTL:
            rows = self._rows()
            with self._lock:
                self._rows_cache, self._rows_read = rows, time.monotonic()
                live = {row.kid for row in rows}
                self._unsealed = {k: v for k, v in self._unsealed.items() if k in live}
        return self._rows_cache

    def _forget(self) -> None:
        with self._lock:
            self._rows_read = float("-inf")
            self._current = None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public key set: pending, active and retiring keys (RFC 7517 §5)."""
        now = self._now()
        keys = [json.loads(r.public_jwk) for r in self._rows() if not _retired(r, now)]
        return {"keys": keys}

    def describe(self) -> list[SigningKeyInfo]:
        """Every published key, oldest activation first, with its state now."""
        now = self._now()
        rows = [r for r in self._rows() if not _retired(r, now)]
        started = [r for r in rows if as_utc(r.activates_at) <= now]  # as signer() chooses
        signer = max(started, key=lambda r: r.activates_at).kid if started else None
        return [
            SigningKeyInfo(
                kid=r.kid,
                alg=r.alg,
                created_at=as_utc(r.created_at),
                activates_at=as_utc(r.activates_at),
                retires_at=None if r.retires_at is None else as_utc(r.retires_at),
                state="active"
                if r.kid == signer
                else ("pending" if as_utc(r.activates_at) > now else "retiring"),
            )
            for r in rows
        ]

    def _rows(self) -> list[Any]:
        with self._engine.connect() as connection:
            return list(connection.execute(select(_TABLE).order_by(_TABLE.c.activates_at)))

    def _insert(self, activates_at: datetime) -> str:
        key = generate_signing_key(self.alg)
        kid = str(key.kid)
        with self._engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(
                    kid=kid,
                    alg=self.alg,
                    public_jwk=json.dumps(public_jwk(key, self.alg)),
                    private_jwk=self._keyring.seal(private_jwk(key), _aad(kid)),
                    created_at=self._now(),
                    activates_at=activates_at,
                    retires_at=None,
                )
            )
        self._forget()
        return kid

    def _purge(self, now: datetime) -> None:
        # Compared in Python: SQLite keeps timestamps as text without a zone.
        gone = [r.kid for r in self._rows() if _retired(r, now)]
        if gone:
            with self._engine.begin() as connection:
                connection.execute(delete(_TABLE).where(_TABLE.c.kid.in_(gone)))


def _retired(row: Any, now: datetime) -> bool:
    return row.retires_at is not None and as_utc(row.retires_at) <= now


def _aad(kid: str) -> bytes:
    return f"interlock:oauth:signing-key:{kid}".encode()
