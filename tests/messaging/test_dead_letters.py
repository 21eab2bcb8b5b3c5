"""The dead-letter desk: only the named role may look, every look is audited, nothing leaves in clear."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from interlock.actors import Operator
from interlock.audit.entry import AuditEntry
from interlock.errors import AuthorisationError, NotFoundError
from interlock.messaging.consumer import Message, MessageRejected
from interlock.messaging.dead_letters import DeadLetterDesk, DeadLetterError
from interlock.messaging.memory import MemoryBroker
from interlock.messaging.model import (
    CONTENT_TYPE_COMPACT,
    HEADER_CONSUMER,
    HEADER_REASON,
    BrokerError,
    DeadLetter,
    Outgoing,
    PublishError,
    Topology,
)
from tests.messaging.pipeline_support import (
    BILLING,
    CRM,
    EMAIL,
    INTEGRATION,
    PAYLOAD,
    PRODUCER,
    Rig,
    eventually,
    rig_for,
)

ALICE = Operator("admin:alice")  # holds dlq-handler
BOB = Operator("admin:bob")  # holds another role


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A rig whose CRM consumer has refused one message (its handler rejected it)."""
    with rig_for(tmp_path) as rig:
        yield refused_one(rig)


def refused_one(rig: Rig) -> Rig:
    """``rig`` once its CRM consumer refused message m-1, with a clean audit sink."""

    async def reject(message: Message) -> None:
        raise MessageRejected("unknown customer")

    async def refuse_one() -> None:
        running = await rig.consumer(CRM).start(reject)
        await rig.producer().publish(PAYLOAD, message_id="m-1")
        await eventually(lambda: len(rig.server.dead(rig.topology)) == 1)
        await running.stop()

    asyncio.run(refuse_one())
    rig.audit.entries.clear()
    rig.audit.encoded.clear()
    return rig


def desk(rig: Rig, operator: Operator) -> DeadLetterDesk:
    """The desk of the test integration for ``operator``."""
    return DeadLetterDesk(
        rig.manifest,
        INTEGRATION,
        broker=MemoryBroker(rig.server),
        keys=rig.keys,
        audit=rig.audit,
        operator=operator,
        now=rig.clock,
    )


@pytest.mark.parametrize("action", ["list", "show", "replay", "purge"])
@pytest.mark.parametrize("operator", [BOB, Operator("admin:mallory"), Operator("alice")])
def test_an_operator_without_the_role_is_refused_and_the_refusal_audited(
    rig: Rig, operator: Operator, action: str
) -> None:
    """Another role, no operator account, or not an admin: refused before the broker is asked."""
    calls = {"list": (), "show": ("1",), "replay": ("1",), "purge": ()}
    with pytest.raises(AuthorisationError, match="dlq-handler"):
        asyncio.run(getattr(desk(rig, operator), action)(*calls[action]))
    (entry,) = rig.audit.entries
    assert entry.action == f"messaging.dead_letter.{action}"
    assert entry.actor == operator.name
    assert entry.outcome.result == "failure"
    assert "dlq-handler" in (entry.reason or "")
    assert len(rig.server.dead(rig.topology)) == 1  # untouched


def test_listing_shows_what_and_why_but_no_payload(rig: Rig) -> None:
    """Id, reason, consumer, time and size; audited with the count."""
    (view,) = asyncio.run(desk(rig, ALICE).list())
    assert (view.message_id, view.reason, view.consumer) == ("m-1", "handler", CRM)
    assert view.dead_at == rig.clock()
    assert view.size == len(rig.server.dead(rig.topology)[0].body)
    assert EMAIL not in repr(view)
    (entry,) = rig.audit.entries
    assert (entry.action, entry.actor, entry.volume.records) == (
        "messaging.dead_letter.list",
        "admin:alice",
        1,
    )


def test_show_decrypts_for_the_role_and_is_audited(rig: Rig) -> None:
    """The whole payload (not minimised: the operator investigates), and an entry saying so."""
    opened = asyncio.run(desk(rig, ALICE).show("1"))
    assert opened.payload == PAYLOAD
    assert opened.facts.message_id == "m-1"
    (entry,) = rig.audit.entries
    assert (entry.action, entry.outcome.result) == ("messaging.dead_letter.show", "success")
    assert entry.details["message_id"] == "m-1"
    assert EMAIL.encode() not in rig.audit.encoded[0]


def test_show_of_an_unknown_dead_letter(rig: Rig) -> None:
    """A ref that is not in the queue: NotFoundError."""
    with pytest.raises(NotFoundError):
        asyncio.run(desk(rig, ALICE).show("42"))


def test_show_refuses_a_dead_letter_that_does_not_open(rig: Rig) -> None:
    """A tampered dead letter is not shown; the attempt is audited."""
    dead = rig.server.dead(rig.topology)[0]
    dead.body = dead.body.replace(b'"ciphertext":"', b'"ciphertext":"AAAA', 1)
    with pytest.raises(DeadLetterError):
        asyncio.run(desk(rig, ALICE).show("1"))
    assert [e.outcome.result for e in rig.audit.entries] == ["failure"]


def test_replay_sends_the_same_sealed_bytes_to_the_refusing_consumer_alone(rig: Rig) -> None:
    """Unchanged bytes, to the CRM's queue only; processed there once its handler accepts."""
    sealed = rig.server.dead(rig.topology)[0].body
    billing_waiting = rig.server.waiting(rig.topology, BILLING)
    assert asyncio.run(desk(rig, ALICE).replay("1")) == "m-1"
    assert rig.server.dead(rig.topology) == []
    assert [item.body for item in rig.server.queue(rig.topology, CRM).ready] == [sealed]
    assert rig.server.waiting(rig.topology, BILLING) == billing_waiting  # not sent there
    (entry,) = rig.audit.entries
    assert (entry.action, entry.outcome.result) == ("messaging.dead_letter.replay", "success")

    async def consume() -> None:
        running = await rig.consumer(CRM).start(rig.handler)
        await eventually(lambda: rig.calls["m-1"] == 1)
        await running.stop()

    # The CRM's claim was released when its handler refused: now it is processed.
    asyncio.run(consume())
    assert rig.calls == Counter({"m-1": 1})


def test_replay_of_an_unknown_dead_letter(rig: Rig) -> None:
    """A ref that is not in the queue: NotFoundError, nothing sent."""
    with pytest.raises(NotFoundError):
        asyncio.run(desk(rig, ALICE).replay("42"))
    assert rig.server.waiting(rig.topology, CRM) == 0


def test_replay_of_an_expired_dead_letter_is_refused(rig: Rig) -> None:
    """It would only be refused again: it stays in the queue."""
    rig.clock.advance(rig.topology.ttl.total_seconds() + 1)
    with pytest.raises(DeadLetterError, match="expired"):
        asyncio.run(desk(rig, ALICE).replay("1"))
    assert len(rig.server.dead(rig.topology)) == 1


def test_purge_empties_the_queue(rig: Rig) -> None:
    """Every dead letter removed and counted; audited."""
    assert asyncio.run(desk(rig, ALICE).purge()) == 1
    assert rig.server.dead(rig.topology) == []
    assert asyncio.run(desk(rig, ALICE).list()) == []
    assert [(e.action, e.volume.records) for e in rig.audit.entries] == [
        ("messaging.dead_letter.purge", 1),
        ("messaging.dead_letter.list", 0),
    ]


def test_a_dead_letter_sealed_before_a_rotation_shows_until_the_end_of_its_retention(
    tmp_path: Path,
) -> None:
    """Sealed just before the keys rotate, refused just before it expires (ttl 1 h), kept
    7 days from then: the replaced keys still open it a minute before it leaves the queue."""
    with rig_for(tmp_path, consumers=(CRM,), ttl="PT1H") as rig:
        spec = rig.manifest.integrations[INTEGRATION].messaging
        assert spec is not None
        sealed_at = rig.clock()
        message = rig.producer().seal(PAYLOAD, message_id="m-old")
        rig.keys.rotate(INTEGRATION, spec, PRODUCER)

        async def reject(message: Message) -> None:
            raise MessageRejected("unknown customer")

        async def refuse() -> None:
            await rig.producer().send(message)
            rig.clock.advance(timedelta(minutes=59).total_seconds())
            running = await rig.consumer(CRM).start(reject)
            await eventually(lambda: len(rig.server.dead(rig.topology)) == 1)
            await running.stop()

        asyncio.run(refuse())
        last = sealed_at + spec.ttl + spec.dead_letter.retention - timedelta(minutes=1)
        rig.clock.advance((last - rig.clock()).total_seconds())
        assert asyncio.run(desk(rig, ALICE).show("1")).facts.message_id == "m-old"


def _printable(entry: AuditEntry) -> bool:
    """No control character and no rich markup in what an audit entry says."""
    texts = [entry.reason or "", *(v for v in entry.details.values() if isinstance(v, str))]
    return all(text.isprintable() and "[" not in text for text in texts)


def test_an_unverified_message_id_is_listed_and_audited_only_when_it_looks_like_one(
    tmp_path: Path,
) -> None:
    """A publisher with no keys names its junk with a terminal escape sequence and rich
    markup; refused, it is listed with "-" for that id (and for a forged reason), and no
    audit entry carries the control characters."""
    hostile = "m1\x1b]0;owned\x07\x1b[2J\x1b[31m[bold]fake-ok[/bold]"
    with rig_for(tmp_path, consumers=(CRM,)) as rig:

        async def refuse() -> None:
            junk = Outgoing(
                b"junk", CONTENT_TYPE_COMPACT, hostile, rig.clock() + timedelta(hours=1)
            )
            await MemoryBroker(rig.server).publish(rig.topology, junk)
            running = await rig.consumer(CRM).start(rig.handler)
            await eventually(lambda: len(rig.server.dead(rig.topology)) == 1)
            await running.stop()

        asyncio.run(refuse())
        rig.server.dead(rig.topology)[0].headers[HEADER_REASON] = "[red]ok\x1b[0m"
        rig.audit.entries.clear()
        (view,) = asyncio.run(desk(rig, ALICE).list())
        assert (view.ref, view.message_id, view.reason, view.consumer) == ("1", "-", "-", CRM)
        with pytest.raises(DeadLetterError):
            asyncio.run(desk(rig, ALICE).show(view.ref))
        assert [e.action for e in rig.audit.entries] == [
            "messaging.dead_letter.list",
            "messaging.dead_letter.show",
        ]
        assert all(_printable(entry) for entry in rig.audit.entries)
        assert "message_id" not in rig.audit.entries[1].details


class _BrokerDown(MemoryBroker):
    """An in-process broker whose dead-letter queue cannot be reached."""

    async def dead_letters(self, topology: Topology, *, limit: int = 100) -> list[DeadLetter]:
        raise BrokerError("the dead-letter queue cannot be read")

    async def purge_dead_letters(self, topology: Topology) -> int:
        raise BrokerError("the dead-letter queue cannot be purged")


def _attempts(rig: Rig, action: str) -> list[tuple[str, str | None]]:
    """(result, reason) of each audit entry of ``messaging.dead_letter.<action>``."""
    return [
        (e.outcome.result, e.reason)
        for e in rig.audit.entries
        if e.action == f"messaging.dead_letter.{action}"
    ]


@pytest.mark.parametrize("action", ["show", "replay"])
def test_an_attempt_on_an_unknown_dead_letter_is_audited(rig: Rig, action: str) -> None:
    """Probing for refs leaves a trail: one failure entry per attempt, naming the ref."""
    with pytest.raises(NotFoundError):
        asyncio.run(getattr(desk(rig, ALICE), action)("42"))
    ((result, reason),) = _attempts(rig, action)
    assert result == "failure"
    assert "no such dead letter" in (reason or "")
    assert rig.audit.entries[-1].details["ref"] == "42"


def test_a_replay_the_broker_refuses_is_audited_as_a_failure(rig: Rig) -> None:
    """A letter of a consumer gone from the manifest: PublishError, one failure entry."""
    rig.server.dead(rig.topology)[0].headers[HEADER_CONSUMER] = "gone-consumer"
    with pytest.raises(PublishError):
        asyncio.run(desk(rig, ALICE).replay("1"))
    ((result, reason),) = _attempts(rig, "replay")
    assert result == "failure"
    assert "publish_failed" in (reason or "")
    assert len(rig.server.dead(rig.topology)) == 1


@pytest.mark.parametrize("action", ["list", "show", "replay", "purge"])
def test_every_action_the_broker_fails_is_audited_as_a_failure(rig: Rig, action: str) -> None:
    """The broker cannot be reached: the error propagates, and one failure entry says so."""
    operator_desk = DeadLetterDesk(
        rig.manifest,
        INTEGRATION,
        broker=_BrokerDown(rig.server),
        keys=rig.keys,
        audit=rig.audit,
        operator=ALICE,
        now=rig.clock,
    )
    calls = {"list": (), "show": ("1",), "replay": ("1",), "purge": ()}
    with pytest.raises(BrokerError):
        asyncio.run(getattr(operator_desk, action)(*calls[action]))
    assert [result for result, _ in _attempts(rig, action)] == ["failure"]
    assert len(rig.audit.entries) == 1
