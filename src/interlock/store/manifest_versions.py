"""Manifest versions in the store: what every replica in database mode enforces.

``interlock manifest apply`` publishes a validated manifest's text here as the
next version; the highest version is the current one. Replicas read
:func:`current_marker` (version and SHA-256, one small query) every few
seconds and load the text only when it changed. A version is never updated or
deleted, so the table is also the history of what was enforced when.

Validation is not done here (the store knows no domain): the CLI validates
before publishing and each replica validates again before serving.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import Engine, Row, func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from interlock.errors import StoreError
from interlock.store.base import table_of
from interlock.store.tables import ManifestVersionRow

__all__ = [
    "ManifestMarker",
    "ManifestVersion",
    "current_marker",
    "current_version",
    "manifest_sha256",
    "publish_manifest",
    "version_history",
]

_TABLE: Final = table_of(ManifestVersionRow)
_RETRIES: Final = 5


def manifest_sha256(text: str) -> str:
    """The SHA-256 (hex) of a manifest's text, as UTF-8: what replicas compare."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class ManifestMarker:
    """Which manifest version is current: its number and the hash of its text."""

    version: int
    sha256: str


@dataclass(frozen=True)
class ManifestVersion:
    """One published manifest version."""

    version: int
    sha256: str
    text: str
    applied_at: datetime
    applied_by: str

    @property
    def marker(self) -> ManifestMarker:
        """Its version and hash."""
        return ManifestMarker(self.version, self.sha256)


def publish_manifest(engine: Engine, text: str, *, actor: str, now: datetime) -> ManifestVersion:
    """Make ``text`` the current manifest (the next version); return what is current.

    Applying the text that is current already publishes nothing and returns
    the current version. Two concurrent publishers get consecutive versions
    (the primary key decides; the loser retries).
    """
    sha = manifest_sha256(text)
    for _ in range(_RETRIES):
        try:
            with engine.begin() as connection:
                latest = connection.execute(
                    select(_TABLE).order_by(_TABLE.c.version.desc()).limit(1)
                ).first()
                if latest is not None and latest.sha256 == sha:
                    return _version(latest)
                number = 1 if latest is None else int(latest.version) + 1
                row = {
                    "version": number,
                    "sha256": sha,
                    "manifest_text": text,
                    "applied_at": now,
                    "applied_by": actor[:200],
                }
                connection.execute(_TABLE.insert().values(**row))
                return ManifestVersion(number, sha, text, now, actor[:200])
        except IntegrityError:
            continue  # another publisher took this number
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot publish the manifest: {type(exc).__name__}") from exc
    raise StoreError("cannot publish the manifest: too many concurrent publishers")


def current_marker(engine: Engine) -> ManifestMarker | None:
    """The current version's number and hash (None: none published); raises SQLAlchemyError."""
    with engine.connect() as connection:
        row = connection.execute(
            select(_TABLE.c.version, _TABLE.c.sha256).order_by(_TABLE.c.version.desc()).limit(1)
        ).first()
    return None if row is None else ManifestMarker(int(row.version), str(row.sha256))


def current_version(engine: Engine, version: int | None = None) -> ManifestVersion | None:
    """Version ``version`` (default: the current one); None when there is none."""
    query = select(_TABLE)
    if version is None:
        latest = select(func.max(_TABLE.c.version)).scalar_subquery()
        query = query.where(_TABLE.c.version == latest)
    else:
        query = query.where(_TABLE.c.version == version)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return None if row is None else _version(row)


def version_history(engine: Engine, limit: int = 20) -> list[ManifestVersion]:
    """The latest ``limit`` versions, newest first (their text included)."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(_TABLE).order_by(_TABLE.c.version.desc()).limit(limit)
        ).all()
    return [_version(row) for row in rows]


def _version(row: Row[Any]) -> ManifestVersion:
    applied_at: datetime = row.applied_at
    if applied_at.tzinfo is None:  # SQLite returns naive datetimes; they were stored in UTC
        applied_at = applied_at.replace(tzinfo=UTC)
    return ManifestVersion(
        int(row.version), str(row.sha256), str(row.manifest_text), applied_at, str(row.applied_by)
    )
