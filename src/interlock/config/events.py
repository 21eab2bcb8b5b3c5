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

With ``encrypt: payload`` each copy travels in the messaging envelope (a JWS
signed by the producer inside a JWE sealed to that consumer's key alone,
:mod:`interlock.messaging.envelope`), with the subject and schema version in
its protected header; the key options are those of a messaging integration.
Without it, events travel as plain JSON over the broker's TLS.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Final, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from interlock.config.messaging import (
    KEY_WINDOW,
    DeadLetterPolicy,
    Destination,
    KeyAlgorithm,
    SigningAlgorithm,
    check_key_window,
)
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

    compatibility: CompatibilityMode = Field(
        default="BACKWARD", description="The schema compatibility mode (Confluent's semantics)."
    )
    field_categories: dict[FieldPath, DataCategory] = Field(
        default_factory=dict,
        description="The data category of each field of the event.",
        examples=[{"customer.email": "user.contact.email"}],
    )
    description: Text | None = Field(
        default=None,
        description="Free text for people reading the manifest.",
        examples=["An order was confirmed by the ERP."],
    )


class ConsumerGrant(_Model):
    """What one consumer may receive of one subject."""

    fields: tuple[FieldPath, ...] | None = Field(
        default=None,
        min_length=1,
        description="The fields the consumer receives (minimisation); default: every field.",
    )
    filter: dict[FieldPath, FilterValue] = Field(
        default_factory=dict,
        max_length=16,
        description=(
            "Only events whose field equals the value (or one of the values) reach the consumer."
        ),
        examples=[{"region": "EU"}],
    )


class EventsSpec(_Model):
    """How an event-streaming integration's events travel, and who may see what."""

    broker: Name = Field(description="The broker the events travel through (a name under brokers).")
    destination: Destination = Field(
        description=(
            "The stream (NATS: upper-cased) and the subject prefix of the per-consumer copies."
        ),
        examples=["orders"],
    )
    subjects: dict[SubjectName, EventSubject] = Field(
        min_length=1,
        max_length=256,
        description="The event types published, by subject name (order.created).",
    )
    consumers: dict[Name, dict[SubjectName, ConsumerGrant]] = Field(
        min_length=1,
        max_length=64,
        description=(
            "Each consumer (a client) and the subjects granted to it; a grant of S "
            "also needs the scope events.S.read."
        ),
    )
    ttl: Duration = Field(default=timedelta(days=1), description="How long an event is kept.")
    max_message: ByteSize = Field(default=256 * 1024, description="The largest event accepted.")
    dead_letter: DeadLetterPolicy = Field(
        description="Where refused events wait, and who may handle them."
    )
    encrypt: Literal["payload"] | None = Field(
        default=None,
        description=(
            "payload: each consumer's copy is signed by the producer and encrypted to that "
            "consumer's key alone (JWS in JWE, as messaging), the subject and schema version "
            "bound in its protected header; not set: plain JSON over the broker's TLS."
        ),
    )
    key_algorithm: KeyAlgorithm = Field(
        default="ECDH-ES+A256KW",
        description="With encrypt: the JWE key management algorithm of the consumers' keys.",
    )
    signing_algorithm: SigningAlgorithm = Field(
        default="ES256", description="With encrypt: the producer's JWS signing algorithm."
    )
    key_rotation: Duration = Field(
        default=timedelta(days=30),
        description="With encrypt: how often the signing and encryption keys are rotated.",
    )
    key_window: Duration | None = Field(
        default=KEY_WINDOW,
        description=(
            "With encrypt: how long one window key serves (1s to 1d); null: a key "
            "agreement per copy (a bare JWE)."
        ),
    )

    @field_validator("consumers")
    @classmethod
    def _granted(
        cls, value: dict[str, dict[str, ConsumerGrant]]
    ) -> dict[str, dict[str, ConsumerGrant]]:
        for consumer, grants in value.items():
            if not grants:
                raise ValueError(f"consumer {consumer!r} is granted no subject")
        return value

    @field_validator("key_window")
    @classmethod
    def _window(cls, value: timedelta | None) -> timedelta | None:
        return check_key_window(value)

    @model_validator(mode="after")
    def _keys_need_encryption(self) -> EventsSpec:
        # A key option without encrypt would read as protection the events do not have.
        # (Compared with the defaults, not model_fields_set: a dumped manifest, defaults
        # written out, must validate again.)
        fields = type(self).model_fields
        stray = [name for name in _KEY_OPTIONS if getattr(self, name) != fields[name].default]
        if self.encrypt is None and stray:
            raise ValueError(
                f"{', '.join(stray)} apply only with encrypt: payload (events are otherwise "
                "plain JSON); declare encrypt: payload or remove them"
            )
        return self


_KEY_OPTIONS: Final = ("key_algorithm", "signing_algorithm", "key_rotation", "key_window")
