"""Revoked token ids and revoked clients, in the store so every replica sees them.

Each replica keeps a mirror of the (small) set of revoked ``jti`` values and
reloads it from the store at most ``sync_seconds`` after the last load, so a
revocation made on any replica takes effect everywhere within that interval,
and at once on the replica that recorded it. With Redis configured, a
revocation is also published on a channel every replica listens to, so it
takes effect everywhere at once; the store stays the record (a replica that
missed a message still catches up at its next reload). The set stays small:
an entry is purged once the token it names could not pass any verifier anyway,
its ``exp`` plus the longest clock leeway (``MAX_LEEWAY``) after which no
verifier accepts it.

A client can be revoked as a whole (``interlock clients revoke``, the kill
switch): every token issued to it at or before that moment is revoked, with
no need to know their ids. The per-client moments are mirrored, reloaded and
announced the same way, and kept while such a token could still be unexpired.
A token's ``iat`` has whole seconds, so a token issued in the same second
after the revocation is refused too (fail closed).
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Final

import redis
import redis.client
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from interlock.clock import Clock, utc_now
from interlock.logs import get_logger
from interlock.oauth.lifetimes import MAX_LEEWAY, MAX_LIFETIME
from interlock.oauth.tables import RevokedClientRow, RevokedTokenRow
from interlock.store.base import as_utc, table_of

__all__ = ["RevokedTokens"]

_TABLE = table_of(RevokedTokenRow)
_CLIENTS = table_of(RevokedClientRow)
CHANNEL = "interlock:oauth:revoked"
CLIENT_CHANNEL = "interlock:oauth:revoked-clients"
# Tokens live at most MAX_LIFETIME and pass a verifier until exp + its leeway (at most
# MAX_LEEWAY): after that no token issued before a revocation can pass.
CLIENT_REVOCATION_KEPT: Final = MAX_LIFETIME + MAX_LEEWAY
_log = get_logger("interlock.oauth.revoked")


def _keep_listening(
    error: BaseException, _pubsub: object, _thread: redis.client.PubSubWorkerThread
) -> None:
    """Keep the listener alive through a Redis outage or failover.

    Without a handler the worker thread dies on the first connection error, and
    this replica would hear no other replica's revocation until it restarts
    (it still reads them from the store at its next reload). The next
    ``get_message`` reconnects (to the new master, behind Sentinel) and
    re-subscribes; the pause keeps a Redis that is down from spinning the loop.
    """
    if not isinstance(error, redis.RedisError):
        raise error
    _log.warning("revocation listener lost Redis; reconnecting", error=type(error).__name__)
    time.sleep(0.5)


class RevokedTokens:
    """``jti`` values of revoked access tokens, kept until no verifier accepts the tokens."""

    def __init__(
        self,
        engine: Engine,
        sync_seconds: float = 1.0,
        redis_client: redis.Redis | None = None,
        *,
        now: Clock = utc_now,
        listen: bool = True,
    ) -> None:
        """Bind to the store; reload the mirror at most ``sync_seconds`` after the last load.

        With ``redis_client``, revocations are also announced to (and heard from)
        the other replicas at once (``listen=False``: announce only, for a command
        that records a revocation and exits). ``now`` stamps revocations and
        decides which have outlived their token; the mirror's age is monotonic time.
        """
        self._engine = engine
        self._now = now
        self._sync_seconds = sync_seconds
        self._mirror: frozenset[str] = frozenset()
        self._clients: dict[str, float] = {}  # client -> revoked up to (POSIX seconds)
        self._loaded = float("-inf")
        self._lock = threading.Lock()
        self._redis = redis_client
        self._listener: redis.client.PubSubWorkerThread | None = None
        if redis_client is not None and listen:
            pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(**{CHANNEL: self._heard, CLIENT_CHANNEL: self._heard_client})
            self._listener = pubsub.run_in_thread(
                sleep_time=0.25, daemon=True, exception_handler=_keep_listening
            )

    def close(self) -> None:
        """Stop listening for other replicas' revocations."""
        if self._listener is not None:
            self._listener.stop()
            self._listener.join(timeout=2)  # it closes its connection on the way out
            self._listener = None

    def _heard(self, message: dict[str, object]) -> None:
        data = message.get("data")
        if isinstance(data, bytes) and 0 < len(data) <= 64:
            with self._lock:
                self._mirror = self._mirror | {data.decode("ascii", "replace")}

    def _heard_client(self, message: dict[str, object]) -> None:
        data = message.get("data")
        if not isinstance(data, bytes) or len(data) > 128:
            return
        client, _, moment = data.decode("ascii", "replace").partition(" ")
        try:
            until = float(moment)
        except ValueError:
            return
        with self._lock:
            self._clients = {**self._clients, client: max(until, self._clients.get(client, 0.0))}

    def add(self, jti: str, client: str, expires_at: datetime) -> None:
        """Record a revocation (idempotent); visible to this replica at once."""
        try:
            with self._engine.begin() as connection:
                connection.execute(
                    _TABLE.insert().values(
                        jti=jti, client=client, expires_at=expires_at, revoked_at=self._now()
                    )
                )
        except IntegrityError:
            pass  # already revoked
        with self._lock:
            self._mirror = self._mirror | {jti}
        if self._redis is not None:
            try:
                self._redis.publish(CHANNEL, jti.encode("ascii"))
            except redis.RedisError as exc:
                # Recorded in the store all the same: other replicas see it at their next reload.
                _log.warning("revocation not announced over Redis", error=str(exc))

    def revoke_client(self, client: str, *, ahead: timedelta = timedelta(0)) -> datetime:
        """Revoke every token issued to ``client`` until now plus ``ahead``; returns that moment.

        ``ahead`` covers tokens still to come: a credential of the client that was
        just revoked can still be honoured for a while somewhere (a cache), and
        what it mints then must fall under the cut too. Visible to this replica at
        once, to the others at once over Redis or at their next reload. Revoking
        again moves the moment forward.
        """
        moment = self._now() + ahead
        with self._engine.begin() as connection:
            changed = connection.execute(
                update(_CLIENTS).where(_CLIENTS.c.client == client).values(revoked_before=moment)
            ).rowcount
            if not changed:
                connection.execute(_CLIENTS.insert().values(client=client, revoked_before=moment))
        until = moment.timestamp()
        with self._lock:
            self._clients = {**self._clients, client: max(until, self._clients.get(client, 0.0))}
        if self._redis is not None:
            try:
                self._redis.publish(CLIENT_CHANNEL, f"{client} {until!r}".encode("ascii"))
            except redis.RedisError as exc:
                _log.warning("client revocation not announced over Redis", error=str(exc))
        return moment

    def contains(
        self, jti: str | None, client: str | None = None, issued_at: float | None = None
    ) -> bool:
        """Whether the token is revoked: its ``jti``, or its client since it was issued.

        Reloads the mirror when it is stale.
        """
        if time.monotonic() - self._loaded >= self._sync_seconds:  # as known() would say
            self.reload()
        return self._revoked(jti, client, issued_at)

    def known(
        self, jti: str | None, client: str | None = None, issued_at: float | None = None
    ) -> bool | None:
        """As :meth:`contains` per a fresh mirror, or ``None`` when it is stale (no I/O)."""
        if time.monotonic() - self._loaded >= self._sync_seconds:
            return None
        return self._revoked(jti, client, issued_at)

    def _revoked(self, jti: str | None, client: str | None, issued_at: float | None) -> bool:
        if jti is not None and jti in self._mirror:
            return True
        if client is None:
            return False
        until = self._clients.get(client)
        # A token without an iat cannot show it came after the revocation.
        return until is not None and (issued_at is None or issued_at <= until)

    def reload(self) -> None:
        """Load the revoked ids of tokens a verifier may still accept, and revoked clients."""
        started = time.monotonic()
        now = self._now()
        with self._lock:
            mirror, revoked_clients = self._mirror, self._clients  # as before the query
        with self._engine.connect() as connection:
            rows = connection.execute(
                select(_TABLE.c.jti).where(_TABLE.c.expires_at > _utc(now - MAX_LEEWAY))
            ).all()
            clients = connection.execute(
                select(_CLIENTS.c.client, _CLIENTS.c.revoked_before).where(
                    _CLIENTS.c.revoked_before > _utc(now - CLIENT_REVOCATION_KEPT)
                )
            ).all()
        loaded = {row.client: as_utc(row.revoked_before).timestamp() for row in clients}
        with self._lock:
            # What add() or Redis put in while the query ran may be missing from its
            # rows; replacing the mirror would drop it until the next reload. Keep it.
            self._mirror = frozenset(row.jti for row in rows) | (self._mirror - mirror)
            for client, until in self._clients.items():
                if revoked_clients.get(client) != until:
                    loaded[client] = max(until, loaded.get(client, 0.0))
            self._clients = loaded
            self._loaded = started

    def purge(self, now: datetime) -> int:
        """Forget revocations of tokens no verifier accepts any more (expired, leeway and all)."""
        with self._engine.begin() as connection:
            result = connection.execute(
                delete(_TABLE).where(_TABLE.c.expires_at <= _utc(now - MAX_LEEWAY))
            )
            connection.execute(
                delete(_CLIENTS).where(
                    _CLIENTS.c.revoked_before <= _utc(now - CLIENT_REVOCATION_KEPT)
                )
            )
        return int(result.rowcount or 0)


def _utc(moment: datetime) -> datetime:
    # Stored times are UTC (SQLite keeps them naive), so compare in UTC.
    return moment.astimezone(UTC)
