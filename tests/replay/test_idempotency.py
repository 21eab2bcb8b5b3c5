"""Idempotency-Key records: every transition on every backend, races and replicas."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Final

import pytest
import redis
import redis.asyncio
from sqlalchemy import create_engine, select
from structlog.testing import capture_logs

from interlock.config.settings import Settings
from interlock.crypto import Keyring, needs_rewrap
from interlock.gateway.problems import REFUSALS
from interlock.replay.idempotency import (
    Begun,
    IdempotencyStore,
    IdempotencyUnavailableError,
    InFlight,
    MemoryIdempotency,
    Mismatch,
    RedisIdempotency,
    Replay,
    ResponseSeal,
    SqlIdempotency,
    StoredResponse,
    Unreadable,
    fingerprint,
    idempotency_store,
)
from interlock.replay.tables import IdempotencyRow
from interlock.store import Deployment, initialise, rewrap_all
from interlock.store.base import table_of
from interlock.tables import sealed_columns
from interlock.testing.services import REDIS
from tests.conftest import need
from tests.replay.conftest import Backend


def _seal(deployment: Deployment) -> ResponseSeal:
    return ResponseSeal.load(deployment.engine, deployment.keyring)


TTL = timedelta(hours=1)
LEASE = timedelta(minutes=1)
FP = fingerprint("POST", "/orders", b'{"n": 1}')
OTHER_FP = fingerprint("POST", "/orders", b'{"n": 2}')
CREATED = StoredResponse(201, (("Content-Type", "application/json"),), b'{"id": 7}')


@pytest.fixture
def seal(tmp_path: Path) -> ResponseSeal:
    """Sealing with a keyring made for the test, fingerprints keyed with a key of its own."""
    return ResponseSeal(Keyring.create(tmp_path / "seal-keyring.json"), secrets.token_bytes(32))


@pytest.fixture
def store(backend: Backend, seal: ResponseSeal) -> IdempotencyStore:
    """The store on each backend."""
    if backend.engine is not None:
        return SqlIdempotency(backend.engine, seal)
    if backend.client is not None:
        return RedisIdempotency(backend.client, seal, prefix=backend.prefix)
    return MemoryIdempotency()


def _begin(store: IdempotencyStore, key: str = "k1", fp: str = FP, scope: str = "a") -> object:
    return store.begin(scope, key, fp, TTL, LEASE)


def _token(outcome: object) -> str:
    assert isinstance(outcome, Begun)
    return outcome.token


def test_first_request_begins_and_a_retry_in_flight_is_in_flight(store: IdempotencyStore) -> None:
    """The first use of a key claims it; the same request meanwhile is told to wait (409)."""
    _token(_begin(store))
    assert _begin(store) == InFlight()


def test_completed_request_is_replayed(store: IdempotencyStore) -> None:
    """After completion the same request gets the stored response back, every time."""
    token = _token(_begin(store))
    store.complete("a", "k1", token, CREATED)
    assert _begin(store) == Replay(CREATED)
    assert _begin(store) == Replay(CREATED)


def test_another_payload_is_a_mismatch_in_flight_and_after(store: IdempotencyStore) -> None:
    """The same key with another fingerprint is a mismatch (422), in flight or completed."""
    token = _token(_begin(store))
    assert _begin(store, fp=OTHER_FP) == Mismatch()
    store.complete("a", "k1", token, CREATED)
    assert _begin(store, fp=OTHER_FP) == Mismatch()


def test_abandoned_request_can_be_retried(store: IdempotencyStore) -> None:
    """Abandoning (the request failed) forgets the key: the retry is processed afresh."""
    token = _token(_begin(store))
    store.abandon("a", "k1", token)
    _token(_begin(store, fp=OTHER_FP))


def test_a_stale_token_can_neither_complete_nor_abandon(store: IdempotencyStore) -> None:
    """Only the current holder changes the record."""
    token = _token(_begin(store))
    store.complete("a", "k1", "0" * 32, CREATED)
    store.abandon("a", "k1", "0" * 32)
    assert _begin(store) == InFlight()
    store.complete("a", "k1", token, CREATED)
    store.abandon("a", "k1", token)  # completed records are not abandoned
    assert _begin(store) == Replay(CREATED)


def test_keys_are_scoped(store: IdempotencyStore) -> None:
    """Two clients (scopes) may use the same key independently."""
    _token(_begin(store, scope="client-a|POST /orders"))
    _token(_begin(store, scope="client-b|POST /orders"))


def test_a_response_too_large_to_keep_is_replayed_without_body(store: IdempotencyStore) -> None:
    """A record completed without its body says so on replay."""
    token = _token(_begin(store))
    kept = StoredResponse(201, (), None)
    store.complete("a", "k1", token, kept)
    assert _begin(store) == Replay(kept)


def test_records_expire(store: IdempotencyStore) -> None:
    """After the ttl the key is forgotten (draft §2.3), even with another payload."""
    token = _token(store.begin("a", "k1", FP, timedelta(milliseconds=200), LEASE))
    store.complete("a", "k1", token, CREATED)
    time.sleep(0.3)
    _token(_begin(store, fp=OTHER_FP))


def test_a_lapsed_lease_is_taken_over(store: IdempotencyStore) -> None:
    """A replica that died mid-request does not block the key until expiry."""
    first = _token(store.begin("a", "k1", FP, TTL, timedelta(milliseconds=100)))
    time.sleep(0.2)
    second = _token(_begin(store))
    assert second != first
    store.complete("a", "k1", first, StoredResponse(500, (), b"late"))  # ignored
    store.complete("a", "k1", second, CREATED)
    assert _begin(store) == Replay(CREATED)


def test_racing_callers_begin_exactly_once(store: IdempotencyStore) -> None:
    """Sixteen threads present the same key at once: one processes, the others wait."""
    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(lambda _: _begin(store, key="race"), range(16)))
    assert sum(isinstance(o, Begun) for o in outcomes) == 1
    assert sum(o == InFlight() for o in outcomes) == 15


def test_two_sql_replicas_share_records(deployment: Deployment) -> None:
    """Two engines on the same database (two replicas): one begins, the other replays."""
    url = deployment.engine.url.render_as_string(hide_password=False)
    other = create_engine(url)
    try:
        first, second = (
            SqlIdempotency(deployment.engine, _seal(deployment)),
            SqlIdempotency(other, _seal(deployment)),
        )
        token = _token(_begin(first))
        assert _begin(second) == InFlight()
        assert _begin(second, fp=OTHER_FP) == Mismatch()
        first.complete("a", "k1", token, CREATED)
        assert _begin(second) == Replay(CREATED)
    finally:
        other.dispose()


def test_two_sql_replicas_race_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """Threads split over two engines on PostgreSQL: the primary key admits one."""
    deployment = initialise(Settings(data_dir=tmp_path / "data", database_url=postgres_url))
    other = create_engine(postgres_url)
    try:
        replicas = (
            SqlIdempotency(deployment.engine, _seal(deployment)),
            SqlIdempotency(other, _seal(deployment)),
        )
        with ThreadPoolExecutor(16) as pool:
            outcomes = list(pool.map(lambda i: _begin(replicas[i % 2], key="race"), range(16)))
        assert sum(isinstance(o, Begun) for o in outcomes) == 1
    finally:
        other.dispose()
        deployment.close()


@pytest.mark.redis
def test_two_redis_replicas_share_records(seal: ResponseSeal) -> None:
    """Two Redis clients (two replicas): one begins, the other waits, then replays."""
    url = need(REDIS)
    prefix = f"test:{uuid.uuid4().hex}:"
    one, two = redis.Redis.from_url(url), redis.Redis.from_url(url)
    try:
        first, second = RedisIdempotency(one, seal, prefix), RedisIdempotency(two, seal, prefix)
        token = _token(_begin(first))
        assert _begin(second) == InFlight()
        first.complete("a", "k1", token, CREATED)
        assert _begin(second) == Replay(CREATED)
        assert _begin(second, fp=OTHER_FP) == Mismatch()
    finally:
        one.close()
        two.close()


def test_every_transition_on_the_event_loop_matches_the_threaded_one(
    backend: Backend, seal: ResponseSeal
) -> None:
    """The ``..._async`` methods the gateway awaits (Redis through redis.asyncio, issue 28)."""

    async def transitions() -> None:
        client = redis.asyncio.Redis.from_url(need(REDIS)) if backend.client else None
        store: IdempotencyStore
        if backend.engine is not None:
            store = SqlIdempotency(backend.engine, seal)
        elif backend.client is not None:
            store = RedisIdempotency(backend.client, seal, backend.prefix, async_client=client)
        else:
            store = MemoryIdempotency()
        try:
            begun = await store.begin_async("a", "k1", FP, TTL, LEASE)
            token = _token(begun)
            assert await store.begin_async("a", "k1", FP, TTL, LEASE) == InFlight()
            assert await store.begin_async("a", "k1", OTHER_FP, TTL, LEASE) == Mismatch()
            await store.complete_async("a", "k1", token, CREATED)
            assert await store.begin_async("a", "k1", FP, TTL, LEASE) == Replay(CREATED)
            assert _begin(store) == Replay(CREATED)  # one record, whichever path wrote it
            other = _token(await store.begin_async("a", "k2", FP, TTL, LEASE))
            await store.abandon_async("a", "k2", other)
            _token(await store.begin_async("a", "k2", OTHER_FP, TTL, LEASE))
        finally:
            if client is not None:
                await client.aclose()

    asyncio.run(transitions())


def test_redis_unreachable_is_a_503_refusal_on_both_paths(seal: ResponseSeal) -> None:
    """Fail closed with 503 ``idempotency-store-unavailable`` (was: a ConnectionError, 500)."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sync = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)

    async def on_the_loop() -> None:
        client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
        store = RedisIdempotency(sync, seal, async_client=client)
        try:
            with pytest.raises(IdempotencyUnavailableError):
                await store.begin_async("a", "k1", FP, TTL, LEASE)
            with pytest.raises(IdempotencyUnavailableError):
                await store.complete_async("a", "k1", "0" * 32, CREATED)
        finally:
            await client.aclose()

    try:
        with pytest.raises(IdempotencyUnavailableError) as refused:
            _begin(RedisIdempotency(sync, seal))
        assert refused.value.code == "idempotency-store-unavailable"
        assert REFUSALS[refused.value.code].status == 503
        asyncio.run(on_the_loop())
    finally:
        sync.close()


def test_only_hashes_are_stored(deployment: Deployment) -> None:
    """Neither the client's key nor its scope reaches the table (draft §5)."""
    SqlIdempotency(deployment.engine, _seal(deployment)).begin(
        "client-x", "distinctive-key", FP, TTL, LEASE
    )
    with deployment.engine.connect() as connection:
        rows = list(connection.execute(select(table_of(IdempotencyRow))))
    assert len(rows) == 1
    assert "distinctive" not in rows[0].id
    assert "client-x" not in rows[0].id


def test_purge_deletes_expired_records(deployment: Deployment) -> None:
    """Purging removes what has expired and keeps the rest."""
    records = SqlIdempotency(deployment.engine, _seal(deployment))
    records.begin("a", "old", FP, timedelta(milliseconds=50), LEASE)
    records.begin("a", "new", FP, TTL, LEASE)
    time.sleep(0.1)
    assert records.purge() == 1
    assert _begin(records, key="new") == InFlight()


def test_fingerprint_covers_method_target_and_body() -> None:
    """Any of the three changing changes the fingerprint."""
    base = fingerprint("POST", "/orders", b"x")
    assert base != fingerprint("PATCH", "/orders", b"x")
    assert base != fingerprint("POST", "/orders?a=1", b"x")
    assert base != fingerprint("POST", "/orders", b"y")
    assert base == fingerprint("POST", "/orders", b"x")


@pytest.mark.redis
def test_backend_follows_configuration(deployment: Deployment) -> None:
    """Redis when a URL is configured, the store otherwise."""
    keyring = deployment.keyring
    assert isinstance(idempotency_store(deployment.engine, None, keyring), SqlIdempotency)
    client = redis.Redis.from_url(need(REDIS))
    assert isinstance(idempotency_store(deployment.engine, client, keyring), RedisIdempotency)
    client.close()


PERSONAL = StoredResponse(
    201, (("Content-Type", "application/json"),), b'{"email": "ada.lovelace@example.com"}'
)


def _at_rest(backend: Backend) -> bytes:
    """Every stored byte of every record, as a dump of the database or Redis would show."""
    if backend.engine is not None:
        with backend.engine.connect() as connection:
            rows = connection.execute(select(table_of(IdempotencyRow))).all()
        return b"".join(bytes(r.response or b"") + repr(r).encode() for r in rows)
    assert backend.client is not None
    dump = b""
    for key in backend.client.scan_iter(match=backend.prefix + "*"):
        fields: dict[bytes, bytes] = backend.client.hgetall(key)  # type: ignore[assignment]
        dump += bytes(key) + b"".join(name + value for name, value in fields.items())
    return dump


# The memory store keeps nothing outside the process: nothing to seal there.
@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"], indirect=True)
def test_stored_responses_are_sealed_at_rest(backend: Backend, store: IdempotencyStore) -> None:
    """An upstream's answer (personal data) is not in a dump of the store or Redis, in clear
    or in the base64 the record used to hold; it still replays."""
    token = _token(_begin(store))
    store.complete("a", "k1", token, PERSONAL)
    dump = _at_rest(backend)
    assert b"ada.lovelace" not in dump
    assert base64.b64encode(PERSONAL.body or b"")[:24] not in dump
    assert b"application/json" not in dump
    assert _begin(store) == Replay(PERSONAL)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
def test_a_sealed_response_moved_to_another_record_is_not_replayed(
    backend: Backend, store: IdempotencyStore
) -> None:
    """Each sealed response is bound to its record: copied onto another client's record it
    does not open, and that request is refused as processed (never re-run, never leaked)."""
    assert backend.engine is not None
    victim = _token(_begin(store, scope="victim"))
    store.complete("victim", "k1", victim, PERSONAL)
    attacker = _token(_begin(store, scope="attacker"))
    store.complete("attacker", "k1", attacker, CREATED)
    table = table_of(IdempotencyRow)
    victim_id = hashlib.sha256(b"victim\0k1").hexdigest()
    with backend.engine.begin() as connection:
        blob = connection.execute(
            select(table.c.response).where(table.c.id == victim_id)
        ).scalar_one()
        connection.execute(table.update().where(table.c.id != victim_id).values(response=blob))
    assert _begin(store, scope="attacker") == Unreadable()
    assert _begin(store, scope="victim") == Replay(PERSONAL)


def test_a_record_kept_in_clear_by_an_earlier_release_is_not_replayed(
    deployment: Deployment,
) -> None:
    """A completed record written before sealing (clear JSON) is refused as processed."""
    records = SqlIdempotency(deployment.engine, _seal(deployment))
    token = _token(_begin(records))
    table = table_of(IdempotencyRow)
    with deployment.engine.begin() as connection:
        connection.execute(
            table.update().values(state="completed", response=CREATED.encode(), token=token)
        )
    with capture_logs() as logs:
        assert _begin(records) == Unreadable()
    assert [e["event"] for e in logs] == ["idempotency_record_unreadable"]


def test_sealed_responses_follow_a_key_rotation(deployment: Deployment) -> None:
    """The column is registered for re-wrapping: after ``keyring rotate`` and a re-wrap the
    record is under the new KEK version and still replays."""
    records = SqlIdempotency(deployment.engine, _seal(deployment))
    token = _token(_begin(records))
    records.complete("a", "k1", token, PERSONAL)
    deployment.keyring.rotate()
    report = rewrap_all(deployment.engine, deployment.keyring, sealed_columns())
    assert report.rewrapped >= 1
    with deployment.engine.connect() as connection:
        (blob,) = connection.execute(select(table_of(IdempotencyRow).c.response)).one()
    assert not needs_rewrap(deployment.keyring, bytes(blob))
    assert _begin(records) == Replay(PERSONAL)


def _stored_fingerprints(backend: Backend) -> list[str]:
    if backend.engine is not None:
        with backend.engine.connect() as connection:
            return list(
                connection.execute(select(table_of(IdempotencyRow).c.fingerprint)).scalars()
            )
    assert backend.client is not None
    keys = backend.client.scan_iter(match=backend.prefix + "*")
    return [bytes(backend.client.hget(key, "fp") or b"").decode() for key in keys]  # type: ignore[arg-type]


def _write_fingerprint(backend: Backend, value: str) -> None:
    """Overwrite every record's fingerprint, as an earlier release would have written it."""
    if backend.engine is not None:
        with backend.engine.begin() as connection:
            connection.execute(table_of(IdempotencyRow).update().values(fingerprint=value))
        return
    assert backend.client is not None
    for key in backend.client.scan_iter(match=backend.prefix + "*"):
        backend.client.hset(key, "fp", value)


PERSONAL_BODY = b'{"iban": "DE89370400440532013000", "email": "jane.doe@example.com"}'


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"], indirect=True)
def test_stored_fingerprints_are_keyed_not_plain_hashes(
    backend: Backend, store: IdempotencyStore
) -> None:
    """A dump and a list of candidate bodies no longer recover the personal data in a body.

    The fingerprint at rest was a plain SHA-256 of method, target and body: hashing
    guesses found jane.doe@example.com. It is now an HMAC under a key sealed by the
    keyring, so without the keyring nothing can be recomputed.
    """
    plain = fingerprint("POST", "/x/pay/1001", PERSONAL_BODY)
    _token(store.begin("a", "k1", plain, TTL, LEASE))
    stored = _stored_fingerprints(backend)
    assert len(stored) == 1
    assert stored[0] != plain
    assert stored[0].startswith("hmac-sha256:")
    assert plain.encode() not in _at_rest(backend)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "redis"], indirect=True)
def test_a_record_with_an_unkeyed_fingerprint_still_knows_its_retry(
    backend: Backend, store: IdempotencyStore
) -> None:
    """Records an earlier release wrote (plain SHA-256) live out their ttl unchanged in meaning:
    the same request is in flight, then replayed; another request is still a mismatch. No
    retry conflicts with its own record (422) because of the upgrade."""
    token = _token(_begin(store))
    _write_fingerprint(backend, FP)
    assert _begin(store) == InFlight()
    assert _begin(store, fp=OTHER_FP) == Mismatch()
    store.complete("a", "k1", token, CREATED)
    assert _begin(store) == Replay(CREATED)
    assert _begin(store, fp=OTHER_FP) == Mismatch()


CALLER_KEY: Final = "order-2026-12-06-0001"
OTHER_KEY: Final = "order-2026-12-06-0002"


def test_upstream_keys_are_per_scope_and_key_and_stable(store: IdempotencyStore) -> None:
    """The Idempotency-Key sent upstream: one per (client and route, key), the same every time,
    an sf-string that shows neither the caller's key nor its scope.

    The caller's keys are long: a two-letter one appears by chance in about one
    derived key in a hundred (43 random base64url characters).
    """
    key = store.upstream_key("client-a\0POST /pay", CALLER_KEY)
    assert key == store.upstream_key("client-a\0POST /pay", CALLER_KEY)
    assert key != store.upstream_key("client-b\0POST /pay", CALLER_KEY)
    assert key != store.upstream_key("client-a\0POST /refund", CALLER_KEY)
    assert key != store.upstream_key("client-a\0POST /pay", OTHER_KEY)
    assert re.fullmatch(r'"[A-Za-z0-9_-]{43}"', key)
    assert CALLER_KEY not in key
    assert "client" not in key


def test_replicas_derive_the_same_keys(deployment: Deployment) -> None:
    """The key is a sealed setting of the deployment: every replica (every process) agrees on
    the upstream key and on the fingerprint at rest."""
    one = idempotency_store(deployment.engine, None, deployment.keyring)
    two = idempotency_store(deployment.engine, None, deployment.keyring)
    assert one.upstream_key("s", "k") == two.upstream_key("s", "k")
    _token(_begin(one))
    assert _begin(two) == InFlight()
