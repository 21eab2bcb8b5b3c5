"""Fixtures for the audit log: a keyring, settings on SQLite and PostgreSQL, an open log."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interlock.audit import AuditEntry, Outcome, Volume
from interlock.audit.service import AuditLog
from interlock.config.settings import Settings
from interlock.crypto import Keyring

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def sample_entry(
    number: int, integration: str | None = "order-sync", **changes: object
) -> AuditEntry:
    """A gateway decision, distinct per ``number``."""
    fields: dict[str, object] = {
        "time": T0 + timedelta(minutes=number),
        "actor": "client:order-sync",
        "action": "gateway.request",
        "integration": integration,
        "source": "erp",
        "target": "crm",
        "data_categories": ("user.contact.email",),
        "volume": Volume(records=1, bytes=100 + number),
        "outcome": Outcome(result="success", status=200),
        "correlation_id": f"req-{number}",
        "subjects": (f"customer-{number}@example.com",),
        "client_ip": "192.0.2.10",
    }
    fields.update(changes)
    return AuditEntry.model_validate(fields)


@pytest.fixture
def keyring(tmp_path: Path) -> Keyring:
    """A fresh keyring."""
    return Keyring.create(tmp_path / "keyring.json")


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The audit database on each backend: a SQLite file, then a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, audit_url: str) -> Settings:
    """Settings whose audit log is at ``audit_url``."""
    return Settings(data_dir=tmp_path / "data", audit_database_url=audit_url)


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    """Settings with the audit log in a SQLite file (tests that tamper with the file)."""
    return Settings(data_dir=tmp_path / "data", audit_database_url=f"sqlite:///{tmp_path / 'a.db'}")


@pytest.fixture
def audit_log(settings: Settings, keyring: Keyring) -> Iterator[AuditLog]:
    """An open log, closed afterwards."""
    log = AuditLog.open(settings, keyring, witnesses=[])
    yield log
    log.close()
