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
from collections.abc import Callable
from dataclasses import dataclass
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
from interlock.errors import NotFoundError
from interlock.oauth.tables import SigningKeyRow
from interlock.store.base import as_utc, table_of

__all__ = ["KeyTimings", "SigningKey", "SigningKeys"]

_TABLE: Final = table_of(SigningKeyRow)


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
    key: JoseKey

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r})"


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

    def ensure(self) -> None:
        """Create the first key, rotate on schedule, and delete retired keys."""
        now = self._now()
        rows = self._rows()
        if not rows:
            self._insert(activates_at=now)
            return
        newest = max(rows, key=lambda r: r.activates_at)
        if as_utc(newest.activates_at) <= now - self.timings.rotate_every:
            self.rotate()
        self._purge(now)

    def rotate(self) -> str:
        """Publish a successor now; it signs after ``publish_ahead``. Returns its kid."""
        now = self._now()
        activates = now + self.timings.publish_ahead
        retire_old = activates + self.timings.max_token_lifetime + self.timings.leeway
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE).where(_TABLE.c.retires_at.is_(None)).values(retires_at=retire_old)
            )
        return self._insert(activates_at=activates)

    def signer(self) -> SigningKey:
        """The key to sign with now: the newest one that has activated."""
        now = self._now()
        active = [r for r in self._rows() if as_utc(r.activates_at) <= now and not _retired(r, now)]
        if not active:
            raise NotFoundError("no active signing key; run `interlock oauth rotate-keys`")
        row = max(active, key=lambda r: r.activates_at)
        sealed = self._keyring.open(row.private_jwk, _aad(row.kid))
        return SigningKey(row.kid, row.alg, load_private_jwk(sealed))

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public key set: pending, active and retiring keys (RFC 7517 §5)."""
        now = self._now()
        keys = [json.loads(r.public_jwk) for r in self._rows() if not _retired(r, now)]
        return {"keys": keys}

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
