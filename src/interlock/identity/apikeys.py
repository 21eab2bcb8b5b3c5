"""API keys: issue, list, revoke, rotate with overlap, and verify.

Only a keyed hash of each key's secret is stored (HMAC-SHA256 with the
deployment's pepper, see :mod:`interlock.crypto.hashing`). A key's scopes are
a subset of its client's role scopes when issued, and are intersected with the
client's *current* role scopes at every verification, so removing a role in
the manifest takes effect without touching keys.

Rotation issues a successor and cuts the predecessor's expiry to the end of an
overlap window (default 24 h): both work meanwhile, so a consumer can switch
without downtime.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Engine, Row, select, update

from interlock.config.manifest import Manifest
from interlock.credentials.keyformat import PREFIXES, ParsedKey, new_key, parse_key
from interlock.crypto.hashing import check_secret, hash_secret, new_pepper
from interlock.crypto.keyring import Keyring
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError, did_you_mean
from interlock.identity.grants import Grants, Principal
from interlock.identity.tables import ApiKeyRow
from interlock.store.base import as_utc, table_of
from interlock.store.sealed_values import sealed_setting

__all__ = ["DEFAULT_LIFETIME", "DEFAULT_OVERLAP", "ApiKeyInfo", "ApiKeys", "IssuedKey", "key_id_of"]

DEFAULT_LIFETIME: Final = timedelta(days=90)
DEFAULT_OVERLAP: Final = timedelta(hours=24)
MAX_LIFETIME: Final = timedelta(days=397)
_LAST_USED_EVERY: Final = timedelta(minutes=1)  # write last_used at most this often per key
_REFUSED: Final = "the API key is missing, invalid, expired or revoked"
_MAX_CHECKED: Final = 4096  # keys remembered as checked (then forgotten at once, and relearnt)
_TABLE = table_of(ApiKeyRow)


@dataclass(frozen=True)
class ApiKeyInfo:
    """Everything about a key except its secret."""

    id: str
    client: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None
    successor_id: str | None

    def status(self, now: datetime) -> str:
        """``active``, ``overlap`` (rotated, still valid), ``expired`` or ``revoked``."""
        if self.revoked_at is not None:
            return "revoked"
        if now >= self.expires_at:
            return "expired"
        return "overlap" if self.successor_id else "active"


@dataclass(frozen=True)
class IssuedKey:
    """A newly issued key: ``token`` is shown once and never stored."""

    info: ApiKeyInfo
    token: str

    def __repr__(self) -> str:
        return f"IssuedKey(info={self.info!r}, token='***')"


class ApiKeys:
    """API keys of one deployment, checked against the current manifest."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        manifest: Manifest,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_seconds: float = 1.0,
    ) -> None:
        """Bind to the store; the pepper is created on first use and shared by replicas.

        Looked-up keys are cached for ``cache_seconds`` so the hot path does not
        query the store per request: a revocation or rotation made by *another*
        process takes effect within that time; one made through this object at once.
        """
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, bytes, ApiKeyInfo]] = {}
        # sha256(token) -> (the cache entry it was checked against, the grants, its
        # principal), as the access-token verifier keeps tokens: a key checked once needs
        # neither its parsing nor its HMAC again while that entry and the grants stand.
        # Only keys that passed are kept, so a caller cannot fill it with guesses.
        self._checked: dict[bytes, tuple[tuple[float, bytes, ApiKeyInfo], Grants, Principal]] = {}
        self._pepper = sealed_setting(engine, keyring, "identity.api_key_pepper", new_pepper)
        self._grants = Grants(manifest)
        self._now = now
        self._last_used: dict[str, datetime] = {}
        self._lock = threading.Lock()

    @property
    def manifest(self) -> Manifest:
        """The manifest whose clients and roles keys are checked against."""
        return self._grants.manifest

    @manifest.setter
    def manifest(self, manifest: Manifest) -> None:
        self._grants = Grants(manifest)

    # -- administration ------------------------------------------------------

    def create(
        self,
        client: str,
        scopes: Iterable[str] | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
        *,
        token: str | None = None,
    ) -> IssuedKey:
        """Issue a key for ``client``; ``scopes`` default to all of the client's scopes.

        ``token`` (made by :func:`~interlock.credentials.keyformat.new_key`) issues
        that key instead of a fresh one: a rotation stores the new key in the
        vault before the key exists. Issuing the same token again for the
        same client returns the key issued the first time.
        """
        granted = self._client_grants(client)
        wanted = frozenset(scopes) if scopes is not None else granted
        if not wanted:
            raise InvalidRequestError(f"client {client!r} has no scopes to put on a key")
        excess = sorted(wanted - granted)
        if excess:
            hint = did_you_mean(excess[0], granted).removeprefix("; ")
            raise InvalidRequestError(
                f"client {client!r} is not granted {', '.join(excess)}; "
                + (hint or "a key's scopes must be a subset of its client's role scopes")
            )
        if not timedelta(0) < lifetime <= MAX_LIFETIME:
            raise InvalidRequestError("a key's lifetime must be positive and at most 397 days")
        return self._insert(client, wanted, self._now() + lifetime, token)

    def list_keys(self, client: str | None = None) -> list[ApiKeyInfo]:
        """Every key (of ``client``), newest first.

        A ``client`` neither in the manifest nor holding a key is a mistyped name:
        :class:`NotFoundError`, suggesting the close ones.
        """
        query = select(_TABLE).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        with self._engine.connect() as connection:
            found = [_info(row) for row in connection.execute(query)]
        if client is not None and not found and client not in self.manifest.clients:
            raise NotFoundError.unknown("client", client, self.manifest.clients)
        return found

    def get(self, key_id: str) -> ApiKeyInfo:
        """One key's details; :class:`NotFoundError` if there is no such key."""
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == key_id)).first()
        if row is None:
            with self._engine.connect() as connection:
                ids = connection.execute(select(_TABLE.c.id)).scalars().all()
            raise NotFoundError.unknown("API key", key_id, ids, where="")
        return _info(row)

    def revoke(self, key_id: str) -> ApiKeyInfo:
        """Revoke a key at once (idempotent)."""
        self.get(key_id)
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.id == key_id, _TABLE.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
        self._forget(key_id)
        return self.get(key_id)

    def revoke_client(self, client: str) -> int:
        """Revoke every key of ``client`` still valid (in the manifest or not); how many.

        Other processes drop their cached copies within ``cache_seconds``.
        """
        now = self._now()
        with self._engine.begin() as connection:
            ids = [
                row.id
                for row in connection.execute(
                    select(_TABLE.c.id).where(
                        _TABLE.c.client == client,
                        _TABLE.c.revoked_at.is_(None),
                        # Stored times are UTC (SQLite keeps them naive), so compare in UTC.
                        _TABLE.c.expires_at > now.astimezone(UTC),
                    )
                )
            ]
            if ids:
                connection.execute(
                    update(_TABLE).where(_TABLE.c.id.in_(ids)).values(revoked_at=now)
                )
        for key_id in ids:
            self._forget(key_id)
        return len(ids)

    def rotate(self, key_id: str, overlap: timedelta = DEFAULT_OVERLAP) -> IssuedKey:
        """Issue a successor with the same client, scopes and lifetime; the old key
        stays valid for ``overlap`` (never longer than it would have anyway)."""
        old = self.get(key_id)
        now = self._now()
        if old.status(now) in {"revoked", "expired"}:
            raise InvalidRequestError(f"key {key_id} is {old.status(now)} and cannot be rotated")
        if old.successor_id is not None:
            raise InvalidRequestError(f"key {key_id} was already rotated to {old.successor_id}")
        if overlap < timedelta(0):
            raise InvalidRequestError("the overlap cannot be negative")
        lifetime = old.expires_at - old.created_at
        token, parsed = new_key()
        with self._engine.begin() as connection:  # both writes, or neither
            connection.execute(
                _TABLE.insert().values(
                    self._row(old.client, frozenset(old.scopes), now + lifetime, parsed)
                )
            )
            linked = connection.execute(
                update(_TABLE)
                .where(
                    _TABLE.c.id == key_id,
                    # Checked above, and again here: another process may have rotated
                    # or revoked the key since (two successors, one tied to nothing).
                    _TABLE.c.successor_id.is_(None),
                    _TABLE.c.revoked_at.is_(None),
                )
                .values(successor_id=parsed.key_id, expires_at=min(old.expires_at, now + overlap))
            ).rowcount
            if linked != 1:
                raise InvalidRequestError(
                    f"key {key_id} was already rotated or revoked by another process"
                )
        self._forget(key_id)  # its cached details still carry the expiry before the overlap
        return IssuedKey(self.get(parsed.key_id), token)

    # -- the hot path --------------------------------------------------------

    def verify(self, token: str) -> Principal:
        """The caller behind ``token``, or :class:`AuthenticationError`.

        The caller learns only that the key did not work; ``reason`` (for the
        log) says why. May query the store: call it off the event loop.
        """
        found = self.verify_cached(token)
        if found is not None:
            return found
        parsed = _parse(token)
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == parsed.key_id)).first()
        if row is None:
            raise AuthenticationError(_REFUSED, f"unknown key id {parsed.key_id}")
        info = _info(row)
        with self._lock:
            self._cache[info.id] = (time.monotonic(), row.secret_hash, info)
        principal = self._check(parsed.secret, row.secret_hash, info)
        self._touch(info.id)
        return principal

    def verify_cached(self, token: str) -> Principal | None:
        """Like :meth:`verify` from the cache alone: ``None`` when the store must be asked.

        Never touches the store, so the gateway calls it on the event loop. When
        the key's last-used time is due for a write it answers ``None`` too, so
        that write happens on the :meth:`verify` path, off the loop.
        """
        digest = _digest(token)
        checked = self._checked.get(digest) if digest is not None else None
        if checked is not None:
            seen, grants, principal = checked
            key_id = seen[2].id
        else:
            parsed = _parse(token)
            key_id = parsed.key_id
        now = self._now()
        with self._lock:
            entry = self._cache.get(key_id)
            touch_due = self._touch_due(key_id, now)
        if entry is None or touch_due or time.monotonic() - entry[0] >= self._cache_seconds:
            return None
        if checked is not None and entry is seen and grants is self._grants:
            # The same secret hash, key details and grants it passed with: only the
            # time can have changed (expiry), and _check's status test says so.
            _status_allows(entry[2], now)
            return principal
        if checked is not None:  # checked against an older entry or grants: check afresh
            parsed = _parse(token)
        principal = self._check(parsed.secret, entry[1], entry[2])
        if digest is not None:
            if len(self._checked) >= _MAX_CHECKED:
                self._checked.clear()
            self._checked[digest] = (entry, self._grants, principal)
        return principal

    def _check(self, secret: str, secret_hash: bytes, info: ApiKeyInfo) -> Principal:
        if not check_secret(self._pepper, secret, secret_hash):
            raise AuthenticationError(_REFUSED, f"wrong secret for key {info.id}")
        _status_allows(info, self._now())
        spec = self.manifest.clients.get(info.client)
        if spec is None or "api_key" not in spec.auth:
            raise AuthenticationError(
                _REFUSED, f"client {info.client!r} is not allowed to use API keys"
            )
        scopes = frozenset(info.scopes) & self._grants.scopes(info.client)
        return Principal(info.client, scopes, f"api-key {info.id}")

    # -- internals -----------------------------------------------------------

    def _client_grants(self, client: str) -> frozenset[str]:
        spec = self.manifest.clients.get(client)
        if spec is None:
            raise NotFoundError.unknown("client", client, self.manifest.clients)
        if "api_key" not in spec.auth:
            raise InvalidRequestError(
                f"client {client!r} may not use API keys (its auth is {', '.join(spec.auth)})"
            )
        return self._grants.scopes(client)

    def _insert(
        self,
        client: str,
        scopes: frozenset[str],
        expires_at: datetime,
        token: str | None = None,
    ) -> IssuedKey:
        if token is None:
            token, parsed = new_key()
        else:
            parsed = _given(token)
            with self._engine.connect() as connection:
                row = connection.execute(select(_TABLE).where(_TABLE.c.id == parsed.key_id)).first()
            if row is not None:  # issued already (a repeated rotation step)
                if row.client != client or not check_secret(
                    self._pepper, parsed.secret, row.secret_hash
                ):
                    raise InvalidRequestError("that key id is taken; make a new key")
                info = _info(row)
                status = info.status(self._now())
                if status in {"revoked", "expired"}:
                    raise InvalidRequestError(f"key {info.id} is {status}; make a new key")
                return IssuedKey(info, token)
        with self._engine.begin() as connection:
            connection.execute(
                _TABLE.insert().values(self._row(client, scopes, expires_at, parsed))
            )
        return IssuedKey(self.get(parsed.key_id), token)

    def _row(
        self, client: str, scopes: frozenset[str], expires_at: datetime, parsed: ParsedKey
    ) -> dict[str, Any]:
        return {
            "id": parsed.key_id,
            "client": client,
            "scopes": " ".join(sorted(scopes)),
            "secret_hash": hash_secret(self._pepper, parsed.secret),
            "created_at": self._now(),
            "expires_at": expires_at,
        }

    def _forget(self, key_id: str) -> None:
        with self._lock:
            self._cache.pop(key_id, None)

    def _touch_due(self, key_id: str, now: datetime) -> bool:
        last = self._last_used.get(key_id)
        return last is None or now - last >= _LAST_USED_EVERY

    def _touch(self, key_id: str) -> None:
        now = self._now()
        with self._lock:
            if not self._touch_due(key_id, now):
                return
            self._last_used[key_id] = now
        with self._engine.begin() as connection:
            connection.execute(update(_TABLE).where(_TABLE.c.id == key_id).values(last_used_at=now))


def key_id_of(name: str) -> str:
    """The key id ``name`` names: a key id as given, or the id of a whole API key.

    Lets an operator holding only the key revoke it; the key itself is never
    echoed (a malformed one is refused without quoting it).
    """
    parsed = parse_key(name)
    if parsed is not None:
        return parsed.key_id
    if name.startswith(PREFIXES):
        raise InvalidRequestError("not a key id, nor an API key (prefix, length or checksum)")
    return name


def _digest(token: str) -> bytes | None:
    """SHA-256 of ``token``, the key of the checked keys; None for text no key can be."""
    try:
        return hashlib.sha256(token.encode()).digest()
    except UnicodeEncodeError:  # a lone surrogate: parsing refuses it
        return None


def _status_allows(info: ApiKeyInfo, now: datetime) -> None:
    """Refuse a revoked or expired key (an active one, or one in its rotation overlap, passes)."""
    status = info.status(now)
    if status in {"revoked", "expired"}:
        raise AuthenticationError(_REFUSED, f"key {info.id} is {status}")


def _parse(token: str) -> ParsedKey:
    parsed = parse_key(token)
    if parsed is None:
        raise AuthenticationError(_REFUSED, "malformed key (prefix, length or checksum)")
    return parsed


def _given(token: str) -> ParsedKey:
    parsed = parse_key(token)
    if parsed is None:
        raise InvalidRequestError("not an Interlock API key (prefix, length or checksum)")
    return parsed


def _info(row: Row[Any]) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        client=row.client,
        scopes=tuple(row.scopes.split()),
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        last_used_at=as_utc(row.last_used_at) if row.last_used_at else None,
        successor_id=row.successor_id,
    )
