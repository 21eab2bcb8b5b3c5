"""Clients' keys for signed requests (RFC 9421 HTTP Message Signatures).

A partner signs each request with a key an operator registered for its
client; the gateway looks the key up by the signature's ``keyid``. Three
algorithms (RFC 9421 §3.3), one per key:

* ``ed25519`` and ``ecdsa-p256-sha256`` — the client keeps the private key;
  the store holds the public JWK, and the ``keyid`` is its RFC 7638
  thumbprint, so a key belongs to one client and cannot be registered twice;
* ``hmac-sha256`` — a 256-bit secret generated here and shown once; both
  sides need it, so it is stored sealed by the keyring (never hashed), and
  its ``keyid`` is random.

At most :data:`MAX_ACTIVE` keys per client are active (room to rotate). Keys
expire or are revoked; a lookup is cached for one second, so a revocation
reaches every replica within a second.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from sqlalchemy import Engine, Row, select, update
from sqlalchemy.exc import IntegrityError

from interlock.config.manifest import Manifest
from interlock.crypto import Keyring
from interlock.crypto.jose import import_public_jwk
from interlock.errors import InvalidRequestError, InvalidTokenError, NotFoundError
from interlock.oauth.client_keys import public_key_document
from interlock.replay.tables import SignatureKeyRow
from interlock.store.base import active_clause, as_utc, is_active, table_of

__all__ = [
    "ALGORITHMS",
    "HMAC_SECRET_BYTES",
    "MAX_ACTIVE",
    "IssuedSharedSecret",
    "ResolvedKey",
    "SignatureAlgorithm",
    "SignatureKeyInfo",
    "SignatureKeys",
]

SignatureAlgorithm = Literal["ed25519", "ecdsa-p256-sha256", "hmac-sha256"]
ALGORITHMS: Final[tuple[SignatureAlgorithm, ...]] = ("ed25519", "ecdsa-p256-sha256", "hmac-sha256")
MAX_ACTIVE: Final = 5
HMAC_SECRET_BYTES: Final = 32  # RFC 9421 §3.3.3 leaves the size open; 256 bits, as SHA-256
_CACHE_SECONDS: Final = 1.0
_CACHE_MAX: Final = 4096
_MAX_KEYID: Final = 64  # the column's width: a thumbprint is 43 characters
# JWK algorithm (what the client-key checks name) -> RFC 9421 algorithm.
_BY_JWK_ALG: Final[dict[str, SignatureAlgorithm]] = {
    "Ed25519": "ed25519",
    "ES256": "ecdsa-p256-sha256",
}
_TABLE: Final = table_of(SignatureKeyRow)


@dataclass(frozen=True)
class SignatureKeyInfo:
    """A registered key as listed (``active`` as of the listing); never its secret."""

    keyid: str
    client: str
    alg: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


@dataclass(frozen=True)
class IssuedSharedSecret:
    """A new HMAC key: the secret is shown once and kept nowhere in clear."""

    keyid: str
    client: str
    secret: str = field(repr=False)  # base64 (standard alphabet, padded) of 32 random bytes


@dataclass(frozen=True)
class ResolvedKey:
    """What verifying a signature needs: who owns the key, its algorithm, the key itself.

    ``key`` is a public key object (asymmetric) or the secret bytes (HMAC).
    """

    keyid: str
    client: str
    alg: SignatureAlgorithm
    key: Any = field(repr=False)


class SignatureKeys:
    """The signature keys of the manifest's clients."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        manifest: Manifest,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        cache_seconds: float = _CACHE_SECONDS,
    ) -> None:
        """Bind to the store; ``manifest`` decides which clients may hold keys."""
        self._engine = engine
        self._keyring = keyring
        self.manifest = manifest
        self._now = now
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, ResolvedKey | None]] = {}
        self._lock = threading.Lock()

    def register_public_key(
        self, client: str, jwk: Mapping[str, Any], *, expires_at: datetime | None = None
    ) -> str:
        """Register an Ed25519 or P-256 public key for ``client``; returns its keyid.

        Private members, other key types and curves, and a key registered
        before (even if revoked) are refused with :class:`InvalidRequestError`.
        """
        document = public_key_document(jwk)
        alg = _BY_JWK_ALG.get(document["alg"])
        if alg is None:
            raise InvalidRequestError(
                "signed requests take Ed25519 or EC P-256 keys (RFC 9421 ed25519, "
                "ecdsa-p256-sha256), or a shared HMAC secret"
            )
        keyid = str(document["kid"])
        self._insert(client, keyid, alg, expires_at, public_jwk=json.dumps(document))
        return keyid

    def create_shared_secret(
        self, client: str, *, expires_at: datetime | None = None
    ) -> IssuedSharedSecret:
        """Generate an HMAC-SHA256 key for ``client``; the secret is returned once."""
        secret = secrets.token_bytes(HMAC_SECRET_BYTES)
        keyid = "hs-" + secrets.token_hex(12)
        sealed = self._keyring.seal(secret, _aad(keyid))
        self._insert(client, keyid, "hmac-sha256", expires_at, sealed_secret=sealed)
        return IssuedSharedSecret(keyid, client, base64.b64encode(secret).decode("ascii"))

    def list_keys(self, client: str | None = None) -> list[SignatureKeyInfo]:
        """Every key (of ``client``), newest first, revoked and expired ones too."""
        query = select(*_LISTED).order_by(_TABLE.c.created_at.desc(), _TABLE.c.keyid)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        now = self._now()
        with self._engine.connect() as connection:
            return [_info(row, now) for row in connection.execute(query)]

    def revoke(self, keyid: str) -> SignatureKeyInfo:
        """Revoke one key at once (idempotent); :class:`NotFoundError` if unknown."""
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.keyid == keyid, _TABLE.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            row = connection.execute(select(*_LISTED).where(_TABLE.c.keyid == keyid)).first()
        with self._lock:
            self._cache.pop(keyid, None)
        if row is None:
            raise NotFoundError(f"no signature key {keyid!r}")
        return _info(row, self._now())

    def revoke_client(self, client: str) -> int:
        """Revoke every active key of ``client``; returns how many."""
        now = self._now()
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_TABLE)
                .where(_TABLE.c.client == client, active_clause(_TABLE, now))
                .values(revoked_at=now)
            )
        with self._lock:
            self._cache.clear()
        return int(result.rowcount)

    def resolve(self, keyid: str) -> ResolvedKey | None:
        """The active key called ``keyid`` of a client still in the manifest, else ``None``."""
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
        if len(keyid) > _MAX_KEYID:
            return None
        query = select(_TABLE).where(_TABLE.c.keyid == keyid, active_clause(_TABLE, self._now()))
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            return None
        key: Any
        if row.sealed_secret is not None:
            key = self._keyring.open(row.sealed_secret, _aad(row.keyid))
        else:
            try:
                key = import_public_jwk(json.loads(row.public_jwk)).public_key
            except (InvalidTokenError, ValueError, TypeError):
                return None  # a stored key that no longer parses verifies nothing
        return ResolvedKey(row.keyid, row.client, row.alg, key)

    def _insert(
        self,
        client: str,
        keyid: str,
        alg: SignatureAlgorithm,
        expires_at: datetime | None,
        *,
        public_jwk: str | None = None,
        sealed_secret: bytes | None = None,
    ) -> None:
        if client not in self.manifest.clients:
            raise NotFoundError(f"client {client!r} is not in the manifest")
        now = self._now()
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidRequestError("a key's expiry must be an aware datetime in the future")
        with self._engine.begin() as connection:
            existing = connection.execute(
                select(_TABLE.c.client).where(_TABLE.c.keyid == keyid)
            ).first()
            if existing is not None:
                raise InvalidRequestError(
                    f"key {keyid} is already registered (client {existing.client!r}); "
                    "a revoked key cannot come back: generate a new key pair"
                )
            active = connection.execute(
                select(_TABLE.c.keyid).where(_TABLE.c.client == client, active_clause(_TABLE, now))
            ).all()
            if len(active) >= MAX_ACTIVE:
                raise InvalidRequestError(
                    f"client {client!r} already has {MAX_ACTIVE} active signature keys; "
                    "revoke one first"
                )
            try:
                connection.execute(
                    _TABLE.insert().values(
                        keyid=keyid,
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
                raise InvalidRequestError(f"key {keyid} is already registered") from None


_LISTED: Final = (
    _TABLE.c.keyid,
    _TABLE.c.client,
    _TABLE.c.alg,
    _TABLE.c.created_at,
    _TABLE.c.expires_at,
    _TABLE.c.revoked_at,
)


def _aad(keyid: str) -> bytes:
    # Binds the sealed secret to its key id: a blob copied onto another row does not open.
    return f"interlock:signature-key:{keyid}".encode()


def _info(row: Row[Any, Any, Any, Any, Any, Any], now: datetime) -> SignatureKeyInfo:
    expires = as_utc(row.expires_at) if row.expires_at is not None else None
    revoked = as_utc(row.revoked_at) if row.revoked_at is not None else None
    return SignatureKeyInfo(
        keyid=row.keyid,
        client=row.client,
        alg=row.alg,
        created_at=as_utc(row.created_at),
        expires_at=expires,
        revoked_at=revoked,
        active=is_active(row, now),
    )
