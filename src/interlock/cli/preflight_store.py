"""The preflight's checks of the databases, Redis and what the store holds (see cli.preflight).

Read-only like the rest: a database is connected to and asked, never migrated
or given a table; a SQLite file that is not there is reported, not created.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

import redis
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from interlock.audit.entry import AuditEntry
from interlock.audit.schema import missing_tables
from interlock.cli.preflight import Check, Status, failed, ok
from interlock.clock import Clock
from interlock.config.settings import Settings
from interlock.config.urls import masked_url
from interlock.crypto import Keyring
from interlock.errors import InterlockError
from interlock.pki.authority import Pki
from interlock.secrets.rotation import overdue
from interlock.secrets.vault import Vault
from interlock.store.deployment import verify_binding
from interlock.store.engine import create_store_engine, is_sqlite
from interlock.store.migrate import current_revision, head_revision, pending_revisions
from interlock.store.redis_client import connect_redis

__all__ = [
    "EXPIRY_WINDOW",
    "SKEW_FAIL",
    "SKEW_WARN",
    "audit_schema_check",
    "binding_check",
    "certificates_check",
    "clock_skew_check",
    "database",
    "migrations_check",
    "redis_check",
    "rotation_check",
]

#: Certificates in use that expire within this are reported (``pki list --expiring 14d``).
EXPIRY_WINDOW: Final = timedelta(days=14)
#: Clock skew against PostgreSQL: a warning from 1 s, a failure from 30 s (tokens, leases
#: and rotations are dated by the gateway's clock and compared with the store's rows).
SKEW_WARN: Final = timedelta(seconds=1)
SKEW_FAIL: Final = timedelta(seconds=30)
_CONNECT_SECONDS: Final = 5


@contextmanager
def database(
    name: str, url: str, *, made_at_start: bool = False
) -> Iterator[tuple[Check, Engine | None]]:
    """Reach the database at ``url``: its check, and an engine when it answered (disposed after).

    ``made_at_start``: a missing SQLite file is a warning, not a failure (the
    audit log's is created by the first start or recorded command).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():  # connecting would create an empty file
            if made_at_start:
                detail = f"no database at {path} yet"
                hint = "the first `interlock serve` (or recorded command) creates it"
                yield Check(name, "warn", detail, hint), None
            else:
                hint = "run `interlock init` (or set INTERLOCK_DATA_DIR)"
                yield Check(name, "fail", f"no database at {path}", hint, "not_initialised"), None
            return
        shown = f"sqlite {path}"
        engine = create_store_engine(url)
    else:
        # The role and where, never a query value (a password there is refused by the
        # settings; whatever else it holds is not shown either).
        shown = masked_url(parsed.render_as_string(hide_password=True), user=True)
        engine = create_store_engine(url, connect_args={"connect_timeout": _CONNECT_SECONDS})
    try:
        started = time.perf_counter()
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        took = (time.perf_counter() - started) * 1000
    except SQLAlchemyError as exc:
        engine.dispose()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        hint = "start it, or fix the URL (host, port, database name, .pgpass)"
        yield Check(name, "fail", f"{shown} is unreachable: {reason}", hint, "store_error"), None
        return
    try:
        yield ok(name, f"{shown} answered in {took:.0f} ms"), engine
    finally:
        engine.dispose()


def migrations_check(engine: Engine) -> Check:
    """The main store's Alembic revision against this release's newest."""
    name = "migrations"
    try:
        current = current_revision(engine)
        pending = pending_revisions(current)
    except InterlockError as exc:
        return failed(name, exc, "run the release that migrated the store, or restore a backup")
    if current is None:
        detail = "the store has no schema"
        return Check(name, "fail", detail, "run `interlock init`", "not_initialised")
    if pending:
        detail = f"store at {current}, {len(pending)} migration(s) pending up to {head_revision()}"
        return Check(name, "warn", detail, "run `interlock migrate` (serve applies them at start)")
    return ok(name, f"store at {current} (this release's newest)")


def audit_schema_check(engine: Engine) -> Check:
    """The audit database has every table (the first start creates them, given DDL rights)."""
    name = "audit-schema"
    try:
        missing = missing_tables(engine)
    except SQLAlchemyError as exc:
        return Check(name, "fail", f"cannot list the audit tables: {type(exc).__name__}")
    if missing:
        detail = f"the audit database lacks {', '.join(missing)}"
        return Check(name, "warn", detail, "start once with a role that may create tables")
    return ok(name, "every audit table is present")


def binding_check(engine: Engine, keyring: Keyring) -> tuple[Check, str | None]:
    """The keyring is the one the store was created with (its canary opens); the deployment id."""
    name = "store-binding"
    try:
        deployment_id = verify_binding(engine, keyring)
    except InterlockError as exc:
        hint = "point INTERLOCK_DATA_DIR and INTERLOCK_DATABASE_URL at one deployment"
        return failed(name, exc, hint), None
    return ok(name, f"keyring {keyring.keyring_id} owns deployment {deployment_id}"), deployment_id


def certificates_check(pki: Pki) -> Check:
    """Certificates in use that expire within :data:`EXPIRY_WINDOW` (``pki list --expiring``)."""
    name = "certificates"
    due = pki.due_for_renewal(EXPIRY_WINDOW)
    if not due:
        return ok(name, f"none in use expires within {EXPIRY_WINDOW.days} days")
    now = pki.now()
    listed = ", ".join(f"{i.kind} {i.name} {i.serial} ({_left(i.not_after, now)})" for i in due)
    hint = f"renew them: `interlock pki renew --within {EXPIRY_WINDOW.days}d --out DIR`"
    return Check(
        name, "warn", f"{len(due)} expire within {EXPIRY_WINDOW.days} days: {listed}", hint
    )


def _left(not_after: datetime, now: datetime) -> str:
    days = (not_after - now).days
    return f"expired {-days} days ago" if not_after <= now else f"{days} days left"


class _RecordsNothing:
    """The vault's audit sink while the doctor lists metadata: listing records nothing,
    and if anything ever tried, it is refused rather than lost."""

    def record(self, entry: AuditEntry) -> int:
        raise InterlockError(f"the doctor records nothing ({entry.action})")

    async def record_async(self, entry: AuditEntry) -> int:
        raise InterlockError(f"the doctor records nothing ({entry.action})")

    def record_later(self, entry: AuditEntry) -> None:
        raise InterlockError(f"the doctor records nothing ({entry.action})")


def rotation_check(engine: Engine, keyring: Keyring, now: Clock) -> Check:
    """Secrets past their maximum age (``secrets overdue``)."""
    name = "secret-rotation"
    vault = Vault(engine, keyring, audit=_RecordsNothing(), cache_seconds=0, now=now)
    late = overdue(vault, vault.now())
    if not late:
        return ok(name, "no secret is overdue for rotation")
    listed = ", ".join(f"secret://{info.name}" for info in late)
    hint = "`interlock secrets rotate --due` (or `secrets put` a new value)"
    return Check(name, "warn", f"{len(late)} overdue: {listed}", hint)


def redis_check(settings: Settings) -> Check:
    """Redis answers PING when ``INTERLOCK_REDIS_URL`` is set (the gateway's own client)."""
    name = "redis"
    client = connect_redis(settings)
    if client is None:
        return Check(name, "skip", "not configured (INTERLOCK_REDIS_URL unset)")
    try:
        started = time.perf_counter()
        client.ping()
        took = (time.perf_counter() - started) * 1000
    except redis.RedisError as exc:
        detail = f"no answer: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        return Check(name, "fail", detail, "start Redis, or fix INTERLOCK_REDIS_URL")
    finally:
        client.close()
    return ok(name, f"PONG in {took:.0f} ms")


def clock_skew_check(engine: Engine, now: Clock) -> Check:
    """PostgreSQL's ``now()`` against this host's clock (half the round trip is the margin)."""
    name = "clock-skew"
    if is_sqlite(engine):
        return Check(name, "skip", "embedded: same clock")
    try:
        with engine.connect() as connection:
            before = now()
            theirs = connection.execute(text("SELECT now()")).scalar_one()
            after = now()
    except SQLAlchemyError as exc:
        return Check(name, "fail", f"cannot ask the store's time: {type(exc).__name__}")
    ours = before + (after - before) / 2
    skew = theirs - ours
    margin = (after - before) / 2
    shown = f"{skew.total_seconds():+.3f} s (±{margin.total_seconds():.3f} s)"
    size = abs(skew) - margin
    if size < SKEW_WARN:
        return ok(name, f"store's clock {shown}")
    hint = "synchronise both hosts with NTP (chrony, systemd-timesyncd)"
    status: Status = "fail" if size >= SKEW_FAIL else "warn"
    return Check(name, status, f"store's clock is off by {shown}", hint)
