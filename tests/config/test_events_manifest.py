"""The manifest's events section: subjects, grants through roles, each error at its value."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.config.manifests import check, messages

EVENTS = """\
version: 1
organisation:
  controller: {name: Example GmbH, contact: privacy@example.com}
systems:
  erp: {url: "https://erp.example:9443", location: DE}
  crm: {url: "https://crm.example", location: DE}
brokers:
  stream: {kind: nats, url: "tls://nats.internal:4222", location: DE, client_cert: "pki:auto"}
roles:
  dlq-handler: {scopes: [messaging.dead_letters]}
  order-events-reader: {scopes: [events.order.created.read]}
  analytics-reader: {scopes: [events.order.created.read, events.order.cancelled.read]}
clients:
  erp-events: {auth: [mtls]}
  crm-events: {auth: [mtls], roles: [order-events-reader]}
  analytics: {auth: [mtls], roles: [analytics-reader]}
operators:
  alice: {roles: [dlq-handler]}
integrations:
  order-stream:
    type: event_streaming
    source: erp
    target: crm
    client: erp-events
    purpose: Order events for the CRM and analytics
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P30D
    events:
      broker: stream
      destination: orders
      subjects:
        order.created:
          compatibility: BACKWARD
          field_categories: {customer.email: user.contact.email}
        order.cancelled: {compatibility: FULL_TRANSITIVE}
      consumers:
        crm-events:
          order.created: {fields: [id, customer.email], filter: {region: EU}}
        analytics:
          order.created: {fields: [id, total, region]}
          order.cancelled: {}
      dead_letter: {role: dlq-handler}
"""


def test_the_events_manifest_is_valid_and_its_grant_scopes_are_used(tmp_path: Path) -> None:
    """Subjects, grants and the roles behind them load with no warning (no unused scope)."""
    report = check(tmp_path, EVENTS)
    assert report.ok, messages(report)
    assert report.warnings == ()
    manifest = report.manifest
    assert manifest is not None
    spec = manifest.integrations["order-stream"].events
    assert spec is not None
    assert spec.subjects["order.cancelled"].compatibility == "FULL_TRANSITIVE"
    grant = spec.consumers["crm-events"]["order.created"]
    assert grant.fields == ("id", "customer.email")
    assert grant.filter == {"region": "EU"}


@pytest.mark.parametrize(
    ("old", "new", "path", "fragment"),
    [
        ("broker: stream", "broker: nowhere", "integrations.order-stream.events.broker",
         "unknown broker"),
        ("compatibility: BACKWARD\n", "compatibility: SIDEWAYS\n",
         "integrations.order-stream.events.subjects.order.created.compatibility", "BACKWARD"),
        ("        analytics:\n", "        ghost:\n", "integrations.order-stream.events.consumers.ghost",
         "unknown client"),
        ("        crm-events:\n", "        erp-events:\n",
         "integrations.order-stream.events.consumers.erp-events", "producer"),
        ("          order.cancelled: {}\n", "          order.shipped: {}\n",
         "integrations.order-stream.events.consumers.analytics.order.shipped", "not declared"),
        ("  crm-events: {auth: [mtls], roles: [order-events-reader]}",
         "  crm-events: {auth: [mtls]}",
         "integrations.order-stream.events.consumers.crm-events.order.created",
         "events.order.created.read"),
        ("field_categories: {customer.email: user.contact.email}",
         "field_categories: {customer.phone: user.contact.phone_number}",
         "integrations.order-stream.events.subjects.order.created.field_categories.customer.phone",
         "data_categories"),
        ("dead_letter: {role: dlq-handler}", "dead_letter: {role: nobody}",
         "integrations.order-stream.events.dead_letter.role", "unknown role"),
        ("    type: event_streaming\n", "    type: messaging\n", "integrations.order-stream",
         "type event_streaming"),
        ("    type: event_streaming\n", "", "integrations.order-stream", "type event_streaming"),
    ],
)  # fmt: skip
def test_events_errors_point_at_the_value(
    tmp_path: Path, old: str, new: str, path: str, fragment: str
) -> None:
    """Each mistake is an error at the value that holds it."""
    assert old in EVENTS, old
    report = check(tmp_path, EVENTS.replace(old, new, 1))
    found = [(d.path, d.message) for d in report.errors]
    matching = [message for where, message in found if where == path]
    assert matching, found
    assert fragment in matching[0]


def test_a_grant_scope_no_consumer_is_granted_still_warns(tmp_path: Path) -> None:
    """A role granting events.X.read that no events section grants is an unused scope."""
    text = EVENTS.replace(
        "  dlq-handler: {scopes: [messaging.dead_letters]}\n",
        "  dlq-handler: {scopes: [messaging.dead_letters]}\n"
        "  spare: {scopes: [events.order.refunded.read]}\n",
    )
    report = check(tmp_path, text)
    assert any("events.order.refunded.read" in d.message for d in report.warnings)


def test_events_resting_on_a_broker_outside_the_eea_need_a_transfer(tmp_path: Path) -> None:
    """Events rest on their broker, as messages do: a US broker is a transfer to declare."""
    moved = EVENTS.replace("location: DE, client_cert", "location: US, client_cert", 1)
    found = [(d.path, d.message) for d in check(tmp_path, moved).errors]
    assert any(p == "integrations.order-stream.events.broker" and "outside the EEA" in m
               for p, m in found), found  # fmt: skip


SECOND_STREAM = """\
  billing-stream:
    type: event_streaming
    source: erp
    target: crm
    client: billing-events
    purpose: Billing events
    legal_basis: contract
    retention: P30D
    events:
      broker: stream
      destination: billing
      subjects:
        order.cancelled: {compatibility: MODE}
      consumers:
        analytics:
          order.cancelled: {}
      dead_letter: {role: dlq-handler}
"""


def _two_streams(mode: str) -> str:
    """EVENTS with a second integration, listed first, declaring order.cancelled as ``mode``."""
    text = EVENTS.replace(
        "  erp-events: {auth: [mtls]}",
        "  erp-events: {auth: [mtls]}\n  billing-events: {auth: [mtls]}",
    )
    return text.replace(
        "integrations:\n", "integrations:\n" + SECOND_STREAM.replace("MODE", mode), 1
    )


def test_a_subject_declared_with_two_modes_is_an_error_at_the_second(tmp_path: Path) -> None:
    """One subject has one compatibility mode: the registry cannot keep both promises.

    Before, the first integration's FORWARD silently won over order-stream's
    FULL_TRANSITIVE, letting through changes FULL_TRANSITIVE refuses.
    """
    report = check(tmp_path, _two_streams("FORWARD"))
    found = [(d.path, d.message) for d in report.errors]
    path = "integrations.order-stream.events.subjects.order.cancelled.compatibility"
    matching = [message for where, message in found if where == path]
    assert matching, found
    assert "FORWARD" in matching[0]
    assert "billing-stream" in matching[0]


def test_a_subject_two_integrations_declare_alike_is_valid(tmp_path: Path) -> None:
    """Two producers of one subject under the same mode: nothing to choose between."""
    report = check(tmp_path, _two_streams("FULL_TRANSITIVE"))
    assert report.ok, messages(report)


SEALED = EVENTS.replace(
    "      dead_letter: {role: dlq-handler}\n",
    "      dead_letter: {role: dlq-handler}\n"
    "      encrypt: payload\n"
    "      key_algorithm: RSA-OAEP-256\n"
    "      signing_algorithm: Ed25519\n"
    "      key_rotation: P7D\n",
)


def test_sealed_events_and_their_key_options_are_valid(tmp_path: Path) -> None:
    """encrypt: payload with the messaging key options; plain events default to no encryption."""
    report = check(tmp_path, SEALED)
    assert report.ok, messages(report)
    assert report.manifest is not None
    spec = report.manifest.integrations["order-stream"].events
    assert spec is not None
    assert (spec.encrypt, spec.key_algorithm, spec.signing_algorithm) == (
        "payload",
        "RSA-OAEP-256",
        "Ed25519",
    )
    plain = check(tmp_path, EVENTS).manifest
    assert plain is not None
    plain_spec = plain.integrations["order-stream"].events
    assert plain_spec is not None
    assert plain_spec.encrypt is None


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("      encrypt: payload\n", "      encrypt: fields\n", "payload"),
        ("      encrypt: payload\n", "      encrypt: yes\n", "payload"),
        ("      encrypt: payload\n", "", "apply only with encrypt: payload"),
        ("      encrypt: payload\n      key_algorithm: RSA-OAEP-256\n      signing_algorithm: "
         "Ed25519\n", "", "key_rotation apply only"),
        ("      key_algorithm: RSA-OAEP-256\n", "      key_algorithm: RSA1_5\n", "RSA-OAEP-256"),
        ("      signing_algorithm: Ed25519\n", "      signing_algorithm: HS256\n", "ES256"),
    ],
)  # fmt: skip
def test_sealed_events_errors_point_at_the_events_section(
    tmp_path: Path, old: str, new: str, fragment: str
) -> None:
    """Only whole-payload encryption, allow-listed algorithms, key options only with encrypt."""
    assert old in SEALED, old
    report = check(tmp_path, SEALED.replace(old, new, 1))
    found = [(d.path, d.message) for d in report.errors]
    matching = [m for where, m in found if where.startswith("integrations.order-stream.events")]
    assert matching, found
    assert fragment in matching[0]
