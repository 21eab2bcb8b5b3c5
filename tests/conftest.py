"""Shared fixtures: real services (skip or, under CI, fail when absent) and paths."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from interlock.config.settings import Settings
from interlock.store import Deployment, initialise
from interlock.testing import softhsm as softhsm_testing
from interlock.testing.clock import ManualClock
from interlock.testing.services import POSTGRES, Service, require_env, unreachable

REPO_ROOT = Path(__file__).resolve().parents[1]
VECTORS = REPO_ROOT.parent / "shared" / "vectors"


def isolate_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> None:
    """A CLI test's own data directory and settings: no inherited ``INTERLOCK_*`` but services.

    ``env`` sets more variables, by name without the ``INTERLOCK_`` prefix.
    """
    import os

    from interlock.cli.context import state

    for name in list(os.environ):
        if name.startswith("INTERLOCK_") and not name.startswith(_KEPT):
            monkeypatch.delenv(name)
    monkeypatch.setenv("INTERLOCK_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("INTERLOCK_LOG_FORMAT", "json")
    for name, value in env.items():
        monkeypatch.setenv(f"INTERLOCK_{name}", value)
    monkeypatch.setattr(state, "data_dir", None)
    monkeypatch.setattr(state, "debug", False)


# Which services to use (and whether they are required) still come from the environment.
_KEPT = ("INTERLOCK_TEST_", "INTERLOCK_REQUIRE_SERVICES")


def need(service: Service) -> str:
    """The service's URL; skip the test (or fail, under INTERLOCK_REQUIRE_SERVICES=1)."""
    reason = unreachable(service)
    if reason is not None:
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    return service.url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    with fresh_schema() as url:
        yield url


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped on exit (any scope)."""
    base = need(POSTGRES)
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(make_url(base).set(drivername="postgresql+psycopg"))
    with admin.begin() as connection:
        connection.execute(sa.schema.CreateSchema(schema))
    url = make_url(base).set(
        drivername="postgresql+psycopg", query={"options": f"-csearch_path={schema}"}
    )
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(sa.schema.DropSchema(schema, cascade=True))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database URL for each supported backend: SQLite in tmp_path, then PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def deployment(tmp_path: Path, store_url: str) -> Iterator[Deployment]:
    """An initialised deployment on each store backend."""
    created = initialise(Settings(data_dir=tmp_path / "data", database_url=store_url))
    yield created
    created.close()


#: The SoftHSM2 tokens a test run may use; all are made before the module is first loaded.
#: "interlock-spare" is never logged into with its PIN (the wrong-PIN tests need that).
SOFTHSM_TOKENS = ("interlock-a", "interlock-b", "interlock-spare")


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> softhsm_testing.SoftHsm:
    """A SoftHSM2 with fresh tokens and random PINs; skip (or, when required, fail) without it."""
    reason = softhsm_testing.unavailable()
    if reason is not None:
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)
    return softhsm_testing.start(tmp_path_factory.mktemp("softhsm"), SOFTHSM_TOKENS)


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand."""
    return ManualClock()
