"""The manifest's brokers, operators and messaging sections, each error at its value."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.config.manifests import check, messages

MESSAGING = """\
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
brokers:
  bus:
    kind: rabbitmq
    url: "amqps://interlock@rabbit.internal:5671/"
    location: DE
    ca: "pki:internal"
    credentials: "secret://bus/password"
    client_cert: "pki:auto"
  stream: {kind: nats, url: "tls://nats.internal:4222", location: DE}
roles:
  dlq-handler: {scopes: [messaging.dead_letters]}
clients:
  erp-publisher: {auth: [mtls]}
  crm-consumer: {auth: [mtls]}
operators:
  alice: {roles: [dlq-handler]}
  ops.bob@corp: {roles: [dlq-handler]}
integrations:
  order-events:
    type: messaging
    source: erp
    target: crm
    client: erp-publisher
    purpose: Tell the CRM about confirmed orders
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    messaging:
      broker: bus
      destination: orders
      consumers: [crm-consumer]
      encrypt: fields
      field_categories: {customer.email: user.contact.email}
      schema:
        type: object
        properties: {id: {type: string}, customer: {type: object}}
        required: [id]
        additionalProperties: false
      fields: [id, customer.email]
      ttl: PT10M
      dead_letter: {role: dlq-handler, retention: P7D}
"""


def _errors(tmp_path: Path, old: str, new: str) -> list[tuple[str, str]]:
    assert old in MESSAGING, old
    report = check(tmp_path, MESSAGING.replace(old, new, 1))
    return [(d.path, d.message) for d in report.errors]


def test_the_messaging_manifest_is_valid(tmp_path: Path) -> None:
    """Brokers, operators and a messaging integration load, with no warning."""
    report = check(tmp_path, MESSAGING)
    assert report.ok, messages(report)
    assert report.warnings == ()
    manifest = report.manifest
    assert manifest is not None
    spec = manifest.integrations["order-events"].messaging
    assert spec is not None
    assert spec.ttl == timedelta(minutes=10)
    assert spec.encrypted_fields == ("customer.email",)
    assert spec.schema_ is not None
    assert manifest.brokers["bus"].client_cert == "pki:auto"
    assert manifest.operators["ops.bob@corp"].roles == ("dlq-handler",)


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ('"amqps://interlock@', '"amqp://interlock@', "brokers.bus.url", "amqps://"),
        (
            '"tls://nats.internal:4222"',
            '"nats://nats.internal:4222"',
            "brokers.stream.url",
            "tls://",
        ),
        ('"amqps://interlock@', '"amqps://interlock:pw@', "brokers.bus.url", "password"),
        ('"secret://bus/password"', '"hunter2"', "brokers.bus.credentials", "reference"),
        ('ca: "pki:internal"', "ca: none", "brokers.bus.ca", "cannot switch"),
        ("kind: rabbitmq", "kind: kafka", "brokers.bus.kind", "rabbitmq"),
        (
            "broker: bus",
            "broker: nowhere",
            "integrations.order-events.messaging.broker",
            "unknown broker",
        ),
        (
            "consumers: [crm-consumer]",
            "consumers: [crm-consumer, ghost]",
            "integrations.order-events.messaging.consumers[1]",
            "unknown client",
        ),
        (
            "consumers: [crm-consumer]",
            "consumers: [erp-publisher]",
            "integrations.order-events.messaging.consumers[0]",
            "producer",
        ),
        (
            "consumers: [crm-consumer]",
            "consumers: [crm-consumer, crm-consumer]",
            "integrations.order-events.messaging.consumers",
            "once",
        ),
        (
            "role: dlq-handler, retention",
            "role: nobody, retention",
            "integrations.order-events.messaging.dead_letter.role",
            "unknown role",
        ),
        (
            "field_categories: {customer.email: user.contact.email}",
            "field_categories: {customer.id: system.operations}",
            "integrations.order-events.messaging",
            "personal-data category",
        ),
        (
            "fields: [id, customer.email]",
            "fields: [id, total]",
            "integrations.order-events.messaging.fields",
            "not a property",
        ),
        ("ttl: PT10M", "ttl: P30D", "integrations.order-events.messaging.ttl", "14 days"),
        (
            "alice: {roles: [dlq-handler]}",
            "alice: {roles: [ghost]}",
            "operators.alice.roles[0]",
            "unknown role",
        ),
        ("    type: messaging\n", "", "integrations.order-events", "type messaging"),
        (
            "    type: messaging\n",
            "    type: rest\n",
            "integrations.order-events",
            "type messaging",
        ),
    ],
)
def test_messaging_errors_point_at_the_value(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """Each mistake is an error at the field that holds it."""
    found = _errors(tmp_path, old, new)
    matching = [message for where, message in found if where == path]
    assert matching, found
    assert fragment in matching[0]


def test_a_messaging_integration_has_no_routes(tmp_path: Path) -> None:
    """HTTP routes on a messaging integration are refused."""
    route = "    routes:\n      - {method: GET, path: /orders, upstream: erp, scope: orders.read}\n"
    text = (
        MESSAGING.replace(
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n",
            "  dlq-handler: {scopes: [messaging.dead_letters]}\n  reader: {scopes: [orders.read]}\n",
        )
        + route
    )
    report = check(tmp_path, text)
    assert ("integrations.order-events.routes", "a messaging integration has no HTTP routes") in [
        (d.path, d.message) for d in report.errors
    ]


def test_a_broker_outside_the_eea_is_a_transfer(tmp_path: Path) -> None:
    """Personal data resting on a US broker needs a declared transfer to the US."""
    moved = MESSAGING.replace("    location: DE\n    ca:", "    location: US\n    ca:", 1)
    found = [(d.path, d.message) for d in check(tmp_path, moved).errors]
    assert any(
        path == "integrations.order-events.messaging.broker" and "outside the EEA" in message
        for path, message in found
    ), found
    declared = moved.replace(
        "    retention: P30D\n",
        "    retention: P30D\n    transfer: {destination: US, safeguard: SCC}\n",
    )
    assert check(tmp_path, declared).ok


def test_an_operator_name_is_a_system_user_name(tmp_path: Path) -> None:
    """Operator names are OS user names; anything else is refused at the key."""
    report = check(tmp_path, MESSAGING.replace("  alice: {roles", "  'al ice': {roles", 1))
    assert any(
        d.path == "operators.al ice" and "operating-system" in d.message for d in report.errors
    )
