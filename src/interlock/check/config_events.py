"""The checklist for an event-streaming integration, from its ``events:`` section and broker.

Events are validated against the registry's schemas at produce and consume
(:mod:`interlock.events`), and each consumer receives its own copy on its own
stream, cut to the fields and filtered to the events its grant allows; grants
need the scope ``events.SUBJECT.read`` through the consumer's roles. With
``encrypt: payload`` each copy is also signed by the producer and encrypted
to its consumer's key alone (the messaging envelope); ``tls_required`` says
whether events are payload-encrypted or plain JSON inside TLS, and
authentication, least privilege and secrets name the keys. The
items read those facts; the broker's transport is read as for messaging
(:mod:`interlock.check.config_brokers`). The ``type.event_streaming.*``
mitigations get evidence from the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from interlock.check.config_brokers import (
    broker_auth,
    broker_certificates,
    broker_name,
    broker_of,
    broker_secrets,
    broker_tls,
)
from interlock.check.config_context import Context
from interlock.check.config_privacy import outlived
from interlock.check.results import Finding
from interlock.config.events import EventsSpec, read_scope
from interlock.config.units import format_duration

__all__ = ["EVENTS_CHECKS", "events_type_findings"]


def _spec(context: Context) -> EventsSpec:
    spec = context.flow.events
    if spec is None:
        raise ValueError(f"{context.name} is not an event-streaming integration")
    return spec


def _personal_subjects(spec: EventsSpec) -> set[str]:
    return {
        name
        for name, subject in spec.subjects.items()
        if any(c.startswith("user") for c in subject.field_categories.values())
    }


def _uncut(spec: EventsSpec) -> list[str]:
    """``consumer: subject`` for each grant of a personal-data subject without ``fields``."""
    personal_subjects = _personal_subjects(spec)
    return [
        f"{consumer}: {subject}"
        for consumer, grants in spec.consumers.items()
        for subject, grant in grants.items()
        if subject in personal_subjects and grant.fields is None
    ]


def _sealed(spec: EventsSpec) -> bool:
    return spec.encrypt is not None


def _authentication(context: Context) -> Finding:
    spec, flow = _spec(context), context.flow
    auth = broker_auth(broker_of(context))
    name = broker_name(context)
    evidence = [f"broker {name}: {', '.join(auth) or 'no client authentication'}"]
    if _sealed(spec):
        evidence.insert(0, f"producer {flow.client} signs every copy ({spec.signing_algorithm})")
    if not auth:
        return context.finding(
            "authentication",
            "fail",
            f"broker {name} declares neither a client certificate nor a password: anyone who "
            "reaches it can publish events and read every stream",
            evidence,
            context.locate(("brokers", name)),
            "set client_cert: pki:auto (mutual TLS) or credentials: secret://... on the broker",
        )
    return context.finding(
        "authentication",
        "pass",
        "producer and consumers authenticate to the broker; each consumer reads only its own "
        "stream"
        + (
            "; each copy carries the producer's signature, checked by its consumer"
            if _sealed(spec)
            else ""
        ),
        evidence,
        context.locate(("brokers", name)),
    )


def _least_privilege(context: Context) -> Finding:
    spec = _spec(context)
    evidence = [
        f"{consumer}: {', '.join(grants)} (scopes {', '.join(read_scope(s) for s in grants)})"
        for consumer, grants in spec.consumers.items()
    ]
    if _sealed(spec):
        evidence.append(
            f"decryption keys: one per consumer ({spec.key_algorithm}), each copy sealed to one"
        )
    return context.finding(
        "least_privilege",
        "pass",
        "each consumer is granted named subjects through its roles and receives them on a "
        "stream of its own; nothing else reaches it"
        + ("; only its key opens its copy" if _sealed(spec) else ""),
        evidence,
        context.at("events", "consumers"),
    )


def _minimisation(context: Context) -> Finding:
    spec = _spec(context)
    uncut = _uncut(spec)
    if uncut:
        return context.finding(
            "minimisation",
            "fail",
            "consumers receive every field of events that carry personal data: " + "; ".join(uncut),
            uncut,
            context.at("events", "consumers"),
            "list the fields each consumer needs in its grant (fields: [...])",
        )
    cut = [
        f"{consumer}: {subject} -> {', '.join(grant.fields)}"
        for consumer, grants in spec.consumers.items()
        for subject, grant in grants.items()
        if grant.fields is not None
    ]
    return context.finding(
        "minimisation",
        "pass",
        "each consumer's copy carries only the fields its grant lists (personal-data subjects "
        "are always cut)"
        if cut
        else "no event carries personal data",
        cut or [f"personal data: {'yes' if context.flow.personal else 'no'}"],
        context.at("events", "consumers"),
    )


def _input_validation(context: Context) -> Finding:
    spec = _spec(context)
    modes = [f"{name}: {subject.compatibility}" for name, subject in spec.subjects.items()]
    return context.finding(
        "input_validation",
        "pass",
        "producers validate every event against the subject's registered schema before it "
        "reaches the broker; consumers validate against the writer's version",
        [*modes, f"max_message: {spec.max_message} bytes"],
        context.at("events", "subjects"),
    )


def _rate_limiting(context: Context) -> Finding:
    spec = _spec(context)
    return context.finding(
        "rate_limiting",
        "needs_evidence",
        "streams expire their events, but Interlock does not limit how fast the producer publishes",
        (f"ttl: {format_duration(spec.ttl)}",),
        context.at("events", "ttl"),
        "confirm the broker limits the producer (NATS account limits, RabbitMQ per-user "
        "limits) or waive with the reason",
    )


def _sanitised_errors(context: Context) -> Finding:
    return context.finding(
        "sanitised_errors",
        "pass",
        "a refused event carries only a reason code into the dead-letter queue, and a refused "
        "publish names the schema violations, never internal detail",
        ("dead-letter headers: reason code, consumer, time",),
        context.at("events", "dead_letter"),
    )


def _audit_trail(context: Context) -> Finding:
    return context.finding(
        "audit_trail",
        "pass",
        "every publish (with the consumers it reached), delivery, refusal and schema "
        "registration is recorded on the tamper-evident audit log",
        ("actions: events.publish, events.consume, events.refuse, events.schema.register",),
        context.at(),
    )


def _secrets_manager(context: Context) -> Finding:
    keys = "; event keys: private keys sealed by the keyring, per party"
    return broker_secrets(
        context, "schemas: in the store, versioned" + (keys if _sealed(_spec(context)) else "")
    )


def _tls_required(context: Context) -> Finding:
    """TLS to the broker, and whether the events are also encrypted end to end."""
    spec = _spec(context)
    if _sealed(spec):
        return broker_tls(
            context,
            f", and events are payload-encrypted besides: each consumer's copy signed "
            f"({spec.signing_algorithm}) and encrypted to that consumer's key alone "
            f"({spec.key_algorithm}, A256GCM)",
        )
    return broker_tls(
        context,
        "; events are not payload-encrypted (plain JSON inside TLS: the broker can read "
        "them; encrypt: payload seals each copy)",
    )


EVENTS_CHECKS: Final[dict[str, Callable[[Context], Finding]]] = {
    "authentication": _authentication,
    "least_privilege": _least_privilege,
    "secrets_manager": _secrets_manager,
    "tls_required": _tls_required,
    "certificates_validated": broker_certificates,
    "minimisation": _minimisation,
    "input_validation": _input_validation,
    "rate_limiting": _rate_limiting,
    "sanitised_errors": _sanitised_errors,
    "audit_trail": _audit_trail,
}
"""The items an event-streaming integration answers from its events section."""


def events_type_findings(context: Context) -> list[Finding]:
    """The ``type.event_streaming.*`` mitigations, with evidence from the manifest."""
    spec, flow = _spec(context), context.flow
    unchecked = [name for name, subject in spec.subjects.items() if subject.compatibility == "NONE"]
    schemas = context.finding(
        "type.event_streaming.schema_validation",
        "fail" if unchecked else "pass",
        f"subjects without a compatibility check: {', '.join(unchecked)} (a new schema version "
        "may break consumers)"
        if unchecked
        else "every subject's new schema versions must be compatible (its mode), and events "
        "are validated at produce and consume",
        [f"{name}: {subject.compatibility}" for name, subject in spec.subjects.items()],
        context.at("events", "subjects"),
        "set a compatibility mode other than NONE" if unchecked else None,
    )
    uncut = _uncut(spec)
    filtered = context.finding(
        "type.event_streaming.event_filtering",
        "fail" if uncut else "pass",
        "personal-data events reach consumers uncut: " + "; ".join(uncut)
        if uncut
        else "each consumer receives only its granted subjects, fields and (where filtered) events",
        [
            f"{consumer}: {subject}"
            + (f" fields {', '.join(grant.fields)}" if grant.fields else "")
            + (f" filter {grant.filter}" if grant.filter else "")
            for consumer, grants in spec.consumers.items()
            for subject, grant in grants.items()
        ],
        context.at("events", "consumers"),
        "list the fields each consumer needs in its grant" if uncut else None,
    )
    within = not [path for path, _ in outlived(flow) if path[0] == "events"]
    acl = context.finding(
        "type.event_streaming.topic_acl",
        "pass" if within else "fail",
        "each consumer reads a stream of its own, granted through its roles, and events and "
        "dead letters expire within the integration's retention"
        if within
        else "events or dead letters outlive the integration's retention",
        (
            f"ttl: {format_duration(spec.ttl)}",
            f"dead letters: {format_duration(spec.dead_letter.retention)}",
            f"retention: {format_duration(flow.retention)}",
        ),
        context.at("events"),
        None if within else "lower events.ttl and dead_letter.retention to the retention",
    )
    return [schemas, filtered, acl]
