"""The schema registry: each declared subject's JSON Schemas, versioned under a compatibility mode.

Confluent's Schema Registry model for JSON Schema, kept in the store:

* Only subjects the manifest declares (``events.subjects`` of an
  ``event_streaming`` integration) take schemas; a schema must compile as
  JSON Schema 2020-12 with local references only
  (:func:`~interlock.validation.schema.compile_schema`: nothing is fetched),
  and no ``$id`` below its root (it would re-base ``$ref``; see
  :func:`~interlock.events.compatibility_refs.refuse_embedded_ids`).
* A schema's text is stored once, in canonical JSON, under a global id: the
  same schema under two subjects has one id, and registering a subject's
  existing schema again returns its version instead of adding one.
* A new version must be compatible with the earlier ones under the subject's
  mode (an operator's :meth:`SchemaRegistry.set_mode`, else the manifest's
  ``compatibility``), as :func:`~interlock.events.compatibility.check_compatibility`
  decides; :class:`IncompatibleSchema` lists every problem.
* Versions are never changed or deleted: a consumer may still read events a
  producer wrote with version 1 long after version 5 exists.

Every registration and mode change, refused or not, is on the audit trail.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from interlock.actors import Actor
from interlock.audit.entry import AuditEntry, Outcome
from interlock.audit.sink import AuditSink
from interlock.clock import Clock, utc_now
from interlock.config.events import COMPATIBILITY_MODES, CompatibilityMode
from interlock.config.manifest import Manifest
from interlock.errors import did_you_mean
from interlock.events.compatibility import (
    Incompatibility,
    UnsupportedSchemaError,
    check_compatibility,
)
from interlock.events.compatibility_refs import refuse_embedded_ids
from interlock.events.registry_errors import (
    IncompatibleSchema,
    InvalidModeError,
    InvalidSchemaError,
    InvalidVersionError,
    UnknownSchemaError,
    UnknownSubjectError,
    UnknownVersionError,
)
from interlock.events.tables import EventSchemaRow, EventSubjectModeRow, EventSubjectVersionRow
from interlock.store.base import table_of
from interlock.validation.schema import RequestSchema, SchemaError, compile_schema

__all__ = [
    "MAX_SCHEMA_BYTES",
    "IncompatibleSchema",
    "RegisteredSchema",
    "SchemaRegistry",
    "Version",
    "canonical_schema",
    "declared_subjects",
    "subject_producers",
]

#: The largest schema the registry takes, as canonical JSON.
MAX_SCHEMA_BYTES: Final = 256 * 1024
_ATTEMPTS: Final = 5  # a registration that loses a race for a version (or a text) retries
_SCHEMAS: Final = table_of(EventSchemaRow)
_VERSIONS: Final = table_of(EventSubjectVersionRow)
_MODES: Final = table_of(EventSubjectModeRow)

Version = int | Literal["latest"]
"""A subject's version number (1, 2, ...) or its latest."""


@dataclass(frozen=True)
class RegisteredSchema:
    """Version ``version`` of ``subject``: the schema with the global id ``id``."""

    subject: str
    version: int
    id: int
    schema: dict[str, Any]


def canonical_schema(schema: Mapping[str, Any]) -> str:
    """``schema`` as canonical JSON (sorted keys, no spaces); else :class:`InvalidSchemaError`."""
    try:
        text = json.dumps(
            schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        raise InvalidSchemaError("the schema is not a JSON document") from None
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_BYTES:
        raise InvalidSchemaError(f"the schema is over {MAX_SCHEMA_BYTES} bytes")
    return text


def declared_subjects(manifest: Manifest) -> dict[str, CompatibilityMode]:
    """Every subject the manifest's event-streaming integrations declare, with its mode."""
    declared: dict[str, CompatibilityMode] = {}
    for integration in manifest.integrations.values():
        if integration.events is not None:
            for name, subject in integration.events.subjects.items():
                declared.setdefault(name, subject.compatibility)
    return declared


def subject_producers(manifest: Manifest) -> dict[str, frozenset[str]]:
    """Every declared subject with the clients that produce it: the ``client`` of each
    event-streaming integration declaring it (who may register its schemas)."""
    producers: dict[str, set[str]] = {}
    for integration in manifest.integrations.values():
        if integration.events is not None:
            for name in integration.events.subjects:
                producers.setdefault(name, set()).add(integration.client)
    return {name: frozenset(clients) for name, clients in producers.items()}


class SchemaRegistry:
    """The declared subjects' schema versions, in the store; blocking (SQL)."""

    def __init__(
        self, engine: sa.Engine, manifest: Manifest, *, audit: AuditSink, now: Clock = utc_now
    ) -> None:
        """Serve the subjects ``manifest`` declares from ``engine``; record through ``audit``."""
        self._engine = engine
        self._declared = declared_subjects(manifest)
        self._audit = audit
        self._now = now
        self._compiled: dict[int, RequestSchema] = {}  # by schema id; a schema never changes
        self._lock = threading.Lock()

    def subjects(self) -> list[str]:
        """The subjects with at least one registered version, sorted."""
        query = sa.select(_VERSIONS.c.subject).distinct().order_by(_VERSIONS.c.subject)
        with self._engine.connect() as connection:
            return [row.subject for row in connection.execute(query)]

    def register(
        self, subject: str, schema: Mapping[str, Any], *, actor: Actor
    ) -> RegisteredSchema:
        """Register ``schema`` under ``subject`` (or find it there); audited, refused or not.

        Raises :class:`UnknownSubjectError` (a subject the manifest does not
        declare), :class:`InvalidSchemaError` or :class:`IncompatibleSchema`.
        """
        try:
            self._declared_mode(subject)
            text = _compiled_text(schema)
            for attempt in range(_ATTEMPTS):
                try:
                    registered, new = self._register(subject, text, actor)
                    break
                except IntegrityError:  # another writer took the version or the text first
                    if attempt == _ATTEMPTS - 1:
                        raise
        except (UnknownSubjectError, InvalidSchemaError, IncompatibleSchema) as exc:
            self._record(actor, "events.schema.register", subject, failure=exc)
            raise
        facts: dict[str, str | int | bool] = {
            "version": registered.version,
            "schema_id": registered.id,
            "new": new,
        }
        self._record(actor, "events.schema.register", subject, facts=facts)
        return registered

    def versions(self, subject: str) -> list[int]:
        """``subject``'s version numbers, oldest first; :class:`UnknownSubjectError` if none."""
        query = (
            sa.select(_VERSIONS.c.version)
            .where(_VERSIONS.c.subject == subject)
            .order_by(_VERSIONS.c.version)
        )
        with self._engine.connect() as connection:
            found = [row.version for row in connection.execute(query)]
        if not found:
            raise self._unregistered(subject)
        return found

    def get(self, subject: str, version: Version = "latest") -> RegisteredSchema:
        """The version of ``subject`` that is ``schema`` (canonically); else UnknownSchemaError."""
        number = _checked_version(version)
        with self._engine.connect() as connection:
            rows = _subject_rows(connection, subject)
        if not rows:
            raise self._unregistered(subject)
        if number is None:
            return rows[-1]
        for row in rows:
            if row.version == number:
                return row
        raise UnknownVersionError(f"subject {subject!r} has no version {number}")

    def by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with the global id ``schema_id`` (its first subject and version)."""
        query = (
            sa.select(_SCHEMAS.c.schema_text, _VERSIONS.c.subject, _VERSIONS.c.version)
            .join(_VERSIONS, _VERSIONS.c.schema_id == _SCHEMAS.c.id)
            .where(_SCHEMAS.c.id == schema_id)
            .order_by(_VERSIONS.c.created_at, _VERSIONS.c.subject, _VERSIONS.c.version)
            .limit(1)
        )
        with self._engine.connect() as connection:
            row = connection.execute(query).first()
        if row is None:
            raise UnknownSchemaError(f"no schema has the id {schema_id}")
        return RegisteredSchema(row.subject, row.version, schema_id, json.loads(row.schema_text))

    def lookup(self, subject: str, schema: Mapping[str, Any]) -> RegisteredSchema:
        """Version ``version`` of ``subject``.

        Raises :class:`UnknownSubjectError` (no version registered),
        :class:`UnknownVersionError` or :class:`InvalidVersionError`.
        """
        self._declared_mode(subject)
        text = _compiled_text(schema)
        with self._engine.connect() as connection:
            rows = _subject_rows(connection, subject)
        if not rows:
            raise self._unregistered(subject)
        for row in rows:
            if canonical_schema(row.schema) == text:
                return row
        raise UnknownSchemaError(f"subject {subject!r} has no version with this schema")

    def check(
        self, subject: str, schema: Mapping[str, Any], version: Version = "latest"
    ) -> list[Incompatibility]:
        """Every incompatibility of ``schema`` under ``subject``'s mode; ``[]``: compatible.

        ``latest`` checks against what :meth:`register` would (the latest
        version, or every version under a transitive mode); a version number
        against that version only. A subject without versions takes anything.
        """
        mode = self.mode(subject)
        _compiled_text(schema)
        number = _checked_version(version)
        with self._engine.connect() as connection:
            rows = _subject_rows(connection, subject)
        if number is not None:
            rows = [row for row in rows if row.version == number]
            if not rows:
                raise UnknownVersionError(f"subject {subject!r} has no version {number}")
        return _problems(schema, rows, mode)

    def mode(self, subject: str) -> CompatibilityMode:
        """``subject``'s compatibility mode: an operator's override, else the manifest's."""
        declared = self._declared_mode(subject)
        query = sa.select(_MODES.c.mode).where(_MODES.c.subject == subject)
        with self._engine.connect() as connection:
            override = connection.execute(query).scalar_one_or_none()
        return declared if override is None else cast("CompatibilityMode", override)

    def set_mode(self, subject: str, mode: CompatibilityMode, *, actor: Actor) -> None:
        """Override ``subject``'s mode (it applies to the next registration); audited."""
        self._declared_mode(subject)
        if mode not in COMPATIBILITY_MODES:
            raise InvalidModeError(
                f"a compatibility mode is one of {', '.join(COMPATIBILITY_MODES)}"
            )
        values = {"mode": mode, "updated_at": self._now(), "updated_by": actor.label[:200]}
        with self._engine.begin() as connection:
            changed = connection.execute(
                sa.update(_MODES).where(_MODES.c.subject == subject).values(**values)
            ).rowcount
            if not changed:
                connection.execute(sa.insert(_MODES).values(subject=subject, **values))
        self._record(actor, "events.schema.mode", subject, facts={"mode": mode})

    def validator(self, subject: str, version: int) -> RequestSchema:
        """Version ``version`` of ``subject``, compiled (once per schema)."""
        registered = self.get(subject, version)
        with self._lock:
            compiled = self._compiled.get(registered.id)
        if compiled is None:
            compiled = compile_schema(registered.schema)
            with self._lock:
                self._compiled.setdefault(registered.id, compiled)
        return compiled

    def _declared_mode(self, subject: str) -> CompatibilityMode:
        mode = self._declared.get(subject)
        if mode is None:
            hint = did_you_mean(subject, self._declared)
            raise UnknownSubjectError(f"subject {subject!r} is not declared by the manifest{hint}")
        return mode

    def _unregistered(self, subject: str) -> UnknownSubjectError:
        """No version of ``subject``: a close declared subject is suggested, if any."""
        hint = "" if subject in self._declared else did_you_mean(subject, self._declared)
        return UnknownSubjectError(f"subject {subject!r} has no registered schema{hint}")

    def _register(self, subject: str, text: str, actor: Actor) -> tuple[RegisteredSchema, bool]:
        """One attempt, in one transaction: (the version, whether it is new)."""
        fingerprint = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        mode = self.mode(subject)
        now = self._now()
        with self._engine.begin() as connection:
            rows = _subject_rows(connection, subject)
            for row in rows:
                if canonical_schema(row.schema) == text:
                    return row, False
            schema = json.loads(text)
            problems = _problems(schema, rows, mode)
            if problems:
                raise IncompatibleSchema(subject, mode, problems)
            by_text = sa.select(_SCHEMAS.c.id).where(_SCHEMAS.c.fingerprint == fingerprint)
            schema_id = connection.execute(by_text).scalar_one_or_none()
            if schema_id is None:
                connection.execute(
                    sa.insert(_SCHEMAS).values(
                        fingerprint=fingerprint, schema_text=text, created_at=now
                    )
                )
                schema_id = connection.execute(by_text).scalar_one()
            version = rows[-1].version + 1 if rows else 1
            connection.execute(
                sa.insert(_VERSIONS).values(
                    subject=subject,
                    version=version,
                    schema_id=schema_id,
                    created_at=now,
                    created_by=actor.label[:200],
                )
            )
        return RegisteredSchema(subject, version, schema_id, schema), True

    def _record(
        self,
        actor: Actor,
        action: str,
        subject: str,
        *,
        facts: Mapping[str, str | int | bool] | None = None,
        failure: Exception | None = None,
    ) -> None:
        details: dict[str, str | int | bool] = {"subject": subject, **(facts or {})}
        if isinstance(failure, IncompatibleSchema):
            details["problems"] = len(failure.problems)
        entry = AuditEntry(
            time=self._now(),
            actor=actor.label[:200],
            action=action,
            target=f"schema-subject://{subject}"[:200],
            outcome=Outcome(result="failure" if failure else "success"),
            reason=getattr(failure, "code", None),
            details=details,
        )
        # A change is made already: its entry must be durable (the caller learns of a
        # failure to record). A refusal is best effort; the refusal itself stands.
        if failure is None:
            self._audit.record(entry)
        else:
            self._audit.record_later(entry)


def _compiled_text(schema: Mapping[str, Any]) -> str:
    """``schema``'s canonical text, once it compiles; :class:`InvalidSchemaError` if not."""
    if not isinstance(schema, Mapping):
        raise InvalidSchemaError("a schema is a JSON object")
    text = canonical_schema(schema)
    try:
        compile_schema(schema)
        # The checker, the field cut and the consumer's resolution resolve #/... from the root.
        refuse_embedded_ids(schema)
    except SchemaError as exc:
        raise InvalidSchemaError(str(exc)) from None
    except UnsupportedSchemaError as exc:
        raise InvalidSchemaError(exc.message) from None
    return text


def _problems(
    schema: Mapping[str, Any], rows: list[RegisteredSchema], mode: CompatibilityMode
) -> list[Incompatibility]:
    """Its incompatibilities with ``rows``; a schema too complex to compare is invalid."""
    try:
        return check_compatibility(schema, [row.schema for row in rows], mode)
    except UnsupportedSchemaError as exc:
        raise InvalidSchemaError(exc.message) from None


def _checked_version(version: Version) -> int | None:
    """A version number, or None for ``latest``; :class:`InvalidVersionError` otherwise."""
    if version == "latest":
        return None
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidVersionError("a version is a positive integer or 'latest'")
    return version


def _subject_rows(connection: sa.Connection, subject: str) -> list[RegisteredSchema]:
    """Every version of ``subject``, oldest first."""
    query = (
        sa.select(_VERSIONS.c.version, _VERSIONS.c.schema_id, _SCHEMAS.c.schema_text)
        .join(_SCHEMAS, _SCHEMAS.c.id == _VERSIONS.c.schema_id)
        .where(_VERSIONS.c.subject == subject)
        .order_by(_VERSIONS.c.version)
    )
    return [
        RegisteredSchema(subject, row.version, row.schema_id, json.loads(row.schema_text))
        for row in connection.execute(query)
    ]
