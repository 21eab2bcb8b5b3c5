"""The event consumer's gate on the in-process broker, with the real registry (SQLite)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from interlock.audit.sink import MemorySink
from interlock.events.consumer import CONSUME_ACTION, REFUSE_ACTION, Event, EventConsumer
from interlock.events.producer import EventProducer
from interlock.events.registry import SchemaRegistry
from interlock.events.streams import HEADER_SCHEMA_ID, HEADER_SCHEMA_VERSION, HEADER_SUBJECT
from interlock.messaging.consumer import MessageRejected
from interlock.messaging.memory import MemoryBroker, MemoryServer
from interlock.messaging.model import HEADER_INTEGRATION, Decision, Delivery, Outgoing, Settle
from interlock.replay.idempotency import MemoryIdempotency
from interlock.store import Deployment
from tests.events.streams_support import (
    CANCELLED_V2,
    INTEGRATION,
    OPERATOR,
    delivery_of,
    eventually,
    make_deployment,
    make_manifest,
    make_registry,
    order,
    run,
)


class Setup:
    """A producer and consumers on one in-process broker, sharing registry and audit."""

    def __init__(self, tmp_path: Path) -> None:
        self.manifest = make_manifest(tmp_path)
        self.audit = MemorySink()
        self.deployment: Deployment = make_deployment(tmp_path)
        self.registry: SchemaRegistry = make_registry(self.deployment, self.manifest, self.audit)
        self.server = MemoryServer()
        self.dedup = MemoryIdempotency()
        self.producer = EventProducer(
            self.manifest,
            INTEGRATION,
            registry=self.registry,
            broker=MemoryBroker(self.server),
            audit=self.audit,
        )
        self.seen: list[Event] = []

    def consumer(
        self, name: str = "crm-events", reader_versions: Mapping[str, int] | None = None
    ) -> EventConsumer:
        """Consumer ``name`` on the shared broker."""
        return EventConsumer(
            self.manifest,
            INTEGRATION,
            name,
            registry=self.registry,
            broker=MemoryBroker(self.server),
            dedup=self.dedup,
            audit=self.audit,
            reader_versions=reader_versions,
        )

    async def handler(self, event: Event) -> None:
        """Record the event."""
        self.seen.append(event)

    def published(self, subject: str, event: Mapping[str, Any]) -> Outgoing:
        """Publish ``event``; the copy the last consumer granted it got."""
        before = len(self.server.published)
        run(self.producer.publish(subject, event))
        return self.server.published[before]

    def decide(self, delivery: Delivery, consumer: EventConsumer | None = None) -> Decision:
        """The consumer's verdict on ``delivery``."""
        return run((consumer or self.consumer()).decide(delivery, self.handler))

    def refusals(self) -> list[str | None]:
        """The reasons of the refusals audited, in order."""
        return [e.reason for e in self.audit.entries if e.action == REFUSE_ACTION]


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    """A fresh set-up."""
    made = Setup(tmp_path)
    yield made
    made.deployment.close()


def crm_copy(setup: Setup, **changes: Any) -> Outgoing:
    """The crm-events copy of an EU order (published first, analytics' second)."""
    return setup.published("order.created", order("EU", **changes))


def dead(reason: str) -> Decision:
    """A dead-letter verdict with ``reason``."""
    return Decision(Settle.DEAD, reason=reason)  # type: ignore[arg-type]


def test_a_consumer_receives_its_cut_copy_end_to_end(setup: Setup) -> None:
    async def scenario() -> None:
        event_id = await setup.producer.publish("order.created", order("EU"))
        await setup.producer.publish("order.created", order("US", id="o-2"))
        running = await setup.consumer().start(setup.handler)
        await eventually(lambda: len(setup.seen) == 1)
        await running.stop()
        (event,) = setup.seen
        assert event.event_id == event_id
        assert event.payload == {"id": "o-1", "customer": {"email": "ada@example.com"}}
        assert (event.subject, event.writer_version, event.read_version) == (
            "order.created",
            1,
            1,
        )

    run(scenario())
    consumed = [e for e in setup.audit.entries if e.action == CONSUME_ACTION]
    assert [e.outcome.result for e in consumed] == ["success"]
    assert consumed[0].actor == "client:crm-events"
    assert consumed[0].data_categories == ("user.contact.email",)


def test_a_second_copy_of_an_event_is_a_duplicate(setup: Setup) -> None:
    copy = delivery_of(crm_copy(setup))
    consumer = setup.consumer()
    assert setup.decide(copy, consumer) == Decision(Settle.ACK)
    assert setup.decide(copy, consumer) == dead("duplicate")
    assert len(setup.seen) == 1
    assert setup.refusals() == ["duplicate"]


def test_the_same_id_on_other_bytes_is_refused(setup: Setup) -> None:
    message = crm_copy(setup)
    setup.decide(delivery_of(message))
    other = json.dumps({"id": "o-9", "customer": {"email": "x@example.com"}}).encode()
    assert setup.decide(delivery_of(message, body=other)) == dead("id_reused")


def test_a_subject_not_granted_is_refused(setup: Setup) -> None:
    message = crm_copy(setup)
    delivery = delivery_of(message, headers={HEADER_SUBJECT: "order.cancelled"})
    assert setup.decide(delivery) == dead("not_granted")
    assert setup.seen == []


def test_another_integrations_event_is_refused(setup: Setup) -> None:
    delivery = delivery_of(crm_copy(setup), headers={HEADER_INTEGRATION: "other"})
    assert setup.decide(delivery) == dead("wrong_integration")


@pytest.mark.parametrize(
    "headers",
    [
        {HEADER_SCHEMA_VERSION: "9"},
        {HEADER_SCHEMA_VERSION: "x"},
        {HEADER_SCHEMA_ID: "999"},
        # once raised InvalidVersionError past the gate: redelivered for ever, never audited
        {HEADER_SCHEMA_VERSION: "0"},
        {HEADER_SCHEMA_VERSION: "-1"},
        {HEADER_SCHEMA_VERSION: "1_0"},
        {HEADER_SCHEMA_VERSION: "²"},
        {HEADER_SCHEMA_ID: "-1"},
    ],
)
def test_an_unknown_writer_version_is_refused(setup: Setup, headers: dict[str, str]) -> None:
    """A version or id header that names no registered schema: dead-lettered and audited."""
    assert setup.decide(delivery_of(crm_copy(setup), headers=headers)) == dead("unknown_version")
    assert setup.refusals() == ["unknown_version"]


def test_the_cut_copy_validates_against_the_writers_schema_without_removed_fields(
    setup: Setup,
) -> None:
    # total, region and customer.name are required by the writer but not granted:
    # the copy lacks them and passes; the granted e-mail is still checked.
    assert setup.decide(delivery_of(crm_copy(setup))) == Decision(Settle.ACK)
    bad = json.dumps({"id": "o-1", "customer": {"email": "not an address"}}).encode()
    message = crm_copy(setup, id="o-3")
    assert setup.decide(delivery_of(message, body=bad)) == dead("schema")
    missing = json.dumps({"customer": {"email": "ada@example.com"}}).encode()
    message = crm_copy(setup, id="o-4")
    assert setup.decide(delivery_of(message, body=missing)) == dead("schema")
    assert len(setup.seen) == 1


def test_fields_a_producer_should_not_have_sent_never_reach_the_handler(setup: Setup) -> None:
    body = json.dumps(order("EU")).encode()  # the whole event, not the cut copy
    assert setup.decide(delivery_of(crm_copy(setup), body=body)) == Decision(Settle.ACK)
    assert setup.seen[0].payload == {"id": "o-1", "customer": {"email": "ada@example.com"}}


@pytest.mark.parametrize("body", [b"{not json", b'{"id": "a", "id": "b"}', b"\xff"])
def test_malformed_json_is_refused(setup: Setup, body: bytes) -> None:
    assert setup.decide(delivery_of(crm_copy(setup), body=body)) == dead("malformed")


def test_a_copy_over_the_maximum_size_is_refused(setup: Setup) -> None:
    body = b" " * (300 * 1024) + b"{}"
    assert setup.decide(delivery_of(crm_copy(setup), body=body)) == dead("too_large")


def test_an_older_reader_drops_what_its_closed_version_does_not_know(setup: Setup) -> None:
    message = setup.published("order.cancelled", {"id": "c-1", "note": "late"})
    reader = setup.consumer("analytics", reader_versions={"order.cancelled": 1})
    assert setup.decide(delivery_of(message), reader) == Decision(Settle.ACK)
    (event,) = setup.seen
    assert (event.writer_version, event.read_version) == (2, 1)
    assert event.payload == {"id": "c-1"}


def test_a_newer_reader_gets_its_defaults(setup: Setup) -> None:
    v1 = setup.registry.get("order.cancelled", 1)
    body = json.dumps({"id": "c-2"}).encode()
    message = setup.published("order.cancelled", {"id": "c-2"})
    delivery = delivery_of(
        message, body=body, headers={HEADER_SCHEMA_VERSION: "1", HEADER_SCHEMA_ID: str(v1.id)}
    )
    reader = setup.consumer("analytics", reader_versions={"order.cancelled": 2})
    assert setup.decide(delivery, reader) == Decision(Settle.ACK)
    assert setup.seen[0].payload == {"id": "c-2", "note": "none"}


def test_an_event_the_reader_cannot_read_is_refused(setup: Setup) -> None:
    # Written with v2, read with a v3 that requires a reason v2 never had (and no default).
    message = setup.published("order.cancelled", {"id": "c-3"})  # v2, the latest now
    v3 = {
        **CANCELLED_V2,
        "properties": {**CANCELLED_V2["properties"], "reason": {"type": "string"}},
    }
    v3["required"] = ["id", "reason"]
    setup.registry.register("order.cancelled", v3, actor=OPERATOR)
    reader = setup.consumer("analytics", reader_versions={"order.cancelled": 3})
    assert setup.decide(delivery_of(message), reader) == dead("schema")
    assert setup.seen == []
    writer_reader = setup.consumer("analytics")
    assert setup.decide(delivery_of(message), writer_reader) == Decision(Settle.ACK)


def test_an_unknown_reader_version_is_refused(setup: Setup) -> None:
    message = setup.published("order.cancelled", {"id": "c-4"})
    reader = setup.consumer("analytics", reader_versions={"order.cancelled": 7})
    assert setup.decide(delivery_of(message), reader) == dead("unknown_version")


def test_a_handler_may_reject_an_event_for_good(setup: Setup) -> None:
    async def reject(event: Event) -> None:
        raise MessageRejected("not for us")

    decision = run(setup.consumer().decide(delivery_of(crm_copy(setup)), reject))
    assert decision == dead("handler")


def test_a_failing_handler_releases_the_claim_so_the_redelivery_is_processed(
    setup: Setup,
) -> None:
    async def fail(event: Event) -> None:
        raise RuntimeError("database down")

    copy = delivery_of(crm_copy(setup))
    consumer = setup.consumer()
    with pytest.raises(RuntimeError):
        run(consumer.decide(copy, fail))
    assert setup.decide(copy, consumer) == Decision(Settle.ACK)
    failures = [e for e in setup.audit.entries if e.action == CONSUME_ACTION]
    assert [e.outcome.result for e in failures] == ["failure", "success"]


def test_a_consumer_not_in_the_grants_cannot_be_made(setup: Setup) -> None:
    with pytest.raises(Exception, match="not a consumer"):
        setup.consumer("erp-events")
