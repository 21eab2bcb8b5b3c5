"""Business rules of a route: Python callables from entry points, or SQL-view lookups.

A route names its rules (``rules: [account_exists, total_matches_lines]``).
Each name is either

* a rule of the manifest's ``rules:`` section — a parameterised lookup on a
  read-only SQL view (:class:`SqlLookup`): the value must exist there; or
* a Python callable registered under the entry-point group ``interlock.rules``
  by any installed package (``[project.entry-points."interlock.rules"]``),
  called with a :class:`RuleInput` and returning the violations it found.

Rules run after the body parsed and matched its schema, in the order listed,
and every violation of every rule is reported at once (422 ``rule-violation``).
A SQL lookup whose input is absent (unless declared ``optional``), null, a
list or an object is a violation too: a rule never passes for want of a value.
A rule that cannot be evaluated (its database is down, its code raised) fails
the request closed with 503, naming the rule but never the error's text, SQL
or the database. A lookup's database on another host than loopback must be
reached over verified TLS (:mod:`interlock.config.remote_tls`), or the
manifest does not load.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Final

from sqlalchemy import Engine, bindparam, column, create_engine, event, select, table
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from interlock.config.manifest import RULES_ENTRY_POINTS, Manifest, SqlRule
from interlock.config.remote_tls import check_database_tls
from interlock.errors import ConfigError, InterlockError
from interlock.logs import get_logger
from interlock.validation.errors import BodyRefused, Violation, echo
from interlock.validation.rule_values import rule_values

__all__ = [
    "ENTRY_POINT_GROUP",
    "RuleFunction",
    "RuleInput",
    "RuleSet",
    "RuleUnavailableError",
    "Rules",
    "SqlLookup",
    "python_rules",
]

ENTRY_POINT_GROUP: Final = RULES_ENTRY_POINTS
MAX_LOOKUP_VALUES: Final = 500  # distinct values one lookup may check (lines[].sku ...)
_STATEMENT_TIMEOUT_MS: Final = 2000
_log = get_logger("interlock.validation.rules")


@dataclass(frozen=True)
class RuleInput:
    """What a rule sees: the parsed body (JSON) and the request's parameters."""

    body: Any
    path: Mapping[str, str]
    query: Mapping[str, str]
    client: str
    route: str  # the route's label, e.g. "POST /orders"


RuleFunction = Callable[[RuleInput], Iterable[Violation] | None]


class RuleUnavailableError(InterlockError):
    """A rule could not be evaluated; the request fails closed (503)."""

    code = "rule_unavailable"


def python_rules() -> dict[str, Any]:
    """The entry points of the ``interlock.rules`` group, by name (not yet loaded)."""
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class SqlLookup:
    """``SELECT ... FROM view WHERE column IN (:values)`` on a read-only connection."""

    def __init__(self, name: str, spec: SqlRule, resolve_url: Callable[[str], str]) -> None:
        """Prepare the statement; the engine is created on first use from the secret's URL."""
        self.name = name
        self._spec = spec
        self._resolve_url = resolve_url
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        schema, _, view = spec.view.rpartition(".")
        source = table(view, column(spec.column), schema=schema or None)
        key = source.c[spec.column]
        # Identifiers are quoted by SQLAlchemy; values are always bound parameters.
        self._statement = (
            select(key)
            .select_from(source)
            .where(key.in_(bindparam("values", expanding=True)))
            .limit(MAX_LOOKUP_VALUES)
        )

    def check(self, data: RuleInput) -> list[Violation]:
        """A violation per value that has no row in the view, or that cannot be looked up.

        Fail closed: an absent, null, list or object input is a violation
        (see :mod:`interlock.validation.rule_values`), never a pass.
        """
        params = {"path": data.path, "query": data.query}
        named, unusable = rule_values(
            self._spec.value, data.body, params, optional=self._spec.optional, rule=self.name
        )
        if unusable:
            return unusable
        values = sorted(set(named))
        if not values:
            return []
        if len(values) > MAX_LOOKUP_VALUES:
            return [Violation(f"more than {MAX_LOOKUP_VALUES} values to check", rule=self.name)]
        try:
            with self._connect() as connection:
                found = {
                    _text(row[0]) for row in connection.execute(self._statement, {"values": values})
                }
        except SQLAlchemyError as exc:
            _log.warning("business rule unavailable", rule=self.name, error=type(exc).__name__)
            raise RuleUnavailableError(f"rule {self.name} cannot be evaluated") from None
        return [
            Violation(f"{self._spec.message} ({echo(value)})", rule=self.name)
            for value in values
            if value not in found
        ]

    def _connect(self) -> Any:
        engine = self._engine
        if engine is None:
            with self._lock:
                engine = self._engine or self._create_engine()
                self._engine = engine
        return engine.connect()

    def check_database(self) -> None:
        """At load: refuse (ConfigError) a database URL that would cross the network unverified.

        A secret that cannot be read or parsed yet (``INTERLOCK_MISSING_SECRETS=start``) is
        left to the first lookup, which then fails closed (503).
        """
        with contextlib.suppress(RuleUnavailableError):
            self._url()

    def _url(self) -> URL:
        """The database's URL from the vault; ConfigError unless another host gets verified TLS."""
        try:
            url = make_url(self._resolve_url(self._spec.database))
        except (ArgumentError, ValueError, InterlockError):
            raise RuleUnavailableError(f"rule {self.name}: its database URL is unusable") from None
        try:
            check_database_tls(url)
        except ConfigError as refused:
            raise ConfigError(f"rule {self.name}: {refused.message}") from None
        return url

    def _create_engine(self) -> Engine:
        try:
            url = self._url()
        except ConfigError as refused:  # the secret changed since load: still never connect
            _log.warning("business rule database refused", rule=self.name, reason=refused.message)
            raise RuleUnavailableError(f"rule {self.name} cannot be evaluated") from None
        backend = url.get_backend_name()
        arguments: dict[str, Any] = {}
        if backend == "postgresql":
            arguments["connect_args"] = {
                "options": f"-c default_transaction_read_only=on "
                f"-c statement_timeout={_STATEMENT_TIMEOUT_MS}",
                "connect_timeout": 5,
            }
        elif backend in {"mysql", "mariadb"}:
            arguments["connect_args"] = {"connect_timeout": 5}
        engine = create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2, **arguments)
        if backend == "sqlite":

            @event.listens_for(engine, "connect")
            def _read_only(dbapi_connection: Any, _: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA query_only = ON")
                cursor.close()

        elif backend in {"mysql", "mariadb"}:

            @event.listens_for(engine, "connect")
            def _read_only_session(dbapi_connection: Any, _: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("SET SESSION TRANSACTION READ ONLY")
                cursor.close()

        return engine

    def close(self) -> None:
        """Release the connection pool."""
        if self._engine is not None:
            self._engine.dispose()


@dataclass(frozen=True)
class _PythonRule:
    name: str
    function: RuleFunction

    def check(self, data: RuleInput) -> list[Violation]:
        try:
            found = self.function(data)
            violations = list(found or ())
        except Exception as exc:  # noqa: BLE001  (a rule's own bug must not leak or crash)
            _log.warning("business rule failed", rule=self.name, error=type(exc).__name__)
            raise RuleUnavailableError(f"rule {self.name} cannot be evaluated") from None
        return [
            v if v.rule == self.name else Violation(v.detail, v.pointer, v.parameter, self.name)
            for v in violations
            if isinstance(v, Violation)
        ]


class RuleSet:
    """The rules one route names, resolved once (SQL lookups shared across routes)."""

    def __init__(self, names: Sequence[str], checks: Sequence[SqlLookup | _PythonRule]) -> None:
        """Use :meth:`Rules.for_route`."""
        self.names = tuple(names)
        self._checks = tuple(checks)

    def check(self, data: RuleInput) -> None:
        """Raise 422 listing every violation of every rule (503 if one cannot run)."""
        violations = [violation for rule in self._checks for violation in rule.check(data)]
        if violations:
            raise BodyRefused(
                "rule-violation", f"{len(violations)} business rule violation(s)", tuple(violations)
            )


class Rules:
    """Every rule a manifest's routes use: SQL lookups and loaded entry points."""

    def __init__(self, manifest: Manifest, resolve_url: Callable[[str], str]) -> None:
        """Load what the routes name; an unknown name is a :class:`ConfigError`, and so is
        a SQL rule whose database is on another host without verified TLS."""
        available: dict[str, Any] | None = None  # entry points, scanned only if a route needs one
        self._sql = {
            name: SqlLookup(name, spec, resolve_url) for name, spec in manifest.rules.items()
        }
        for lookup in self._sql.values():
            lookup.check_database()
        self._python: dict[str, _PythonRule] = {}
        for flow in manifest.integrations.values():
            for route in flow.routes:
                for name in route.rules:
                    if name in self._sql or name in self._python:
                        continue
                    if available is None:
                        available = python_rules()
                    point = available.get(name)
                    if point is None:
                        raise ConfigError(
                            f"rule {name!r} is neither in the manifest's rules nor an "
                            f"installed '{ENTRY_POINT_GROUP}' entry point"
                        )
                    function = point.load()
                    if not callable(function):
                        raise ConfigError(f"entry point {name!r} is not callable")
                    self._python[name] = _PythonRule(name, function)

    def for_route(self, names: Sequence[str]) -> RuleSet | None:
        """The route's rule set, or ``None`` when it names none."""
        if not names:
            return None
        return RuleSet(names, [self._sql.get(name) or self._python[name] for name in names])

    def close(self) -> None:
        """Release every SQL connection pool."""
        for lookup in self._sql.values():
            lookup.close()
