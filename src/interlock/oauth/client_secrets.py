"""OAuth client secrets: 256-bit, shown once, keyed hashes, two active per client.

The same format and hashing as API keys (``ilk_<id>_<secret><checksum>``,
HMAC-SHA256 with the deployment's pepper). A slow password hash (bcrypt,
PBKDF2) buys nothing for a random 256-bit secret and is what caps the token
rate of servers that use one for client secrets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import Engine, select, update

from interlock.config.manifest import Manifest
from interlock.crypto.hashing import check_secret, hash_secret, new_pepper
from interlock.crypto.keyring import Keyring
from interlock.errors import AuthenticationError, InvalidRequestError, NotFoundError
from interlock.identity.keyformat import new_key, parse_key
from interlock.oauth.tables import ClientSecretRow
from interlock.store.base import as_utc, table_of
from interlock.store.sealed_values import sealed_setting

__all__ = ["MAX_ACTIVE", "ClientSecrets"]

MAX_ACTIVE: Final = 2  # the old and the new one, for rotation without downtime
DEFAULT_LIFETIME: Final = timedelta(days=180)
_TABLE: Final = table_of(ClientSecretRow)
_REFUSED: Final = "client authentication failed"


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

    def create(self, client: str, lifetime: timedelta = DEFAULT_LIFETIME) -> tuple[str, str]:
        """A new secret for ``client``: (secret id, secret shown once)."""
        spec = self.manifest.clients.get(client)
        if spec is None:
            raise NotFoundError(f"no client {client!r} in the manifest")
        if "oauth2" not in spec.auth:
            raise InvalidRequestError(f"client {client!r} may not use OAuth 2.0")
        now = self._now()
        with self._engine.begin() as connection:
            rows = connection.execute(select(_TABLE).where(_TABLE.c.client == client)).all()
            active = [r for r in rows if _active(r, now)]
            if len(active) >= MAX_ACTIVE:
                raise InvalidRequestError(
                    f"client {client!r} already has {MAX_ACTIVE} active secrets; revoke one first"
                )
            token, parsed = new_key()
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

    def revoke(self, secret_id: str) -> None:
        """Revoke one secret at once."""
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_TABLE).where(_TABLE.c.id == secret_id).values(revoked_at=self._now())
            )
        if result.rowcount == 0:
            raise NotFoundError(f"no client secret {secret_id!r}")

    def authenticate(self, client_id: str, secret: str) -> str:
        """The client id if ``secret`` is one of its active secrets (constant-time check)."""
        parsed = parse_key(secret)
        if parsed is None:
            raise AuthenticationError(_REFUSED, "malformed client secret")
        with self._engine.connect() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == parsed.key_id)).first()
        if row is None or row.client != client_id:
            raise AuthenticationError(_REFUSED, "unknown secret for this client")
        if not check_secret(self._pepper, parsed.secret, row.secret_hash):
            raise AuthenticationError(_REFUSED, "wrong client secret")
        if not _active(row, self._now()):
            raise AuthenticationError(_REFUSED, "client secret expired or revoked")
        spec = self.manifest.clients.get(client_id)
        if spec is None or "oauth2" not in spec.auth:
            raise AuthenticationError(_REFUSED, "client may not use OAuth 2.0")
        return client_id


def _active(row: object, now: datetime) -> bool:
    revoked = getattr(row, "revoked_at", None)
    expires = getattr(row, "expires_at", None)
    if revoked is not None or expires is None:
        return False
    return bool(now < as_utc(expires))
