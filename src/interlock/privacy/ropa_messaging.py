"""Art. 30 facts of messaging and event-streaming integrations: broker and measures.

The broker is where messages rest until consumed (and dead letters until
their retention ends), so the register lists it with its location beside the
target system. The measures come from the ``messaging:`` section the
producer and consumer libraries enforce (:mod:`interlock.messaging`), and
from the ``events:`` section (:mod:`interlock.events`; ``payload_encryption``
only when it declares ``encrypt: payload``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from interlock.config.units import format_duration
from interlock.privacy.ropa_measures import Measure

if TYPE_CHECKING:
    from datetime import timedelta

    from interlock.config.manifest import Integration, Manifest

__all__ = ["broker_location", "events_measures", "messaging_measures"]


def broker_location(manifest: Manifest, flow: Integration) -> tuple[str, str | None, str | None]:
    """The broker's name, location and owner (None when it is not declared)."""
    section = flow.messaging or flow.events
    if section is None:
        raise ValueError("neither a messaging nor an event-streaming integration")
    broker = manifest.brokers.get(section.broker)
    return (
        section.broker,
        broker.location if broker is not None else None,
        broker.owner if broker is not None else None,
    )


def events_measures(manifest: Manifest, name: str, flow: Integration) -> Iterator[Measure]:
    """The measures of integration ``name``'s events (nothing for other types)."""
    spec = flow.events
    if spec is None:
        return
    at = f"integrations.{name}.events"
    yield _broker_tls(manifest, spec.broker)
    if spec.encrypt is not None:
        yield Measure(
            "payload_encryption",
            f"every consumer's copy signed by {flow.client} ({spec.signing_algorithm}) and "
            f"encrypted to that consumer's key alone ({spec.key_algorithm}, A256GCM), subject "
            f"and schema version bound to it; {_agreement(spec.key_window)}; keys rotated "
            f"every {format_duration(spec.key_rotation)}",
            f"{at}.encrypt",
        )
    for subject, declared in spec.subjects.items():
        categories = sorted(set(declared.field_categories.values()))
        carries = f"; carries {', '.join(categories)}" if categories else ""
        yield Measure(
            "validation",
            f"{subject} events validated against the subject's registered JSON Schema at "
            f"produce and consume; new versions must be {declared.compatibility}{carries}",
            f"{at}.subjects.{subject}",
        )
    for consumer, grants in spec.consumers.items():
        for subject, grant in grants.items():
            fields = ", ".join(grant.fields) if grant.fields else "every field"
            conditions = " and ".join(f"{field} = {value}" for field, value in grant.filter.items())
            only = f" where {conditions}" if conditions else ""
            yield Measure(
                "minimisation",
                f"{consumer} receives {subject}{only} on its own stream with {fields}",
                f"{at}.consumers.{consumer}.{subject}",
            )
    yield Measure(
        "dead_letters",
        f"events expire after {format_duration(spec.ttl)}; refused ones are kept for "
        f"{format_duration(spec.dead_letter.retention)}, handled only by role "
        f"{spec.dead_letter.role}",
        f"{at}.dead_letter",
    )


def _broker_tls(manifest: Manifest, name: str) -> Measure:
    broker = manifest.brokers.get(name)
    policy = broker.tls if broker is not None and broker.tls is not None else manifest.tls
    mutual = " with a client certificate" if broker is not None and broker.client_cert else ""
    return Measure(
        "tls",
        f"TLS {policy.min_version} or later to broker {name}, certificate verified{mutual}",
        f"brokers.{name}",
    )


def messaging_measures(manifest: Manifest, name: str, flow: Integration) -> Iterator[Measure]:
    """The measures of integration ``name``'s messages (nothing for other types)."""
    spec = flow.messaging
    if spec is None:
        return
    at = f"integrations.{name}.messaging"
    yield _broker_tls(manifest, spec.broker)
    readers = ", ".join(spec.consumers)
    if spec.encrypt == "payload":
        protected = f"every message signed by {flow.client} ({spec.signing_algorithm}) and "
        protected += f"encrypted to {readers} ({spec.key_algorithm}, A256GCM)"
    else:
        fields = ", ".join(spec.encrypted_fields)
        protected = f"every message signed by {flow.client} ({spec.signing_algorithm}); the "
        protected += f"personal-data fields {fields} encrypted to {readers} ({spec.key_algorithm})"
    yield Measure(
        "payload_encryption",
        f"{protected}; {_agreement(spec.key_window)}; keys rotated every "
        f"{format_duration(spec.key_rotation)}",
        f"{at}.encrypt",
    )
    yield Measure(
        "authorisation",
        f"only {readers} hold keys that open the messages; only {flow.client} signs them",
        f"{at}.consumers",
    )
    if spec.schema_ is not None:
        yield Measure("validation", "each message checked against a JSON Schema", f"{at}.schema")
    if spec.fields is not None:
        yield Measure(
            "minimisation",
            f"consumers receive only {', '.join(spec.fields)}; other fields removed",
            f"{at}.fields",
        )
    yield Measure(
        "replay_protection",
        f"messages expire after {format_duration(spec.ttl)}; duplicates refused by message id",
        f"{at}.ttl",
    )
    yield Measure(
        "dead_letters",
        "refused messages kept sealed in a dead-letter queue for "
        f"{format_duration(spec.dead_letter.retention)}, handled only by role "
        f"{spec.dead_letter.role}, every action audited",
        f"{at}.dead_letter",
    )


def _agreement(window: timedelta | None) -> str:
    """How often a key agreement is made with the consumers' keys (key_window)."""
    if window is None:
        return "a key agreement per message"
    return f"one key agreement per {format_duration(window)} window key"
