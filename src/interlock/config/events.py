"""The manifest's ``events:`` section: an event-streaming integration's subjects and grants.

An integration of ``type: event_streaming`` publishes events of declared
**subjects** (one per event type, e.g. ``order.created``), each with its
schema compatibility mode (Confluent's semantics, :mod:`interlock.events`) and
the data category of its fields. Each **consumer** (a client of the manifest)
is granted subjects, with the fields it may see (minimisation) and optional
content filters (``region: EU``); a grant of subject ``S`` also needs the
client to hold the scope ``events.S.read`` through its roles, so grants stay
visible where every other permission is. Interlock publishes each consumer
its own copy (docs/events.md): a field a consumer may not see never reaches it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, field_validator

from interlock.config.messaging import DeadLetterPolicy, Destination
from interlock.config.units import ByteSize, Duration
from interlock.config.vocabulary import DataCategory, FieldPath, Name, Text, _Model

__all__ = [
    "COMPATIBILITY_MODES",
    "CompatibilityMode",
    "ConsumerGrant",
    "EventSubject",
    "EventsSpec",
    "SubjectName",
    "read_scope",
]

CompatibilityMode = Literal[
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
]
COMPATIBILITY_MODES: Final[tuple[str, ...]] = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)

#: An event subject: dot-separated lower-case words (``order.created``), as a scope.
SubjectName = Annotated[
    str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)*$", max_length=100)
]
#: A filter value: events pass when the field equals it (or one of a list).
FilterValue = str | int | bool | tuple[str | int | bool, ...]


def read_scope(subject: str) -> str:
    """The scope a client needs, through its roles, to consume ``subject``."""
    return f"events.{subject}.read"


class EventSubject(_Model):
    """One event type: its compatibility mode and the data categories of its fields."""

    compatibility: CompatibilityMode = "BACKWARD"
    field_categories: dict[FieldPath, DataCategory] = Field(default_factory=dict)
    description: Text | None = None


class ConsumerGrant(_Model):
    """What one consumer may receive of one subject."""

    # The fields it receives (minimisation); None: every field of the event.
    fields: tuple[FieldPath, ...] | None = Field(default=None, min_length=1)
    # Only events whose field equals the value (or one of the values) reach it.
    filter: dict[FieldPath, FilterValue] = Field(default_factory=dict, max_length=16)


class EventsSpec(_Model):
    """How an event-streaming integration's events travel, and who may see what."""

    broker: Name
    # The stream (NATS: upper-cased name) and the subject prefix of its per-consumer copies.
    destination: Destination
    subjects: dict[SubjectName, EventSubject] = Field(min_length=1, max_length=256)
    # Each consumer (a client) and the subjects granted to it.
    consumers: dict[Name, dict[SubjectName, ConsumerGrant]] = Field(min_length=1, max_length=64)
    ttl: Duration = timedelta(days=1)
    max_message: ByteSize = 256 * 1024
    dead_letter: DeadLetterPolicy

    @field_validator("consumers")
    @classmethod
    def _granted(
        cls, value: dict[str, dict[str, ConsumerGrant]]
    ) -> dict[str, dict[str, ConsumerGrant]]:
        for consumer, grants in value.items():
            if not grants:
                raise ValueError(f"consumer {consumer!r} is granted no subject")
        return value
