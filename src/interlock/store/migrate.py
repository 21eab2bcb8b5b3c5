"""Apply the store's Alembic migrations programmatically.

Migrations run automatically at ``interlock init`` and at every start, so an
upgraded binary never runs against an old schema. On PostgreSQL several
replicas may start at once: a transaction-level advisory lock makes exactly one
of them migrate while the others wait, then find nothing left to do.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util.exc import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from interlock.errors import StoreError

__all__ = ["current_revision", "downgrade", "head_revision", "pending_revisions", "upgrade"]

# An arbitrary, fixed 64-bit key for pg_advisory_xact_lock ("ILK-MIGR").
_ADVISORY_LOCK_KEY: Final = 0x494C4B2D4D494752


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("interlock.store") / "migrations"))
    return config


def head_revision() -> str:
    """The newest revision this release ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise StoreError("the release ships no migrations")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or ``None`` for an empty database."""
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema version: {_describe(exc)}") from exc


def pending_revisions(current: str | None) -> list[str]:
    """The revisions ``upgrade`` would apply to a store at ``current``, oldest first.

    :class:`StoreError` if ``current`` is no revision of this release (a newer
    release migrated the store: this one must not serve it).
    """
    script = ScriptDirectory.from_config(_config())
    try:
        walked = list(script.iterate_revisions("heads", current))
    except (RevisionError, CommandError):
        raise StoreError(_unknown_revision(current)) from None
    return [revision.revision for revision in reversed(walked) if revision.revision != current]


def _unknown_revision(current: str | None) -> str:
    return (
        f"the store is at schema revision {current}, which this release does not know "
        f"(its newest is {head_revision()}): a newer release migrated it; run that release"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` (default: the newest)."""
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision`` (``base`` removes every table)."""
    _run(engine, "downgrade", revision)


def _run(engine: Engine, verb: str, revision: str) -> None:
    config = _config()
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            if verb == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed: {_describe(exc)}") from exc
    except (RevisionError, CommandError):  # the store is at a revision this release lacks
        raise StoreError(_unknown_revision(current_revision(engine))) from None


def _describe(exc: SQLAlchemyError) -> str:
    # The driver's first line names the problem; SQLAlchemy's full text may
    # include the statement and parameters, which must not reach logs.
    original = getattr(exc, "orig", None) or exc
    return str(original).splitlines()[0] if str(original) else type(original).__name__
