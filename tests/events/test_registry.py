"""The schema registry on each store backend: versions, global ids, modes, refusals, audit."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from interlock.actors import Client, Operator
from interlock.audit.errors import AuditUnavailableError
from interlock.audit.sink import MemorySink
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.events.registry import MAX_SCHEMA_BYTES, SchemaRegistry, canonical_schema
from interlock.events.registry_errors import (
    IncompatibleSchema,
    InvalidModeError,
    InvalidSchemaError,
    InvalidVersionError,
    UnknownSchemaError,
    UnknownSubjectError,
    UnknownVersionError,
)
from interlock.store import Deployment
from interlock.testing.clock import ManualClock
from tests.events import streams_support

#: The issue's example: one event-streaming integration, subjects BACKWARD and FULL.
MANIFEST = streams_support.MANIFEST.replace("DESTINATION", "orders")

ADMIN = Operator("admin:alice")
PRODUCER = Client("erp-events")


def order(*required: str, **extra: Any) -> dict[str, Any]:
    """A closed order schema: id (string), total (number), region, ``extra`` properties.

    Closed, so that adding an optional property is BACKWARD compatible (to an
    open content model it is not, in Confluent's rules).
    """
    properties: dict[str, Any] = {
        "id": {"type": "string"},
        "total": {"type": "number"},
        "region": {"type": "string"},
        **extra,
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(required or ["id"]),
        "additionalProperties": False,
    }


@pytest.fixture
def manifest(tmp_path: Path) -> Manifest:
    """The issue's example manifest."""
    path = tmp_path / "events.yaml"
    path.write_text(MANIFEST)
    return load_manifest(path)


@pytest.fixture
def sink() -> MemorySink:
    """Where the registry's audit entries go."""
    return MemorySink()


@pytest.fixture
def registry(deployment: Deployment, manifest: Manifest, sink: MemorySink) -> SchemaRegistry:
    """A registry on each store backend, its clock set by hand."""
    return SchemaRegistry(deployment.engine, manifest, audit=sink, now=ManualClock())


def test_versions_count_up_and_the_latest_is_the_newest(registry: SchemaRegistry) -> None:
    """v1, v2 (an optional property added: BACKWARD compatible); latest is v2."""
    first = registry.register("order.created", order(), actor=PRODUCER)
    second = registry.register("order.created", order(note={"type": "string"}), actor=PRODUCER)
    assert (first.version, second.version) == (1, 2)
    assert first.id != second.id
    assert registry.versions("order.created") == [1, 2]
    assert registry.get("order.created") == second
    assert registry.get("order.created", 1) == first
    assert registry.by_id(first.id).schema == order()
    assert registry.subjects() == ["order.created"]


def test_the_same_schema_again_is_the_same_version(registry: SchemaRegistry) -> None:
    """Registering an existing schema (keys in another order) adds no version."""
    first = registry.register("order.created", order(), actor=PRODUCER)
    reordered = dict(reversed(list(order().items())))
    again = registry.register("order.created", reordered, actor=PRODUCER)
    assert again == first
    assert registry.versions("order.created") == [1]
    assert registry.lookup("order.created", reordered) == first


def test_ids_are_global_one_schema_one_id(registry: SchemaRegistry) -> None:
    """The same schema under two subjects has one id, as in Confluent's registry."""
    created = registry.register("order.created", order(), actor=PRODUCER)
    cancelled = registry.register("order.cancelled", order(), actor=PRODUCER)
    assert created.id == cancelled.id
    assert (created.version, cancelled.version) == (1, 1)
    assert registry.subjects() == ["order.cancelled", "order.created"]


def test_an_incompatible_schema_is_refused_with_every_problem(
    registry: SchemaRegistry, sink: MemorySink
) -> None:
    """BACKWARD: a required property added to an open model, and a type narrowed; nothing stored."""
    registry.register("order.created", order(), actor=PRODUCER)
    breaking = order("id", "currency", currency={"type": "string"})
    breaking["properties"]["total"] = {"type": "integer"}
    with pytest.raises(IncompatibleSchema) as refused:
        registry.register("order.created", breaking, actor=PRODUCER)
    pointers = {problem.pointer for problem in refused.value.problems}
    assert len(refused.value.problems) >= 2, refused.value.problems
    assert any("total" in pointer for pointer in pointers), pointers
    assert refused.value.code == "incompatible_schema"
    assert registry.versions("order.created") == [1]
    last = sink.entries[-1]
    assert (last.action, last.outcome.result, last.reason) == (
        "events.schema.register",
        "failure",
        "incompatible_schema",
    )
    assert last.details["problems"] == len(refused.value.problems)


def test_check_says_what_register_would(registry: SchemaRegistry) -> None:
    """check() finds the same problems, against latest or a chosen version, and stores nothing."""
    registry.register("order.created", order(), actor=PRODUCER)
    registry.register("order.created", order(note={"type": "string"}), actor=PRODUCER)
    narrowed = order(total={"type": "integer"})
    assert registry.check("order.created", narrowed)
    assert registry.check("order.created", narrowed, 1)
    widened = order(note={"type": "string"}, extra={"type": "boolean"})
    assert registry.check("order.created", widened) == []
    # Against v2 a schema without v2's property is refused (a closed reader); against v1 not.
    assert registry.check("order.created", order(extra={"type": "boolean"}), 1) == []
    assert registry.versions("order.created") == [1, 2]
    with pytest.raises(UnknownVersionError):
        registry.check("order.created", order(), 9)


def test_the_mode_comes_from_the_manifest_until_an_operator_sets_one(
    registry: SchemaRegistry, sink: MemorySink
) -> None:
    """FULL from the manifest; NONE set by an operator lets a breaking change through; audited."""
    assert registry.mode("order.cancelled") == "FULL"
    assert registry.mode("order.created") == "BACKWARD"
    registry.register("order.cancelled", order(), actor=PRODUCER)
    breaking = order(total={"type": "boolean"})
    with pytest.raises(IncompatibleSchema):
        registry.register("order.cancelled", breaking, actor=PRODUCER)
    registry.set_mode("order.cancelled", "NONE", actor=ADMIN)
    registry.set_mode("order.cancelled", "NONE", actor=ADMIN)  # an update, not a second row
    assert registry.mode("order.cancelled") == "NONE"
    assert registry.register("order.cancelled", breaking, actor=PRODUCER).version == 2
    modes = [e for e in sink.entries if e.action == "events.schema.mode"]
    assert [(e.actor, e.details["mode"]) for e in modes] == [("admin:alice", "NONE")] * 2


def test_transitive_modes_check_every_version(registry: SchemaRegistry) -> None:
    """FORWARD_TRANSITIVE: v3 is checked against v1 too, not only the latest."""
    subject = "order.created"
    registry.set_mode(subject, "NONE", actor=ADMIN)
    registry.register(subject, order(), actor=PRODUCER)
    registry.register(subject, order(total={"type": "string"}), actor=PRODUCER)
    back = order()  # v1's schema again, as a new version
    back["description"] = "v3"
    registry.set_mode(subject, "FULL", actor=ADMIN)
    assert registry.check(subject, back)  # not compatible with v2 (the latest)
    registry.set_mode(subject, "FULL_TRANSITIVE", actor=ADMIN)
    assert registry.check(subject, back, 1) == []
    assert registry.check(subject, back)  # against v1 and v2: v2 fails


def test_only_declared_subjects_take_schemas(registry: SchemaRegistry, sink: MemorySink) -> None:
    """A subject the manifest does not declare is not found (and the refusal is audited)."""
    with pytest.raises(UnknownSubjectError):
        registry.register("invoice.paid", order(), actor=PRODUCER)
    assert sink.entries[-1].outcome.result == "failure"
    with pytest.raises(UnknownSubjectError):
        registry.mode("invoice.paid")
    with pytest.raises(UnknownSubjectError):
        registry.set_mode("invoice.paid", "NONE", actor=ADMIN)
    with pytest.raises(UnknownSubjectError):
        registry.get("order.created")  # declared, nothing registered yet
    with pytest.raises(UnknownSubjectError):
        registry.versions("order.created")


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "objekt"}, "invalid request schema"),
        ({"$ref": "https://example.com/s.json"}, "not local"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "2020-12"),
        ({"type": "object", "pattern": "("}, "invalid request schema"),
        ({"$ref": "#/$defs/missing"}, "invalid request schema"),
        ({"const": float("nan")}, "not a JSON document"),
        ({"description": "x" * MAX_SCHEMA_BYTES}, "over"),
        (
            {"properties": {"a": {"$id": "urn:a", "$defs": {"t": {}}, "$ref": "#/$defs/t"}}},
            "embedded resource",
        ),
    ],
)
def test_an_unusable_schema_is_refused(
    registry: SchemaRegistry, schema: dict[str, Any], why: str
) -> None:
    """Not 2020-12, a remote reference, a bad pattern, not JSON, too large, an ``$id`` below
    the root (it re-bases ``$ref``, which the checker, cut and resolution cannot follow):
    invalid, not stored — even as the first version, which no check compares."""
    with pytest.raises(InvalidSchemaError, match=why):
        registry.register("order.created", schema, actor=PRODUCER)
    assert registry.subjects() == []


def test_unknown_versions_ids_and_modes(registry: SchemaRegistry) -> None:
    """Each lookup failure has its own error (and so its own Confluent error code)."""
    registry.register("order.created", order(), actor=PRODUCER)
    with pytest.raises(UnknownVersionError):
        registry.get("order.created", 2)
    with pytest.raises(InvalidVersionError):
        registry.get("order.created", 0)
    with pytest.raises(UnknownSchemaError):
        registry.by_id(999_999)
    with pytest.raises(UnknownSchemaError):
        registry.lookup("order.created", order(note={"type": "string"}))
    with pytest.raises(InvalidModeError):
        registry.set_mode("order.created", "SIDEWAYS", actor=ADMIN)  # type: ignore[arg-type]


def test_the_validator_is_the_version_compiled(registry: SchemaRegistry) -> None:
    """validator() validates against that version, and compiles each schema once."""
    registry.register("order.created", order(), actor=PRODUCER)
    validator = registry.validator("order.created", 1)
    assert validator.violations({"id": "o-1", "total": 3}) == ()
    assert validator.violations({"total": "three"})
    assert registry.validator("order.created", 1) is validator


def test_a_registration_is_audited_with_subject_version_and_id(
    registry: SchemaRegistry, sink: MemorySink
) -> None:
    """One success entry per registration, naming the actor, subject, version and id."""
    registered = registry.register("order.created", order(), actor=PRODUCER)
    entry = sink.entries[-1]
    assert entry.actor == "client:erp-events"
    assert entry.action == "events.schema.register"
    assert entry.outcome.result == "success"
    assert entry.details == {
        "subject": "order.created",
        "version": 1,
        "schema_id": registered.id,
        "new": True,
    }


def test_an_audit_failure_is_the_callers(registry: SchemaRegistry, sink: MemorySink) -> None:
    """When the audit trail cannot record a registration, the caller learns of it."""
    sink.unavailable = True
    with pytest.raises(AuditUnavailableError):
        registry.register("order.created", order(), actor=PRODUCER)


def test_schemas_are_stored_once_in_canonical_form(
    registry: SchemaRegistry, deployment: Deployment
) -> None:
    """One row per schema text, whatever the key order it was sent in."""
    registry.register("order.created", order(), actor=PRODUCER)
    registry.register("order.cancelled", dict(reversed(list(order().items()))), actor=PRODUCER)
    with deployment.engine.connect() as connection:
        texts = connection.execute(sa.text("SELECT schema_text FROM event_schemas")).scalars()
        assert list(texts) == [canonical_schema(order())]


def test_a_schema_too_deep_to_compare_is_invalid(registry: SchemaRegistry) -> None:
    """Nesting past the checker's cap: the first version is taken, the comparison refused."""
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(110):
        schema = {"type": "object", "properties": {"a": schema}}
    registry.register("order.created", schema, actor=PRODUCER)
    deeper = {**schema, "description": "v2"}
    with pytest.raises(InvalidSchemaError):
        registry.register("order.created", deeper, actor=PRODUCER)
    with pytest.raises(InvalidSchemaError):
        registry.check("order.created", deeper)


def test_concurrent_registrations_each_get_their_own_version(registry: SchemaRegistry) -> None:
    """Writers racing for the next version: one wins, the others retry; no version is lost."""
    registry.set_mode("order.created", "NONE", actor=ADMIN)
    schemas = [order(**{f"p{n}": {"type": "string"}}) for n in range(4)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        done = list(
            pool.map(lambda s: registry.register("order.created", s, actor=PRODUCER), schemas)
        )
    assert sorted(r.version for r in done) == [1, 2, 3, 4]
    assert len({r.id for r in done}) == 4
    assert registry.versions("order.created") == [1, 2, 3, 4]
