"""Shared fixtures: real services (skip or, under CI, fail when absent) and paths.

Also the markers ``make fast`` deselects (registered in pyproject.toml): a test is
marked ``postgres``, ``redis``, ``softhsm`` or ``processes`` from the fixtures it
uses (``pytest_collection_modifyitems``); what cannot be inferred is marked by
hand. The marks are checked while the tests run: ``need()`` fails a test that
reaches PostgreSQL or Redis without its marker, and an audit hook fails one that
starts a process without ``processes`` (or ``softhsm``), so ``make fast`` cannot
quietly start depending on a server.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# asyncssh looks for liboqs when imported (ctypes.util.find_library: ldconfig, then gcc);
# import it here, before the process guard below is armed: the CLI's command modules
# (files, for one) are imported when a test first runs them (interlock.cli.lazy).
import asyncssh  # noqa: F401
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import make_url

from interlock.config.settings import Settings
from interlock.store import Deployment, initialise
from interlock.testing import softhsm as softhsm_testing
from interlock.testing.brokers import TlsBroker
from interlock.testing.clock import ManualClock
from interlock.testing.services import (
    MARIADB,
    POSTGRES,
    REDIS,
    Service,
    require_env,
    unreachable,
)

# Hypothesis' deadline and "too slow" health check time the machine, not the code: on a
# loaded CI machine one slow draw failed a property test that had nothing slow in it. No
# timed assertions in unit tests (benchmarks/ measures speed), so neither applies here.
settings.register_profile("interlock", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("interlock")

# The same for the audit log's 2 s confirmation deadline (a production default: a hung
# database fails requests closed, promptly): on a loaded CI machine an SQLite commit
# took longer and a test far from the audit code failed with "did not confirm the entry
# within 2 s". Every Settings the tests build, and every process they start, gets 30 s
# unless a test sets its own (the tests of the deadline itself set theirs explicitly).
AUDIT_TIMEOUT_ENV = "INTERLOCK_AUDIT_TIMEOUT_SECONDS"
os.environ.setdefault(AUDIT_TIMEOUT_ENV, "30")

REPO_ROOT = Path(__file__).resolve().parents[1]
VECTORS = REPO_ROOT.parent / "shared" / "vectors"

#: The marker a test that reaches each service must carry.
SERVICE_MARKERS = {POSTGRES: "postgres", REDIS: "redis", MARIADB: "mariadb"}

#: Fixtures that mean a service or processes, by the folder whose tests see them and
#: their name (a folder's conftest fixture, or a module fixture of the same name there).
FIXTURE_MARKERS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tests", "postgres_url"): ("postgres",),
    ("tests", "mariadb_url"): ("mariadb",),
    ("tests", "softhsm"): ("softhsm",),
    ("tests/replay", "redis_client"): ("redis",),
    # The test gateway runs the sample ERP and a rogue upstream as processes.
    ("tests/gateway", "env"): ("processes",),
    ("tests/sdk", "gateway"): ("processes",),
    # Two gateway replicas on PostgreSQL (through postgres_url) and Redis.
    ("tests/gateway", "replicas"): ("processes", "redis"),
    # Real brokers with TLS listeners from the test PKI, started by the tests.
    ("tests", "rabbitmq_tls"): ("processes", "rabbitmq"),
    ("tests", "nats_tls"): ("processes", "nats"),
}

#: Fixtures parametrised by backend, and the marker each backend parameter means.
BACKEND_FIXTURES = ("store_url", "audit_url", "backend")
BACKEND_MARKERS = {"postgresql": "postgres", "redis": "redis", "mariadb": "mariadb"}

#: Markers under which a test may start processes (SoftHSM2 tokens are made by
#: ``softhsm2-util``).
PROCESS_MARKERS = ("processes", "softhsm", "rabbitmq", "nats")

#: Audit events (PEP 578) that start a process.
_PROCESS_EVENTS = frozenset({"subprocess.Popen", "os.system", "os.fork", "os.posix_spawn"})

#: Commands any test may run: ``interlock scan`` asks git for a work tree's files
#: (a few milliseconds, no server).
QUICK_COMMANDS = frozenset({"git"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the services and processes its fixtures need."""
    for item in items:
        for marker in sorted(_inferred_markers(item)):
            item.add_marker(marker)


def _inferred_markers(item: pytest.Item) -> set[str]:
    found: set[str] = set()
    path = item.path.relative_to(REPO_ROOT)
    for (folder, fixture), markers in FIXTURE_MARKERS.items():
        if fixture in getattr(item, "fixturenames", ()) and path.is_relative_to(folder):
            found.update(markers)
    callspec = getattr(item, "callspec", None)
    params: dict[str, Any] = callspec.params if callspec is not None else {}
    for fixture in BACKEND_FIXTURES:
        backend = params.get(fixture)
        if isinstance(backend, str) and backend in BACKEND_MARKERS:
            found.add(BACKEND_MARKERS[backend])
    return found


@dataclass
class _Running:
    """The test being run, for the checks in ``need()`` and the process audit hook."""

    item: pytest.Item | None = None

    def marked(self, *markers: str) -> bool:
        """Whether no test is running, or the running one carries one of ``markers``."""
        return self.item is None or any(self.item.get_closest_marker(m) for m in markers)


_RUNNING = _Running()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Remember the running test (its fixtures' set-up and teardown included)."""
    _RUNNING.item = item
    try:
        yield
    finally:
        _RUNNING.item = None


def _refuse_unmarked_processes(event: str, args: tuple[Any, ...]) -> None:
    if event not in _PROCESS_EVENTS or _RUNNING.marked(*PROCESS_MARKERS):
        return
    if event == "subprocess.Popen" and _command_name(args[0], args[1]) in QUICK_COMMANDS:
        return
    nodeid = _RUNNING.item.nodeid if _RUNNING.item else "?"
    raise RuntimeError(
        f"{nodeid} starts a process ({event} {args[:2]!r}) but is not marked processes: "
        "mark it (pytest.mark.processes) or add its fixture to FIXTURE_MARKERS in "
        "tests/conftest.py"
    )


def _command_name(executable: object, argv: object) -> str:
    """The program's file name, from ``subprocess.Popen``'s audit arguments."""
    if executable is None:
        executable = argv[0] if isinstance(argv, list | tuple) and argv else argv
    return (
        Path(os.fsdecode(executable)).name
        if isinstance(executable, str | bytes | os.PathLike)
        else ""
    )


def pytest_configure() -> None:
    """Install the audit hook that holds unmarked tests to starting no process."""
    sys.addaudithook(_refuse_unmarked_processes)
    _redis_database_per_worker()


def _redis_database_per_worker() -> None:
    """Under pytest-xdist, worker gwN uses the Redis database N above the configured one.

    The replica tests reset client order-sync's rate-limit buckets, whose key names
    are fixed; on one database two workers would reset each other's. (An
    ``xdist_group`` would not do: pytest 9.2 ignores the node ids ``--dist loadgroup``
    rewrites, pytest-dev/pytest-xdist#1386.) Subprocesses inherit the variable.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    parts = urlsplit(REDIS.url)
    database = int(parts.path.strip("/") or 0) + int(worker.removeprefix("gw"))
    os.environ[REDIS.env] = urlunsplit(parts._replace(path=f"/{database}"))


def isolate_cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **env: str) -> None:
    """A CLI test's own data directory and settings: no inherited ``INTERLOCK_*`` but services.

    ``env`` sets more variables, by name without the ``INTERLOCK_`` prefix.
    """
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
_KEPT = ("INTERLOCK_TEST_", "INTERLOCK_REQUIRE_SERVICES", AUDIT_TIMEOUT_ENV)


def need(service: Service) -> str:
    """The service's URL; skip the test (or fail, under INTERLOCK_REQUIRE_SERVICES=1).

    A test that is not marked for the service (``SERVICE_MARKERS``) fails: ``make
    fast`` deselects by those markers.
    """
    marker = SERVICE_MARKERS[service]
    if not _RUNNING.marked(marker):
        pytest.fail(
            f"{_RUNNING.item.nodeid if _RUNNING.item else '?'} uses {service.name} but is not "
            f"marked {marker}: mark it (pytest.mark.{marker}) or add its fixture to "
            "FIXTURE_MARKERS in tests/conftest.py"
        )
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


@pytest.fixture
def mariadb_url() -> str:
    """The MariaDB URL (database ``test``); tests make and drop their own uniquely named tables."""
    return need(MARIADB)


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


@pytest.fixture(scope="session")
def rabbitmq_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A RabbitMQ node of this machine's rabbitmq-server, TLS only, for this test session."""
    from interlock.testing import rabbitmq_node

    _available(rabbitmq_node.unavailable())
    with (
        rabbitmq_node.started(tmp_path_factory.mktemp("rabbitmq")) as broker,
        _stopped_outside_tests(),
    ):
        yield broker


@pytest.fixture(scope="session")
def nats_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """A NATS server with JetStream of this machine's nats-server, TLS only, for this session."""
    from interlock.testing import nats_node

    _available(nats_node.unavailable())
    with nats_node.started(tmp_path_factory.mktemp("nats")) as broker, _stopped_outside_tests():
        yield broker


@contextmanager
def _stopped_outside_tests() -> Iterator[None]:
    """A session broker stops after the last test that used it, during whichever test
    runs last: its stop command is the fixture's, not that test's (no marker needed)."""
    try:
        yield
    finally:
        _RUNNING.item = None


def _available(reason: str | None) -> None:
    """Skip with ``reason`` (or fail under INTERLOCK_REQUIRE_SERVICES=1) when not None."""
    if reason is not None:
        if require_env():
            pytest.fail(f"required service missing: {reason}")
        pytest.skip(reason)


@pytest.fixture
def clock() -> ManualClock:
    """A clock the test moves by hand."""
    return ManualClock()
