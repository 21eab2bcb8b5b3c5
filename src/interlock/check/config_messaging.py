"""The checklist for a messaging integration, from its ``messaging:`` section and broker.

A messaging integration has no routes; its controls are those the producer
and consumer libraries (:mod:`interlock.messaging`) enforce from the manifest:
signed and encrypted envelopes, keys per party, the payload's schema, the
consumers' field allow-list, expiry and de-duplication, a sealed dead-letter
queue handled by a named role, an audit entry per message. Each item reads
those facts, so none passes silently: where the manifest cannot show a
control (throughput limits on the broker), the item needs evidence.

The ``type.messaging.*`` mitigations get evidence from the same facts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from interlock.check.config_brokers import (
    broker_auth,
    broker_certificates,
    broker_of,
    broker_secrets,
    broker_tls,
    broker_tls_mitigation,
)
from interlock.check.config_context import Context
from interlock.check.config_privacy import outlived
from interlock.check.results import Finding
from interlock.config.messaging import MessagingSpec
from interlock.config.units import format_duration

__all__ = ["MESSAGING_CHECKS", "messaging_type_findings"]


def _spec(context: Context) -> MessagingSpec:
    spec = context.flow.messaging
    if spec is None:
        raise ValueError(f"{context.name} is not a messaging integration")
    return spec


def _authentication(context: Context) -> Finding:
    spec, flow = _spec(context), context.flow
    evidence = [
        f"producer {flow.client} signs every message ({spec.signing_algorithm})",
        f"consumers verify the signature against {flow.client}'s published keys",
    ]
    broker = broker_of(context)
    auth = broker_auth(broker)
    evidence.append(f"broker {spec.broker}: {', '.join(auth) or 'no client authentication'}")
    if not auth:
        return context.finding(
            "authentication",
            "fail",
            f"broker {spec.broker} declares neither a client certificate nor a password: "
            "anyone who reaches it can publish and read the queues",
            evidence,
            context.locate(("brokers", spec.broker)),
            "set client_cert: pki:auto (mutual TLS) or credentials: secret://... on the broker",
        )
    return context.finding(
        "authentication",
        "pass",
        "each message carries the producer's signature, checked by every consumer, and "
        "services authenticate to the broker",
        evidence,
        context.at("messaging", "consumers"),
    )


def _least_privilege(context: Context) -> Finding:
    spec, flow = _spec(context), context.flow
    return context.finding(
        "least_privilege",
        "pass",
        f"only {flow.client} holds the signing key and only {', '.join(spec.consumers)} hold "
        "keys that open the messages; dead letters are handled by one role",
        (
            f"signing key: {flow.client}",
            f"decryption keys: {', '.join(spec.consumers)}",
            f"dead-letter role: {spec.dead_letter.role}",
        ),
        context.at("messaging", "consumers"),
    )


def _secrets_manager(context: Context) -> Finding:
    return broker_secrets(
        context,
        "message keys: private keys sealed by the keyring (or HSM), per integration and party",
    )


def _tls_required(context: Context) -> Finding:
    return broker_tls(context, ", and payloads are encrypted end to end besides")


def _minimisation(context: Context) -> Finding:
    spec, flow = _spec(context), context.flow
    if spec.fields is None and flow.personal:
        return context.finding(
            "minimisation",
            "fail",
            "the messages carry personal data and consumers receive every field",
            ("messaging.fields: not set",),
            context.at("messaging"),
            "list what consumers need in messaging.fields",
        )
    evidence = [f"fields: {', '.join(spec.fields) if spec.fields else 'all (no personal data)'}"]
    if spec.encrypted_fields:
        evidence.append(f"field-level encryption: {', '.join(spec.encrypted_fields)}")
    return context.finding(
        "minimisation",
        "pass",
        "consumers receive only the listed fields",
        evidence,
        context.at("messaging", "fields") if spec.fields else context.at("messaging"),
    )


def _input_validation(context: Context) -> Finding:
    spec = _spec(context)
    evidence = [f"max_message: {spec.max_message} bytes"]
    if spec.schema_ is None:
        return context.finding(
            "input_validation",
            "fail",
            "messages are not checked against a schema before they are delivered",
            evidence,
            context.at("messaging"),
            "add the payload's JSON Schema as messaging.schema",
        )
    closed = spec.schema_.get("additionalProperties") is False
    evidence.append(f"schema: JSON Schema{' (closed)' if closed else ''}")
    return context.finding(
        "input_validation",
        "pass",
        "the producer and every consumer check each payload against the schema; signature, "
        "expiry and size are checked before it is parsed",
        evidence,
        context.at("messaging", "schema"),
    )


def _rate_limiting(context: Context) -> Finding:
    spec = _spec(context)
    return context.finding(
        "rate_limiting",
        "needs_evidence",
        "queues are bounded, but Interlock does not limit how fast the producer publishes",
        (f"max_length: {spec.max_length} messages", f"max_message: {spec.max_message} bytes"),
        context.at("messaging", "max_length"),
        "confirm the broker limits the producer (RabbitMQ per-user limits, NATS account "
        "limits) or waive with the reason",
    )


def _sanitised_errors(context: Context) -> Finding:
    return context.finding(
        "sanitised_errors",
        "pass",
        "a refused message carries only a reason code into the dead-letter queue, never the "
        "payload in clear or a stack trace",
        ("dead-letter headers: reason code, consumer, time",),
        context.at("messaging", "dead_letter"),
    )


def _audit_trail(context: Context) -> Finding:
    flow = context.flow
    return context.finding(
        "audit_trail",
        "pass",
        "every publish, delivery and refusal is recorded on the tamper-evident audit log, "
        "and every dead-letter action with the operator",
        (
            "actions: messaging.publish, messaging.consume, messaging.refuse, "
            "messaging.dead_letter.*",
            f"personal data: {'yes' if flow.personal else 'no'}",
        ),
        context.at(),
    )


MESSAGING_CHECKS: Final[dict[str, Callable[[Context], Finding]]] = {
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
"""The items a messaging integration answers from its messaging section (others as usual)."""


def messaging_type_findings(context: Context) -> list[Finding]:
    """The ``type.messaging.*`` mitigations, with evidence from the manifest."""
    spec, flow = _spec(context), context.flow
    tls = broker_tls_mitigation(context, "type.messaging.broker_tls")
    holders = sorted(
        name
        for name, account in context.manifest.operators.items()
        if spec.dead_letter.role in account.roles
    )
    dlq = context.finding(
        "type.messaging.dlq_access",
        "pass" if holders else "needs_evidence",
        "dead letters stay sealed (only consumers' keys open them) and only operators holding "
        f"role {spec.dead_letter.role} may list, show, replay or purge them, each audited"
        if holders
        else f"no operator holds role {spec.dead_letter.role}: nobody can handle the dead letters",
        (f"role: {spec.dead_letter.role}", f"operators: {', '.join(holders) or 'none'}"),
        context.at("messaging", "dead_letter", "role"),
        None if holders else f"grant role {spec.dead_letter.role} to an operator (operators:)",
    )
    within = not [path for path, _ in outlived(flow) if path[0] == "messaging"]
    expiry = context.finding(
        "type.messaging.message_expiry",
        "pass" if within else "fail",
        "messages and dead letters expire within the integration's retention"
        if within
        else "messages or dead letters outlive the integration's retention",
        (
            f"ttl: {format_duration(spec.ttl)}",
            f"dead letters: {format_duration(spec.dead_letter.retention)}",
            f"retention: {format_duration(flow.retention)}",
        ),
        context.at("messaging", "ttl"),
        None if within else "lower messaging.ttl and dead_letter.retention to the retention",
    )
    return [tls, dlq, expiry]
