"""The event producer on the in-process broker: validation first, then one cut copy per consumer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.entry import AuditEntry
from interlock.audit.sink import MemorySink
from interlock.errors import InterlockError
from interlock.events.consumer import EventConsumer
from interlock.events.producer import PUBLISH_ACTION, EventProducer, EventRefused
from interlock.events.registry import SchemaRegistry
from interlock.events.streams import (
    CONTENT_TYPE_EVENT,
    HEADER_SCHEMA_ID,
    HEADER_SCHEMA_VERSION,
    HEADER_SUBJECT,
    event_stream,
)
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.memory import MemoryBroker, MemoryServer
from interlock.messaging.model import HEADER_INTEGRATION, PublishError
from interlock.replay.idempotency import MemoryIdempotency
from interlock.store import Deployment
from tests.events.streams_support import (
    INTEGRATION,
    make_deployment,
    make_manifest,
    make_registry,
    order,
    run,
)


class Setup:
    """A producer on a fresh in-process broker, with the registry and the audit it uses."""

    def __init__(self, tmp_path: Path) -> None:
        self.manifest = make_manifest(tmp_path)
        self.audit = MemorySink()
        self.deployment: Deployment = make_deployment(tmp_path)
        self.registry: SchemaRegistry = make_registry(self.deployment, self.manifest, self.audit)
        self.server = MemoryServer()
        self.stream = event_stream(self.manifest, INTEGRATION)
        self.producer = EventProducer(
            self.manifest,
            INTEGRATION,
            registry=self.registry,
            broker=MemoryBroker(self.server),
            audit=self.audit,
        )

    def copies(self, consumer: str) -> list[tuple[dict[str, Any], dict[str, str]]]:
        """What waits in ``consumer``'s own queue: each body decoded, with its headers."""
        queue = self.server.queue(self.stream.topology(consumer), consumer)
        return [(json.loads(item.body), item.headers) for item in queue.ready]

    def audits(self, action: str = PUBLISH_ACTION) -> list[AuditEntry]:
        """The audit entries of ``action``."""
        return [entry for entry in self.audit.entries if entry.action == action]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A fresh producer set-up."""
    made = Setup(tmp_path)
    yield made
    made.deployment.close()


def test_each_consumer_gets_its_own_copy_cut_to_its_grant(setup: Setup) -> None:
    event_id = run(setup.producer.publish("order.created", order("EU")))
    (crm, crm_headers), *more_crm = setup.copies("crm-events")
    (analytics, _), *more_analytics = setup.copies("analytics")
    assert crm == {"id": "o-1", "customer": {"email": "ada@example.com"}}
    assert analytics == {"id": "o-1", "total": 12.5, "region": "EU"}
    assert not more_crm
    assert not more_analytics
    registered = setup.registry.get("order.created")
    assert crm_headers == {
        HEADER_INTEGRATION: INTEGRATION,
        HEADER_SUBJECT: "order.created",
        HEADER_SCHEMA_ID: str(registered.id),
        HEADER_SCHEMA_VERSION: "1",
    }
    assert {m.message_id for m in setup.server.published} == {event_id}
    assert {m.content_type for m in setup.server.published} == {CONTENT_TYPE_EVENT}


def test_the_copies_go_to_one_destination_per_consumer(setup: Setup) -> None:
    destinations = {t.destination for t in setup.stream.topologies()}
    assert destinations == {"orders.crm-events", "orders.analytics"}
    assert all(len(t.consumers) == 1 for t in setup.stream.topologies())


def test_a_consumer_whose_filter_excludes_the_event_gets_nothing(setup: Setup) -> None:
    run(setup.producer.publish("order.created", order("US")))
    assert setup.copies("crm-events") == []
    assert [body["region"] for body, _ in setup.copies("analytics")] == ["US"]
    (entry,) = setup.audits()
    assert entry.details["consumers"] == 1
    # Only analytics' fields went out: no e-mail address, so no category.
    assert entry.data_categories == ()


def test_a_subject_reaches_only_the_consumers_granted_it(setup: Setup) -> None:
    run(setup.producer.publish("order.cancelled", {"id": "c-1", "note": "late"}))
    assert setup.copies("crm-events") == []
    ((body, headers),) = setup.copies("analytics")
    assert body == {"id": "c-1", "note": "late"}
    assert headers[HEADER_SCHEMA_VERSION] == "2"  # the latest


def test_an_invalid_event_is_refused_and_nothing_is_published(setup: Setup) -> None:
    bad = order(total=-1, customer={"email": "not an address", "name": "Ada"})
    with pytest.raises(EventRefused) as refused:
        run(setup.producer.publish("order.created", bad))
    pointers = {v.pointer for v in refused.value.violations}
    assert pointers == {"#/total", "#/customer/email"}
    assert setup.server.published == []
    (entry,) = setup.audits()
    assert entry.outcome.result == "failure"
    assert entry.reason == "schema"
    assert entry.details["version"] == 1


def test_an_event_missing_a_field_a_consumer_is_not_granted_is_still_refused(
    setup: Setup,
) -> None:
    # The producer validates the whole event, whatever any consumer receives.
    event = order()
    del event["customer"]["name"]
    with pytest.raises(EventRefused):
        run(setup.producer.publish("order.created", event))
    assert setup.server.published == []


def test_an_undeclared_subject_is_refused(setup: Setup) -> None:
    with pytest.raises(EventRefused, match="no subject"):
        run(setup.producer.publish("order.shipped", {"id": "x"}))
    assert setup.server.published == []
    assert [e.reason for e in setup.audits()] == ["undeclared subject"]


@pytest.mark.parametrize("value", [float("nan"), {1, 2}, b"bytes"])
def test_an_event_that_is_not_json_is_refused(setup: Setup, value: object) -> None:
    with pytest.raises(EventRefused, match="not a JSON document"):
        run(setup.producer.publish("order.created", order(note=value)))
    assert setup.server.published == []
    assert [e.reason for e in setup.audits()] == ["not JSON"]


def test_a_subject_without_a_registered_schema_is_refused(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    audit = MemorySink()
    deployment = make_deployment(tmp_path)
    try:
        server = MemoryServer()
        producer = EventProducer(
            manifest,
            INTEGRATION,
            registry=SchemaRegistry(deployment.engine, manifest, audit=audit),
            broker=MemoryBroker(server),
            audit=audit,
        )
        with pytest.raises(EventRefused, match="no registered schema"):
            run(producer.publish("order.created", order()))
        assert server.published == []
        assert [e.outcome.result for e in audit.entries] == ["failure"]
    finally:
        deployment.close()


def test_one_audit_entry_per_event_names_consumers_and_categories_sent(setup: Setup) -> None:
    event_id = run(setup.producer.publish("order.created", order("EU")))
    (entry,) = setup.audits()
    assert entry.actor == "client:erp-events"
    assert entry.integration == INTEGRATION
    assert entry.outcome.result == "success"
    assert entry.data_categories == ("user.contact.email",)
    assert entry.details == {
        "subject": "order.created",
        "consumers": 2,
        "version": 1,
        "schema_id": setup.registry.get("order.created").id,
        "event_id": event_id,
        "sealed": False,
    }
    assert "ada@example.com" not in entry.model_dump_json()


def test_an_unconfirmed_publication_raises_and_is_audited(setup: Setup) -> None:
    setup.server.refuse_publishing = True
    with pytest.raises(PublishError):
        run(setup.producer.publish("order.created", order()))
    (entry,) = setup.audits()
    assert entry.outcome.result == "failure"
    assert entry.details["consumers"] == 0


def test_a_given_event_id_is_the_message_id_of_every_copy(setup: Setup) -> None:
    run(setup.producer.publish("order.created", order(), event_id="evt-42"))
    assert [m.message_id for m in setup.server.published] == ["evt-42", "evt-42"]


def test_a_grant_without_the_read_scope_fails_closed_at_run_time(tmp_path: Path) -> None:
    manifest = make_manifest(tmp_path)
    crm = manifest.clients["crm-events"]
    stripped = manifest.model_copy(
        update={"clients": {**manifest.clients, "crm-events": crm.model_copy(update={"roles": ()})}}
    )
    with pytest.raises(InterlockError, match=r"events\.order\.created\.read"):
        event_stream(stripped, INTEGRATION)


def test_a_sealed_integration_needs_the_keys_at_both_ends(tmp_path: Path) -> None:
    """encrypt: payload without keys= fails at construction, not at the first event."""
    manifest = make_manifest(tmp_path, sealed=True)
    audit = MemorySink()
    deployment = make_deployment(tmp_path)
    try:
        registry = make_registry(deployment, manifest, audit)
        broker = MemoryBroker(MemoryServer())
        with pytest.raises(InterlockError, match="encrypt: payload"):
            EventProducer(manifest, INTEGRATION, registry=registry, broker=broker, audit=audit)
        with pytest.raises(InterlockError, match="encrypt: payload"):
            EventConsumer(
                manifest,
                INTEGRATION,
                "crm-events",
                registry=registry,
                broker=broker,
                dedup=MemoryIdempotency(),
                audit=audit,
            )
    finally:
        deployment.close()


def test_a_sealed_copy_over_max_message_is_refused_before_any_is_sent(tmp_path: Path) -> None:
    """The envelope makes a copy larger than the event: the producer checks the sealed size."""
    manifest = make_manifest(tmp_path, sealed=True)
    spec = manifest.integrations[INTEGRATION].events
    assert spec is not None
    small = manifest.model_copy(
        update={
            "integrations": {
                INTEGRATION: manifest.integrations[INTEGRATION].model_copy(
                    update={"events": spec.model_copy(update={"max_message": 600})}
                )
            }
        }
    )
    audit = MemorySink()
    deployment = make_deployment(tmp_path)
    try:
        registry = make_registry(deployment, small, audit)
        keys = MessagingKeys(deployment.engine, deployment.keyring)
        keys.ensure(small)
        server = MemoryServer()
        producer = EventProducer(
            small,
            INTEGRATION,
            registry=registry,
            broker=MemoryBroker(server),
            audit=audit,
            keys=keys,
        )
        with pytest.raises(EventRefused, match="max_message"):
            run(producer.publish("order.created", order("EU")))
        assert server.published == []
        (entry,) = [e for e in audit.entries if e.action == PUBLISH_ACTION]
        assert (entry.outcome.result, entry.reason, entry.details["sealed"]) == (
            "failure",
            "too large",
            True,
        )
    finally:
        deployment.close()
