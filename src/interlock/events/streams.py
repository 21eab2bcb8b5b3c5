"""One event-streaming integration as the producer and the consumers see it.

Looked up once from the manifest: the integration (its ends and categories,
for the audit), its ``events:`` section, each consumer's compiled grants
(:class:`~interlock.events.grants.Grant`) and each consumer's own broker
topology. Every consumer has a destination of its own,
``DESTINATION.CONSUMER`` (on NATS one stream per consumer, ``ORDERS_CRM-EVENTS``),
so a copy cut for one consumer never sits where another could read it.

Events travel as plain JSON (``application/json``) unless the integration
declares ``encrypt: payload``: then each copy is the messaging envelope (JWS
in JWE, ``application/jose``) sealed to its consumer's key alone, with the
subject and schema bound in its protected header
(:mod:`interlock.events.producer`). Either way the broker connection is TLS,
and the broker's permissions and the per-consumer streams keep copies apart.
The headers say what the body is (:data:`HEADER_SUBJECT`,
:data:`HEADER_SCHEMA_ID`, :data:`HEADER_SCHEMA_VERSION`); the broker's
message id is the event id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from interlock.audit.entry import Decision
from interlock.config.events import EventsSpec, read_scope
from interlock.config.manifest import Integration, Manifest
from interlock.errors import InterlockError, did_you_mean
from interlock.events.grants import Grant
from interlock.identity.grants import client_scopes
from interlock.messaging.flow import integration_decision
from interlock.messaging.model import Topology
from interlock.validation.schema import RequestSchema

__all__ = [
    "CONTENT_TYPE_EVENT",
    "HEADER_SCHEMA_ID",
    "HEADER_SCHEMA_VERSION",
    "HEADER_SUBJECT",
    "EventStream",
    "Registered",
    "SchemaSource",
    "event_stream",
]

CONTENT_TYPE_EVENT: Final = "application/json"
HEADER_SUBJECT: Final = "interlock-subject"
HEADER_SCHEMA_ID: Final = "interlock-schema-id"
HEADER_SCHEMA_VERSION: Final = "interlock-schema-version"


class Registered(Protocol):
    """A registered schema version (:class:`interlock.events.registry.RegisteredSchema`)."""

    @property
    def subject(self) -> str:
        """The subject."""
        ...

    @property
    def version(self) -> int:
        """Its version within the subject (1, 2, ...)."""
        ...

    @property
    def id(self) -> int:
        """Its global id."""
        ...

    @property
    def schema(self) -> dict[str, Any]:
        """The JSON Schema."""
        ...


class SchemaSource(Protocol):
    """What producers and consumers need of the schema registry (a read-only view of it)."""

    def get(self, subject: str, version: int | Literal["latest"] = "latest") -> Registered:
        """A version of ``subject``; NotFoundError when there is none."""
        ...

    def validator(self, subject: str, version: int) -> RequestSchema:
        """The compiled schema of a version (cached)."""
        ...


@dataclass(frozen=True)
class EventStream:
    """An event-streaming integration of the manifest, with its grants and topologies."""

    name: str
    integration: Integration
    spec: EventsSpec
    grants: Mapping[str, Mapping[str, Grant]]  # consumer -> subject -> grant

    @property
    def producer(self) -> str:
        """The client that publishes (the integration's client)."""
        return self.integration.client

    def topology(self, consumer: str) -> Topology:
        """The consumer's own topology: destination ``DESTINATION.CONSUMER``, one consumer."""
        spec = self.spec
        return Topology(
            integration=self.name,
            broker=spec.broker,
            destination=f"{spec.destination}.{consumer}",
            consumers=(consumer,),
            ttl=spec.ttl,
            max_length=spec.dead_letter.max_length,
            max_message=spec.max_message,
            dead_letter_retention=spec.dead_letter.retention,
            dead_letter_max_length=spec.dead_letter.max_length,
        )

    def topologies(self) -> list[Topology]:
        """Every consumer's topology (what ``apply`` declares on the broker)."""
        return [self.topology(consumer) for consumer in self.spec.consumers]

    def decision(
        self,
        *,
        actor: str,
        action: str,
        result: Literal["success", "failure"],
        categories: tuple[str, ...] | None = None,
        size: int = 0,
        reason: str | None = None,
        details: Mapping[str, str | int | bool] | None = None,
    ) -> Decision:
        """An audit entry about one event of this integration (never its payload)."""
        return integration_decision(
            self.name,
            self.integration,
            actor=actor,
            action=action,
            result=result,
            size=size,
            reason=reason,
            details=details,
            data_categories=categories,
        )


def event_stream(manifest: Manifest, integration: str) -> EventStream:
    """The event-streaming integration ``integration``; else InterlockError.

    Also refused: a grant of an undeclared subject, or of a subject ``S`` to a
    consumer that does not hold ``events.S.read`` through its roles.
    """
    flow = manifest.integrations.get(integration)
    if flow is None or flow.events is None:
        names = [n for n, f in manifest.integrations.items() if f.events is not None]
        hint = did_you_mean(integration, names)
        raise InterlockError(f"{integration!r} is not an event-streaming integration{hint}")
    spec = flow.events
    # interlock validate reports both first; at run time they fail closed all the same.
    for consumer, granted in spec.consumers.items():
        held = client_scopes(manifest, consumer)
        for subject in granted:
            if subject not in spec.subjects:
                raise InterlockError(f"{integration!r} grants undeclared subject {subject!r}")
            if read_scope(subject) not in held:
                raise InterlockError(
                    f"{consumer!r} does not hold {read_scope(subject)!r} through its roles"
                )
    grants = {
        consumer: {
            subject: Grant.of(consumer, subject, grant, spec.subjects[subject])
            for subject, grant in granted.items()
        }
        for consumer, granted in spec.consumers.items()
    }
    return EventStream(name=integration, integration=flow, spec=spec, grants=grants)
