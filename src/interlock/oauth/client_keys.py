"""Registered public keys of OAuth clients, for ``private_key_jwt`` (RFC 7523 §2.2).

A client proves who it is by signing an assertion with its private key; the
server holds only the public half, registered by an operator. The rules are an
allow-list: EC P-256 (ES256), OKP Ed25519 (Ed25519) or RSA of 2048 to 8192 bits
(RS256), public members only, at most :data:`MAX_ACTIVE` active keys per client.
A key's id is its RFC 7638 thumbprint, so one key belongs to one client and a
revoked key can never be registered again.
"""

from __future__ import annotations

import binascii
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import ECKey, JWKRegistry, OKPKey
from joserfc.util import urlsafe_b64decode
from sqlalchemy import Engine, Row, select, update
from sqlalchemy.exc import IntegrityError

from interlock.config.manifest import Manifest
from interlock.crypto.jose import (
    ALLOWED_ALGORITHMS,
    MIN_RSA_BITS,
    PublicKey,
    import_public_jwk,
)
from interlock.errors import InvalidRequestError, InvalidTokenError, NotFoundError
from interlock.oauth.clients import is_oauth_client, require_oauth_client
from interlock.oauth.tables import ClientKeyRow
from interlock.store.base import active_clause, as_utc, is_active, table_of

__all__ = [
    "MAX_ACTIVE",
    "MAX_JWK_BYTES",
    "ClientKeyInfo",
    "ClientKeys",
    "jwk_from_pem",
    "public_key_document",
]

MAX_ACTIVE: Final = 5  # room for rotation and a spare, not a key ring per instance
MAX_JWK_BYTES: Final = 8192  # an 8192-bit RSA JWK is about 1.5 KiB
MAX_RSA_BITS: Final = 8192  # bounds the cost of each verification
_PRIVATE_MEMBERS: Final = ("d", "p", "q", "dp", "dq", "qi", "k")  # RFC 7518 §6.2.2, §6.3.2, §6.4
# key type -> (allowed curve, the only algorithm for it); RFC 8725 §3.1: the key fixes the alg.
_ALGORITHM: Final = {
    "EC": ("P-256", "ES256"),
    "OKP": ("Ed25519", "Ed25519"),
    "RSA": (None, "RS256"),
}
# RFC 7638 §3.2: the required members, which are all we store.
_MEMBERS: Final = {
    "EC": ("crv", "kty", "x", "y"),
    "OKP": ("crv", "kty", "x"),
    "RSA": ("e", "kty", "n"),
}
_TABLE: Final = table_of(ClientKeyRow)


@dataclass(frozen=True)
class ClientKeyInfo:
    """A registered key as listed (``active`` as of the listing)."""

    kid: str
    client: str
    alg: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    active: bool


class ClientKeys:
    """Public keys of the manifest's OAuth clients (auth includes ``oauth2``)."""

    def __init__(
        self,
        engine: Engine,
        manifest: Manifest,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Bind to the store; ``manifest`` decides which clients may hold keys."""
        self._engine = engine
        self.manifest = manifest
        self._now = now
        # kid -> parsed key. A kid is the thumbprint of the key, so an entry never goes stale.
        self._parsed: dict[str, PublicKey] = {}

    def register(
        self, client: str, jwk: Mapping[str, Any], *, expires_at: datetime | None = None
    ) -> str:
        """Register the public key ``jwk`` for ``client``; returns its kid (RFC 7638).

        Refuses (:class:`InvalidRequestError`) private or symmetric members, key
        types, curves, sizes and algorithms outside the allow-list, a key that
        was ever registered before, and a sixth active key; an unknown client is
        :class:`NotFoundError`.
        """
        require_oauth_client(self.manifest, client)
        document = public_key_document(jwk)
        now = self._now()
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidRequestError("a key's expiry must be an aware datetime in the future")
        kid = document["kid"]
        with self._engine.begin() as connection:
            existing = connection.execute(select(_TABLE).where(_TABLE.c.kid == kid)).first()
            if existing is not None:
                raise InvalidRequestError(
                    f"key {kid} is already registered (client {existing.client!r}); "
                    "a revoked key cannot come back: generate a new key pair"
                )
            rows = connection.execute(select(_TABLE).where(_TABLE.c.client == client)).all()
            if sum(is_active(row, now) for row in rows) >= MAX_ACTIVE:
                raise InvalidRequestError(
                    f"client {client!r} already has {MAX_ACTIVE} active keys; revoke one first"
                )
            try:
                connection.execute(
                    _TABLE.insert().values(
                        kid=kid,
                        client=client,
                        alg=document["alg"],
                        public_jwk=json.dumps(document, sort_keys=True),
                        created_at=now,
                        expires_at=expires_at.astimezone(UTC) if expires_at else None,
                        revoked_at=None,
                    )
                )
            except IntegrityError:  # the same key registered concurrently
                raise InvalidRequestError(f"key {kid} is already registered") from None
        return str(kid)

    def list_keys(self, client: str | None = None) -> list[ClientKeyInfo]:
        """Every registered key (of ``client``), newest first, revoked and expired ones too."""
        query = select(_TABLE).order_by(_TABLE.c.created_at.desc(), _TABLE.c.kid)
        if client is not None:
            query = query.where(_TABLE.c.client == client)
        now = self._now()
        with self._engine.connect() as connection:
            return [_info(row, now) for row in connection.execute(query)]

    def revoke(self, kid: str) -> ClientKeyInfo:
        """Revoke one key at once (idempotent); :class:`NotFoundError` if unknown."""
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.kid == kid, _TABLE.c.revoked_at.is_(None))
                .values(revoked_at=self._now())
            )
            row = connection.execute(select(_TABLE).where(_TABLE.c.kid == kid)).first()
        if row is None:
            raise NotFoundError(f"no registered client key {kid!r}")
        return _info(row, self._now())

    def revoke_client(self, client: str) -> int:
        """Revoke every active key of ``client`` (in the manifest or not); returns how many."""
        now = self._now()
        with self._engine.begin() as connection:
            result = connection.execute(
                update(_TABLE)
                .where(_TABLE.c.client == client, active_clause(_TABLE, now))
                .values(revoked_at=now)
            )
        return int(result.rowcount)

    def public_keys(self, client: str) -> dict[str, tuple[str, PublicKey]]:
        """kid -> (alg, key) of ``client``'s active keys: one query on the client index.

        Empty for a client that is not (or no longer) an OAuth client in the
        manifest, so removing ``oauth2`` from its auth takes effect at once.
        """
        if not is_oauth_client(self.manifest, client):
            return {}
        query = select(_TABLE.c.kid, _TABLE.c.alg, _TABLE.c.public_jwk).where(
            _TABLE.c.client == client, active_clause(_TABLE, self._now())
        )
        with self._engine.connect() as connection:
            rows = connection.execute(query).all()
        return {row.kid: (row.alg, self._key(row.kid, row.public_jwk)) for row in rows}

    def _key(self, kid: str, stored: str) -> PublicKey:
        key = self._parsed.get(kid)
        if key is None:
            key = import_public_jwk(json.loads(stored))
            if len(self._parsed) >= 4096:  # a bound, not an LRU: clients hold few keys
                self._parsed.clear()
            self._parsed[kid] = key
        return key


def jwk_from_pem(pem: bytes) -> dict[str, Any]:
    """The JWK of a PEM public key (SubjectPublicKeyInfo), parsed by joserfc.

    A private key is refused: the server must never receive one.
    """
    if len(pem) > MAX_JWK_BYTES:
        raise InvalidRequestError(f"a PEM public key is at most {MAX_JWK_BYTES} bytes")
    for key_type in _ALGORITHM:
        try:
            with warnings.catch_warnings():  # a short RSA key: refused by register(), not here
                warnings.simplefilter("ignore", SecurityWarning)
                key = JWKRegistry.import_key(pem, key_type)
        except (JoseError, ValueError, TypeError):
            continue
        if key.is_private:
            raise InvalidRequestError(
                "this is a private key; register the public key only (the private key "
                "never leaves the client)"
            )
        return dict(key.as_dict(private=False))
    raise InvalidRequestError("not a PEM public key of type EC, OKP or RSA")


def public_key_document(jwk: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical JWK to store (required members, alg, use, kid), after every check."""
    if not isinstance(jwk, Mapping):
        raise InvalidRequestError("a JWK is a JSON object")
    try:
        size = len(json.dumps(dict(jwk)))
    except (TypeError, ValueError):
        raise InvalidRequestError("a JWK is a JSON object") from None
    if size > MAX_JWK_BYTES:
        raise InvalidRequestError(f"a JWK is at most {MAX_JWK_BYTES} bytes")
    private = sorted(member for member in _PRIVATE_MEMBERS if member in jwk)
    if private:
        raise InvalidRequestError(
            f"the JWK carries private or symmetric members ({', '.join(private)}); "
            "register the public key only"
        )
    kty = jwk.get("kty")
    if not isinstance(kty, str) or kty not in _ALGORITHM:
        raise InvalidRequestError(f"key type {kty!r} is not accepted; use EC, OKP or RSA")
    operations = jwk.get("key_ops", ["verify"])
    if (
        jwk.get("use", "sig") != "sig"
        or not isinstance(operations, list)
        or "verify" not in operations
    ):
        raise InvalidRequestError("the key is not meant for signatures (use / key_ops)")
    if kty == "RSA":
        _check_modulus(jwk.get("n"))
    try:
        key = import_public_jwk(jwk)
    except InvalidTokenError as exc:
        raise InvalidRequestError(f"unusable public key: {exc.reason}") from None
    curve, expected_alg = _ALGORITHM[kty]
    if isinstance(key, ECKey | OKPKey) and key.curve_name != curve:
        raise InvalidRequestError(f"curve {key.curve_name} is not accepted; use {curve}")
    alg = jwk.get("alg", expected_alg)
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS or alg != expected_alg:
        raise InvalidRequestError(f"alg {alg!r} does not fit this key; use {expected_alg}")
    document = {member: jwk[member] for member in _MEMBERS[kty]}
    return {**document, "alg": alg, "use": "sig", "kid": key.thumbprint()}


def _check_modulus(n: object) -> None:
    """RSA size bounds, checked before parsing (joserfc would only warn on a short key)."""
    try:
        bits = int.from_bytes(urlsafe_b64decode(str(n).encode("ascii"))).bit_length()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidRequestError("unusable public key: malformed RSA modulus") from None
    if bits < MIN_RSA_BITS:
        raise InvalidRequestError(f"RSA keys shorter than {MIN_RSA_BITS} bits are refused")
    if bits > MAX_RSA_BITS:
        raise InvalidRequestError(f"RSA keys longer than {MAX_RSA_BITS} bits are refused")


def _info(row: Row[Any], now: datetime) -> ClientKeyInfo:
    return ClientKeyInfo(
        kid=row.kid,
        client=row.client,
        alg=row.alg,
        created_at=as_utc(row.created_at),
        expires_at=as_utc(row.expires_at) if row.expires_at else None,
        revoked_at=as_utc(row.revoked_at) if row.revoked_at else None,
        active=is_active(row, now),
    )
