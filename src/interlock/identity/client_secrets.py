"""OAuth client secrets: 256-bit, shown once, keyed hashes, two active per client.

The same format and hashing as API keys, with a prefix of their own
(``ilcs_<id>_<secret><checksum>``, HMAC-SHA256 with the deployment's pepper),
so scanners and log redaction can tell a client secret from an API key.
Secrets issued before that prefix (``ilk_...``) are still accepted. A slow password hash (bcrypt,
PBKDF2) buys nothing for a random 256-bit secret and is what caps the token
rate of servers that use one for client secrets.

Rotation issues a successor and cuts the predecessor's expiry to the end of an
overlap window (default 24 h), as for API keys: both work meanwhile, so the
client can switch without downtime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlalchemy import Connection, Engine, select, update

from interlock.config.manifest import Manifest
from interlock.credentials.keyformat import (
    CLIENT_SECRET_PREFIX,
    PREFIXES,
    ParsedKey,
    new_key,
    parse_key,
)
from interlock.crypto.hashing import check_secret, hash_secret, new_pepper
from interlock.crypto.keyring import Keyring
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError
from interlock.identity.clients import is_oauth_client, require_oauth_client
from interlock.identity.tables import ClientSecretRow
from interlock.store.base import as_utc, table_of
from interlock.store.sealed_values import sealed_setting

__all__ = [
    "DEFAULT_LIFETIME",
    "DEFAULT_OVERLAP",
    "MAX_ACTIVE",
    "ClientSecretInfo",
    "ClientSecrets",
    "new_client_secret",
    "parse_client_secret",
    "secret_id_of",
]

MAX_ACTIVE: Final = 2  # the old and the new one, for rotation without downtime
DEFAULT_LIFETIME: Final = timedelta(days=180)
DEFAULT_OVERLAP: Final = timedelta(hours=24)
_TABLE: Final = table_of(ClientSecretRow)
_REFUSED: Final = "client authentication failed"
RECENT_SECONDS: Final = 1.0  # how long a secret's row is reused without asking the store
_RECENT_MAX: Final = 10_000


def new_client_secret() -> tuple[str, ParsedKey]:
    """A fresh client secret (``ilcs_...``) and its parts; valid once added to a client."""
    return new_key(CLIENT_SECRET_PREFIX)


def parse_client_secret(token: str) -> ParsedKey | None:
    """The parts of a well-formed client secret: ``ilcs_...``, or ``ilk_...`` issued before it."""
    return parse_key(token, PREFIXES)


def secret_id_of(name: str) -> str:
    """The secret id ``name`` names: an id as given, or the id of a whole client secret."""
    parsed = parse_client_secret(name)
    if parsed is not None:
        return parsed.key_id
    if name.startswith(PREFIXES):
        raise InvalidRequestError(
            "not a secret id, nor a client secret (prefix, length or checksum)"
        )
    return name


@dataclass(frozen=True)
class ClientSecretInfo:
    """A secret as listed: never its hash (``active`` as of the listing)."""

    id: str
    client: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    active: bool


class ClientSecrets:
    """Secrets of the manifest's OAuth clients (auth includes ``oauth2``)."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        manifest: Manifest,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Bind to the store; shares the pepper with API keys."""
        self._engine = engine
        self._pepper = sealed_setting(engine, keyring, "identity.api_key_pepper", new_pepper)
        self.manifest = manifest
        self._now = now
        # secret id -> (row, monotonic time read): lets a token request skip the store.
        self._recent: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()

    def create(
        self, client: str, lifetime: timedelta = DEFAULT_LIFETIME, *, token: str | None = None
    ) -> tuple[str, str]:
        """A new secret for ``client``: (secret id, secret shown once).

        ``token`` (made by :func:`new_client_secret`) adds
        that secret instead of a fresh one: a rotation stores the new secret in
        the vault before the client holds it. Adding the same token again
        returns the secret added the first time.
        """
        require_oauth_client(self.manifest, client)
        now = self._now()
        parsed = None if token is None else parse_client_secret(token)
        if token is not None and parsed is None:
            raise InvalidRequestError("not an Interlock client secret (prefix, length or checksum)")
        with self._engine.begin() as connection:
            rows = connection.execute(select(_TABLE).where(_TABLE.c.client == client)).all()
            if token is not None and parsed is not None:
                mine = [r for r in rows if r.id == parsed.key_id]
                if mine:  # added already (a repeated rotation step)
                    self._check(mine[0], client, parsed.secret)
                    return parsed.key_id, token
            active = [r for r in rows if _active(r, now)]
            if len(active) >= MAX_ACTIVE:
                raise InvalidRequestError(
                    f"client {client!r} already has {MAX_ACTIVE} active secrets; revoke one first"
                )
            return self._insert(connection, client, now, lifetime, token)

    def list_secrets(self, client: str | None = None) -> list[ClientSecretInfo]:
        """Every secret (of ``client``), newest first, revoked and expired ones too."""
        query = select(
            _TABLE.c.id,
            _TABLE.c.client,
            _TABLE.c.created_at,
            _TABLE.c.expires_at,
            _TABLE.c.revoked_at,
        ).order_by(_TABLE.c.created_at.desc(), _TABLE.c.id)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        now = self._now()
        with self._engine.connect() as connection:
            return [_info(row, now) for row in connection.execute(query)]

    def rotate(
        self,
        client: str,
        overlap: timedelta = DEFAULT_OVERLAP,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> tuple[str, str]:
        """A new secret for ``client``: (secret id, secret shown once).

        The previous newest active secret stays valid until ``now + overlap``
        (never longer than it would have anyway). With :data:`MAX_ACTIVE`
        secrets active already (a rotation still in its overlap, or two
        created), a rotation would end a secret that is still valid, which its
        holder may still use: it is refused, as a second ``keys rotate`` is, and
        names the secret to revoke first. All in one transaction.
        """
        require_oauth_client(self.manifest, client)
        if overlap < timedelta(0):
            raise InvalidRequestError("the overlap cannot be negative")
        if lifetime <= timedelta(0):
            raise InvalidRequestError("a secret's lifetime must be positive")
        now = self._now()
        with self._engine.begin() as connection:
            # FOR UPDATE (PostgreSQL) serialises concurrent rotations of one client.
            rows = connection.execute(
                select(_TABLE).where(_TABLE.c.client == client).with_for_update()
            ).all()
            active = sorted(
                (r for r in rows if _active(r, now)),
                key=lambda r: (as_utc(r.created_at), as_utc(r.expires_at)),
                reverse=True,
            )
            if len(active) >= MAX_ACTIVE:
                older = active[-1]
                raise InvalidRequestError(
                    f"client {client!r} already has {len(active)} active secrets: rotating "
                    f"would end secret {older.id}, still valid until "
                    f"{as_utc(older.expires_at):%Y-%m-%d %H:%M} UTC and perhaps still in use; "
                    f"once its holder has switched, revoke it (interlock clients revoke-secret "
                    f"{older.id}) and rotate again"
                )
            if active:
                previous = active[0]
                until = min(as_utc(previous.expires_at), now + overlap)
                connection.execute(
                    update(_TABLE).where(_TABLE.c.id == previous.id).values(expires_at=until)
                )
            return self._insert(connection, client, now, lifetime)

    def revoke_client(self, client: str) -> int:
        """Revoke every active secret of ``client`` (in the manifest or not); returns how many."""
        now = self._now()
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_TABLE)
                .where(
                    _TABLE.c.client == client,
                    _TABLE.c.revoked_at.is_(None),
                    # Stored times are UTC (SQLite keeps them naive), so compare in UTC.
                    _TABLE.c.expires_at > now.astimezone(UTC),
                )
                .values(revoked_at=now)
            )
        return int(result.rowcount)

    def revoke(self, secret_id: str) -> None:
        """Revoke one secret at once (revoking it again keeps the first time)."""
        with self._engine.begin() as connection:
            found = connection.execute(
                select(_TABLE.c.revoked_at).where(_TABLE.c.id == secret_id)
            ).first()
            if found is None:
                ids = connection.execute(select(_TABLE.c.id)).scalars().all()
                raise NotFoundError.unknown("client secret", secret_id, ids, where="")
            if found.revoked_at is None:
                connection.execute(
                    update(_TABLE).where(_TABLE.c.id == secret_id).values(revoked_at=self._now())
                )
        self._recent.pop(secret_id, None)

    def authenticate(self, client_id: str, secret: str) -> str:
        """The client id if ``secret`` is one of its active secrets (constant-time check)."""
        parsed = parse_client_secret(secret)
        if parsed is None:
            raise AuthenticationError(_REFUSED, "malformed client secret")
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == parsed.key_id)).first()
        if row is not None and _active(row, self._now()):
            with self._lock:
                if len(self._recent) >= _RECENT_MAX:
                    self._recent.clear()
                self._recent[parsed.key_id] = (row, time.monotonic())
        return self._check(row, client_id, parsed.secret)

    def authenticate_cached(self, client_id: str, secret: str) -> str | None:
        """As :meth:`authenticate` from a row read in the last second, or ``None`` (no I/O).

        A revocation made elsewhere therefore takes effect within one second.
        """
        parsed = parse_client_secret(secret)
        entry = self._recent.get(parsed.key_id) if parsed is not None else None
        if parsed is None or entry is None or time.monotonic() - entry[1] >= RECENT_SECONDS:
            return None
        return self._check(entry[0], client_id, parsed.secret)

    def _check(self, row: Any, client_id: str, secret: str) -> str:
        if row is None or row.client != client_id:
            raise AuthenticationError(_REFUSED, "unknown secret for this client")
        if not check_secret(self._pepper, secret, row.secret_hash):
            raise AuthenticationError(_REFUSED, "wrong client secret")
        if not _active(row, self._now()):
            raise AuthenticationError(_REFUSED, "client secret expired or revoked")
        if not is_oauth_client(self.manifest, client_id):
            raise AuthenticationError(_REFUSED, "client may not use OAuth 2.0")
        return client_id

    def _insert(
        self,
        connection: Connection,
        client: str,
        now: datetime,
        lifetime: timedelta,
        token: str | None = None,
    ) -> tuple[str, str]:
        given = None if token is None else parse_client_secret(token)
        if token is None or given is None:
            token, parsed = new_client_secret()
        else:
            parsed = given
        connection.execute(
            _TABLE.insert().values(
                id=parsed.key_id,
                client=client,
                secret_hash=hash_secret(self._pepper, parsed.secret),
                created_at=now,
                expires_at=now + lifetime,
                revoked_at=None,
            )
        )
        return parsed.key_id, token


def _info(row: Any, now: datetime) -> ClientSecretInfo:
    # Any: the listing selects every column but the hash, a Row of its own shape.
    return ClientSecretInfo(
        id=row.id,
        client=row.client,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at),
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        active=_active(row, now),
    )


def _active(row: object, now: datetime) -> bool:
    revoked = getattr(row, "revoked_at", None)
    expires = getattr(row, "expires_at", None)
    if revoked is not None or expires is None:
        return False
    return bool(now < as_utc(expires))
