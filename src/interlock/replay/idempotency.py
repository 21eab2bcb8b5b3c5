"""Idempotency-Key records (draft-ietf-httpapi-idempotency-key-header-07).

One record per (scope, key): the first request with a key *begins* it and is
processed; a retry with the same request fingerprint gets the stored response
back (:class:`Replay`), a retry while the first is still being processed gets
:class:`InFlight` (409 on the wire, draft §2.7), and the same key with another
fingerprint gets :class:`Mismatch` (422). Records expire after their ``ttl``
(draft §2.3).

A record being processed holds a *lease*: if the replica processing it dies,
the lease runs out and the next retry takes the record over instead of
getting 409 until the record expires. Each :class:`Begun` carries a token, and
only the holder of the current token may complete or abandon the record, so a
late original cannot clobber the record a retry took over.

Only a SHA-256 of scope and key is stored (draft §5: keys of other clients
must not be guessable into a cache hit). The request fingerprint (method,
target, body) is kept as an HMAC under a deployment key sealed by the keyring
(:meth:`ResponseSeal.keyed_fingerprint`): a plain hash of a body is personal
data still, recovered from a dump by hashing guesses (a customer's e-mail in
a known body template). Records an earlier release wrote with the plain
SHA-256 keep their meaning until their ttl ends them: the fingerprint of the
same request still matches them (:func:`_same_request`), so an upgrade never
turns a retry into a 422. The same key derives the ``Idempotency-Key`` the
upstream is sent (:meth:`IdempotencyStore.upstream_key`): every caller
reaches the upstream with the system's one credential, so a caller's own key
would meet another caller's equal key there. A stored response is an upstream's
answer, often personal data: the shared backends keep it sealed with the
keyring (:class:`ResponseSeal`), bound to its record, so a database or Redis
dump shows none of it and a sealed response moved to another record does not
open. A record that cannot be opened (tampered, a key no longer held, written
in clear by an earlier release) is never replayed: the caller is told the
request was processed (:class:`Unreadable`). How long records live is the
caller's ``ttl``; the gateway bounds it by the integration's retention.

Backends, behind one protocol:

* :class:`SqlIdempotency` — the store; a primary-key insert decides which of
  two replicas processes the request;
* :class:`RedisIdempotency` — one short Lua script per transition, atomic
  across replicas, the record expiring by itself;
* :class:`MemoryIdempotency` — one process only, for tests and tools (nothing
  leaves the process, so nothing is sealed).

Each transition has an ``..._async`` twin for the gateway's event loop: Redis
awaits its script through ``redis.asyncio`` (when given that client), the
store runs it in a thread, memory at once. Redis unreachable is
:class:`IdempotencyUnavailableError` (503, fail closed) on either path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

import redis
import redis.asyncio
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from interlock.crypto import Keyring
from interlock.crypto.hashing import PEPPER_SIZE, hash_secret, new_pepper
from interlock.errors import DecryptionError, Refusal
from interlock.logs import get_logger
from interlock.replay.tables import IdempotencyRow
from interlock.store.base import as_utc, table_of
from interlock.store.sealed_values import sealed_setting

__all__ = [
    "Begun",
    "IdempotencyOutcome",
    "IdempotencyStore",
    "IdempotencyUnavailableError",
    "InFlight",
    "MemoryIdempotency",
    "Mismatch",
    "RedisIdempotency",
    "Replay",
    "ResponseSeal",
    "SqlIdempotency",
    "StoredResponse",
    "Unreadable",
    "fingerprint",
    "idempotency_store",
]

_TABLE: Final = table_of(IdempotencyRow)
_IN_FLIGHT: Final = "in_flight"
_COMPLETED: Final = "completed"
_ATTEMPTS: Final = 4  # a record can vanish (expiry, abandon) between two reads
_PURGE_EVERY: Final = 1000
_AAD: Final = b"interlock/idempotency-response/v1\0"
# The deployment key of the records' keyed hashes (store.sealed_values), one for
# every replica; each use is domain-separated by a label ending in NUL.
_KEY_SETTING: Final = "replay.idempotency_key"
_FINGERPRINT_LABEL: Final = b"fingerprint\0"
_UPSTREAM_LABEL: Final = b"upstream-key\0"
_KEYED: Final = "hmac-sha256:"  # fingerprints without it are an earlier release's SHA-256
_log = get_logger("interlock.replay")


@dataclass(frozen=True)
class StoredResponse:
    """What a replay needs: status, a safe subset of headers and the body.

    ``body`` is None when the response was too large to keep: the request was
    processed, but its answer cannot be replayed.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes | None

    def encode(self) -> bytes:
        """JSON, the body in base64."""
        body = None if self.body is None else base64.b64encode(self.body).decode()
        return json.dumps(
            {"status": self.status, "headers": [list(h) for h in self.headers], "body": body}
        ).encode()

    @classmethod
    def decode(cls, data: bytes) -> StoredResponse:
        """The inverse of :meth:`encode`."""
        raw = json.loads(data)
        body = raw["body"]
        return cls(
            status=int(raw["status"]),
            headers=tuple((str(n), str(v)) for n, v in raw["headers"]),
            body=None if body is None else base64.b64decode(body),
        )


@dataclass(frozen=True)
class Begun:
    """This caller processes the request; it must :meth:`complete` or :meth:`abandon`."""

    token: str


@dataclass(frozen=True)
class Replay:
    """The request was processed before: answer with ``response``."""

    response: StoredResponse


@dataclass(frozen=True)
class Unreadable:
    """The request was processed, but its stored response cannot be opened: never replayed."""


@dataclass(frozen=True)
class InFlight:
    """The first request with this key is still being processed."""


@dataclass(frozen=True)
class Mismatch:
    """The key was used with another request (a different fingerprint)."""


IdempotencyOutcome = Begun | Replay | Unreadable | InFlight | Mismatch


class ResponseSeal:
    """What a shared store keeps secret: responses sealed, fingerprints and upstream keys keyed.

    Responses are sealed with the keyring, each bound to its record's id;
    fingerprints and the keys sent upstream are HMAC-SHA256 under one
    deployment key (at least 256 bits), itself sealed by the keyring in the
    store (:meth:`load`). The key never shows in ``repr``.
    """

    __slots__ = ("_key", "_keyring")

    def __init__(self, keyring: Keyring, key: bytes) -> None:
        """Seal with ``keyring`` (its current KEK; any version opens); hash with ``key``."""
        if len(key) < PEPPER_SIZE:
            raise ValueError("the idempotency key must be at least 256 bits")
        self._keyring = keyring
        self._key = key

    @classmethod
    def load(cls, engine: Engine, keyring: Keyring) -> ResponseSeal:
        """The deployment's: its key created on first use, sealed in the store's settings."""
        return cls(keyring, sealed_setting(engine, keyring, _KEY_SETTING, new_pepper))

    def __repr__(self) -> str:
        return "ResponseSeal(key=<sealed>)"

    def keyed_fingerprint(self, fingerprint: str) -> str:
        """``hmac-sha256:`` and the base64url HMAC of a request's :func:`fingerprint`."""
        return _KEYED + _b64(hash_secret(self._key, _FINGERPRINT_LABEL + fingerprint.encode()))

    def upstream_key(self, scope: str, key: str) -> str:
        """The ``Idempotency-Key`` field value sent upstream for ``key`` in ``scope``."""
        return _upstream_key(self._key, scope, key)

    def seal(self, record_id: str, response: StoredResponse) -> bytes:
        """The sealed encoding of ``response`` for the record ``record_id``."""
        return self._keyring.seal(response.encode(), _AAD + record_id.encode())

    def open(self, record_id: str, blob: bytes) -> Replay | Unreadable:
        """The response to replay, or :class:`Unreadable` (logged) when it does not open."""
        try:
            plain = self._keyring.open(blob, _AAD + record_id.encode())
            return Replay(StoredResponse.decode(plain))
        except (DecryptionError, ValueError, KeyError, TypeError) as exc:
            # Tampered, a KEK no longer held, moved from another record, or kept in
            # clear by an earlier release: processed once, so refuse rather than re-run.
            _log.warning("idempotency_record_unreadable", error=type(exc).__name__)
            return Unreadable()


class IdempotencyStore(Protocol):
    """Idempotency records shared by every replica."""

    def begin(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """Claim ``key`` in ``scope`` for a request with ``fingerprint``, or say why not."""
        ...

    def complete(self, scope: str, key: str, token: str, response: StoredResponse) -> None:
        """Store the response of the request begun with ``token`` for replays."""
        ...

    def abandon(self, scope: str, key: str, token: str) -> None:
        """Forget the record begun with ``token`` so that a retry is processed afresh."""
        ...

    def upstream_key(self, scope: str, key: str) -> str:
        """The ``Idempotency-Key`` to send upstream for ``key`` in ``scope``: an sf-string.

        The same for the same scope and key on every replica, unrelated across
        scopes, and revealing neither.
        """
        ...

    async def begin_async(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """:meth:`begin` on an event loop, which it never blocks."""
        ...

    async def complete_async(
        self, scope: str, key: str, token: str, response: StoredResponse
    ) -> None:
        """:meth:`complete` on an event loop."""
        ...

    async def abandon_async(self, scope: str, key: str, token: str) -> None:
        """:meth:`abandon` on an event loop."""
        ...


class IdempotencyUnavailableError(Refusal):
    """Redis cannot be reached: a request with a key cannot be admitted (fail closed)."""

    def __init__(self, cause: str) -> None:
        """Refuse because Redis failed with ``cause`` (an exception's type name)."""
        super().__init__(
            "idempotency-store-unavailable",
            "requests with an Idempotency-Key cannot be checked at the moment; retry shortly",
            log_reason=f"idempotency store unavailable ({cause}; fail closed)",
        )


def fingerprint(method: str, target: str, body: bytes) -> str:
    """SHA-256 of method, request target and body (draft §2.4: checksum of the payload).

    Method and target are part of it so that a key reused on another resource
    is a mismatch too; NUL cannot occur in either, so the encoding is unambiguous.
    """
    digest = hashlib.sha256(method.encode() + b"\0" + target.encode() + b"\0")
    digest.update(body)
    return digest.hexdigest()


def _record_id(scope: str, key: str) -> str:
    return hashlib.sha256(f"{scope}\0{key}".encode()).hexdigest()


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _upstream_key(secret: bytes, scope: str, key: str) -> str:
    # An sf-string (RFC 9651 §3.3.3) like the caller's key: base64url needs no escape.
    return '"' + _b64(hash_secret(secret, _UPSTREAM_LABEL + f"{scope}\0{key}".encode())) + '"'


def _same_request(stored: str, keyed: str, fingerprint: str) -> bool:
    """Whether a record's fingerprint is this request's: keyed, or an earlier release's plain one.

    A plain SHA-256 is compared only with a record that holds one (no ``hmac-sha256:``
    prefix), so it never matches a record written since.
    """
    if stored.startswith(_KEYED):
        return hmac.compare_digest(stored, keyed)
    return hmac.compare_digest(stored, fingerprint)


def _token() -> str:
    return secrets.token_hex(16)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Record:
    fingerprint: str
    token: str
    lease_until: datetime
    expires_at: datetime
    response: StoredResponse | None = None  # set once completed


class MemoryIdempotency:
    """Records in this process (tests and single-process tools)."""

    def __init__(self, now: Callable[[], datetime] = _now) -> None:
        """Start empty; ``now`` is the clock."""
        self._now = now
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()
        self._key = new_pepper()  # one process: its upstream keys need agree with no other

    def upstream_key(self, scope: str, key: str) -> str:
        """See :meth:`IdempotencyStore.upstream_key` (keyed for this process)."""
        return _upstream_key(self._key, scope, key)

    def begin(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """Claim, replay, or refuse (see :class:`IdempotencyStore`)."""
        now = self._now()
        rid = _record_id(scope, key)
        with self._lock:
            if len(self._records) > 100_000:
                self._records = {k: r for k, r in self._records.items() if r.expires_at > now}
            record = self._records.get(rid)
            if record is not None and record.expires_at > now:
                if record.fingerprint != fingerprint:
                    return Mismatch()
                if record.response is not None:
                    return Replay(record.response)
                if record.lease_until > now:
                    return InFlight()
                record.token, record.lease_until = _token(), now + lease
                return Begun(record.token)
            token = _token()
            self._records[rid] = _Record(fingerprint, token, now + lease, now + ttl)
            return Begun(token)

    def complete(self, scope: str, key: str, token: str, response: StoredResponse) -> None:
        """Keep ``response`` until the record expires."""
        with self._lock:
            record = self._records.get(_record_id(scope, key))
            if record is not None and record.token == token:
                record.response = response

    def abandon(self, scope: str, key: str, token: str) -> None:
        """Drop the record if ``token`` still holds it."""
        rid = _record_id(scope, key)
        with self._lock:
            record = self._records.get(rid)
            if record is not None and record.token == token and record.response is None:
                del self._records[rid]

    async def begin_async(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """:meth:`begin` (no I/O)."""
        return self.begin(scope, key, fingerprint, ttl, lease)

    async def complete_async(
        self, scope: str, key: str, token: str, response: StoredResponse
    ) -> None:
        """:meth:`complete` (no I/O)."""
        self.complete(scope, key, token, response)

    async def abandon_async(self, scope: str, key: str, token: str) -> None:
        """:meth:`abandon` (no I/O)."""
        self.abandon(scope, key, token)


class SqlIdempotency:
    """Records in the store's ``replay_idempotency`` table, responses sealed."""

    def __init__(
        self, engine: Engine, seal: ResponseSeal, now: Callable[[], datetime] = _now
    ) -> None:
        """Bind to the store; ``seal`` keeps responses sealed; ``now`` is the clock."""
        self._engine = engine
        self._seal = seal
        self._now = now
        self._inserts = 0

    def begin(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """Insert the record; on a duplicate primary key, read what the winner left."""
        rid = _record_id(scope, key)
        keyed = self._seal.keyed_fingerprint(fingerprint)
        for _ in range(_ATTEMPTS):
            now = self._now()
            token = _token()
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        _TABLE.insert().values(
                            id=rid,
                            fingerprint=keyed,
                            token=token,
                            state=_IN_FLIGHT,
                            lease_until=now + lease,
                            expires_at=now + ttl,
                        )
                    )
            except IntegrityError:
                outcome = self._existing(rid, keyed, fingerprint, lease, now)
                if outcome is not None:
                    return outcome
                continue  # the record expired or was abandoned meanwhile: try again
            self._inserts += 1
            if self._inserts % _PURGE_EVERY == 0:
                self.purge()
            return Begun(token)
        return InFlight()  # the key is contended beyond reason: the caller may retry

    def _existing(
        self, rid: str, keyed: str, fingerprint: str, lease: timedelta, now: datetime
    ) -> IdempotencyOutcome | None:
        with self._engine.begin() as connection:
            row = connection.execute(select(_TABLE).where(_TABLE.c.id == rid)).one_or_none()
            if row is None:
                return None
            if as_utc(row.expires_at) <= now:
                connection.execute(
                    delete(_TABLE).where(_TABLE.c.id == rid, _TABLE.c.expires_at <= now)
                )
                return None
            if not _same_request(row.fingerprint, keyed, fingerprint):
                return Mismatch()
            if row.state == _COMPLETED:
                return self._seal.open(rid, bytes(row.response or b""))
            if as_utc(row.lease_until) > now:
                return InFlight()
            # The lease ran out (the replica processing it died): take the record over.
            # The WHERE on the old token lets exactly one of several racing callers win.
            token = _token()
            taken = connection.execute(
                update(_TABLE)
                .where(_TABLE.c.id == rid, _TABLE.c.token == row.token)
                .values(token=token, lease_until=now + lease)
            ).rowcount
            return Begun(token) if taken else None

    def complete(self, scope: str, key: str, token: str, response: StoredResponse) -> None:
        """Store ``response``, sealed, if ``token`` still holds the record."""
        rid = _record_id(scope, key)
        sealed = self._seal.seal(rid, response)
        with self._engine.begin() as connection:
            connection.execute(
                update(_TABLE)
                .where(_TABLE.c.id == rid, _TABLE.c.token == token)
                .values(state=_COMPLETED, response=sealed)
            )

    def abandon(self, scope: str, key: str, token: str) -> None:
        """Delete the record if ``token`` still holds it and it is not completed."""
        with self._engine.begin() as connection:
            connection.execute(
                delete(_TABLE).where(
                    _TABLE.c.id == _record_id(scope, key),
                    _TABLE.c.token == token,
                    _TABLE.c.state == _IN_FLIGHT,
                )
            )

    def upstream_key(self, scope: str, key: str) -> str:
        """See :meth:`IdempotencyStore.upstream_key`."""
        return self._seal.upstream_key(scope, key)

    async def begin_async(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """:meth:`begin` in a thread (the store blocks)."""
        return await asyncio.to_thread(self.begin, scope, key, fingerprint, ttl, lease)

    async def complete_async(
        self, scope: str, key: str, token: str, response: StoredResponse
    ) -> None:
        """:meth:`complete` in a thread."""
        await asyncio.to_thread(self.complete, scope, key, token, response)

    async def abandon_async(self, scope: str, key: str, token: str) -> None:
        """:meth:`abandon` in a thread."""
        await asyncio.to_thread(self.abandon, scope, key, token)

    def purge(self) -> int:
        """Delete expired records."""
        with self._engine.begin() as connection:
            result = connection.execute(delete(_TABLE).where(_TABLE.c.expires_at <= self._now()))
        return int(result.rowcount or 0)


# Redis' own clock (TIME) decides leases, so replicas with skewed clocks agree.
_BEGIN: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cur = redis.call('HMGET', KEYS[1], 'fp', 'state', 'lease', 'response')
if not cur[1] then
  redis.call('HSET', KEYS[1], 'fp', ARGV[1], 'token', ARGV[2], 'state', 'in_flight',
             'lease', now + tonumber(ARGV[3]))
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return {'begun'}
end
-- ARGV[5]: the plain SHA-256 an earlier release stored; it has no 'hmac-sha256:' prefix,
-- so it matches only such a record (see _same_request).
if cur[1] ~= ARGV[1] and cur[1] ~= ARGV[5] then return {'mismatch'} end
if cur[2] == 'completed' then return {'replay', cur[4]} end
if tonumber(cur[3]) > now then return {'in_flight'} end
redis.call('HSET', KEYS[1], 'token', ARGV[2], 'lease', now + tonumber(ARGV[3]))
return {'begun'}
"""
_COMPLETE: Final = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'state', 'completed', 'response', ARGV[2])
  return 1
end
return 0
"""
_ABANDON: Final = """
if redis.call('HGET', KEYS[1], 'token') == ARGV[1]
   and redis.call('HGET', KEYS[1], 'state') == 'in_flight' then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisIdempotency:
    """Records as Redis hashes that expire on their own (``PEXPIRE`` = the ttl), sealed."""

    def __init__(
        self,
        client: redis.Redis,
        seal: ResponseSeal,
        prefix: str = "interlock:idempotency:",
        *,
        async_client: redis.asyncio.Redis | None = None,
    ) -> None:
        """Use ``client`` (shared by every replica; ``async_client``, the same server, for
        the ``..._async`` methods); ``seal`` keeps responses sealed."""
        self._prefix = prefix
        self._seal = seal
        self._begin = client.register_script(_BEGIN)
        self._complete = client.register_script(_COMPLETE)
        self._abandon = client.register_script(_ABANDON)
        self._async = async_client
        if async_client is not None:
            self._begin_async = async_client.register_script(_BEGIN)
            self._complete_async = async_client.register_script(_COMPLETE)
            self._abandon_async = async_client.register_script(_ABANDON)

    def begin(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """One script: create the record, or read the winner's (see :class:`IdempotencyStore`)."""
        rid, token = _record_id(scope, key), _token()
        try:
            reply = self._begin(
                keys=[self._prefix + rid], args=self._begin_args(fingerprint, token, ttl, lease)
            )
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None
        return self._outcome(rid, token, reply)

    def complete(self, scope: str, key: str, token: str, response: StoredResponse) -> None:
        """Store ``response``, sealed, if ``token`` still holds the record."""
        rid = _record_id(scope, key)
        try:
            self._complete(keys=[self._prefix + rid], args=[token, self._seal.seal(rid, response)])
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None

    def abandon(self, scope: str, key: str, token: str) -> None:
        """Delete the record if ``token`` still holds it and it is not completed."""
        try:
            self._abandon(keys=[self._key(scope, key)], args=[token])
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None

    async def begin_async(
        self, scope: str, key: str, fingerprint: str, ttl: timedelta, lease: timedelta
    ) -> IdempotencyOutcome:
        """:meth:`begin` awaited through ``redis.asyncio`` (a thread without that client)."""
        if self._async is None:
            return await asyncio.to_thread(self.begin, scope, key, fingerprint, ttl, lease)
        rid, token = _record_id(scope, key), _token()
        try:
            reply = await self._begin_async(
                keys=[self._prefix + rid], args=self._begin_args(fingerprint, token, ttl, lease)
            )
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None
        return self._outcome(rid, token, reply)

    async def complete_async(
        self, scope: str, key: str, token: str, response: StoredResponse
    ) -> None:
        """:meth:`complete` awaited through ``redis.asyncio``."""
        if self._async is None:
            await asyncio.to_thread(self.complete, scope, key, token, response)
            return
        rid = _record_id(scope, key)
        sealed = self._seal.seal(rid, response)  # bounded by the route's max_stored_bytes
        try:
            await self._complete_async(keys=[self._prefix + rid], args=[token, sealed])
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None

    async def abandon_async(self, scope: str, key: str, token: str) -> None:
        """:meth:`abandon` awaited through ``redis.asyncio``."""
        if self._async is None:
            await asyncio.to_thread(self.abandon, scope, key, token)
            return
        try:
            await self._abandon_async(keys=[self._key(scope, key)], args=[token])
        except redis.RedisError as exc:
            raise IdempotencyUnavailableError(type(exc).__name__) from None

    def upstream_key(self, scope: str, key: str) -> str:
        """See :meth:`IdempotencyStore.upstream_key`."""
        return self._seal.upstream_key(scope, key)

    def _begin_args(
        self, fingerprint: str, token: str, ttl: timedelta, lease: timedelta
    ) -> list[str | int]:
        keyed = self._seal.keyed_fingerprint(fingerprint)
        return [keyed, token, _ms(lease), _ms(ttl), fingerprint]

    def _outcome(self, rid: str, token: str, reply: Any) -> IdempotencyOutcome:
        verdict = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
        if verdict == "begun":
            return Begun(token)
        if verdict == "replay":
            return self._seal.open(rid, bytes(reply[1]))
        return Mismatch() if verdict == "mismatch" else InFlight()

    def _key(self, scope: str, key: str) -> str:
        return self._prefix + _record_id(scope, key)


def _ms(delta: timedelta) -> int:
    return max(1, int(delta.total_seconds() * 1000))


def idempotency_store(
    engine: Engine,
    redis_client: redis.Redis | None,
    keyring: Keyring,
    *,
    async_client: redis.asyncio.Redis | None = None,
) -> IdempotencyStore:
    """Redis when the deployment has one, else the store (as :func:`seen_store`).

    ``async_client``: the same Redis through ``redis.asyncio``, for the gateway.
    """
    seal = ResponseSeal.load(engine, keyring)
    if redis_client is not None:
        return RedisIdempotency(redis_client, seal, async_client=async_client)
    return SqlIdempotency(engine, seal)
