"""The producer: nothing invalid leaves it, every publish is confirmed and audited."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from interlock.errors import InvalidRequestError
from interlock.messaging.model import (
    CONTENT_TYPE_JSON,
    CONTENT_TYPE_KEYED,
    HEADER_INTEGRATION,
    PublishError,
)
from interlock.messaging.producer import PayloadRefused
from tests.messaging.pipeline_support import (
    EMAIL,
    INTEGRATION,
    PAYLOAD,
    PRODUCER,
    Rig,
    rig_for,
)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """The producer's rig on the test manifest."""
    with rig_for(tmp_path) as rig:
        yield rig


def test_a_published_message_is_sealed_for_the_consumers_and_audited(rig: Rig) -> None:
    """Signed by the producer, encrypted to both consumers, facts from the manifest and clock."""
    message_id = asyncio.run(rig.producer().publish(PAYLOAD))
    (sent,) = rig.server.published
    assert sent.message_id == message_id
    assert sent.content_type == CONTENT_TYPE_KEYED  # under the window key
    assert isinstance(json.loads(sent.body)["key"], dict)  # two consumers: general JSON
    assert sent.headers == {HEADER_INTEGRATION: INTEGRATION}
    assert sent.expires_at == rig.clock() + rig.topology.ttl
    opened = rig.opened(sent)
    assert opened.payload == PAYLOAD
    assert opened.facts.issued_at == rig.clock().replace(microsecond=0)
    (entry,) = rig.audit.entries
    assert (entry.action, entry.actor, entry.outcome.result) == (
        "messaging.publish",
        f"client:{PRODUCER}",
        "success",
    )
    assert entry.volume.bytes == len(sent.body)
    assert EMAIL.encode() not in rig.audit.encoded[0]


def test_key_window_null_seals_each_message_to_the_consumers_keys(tmp_path: Path) -> None:
    """key_window: null: a bare JWE per message (general JSON for two consumers), still opened."""
    with rig_for(tmp_path, key_window=None) as rig:
        asyncio.run(rig.producer().publish(PAYLOAD))
        (sent,) = rig.server.published
        assert sent.content_type == CONTENT_TYPE_JSON
        assert len(json.loads(sent.body)["recipients"]) == 2
        assert rig.opened(sent).payload == PAYLOAD


def test_a_schema_invalid_payload_is_refused_before_anything_is_sent(rig: Rig) -> None:
    """No id and an unknown member: PayloadRefused listing both; nothing reaches the broker."""
    with pytest.raises(PayloadRefused) as refused:
        asyncio.run(rig.producer().publish({"note": "x", "extra": True}))
    assert len(refused.value.violations) == 2
    assert rig.server.published == []
    (entry,) = rig.audit.entries
    assert (entry.action, entry.outcome.result) == ("messaging.publish", "failure")
    assert entry.details == {"violations": 2}


def test_a_payload_that_is_not_json_is_refused(rig: Rig) -> None:
    """A value JSON cannot carry never reaches the envelope."""
    with pytest.raises(PayloadRefused, match="not JSON"):
        asyncio.run(rig.producer().publish({"id": "o-1", "note": float("nan")}))
    assert rig.server.published == []


def test_a_message_over_max_message_is_refused(rig: Rig) -> None:
    """The sealed size counts: over max_message, nothing is sent."""
    with pytest.raises(PayloadRefused, match="max_message"):
        asyncio.run(rig.producer().publish({"id": "o-1", "note": "x" * 300_000}))
    assert rig.server.published == []


def test_an_unconfirmed_publish_raises_and_is_audited(rig: Rig) -> None:
    """The broker does not confirm: PublishError, a failure entry; a retry sends the same bytes."""
    producer = rig.producer()
    message = producer.seal(PAYLOAD)
    rig.server.refuse_publishing = True
    with pytest.raises(PublishError):
        asyncio.run(producer.send(message))
    rig.server.refuse_publishing = False
    asyncio.run(producer.send(message))
    assert rig.server.published == [message]
    assert [e.outcome.result for e in rig.audit.entries] == ["failure", "success"]


@pytest.mark.parametrize("bad", ["", "a b", "x" * 129, "-leading", "ümlaut"])
def test_a_chosen_message_id_must_be_a_safe_short_string(rig: Rig, bad: str) -> None:
    """Ids go into broker properties and headers: letters, digits, . _ : - only."""
    with pytest.raises(InvalidRequestError):
        rig.producer().seal(PAYLOAD, message_id=bad)


def test_a_chosen_message_id_is_used(rig: Rig) -> None:
    """A caller's own id (an order number, say) is the message id."""
    assert asyncio.run(rig.producer().publish(PAYLOAD, message_id="order:o-1")) == "order:o-1"
