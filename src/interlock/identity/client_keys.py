"""Clients' keys, for every use, in one registry.

A client proves who it is with a key an operator registered for it, for one of
two uses:

* ``assertion`` — ``private_key_jwt`` at the token endpoint (RFC 7523 §2.2):
  EC P-256, Ed25519 or RSA (:mod:`interlock.identity.public_keys`), for
  clients whose ``auth`` lists ``oauth2``;
* ``signature`` — signed requests (RFC 9421): an Ed25519 or P-256 public key
  (``ed25519``, ``ecdsa-p256-sha256``), or an ``hmac-sha256`` secret generated
  here, shown once and stored sealed by the keyring (verifying needs the
  secret itself), for any client of the manifest.

A public key's id is its RFC 7638 thumbprint, so a key belongs to one client
and a revoked key can never come back; an HMAC key's id is random. At most
:data:`MAX_ACTIVE` keys per client and use are active (room to rotate). A
signature key looked up by id is cached for one second, so a revocation
reaches every replica within a second.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, Row, select, update
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.crypto.jose import PublicKey, import_public_jwk
from interlock.errors import InvalidRequestError, InvalidTokenError, NotFoundError
from interlock.identity.clients import is_oauth_client, require_oauth_client
from interlock.identity.public_keys import public_key_document
from interlock.identity.tables import ClientKeyRow
from interlock.store.base import active_clause, as_utc, is_active, table_of

__all__ = [
    "HMAC_SECRET_BYTES",
    "MAX_ACTIVE",
    "SIGNATURE_ALGORITHMS",
    "ClientKeyInfo",
    "ClientKeys",
    "IssuedSharedSecret",
    "KeyUse",
    "ResolvedKey",
    "SignatureAlgorithm",
]

KeyUse = Literal["assertion", "signature"]
SignatureAlgorithm = Literal["ed25519", "ecdsa-p256-sha256", "hmac-sha256"]
SIGNATURE_ALGORITHMS: Final[tuple[SignatureAlgorithm, ...]] = (
    "ed25519",
    "ecdsa-p256-sha256",
    "hmac-sha256",
)
MAX_ACTIVE: Final = 5  # per client and use: room for rotation and a spare
HMAC_SECRET_BYTES: Final = 32  # RFC 9421 §3.3.3 leaves the size open; 256 bits, as SHA-256
_CACHE_SECONDS: Final = 1.0
_CACHE_MAX: Final = 4096
_MAX_KID: Final = 64  # the column's width: a thumbprint is 43 characters
# JWK algorithm -> RFC 9421 §3.3 algorithm, for the keys signed requests take.
_SIGNATURE_BY_JWK_ALG: Final[dict[str, SignatureAlgorithm]] = {
    "Ed25519": "ed25519",
    "ES256": "ecdsa-p256-sha256",
}
_TABLE: Final = table_of(ClientKeyRow)
_LISTED: Final = (
    _TABLE.c.kid,
    _TABLE.c.use,
    _TABLE.c.client,
    _TABLE.c.alg,
    _TABLE.c.created_at,
    _TABLE.c.expires_at,
    _TABLE.c.revoked_at,
)


@dataclass(frozen=True)
class ClientKeyInfo:
    """A registered key as listed (``active`` as of the listing); never a secret."""

    kid: str
    use: KeyUse
    client: str
    alg: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


@dataclass(frozen=True)
class IssuedSharedSecret:
    """A new HMAC key for signed requests: the secret is shown once and kept nowhere in clear."""

    keyid: str
    client: str
    secret: str = field(repr=False)  # base64 (standard alphabet, padded) of 32 random bytes


@dataclass(frozen=True)
class ResolvedKey:
    """What verifying a request signature needs: the key's owner, algorithm, and the key.

    ``key`` is a public key object (asymmetric) or the secret bytes (HMAC).
    """

    keyid: str
    client: str
    alg: SignatureAlgorithm
    key: Any = field(repr=False)


class ClientKeys:
    """The registered keys of the manifest's clients, for assertions and signed requests."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        manifest: Manifest,
        now: Clock = utc_now,
        *,
        cache_seconds: float = _CACHE_SECONDS,
    ) -> None:
        """Bind to the store; ``manifest`` decides which clients may hold keys, for what."""
        self._engine = engine
        self._keyring = keyring
        self.manifest = manifest
        self._now = now
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ResolvedKey | None]] = {}
        # kid -> parsed key. A kid is the thumbprint of the key, so an entry never goes stale.
        self._parsed: dict[str, PublicKey] = {}
        self._lock = threading.Lock()

    # -- registering ---------------------------------------------------------

    def register(
        self,
        client: str,
        jwk: Mapping[str, Any],
        *,
        use: KeyUse,
        expires_at: datetime | None = None,
    ) -> str:
        """Register the public key ``jwk`` of ``client`` for ``use``; returns its kid.

        Refuses (:class:`InvalidRequestError`) private or symmetric members, key
        types, curves, sizes and algorithms outside the allow-list of the use, a
        key registered before for this use (even if revoked), and a sixth active
        key; an unknown client is :class:`NotFoundError`.
        """
        if use == "assertion":
            require_oauth_client(self.manifest, client)
        document = public_key_document(jwk)
        alg: str = document["alg"]
        if use == "signature":
            signature_alg = _SIGNATURE_BY_JWK_ALG.get(alg)
            if signature_alg is None:
                raise InvalidRequestError(
                    "signed requests take Ed25519 or EC P-256 keys (RFC 9421 ed25519, "
                    "ecdsa-p256-sha256), or a shared HMAC secret"
                )
            alg = signature_alg
        kid = str(document["kid"])
        self._insert(
            client, kid, use, alg, expires_at, public_jwk=json.dumps(document, sort_keys=True)
        )
        return kid

    def create_shared_secret(
        self, client: str, *, expires_at: datetime | None = None
    ) -> IssuedSharedSecret:
        """Generate an HMAC-SHA256 key for ``client``'s signed requests; the secret, once."""
        secret = secrets.token_bytes(HMAC_SECRET_BYTES)
        keyid = "hs-" + secrets.token_hex(12)
        sealed = self._keyring.seal(secret, _aad(keyid))
        self._insert(client, keyid, "signature", "hmac-sha256", expires_at, sealed_secret=sealed)
        return IssuedSharedSecret(keyid, client, base64.b64encode(secret).decode("ascii"))

    # -- listing and revoking ------------------------------------------------

    def list_keys(
        self, client: str | None = None, use: KeyUse | None = None
    ) -> list[ClientKeyInfo]:
        """Every key (of ``client``, for ``use``), newest first, revoked and expired ones too.

        A ``client`` neither in the manifest nor holding a key is a mistyped name:
        :class:`NotFoundError`, suggesting the close ones.
        """
        query = select(*_LISTED).order_by(_TABLE.c.created_at.desc(), _TABLE.c.kid)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        if use is not None:
            query = query.where(_TABLE.c.use == use)
        now = self._now()
        with self._engine.connect() as connection:
            found = [_info(row, now) for row in connection.execute(query)]
        if client is not None and not found and client not in self.manifest.clients:
            raise NotFoundError.unknown("client", client, self.manifest.clients)
        return found

    def revoke(self, kid: str, use: KeyUse) -> ClientKeyInfo:
        """Revoke one key at once (idempotent); :class:`NotFoundError` if unknown."""
        where = (_TABLE.c.kid == kid, _TABLE.c.use == use)
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE)
                .where(*where, _TABLE.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            row = connection.execute(select(*_LISTED).where(*where)).first()
        with self._lock:
            self._cache.pop(kid, None)
        if row is None:
            what = "client key" if use == "assertion" else "signature key"
            with self._engine.connect() as connection:
                kids = connection.execute(select(_TABLE.c.kid).where(_TABLE.c.use == use))
                raise NotFoundError.unknown(what, kid, kids.scalars().all(), where="")
        return _info(row, self._now())

    def revoke_client(self, client: str, use: KeyUse | None = None) -> int:
        """Revoke every active key of ``client`` (for ``use``), in the manifest or not."""
        now = self._now()
        query = update(_TABLE).where(_TABLE.c.client == client, active_clause(_TABLE, now))
        if use is not None:
            query = query.where(_TABLE.c.use == use)
        with self._engine.begin() as connection:
            result = connection.execute(query.values(revoked_at=now))
        with self._lock:
            self._cache.clear()
        return int(result.rowcount)

    # -- using ---------------------------------------------------------------

    def public_keys(self, client: str) -> dict[str, tuple[str, PublicKey]]:
        """kid -> (alg, key) of ``client``'s active assertion keys: one indexed query.

        Empty for a client that is not (or no longer) an OAuth client in the
        manifest, so removing ``oauth2`` from its auth takes effect at once.
        """
        if not is_oauth_client(self.manifest, client):
            return {}
        query = select(_TABLE.c.kid, _TABLE.c.alg, _TABLE.c.public_jwk).where(
            _TABLE.c.client == client,
            _TABLE.c.use == "assertion",
            active_clause(_TABLE, self._now()),
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return {row.kid: (row.alg, self._parse(row.kid, row.public_jwk)) for row in rows}

    def resolve(self, keyid: str) -> ResolvedKey | None:
        """The active signature key ``keyid`` of a client still in the manifest, else ``None``."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(keyid)
        if cached is not None and now - cached[0] < self._cache_seconds:
            resolved = cached[1]
        else:
            resolved = self._load(keyid)
            with self._lock:
                if len(self._cache) >= _CACHE_MAX:
                    self._cache.clear()
                self._cache[keyid] = (now, resolved)
        if resolved is None or resolved.client not in self.manifest.clients:
            return None
        return resolved

    def _load(self, keyid: str) -> ResolvedKey | None:
        if len(keyid) > _MAX_KID:
            return None
        query = select(_TABLE).where(
            _TABLE.c.kid == keyid, _TABLE.c.use == "signature", active_clause(_TABLE, self._now())
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        key: Any
        if row.sealed_secret is not None:
            key = self._keyring.open(row.sealed_secret, _aad(row.kid))
        else:
            try:
                key = self._parse(row.kid, row.public_jwk).public_key
            except (InvalidTokenError, ValueError, TypeError):
                return None  # a stored key that no longer parses verifies nothing
        return ResolvedKey(row.kid, row.client, row.alg, key)

    def _parse(self, kid: str, stored: str) -> PublicKey:
        key = self._parsed.get(kid)
        if key is None:
            key = import_public_jwk(json.loads(stored))
            with self._lock:
                if len(self._parsed) >= _CACHE_MAX:  # a bound, not an LRU: clients hold few keys
                    self._parsed.clear()
                self._parsed[kid] = key
        return key

    def _insert(
        self,
        client: str,
        kid: str,
        use: KeyUse,
        alg: str,
        expires_at: datetime | None,
        *,
        public_jwk: str | None = None,
        sealed_secret: bytes | None = None,
    ) -> None:
        if client not in self.manifest.clients:
            raise NotFoundError.unknown("client", client, self.manifest.clients)
        now = self._now()
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidRequestError("a key's expiry must be an aware datetime in the future")
        with self._engine.begin() as connection:
            existing = connection.execute(
                select(_TABLE.c.client).where(_TABLE.c.kid == kid, _TABLE.c.use == use)
            ).first()
            if existing is not None:
                raise InvalidRequestError(
                    f"key {kid} is already registered (client {existing.client!r}); "
                    "a revoked key cannot come back: generate a new key pair"
                )
            active = connection.execute(
                select(_TABLE.c.kid).where(
                    _TABLE.c.client == client, _TABLE.c.use == use, active_clause(_TABLE, now)
                )
            ).all()
            if len(active) >= MAX_ACTIVE:
                what = "keys" if use == "assertion" else "signature keys"
                raise InvalidRequestError(
                    f"client {client!r} already has {MAX_ACTIVE} active {what}; revoke one first"
                )
            try:
                connection.execute(
                    _TABLE.insert().values(
                        kid=kid,
                        use=use,
                        client=client,
                        alg=alg,
                        public_jwk=public_jwk,
                        sealed_secret=sealed_secret,
                        created_at=now,
                        expires_at=expires_at.astimezone(UTC) if expires_at else None,
                        revoked_at=None,
                    )
                )
            except IntegrityError:  # the same key registered concurrently
                raise InvalidRequestError(f"key {kid} is already registered") from None


def _aad(keyid: str) -> bytes:
    # Binds the sealed secret to its key id: a blob copied onto another row does not open.
    return f"interlock:signature-key:{keyid}".encode()


def _info(row: Row[Any, Any, Any, Any, Any, Any, Any], now: datetime) -> ClientKeyInfo:
    return ClientKeyInfo(
        kid=row.kid,
        use=row.use,
        client=row.client,
        alg=row.alg,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at is not None else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at is not None else None,
        active=is_active(row, now),
    )
