"""The NATS JetStream adapter against a real nats-server: TLS only, de-duplication, acks, DLQ, plan.

Every test uses the session's server (``nats_tls``: TLS only, client
certificate required, a password) and its own destination, so tests do not
see each other's streams. Time-dependent tests use short windows (ack wait
1 s, ttl 1 s) through the adapter's settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
import stat
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from interlock.messaging.model import (
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_INTEGRATION,
    HEADER_REASON,
    BrokerError,
    DeadLetter,
    Decision,
    Delivery,
    Outgoing,
    PublishError,
    Settle,
    Topology,
)
from interlock.messaging.nats import NatsBroker, _is_tls
from interlock.messaging.nats_config import NatsSettings, dead_letter_stream_name, stream_name
from interlock.messaging.producer import Producer
from interlock.outbound import tls_context
from interlock.testing import nats_node
from interlock.testing.brokers import TlsBroker
from interlock.testing.tls import make_tls
from tests.messaging.pipeline_support import CRM, INTEGRATION, PAYLOAD, rig_for

T = TypeVar("T")

FAST = NatsSettings(ack_wait=timedelta(seconds=1), max_deliver=5)


def run(scenario: Coroutine[Any, Any, T]) -> T:
    """Run one scenario on a fresh event loop (the project's tests use no asyncio plugin)."""
    return asyncio.run(scenario)


def topology(
    consumers: tuple[str, ...] = ("billing",), ttl: timedelta = timedelta(minutes=10)
) -> Topology:
    """A topology with a destination of its own."""
    destination = f"t{secrets.token_hex(4)}.orders"
    return Topology(
        integration="orders",
        broker="nats",
        destination=destination,
        consumers=consumers,
        ttl=ttl,
        max_length=1000,
        max_message=64 * 1024,
        dead_letter_retention=timedelta(days=1),
        dead_letter_max_length=1000,
    )


def outgoing(body: bytes = b"sealed", message_id: str | None = None) -> Outgoing:
    """A message as the producer hands it over (the body stands for a sealed envelope)."""
    return Outgoing(
        body=body,
        content_type="application/jose",
        message_id=message_id or secrets.token_hex(16),
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
        headers={HEADER_INTEGRATION: "orders"},
    )


async def connect(broker: TlsBroker, settings: NatsSettings = FAST) -> NatsBroker:
    """The adapter on the session's server, with the test's short windows."""
    return await NatsBroker.connect(
        broker.url,
        tls=broker.tls(),
        password=broker.password,
        settings=settings,
        error_delay=timedelta(milliseconds=200),
    )


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``check()`` holds; fail after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {within} s")
        await asyncio.sleep(0.05)


async def dead_letters(
    broker: NatsBroker, wanted: Topology, count: int, within: float = 10.0
) -> list[DeadLetter]:
    """The dead letters, once there are ``count`` of them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while len(letters := await broker.dead_letters(wanted)) < count:
        if loop.time() > deadline:
            pytest.fail(f"{len(letters)} dead letters, not {count}, after {within} s")
        await asyncio.sleep(0.05)
    return letters


def collecting(
    into: list[Delivery], decide: Callable[[Delivery], Decision] | None = None
) -> Callable[[Delivery], Awaitable[Decision]]:
    """A handler that records each delivery and acks it (or decides with ``decide``)."""

    async def handler(delivery: Delivery) -> Decision:
        into.append(delivery)
        return decide(delivery) if decide else Decision(Settle.ACK)

    return handler


# -- TLS and credentials -------------------------------------------------------------


def test_a_plain_nats_url_is_refused_before_connecting(nats_tls: TlsBroker) -> None:
    """nats:// would let the client talk in clear: refused, whatever the context."""
    plain = nats_tls.url.replace("tls://", "nats://")
    with pytest.raises(BrokerError, match="TLS only"):
        run(NatsBroker.connect(plain, tls=nats_tls.tls(), password=nats_tls.password))


def test_without_a_client_certificate_the_server_refuses(nats_tls: TlsBroker) -> None:
    """The server requires mutual TLS: a context that trusts it but has no certificate fails."""
    context = tls_context(nats_tls.ca_file)
    with pytest.raises(BrokerError, match="cannot connect"):
        run(NatsBroker.connect(nats_tls.url, tls=context, password=nats_tls.password))


def test_a_context_trusting_another_ca_does_not_connect(
    nats_tls: TlsBroker, tmp_path: Path
) -> None:
    """The server's certificate does not verify against another CA: no connection."""
    other = make_tls(tmp_path, "Another CA")
    context = tls_context(
        other.ca_file, client_certificate=(nats_tls.client_cert, nats_tls.client_key)
    )
    with pytest.raises(BrokerError, match="CERTIFICATE_VERIFY_FAILED"):
        run(NatsBroker.connect(nats_tls.url, tls=context, password=nats_tls.password))


def test_a_wrong_password_is_refused_and_never_shown(nats_tls: TlsBroker) -> None:
    """Authorization fails; neither password appears in the error."""
    wrong = secrets.token_urlsafe(16)
    with pytest.raises(BrokerError) as refused:
        run(NatsBroker.connect(nats_tls.url, tls=nats_tls.tls(), password=wrong))
    assert "Authorization Violation" in str(refused.value)
    shown = str(refused.value)
    # Booleans, so that a failure does not print the password either.
    leaked = wrong in shown or (nats_tls.password or "\0") in shown
    assert not leaked, "a password appears in the error"


def test_the_server_speaks_tls_only(nats_tls: TlsBroker) -> None:
    """The node's one port asks for TLS and a client certificate and refuses a plain CONNECT."""
    port = int(nats_tls.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
        info = plain.makefile("rb").readline()
        assert info.startswith(b"INFO ")
        offered = json.loads(info[5:])
        assert (offered["tls_required"], offered["tls_verify"]) == (True, True)
        plain.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := plain.recv(4096):
                answer += chunk
        assert b"PONG" not in answer


@pytest.mark.parametrize("with_password", [True, False], ids=["password", "certificate-only"])
def test_no_password_goes_to_a_server_that_does_not_switch_to_tls(
    nats_tls: TlsBroker, with_password: bool
) -> None:
    """A man in the middle answering without tls_required gets no credential, only a refusal;
    with a client certificate alone (no password) not even CONNECT is sent."""
    received = bytearray()

    async def impostor(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        info = {"server_id": "mitm", "version": "2.9.10", "auth_required": True, "proto": 1}
        try:
            writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
            await writer.drain()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                while chunk := await asyncio.wait_for(reader.read(4096), 2):
                    received.extend(chunk)
        finally:  # also when the loop ends first and cancels this
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(impostor, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            with pytest.raises(BrokerError, match="not TLS"):
                await NatsBroker.connect(
                    f"tls://interlock@127.0.0.1:{port}",
                    tls=nats_tls.tls(),
                    password=nats_tls.password if with_password else None,
                )
        finally:
            server.close()
            await server.wait_closed()

    run(scenario())
    sent_password = nats_tls.password is not None and nats_tls.password.encode() in received
    assert not sent_password, "the password went over a plain connection"
    assert b"CONNECT" not in received


class _Relay:
    """A TCP relay to a NATS server that an attacker on the path can take over.

    Relaying, it pipes bytes both ways. Once ``attack()`` is called it cuts
    the links, and answers every new connection itself in plaintext: an INFO
    without ``tls_required`` and a PONG to every PING, recording what each
    connection sent. ``leave()`` makes it relay again.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.attacking = False
        self.sent: list[bytearray] = []
        self._links: list[asyncio.StreamWriter] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Relay, or impersonate the server in plaintext."""
        if self.attacking:
            await self._impersonate(reader, writer)
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._links += [writer, up_writer]
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        finally:  # also when the loop ends first and cancels this
            writer.close()

    async def _impersonate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        info = {"server_id": "mitm", "version": "2.9.10", "proto": 1, "headers": True}
        sent = bytearray()
        self.sent.append(sent)
        try:
            writer.write(b"INFO " + json.dumps(info).encode() + b"\r\n")
            with contextlib.suppress(OSError):
                while chunk := await reader.read(65536):
                    sent.extend(chunk)
                    writer.write(b"PONG\r\n" * chunk.count(b"PING\r\n"))
                    await writer.drain()
        finally:  # also when the loop ends first and cancels this
            writer.close()

    def attack(self) -> None:
        """Cut the links to the server; answer the reconnects as the attacker."""
        self.attacking = True
        for link in self._links:
            link.close()
        self._links.clear()

    def leave(self) -> None:
        """Relay new connections to the server again."""
        self.attacking = False


def test_a_reconnect_answered_in_plaintext_sends_nothing_and_publishes_fail(
    nats_tls: TlsBroker, tmp_path: Path
) -> None:
    """After a reconnect, a man in the middle who leaves tls_required out of INFO gets no byte
    but a TLS ClientHello, even without a password (client certificate only): no CONNECT, no
    replayed SUB, no buffered message; the publish is not confirmed; once the attacker is
    gone, the client is back over TLS and publishes again."""
    wanted = topology()

    async def scenario(node: TlsBroker) -> bool:
        relay = _Relay(int(node.url.rsplit(":", 1)[1]))
        server = await asyncio.start_server(relay.handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        broker = await NatsBroker.connect(
            f"tls://127.0.0.1:{port}",
            tls=node.tls(),
            password=None,
            answer_within=timedelta(seconds=2),
        )
        try:
            await broker.apply(wanted)
            relay.attack()
            await asyncio.sleep(0.5)
            with pytest.raises(PublishError):
                await broker.publish(wanted, outgoing(b"PERSONAL-DATA"))
            assert relay.sent, "the client did not reconnect through the attacker"
            plaintext = [bytes(sent) for sent in relay.sent if not _tls_or_nothing(sent)]
            assert plaintext == [], "the client spoke NATS over a plain connection"
            relay.leave()
            await eventually(lambda: broker._client.is_connected, within=15)
            back_over_tls = _is_tls(broker._client)
            await broker.publish(wanted, outgoing(b"after"))
        finally:
            await broker.close()
            server.close()
            await server.wait_closed()
        return back_over_tls

    with nats_node.started(tmp_path, authorization=False) as node:
        assert run(scenario(node)), "the connection came back without TLS"


def _tls_or_nothing(sent: bytearray) -> bool:
    # RFC 8446 §5.1: a TLS record starts with its content type, 22 for a handshake,
    # and the legacy version 3.x.
    return not sent or sent.startswith(b"\x16\x03")


def test_a_password_in_the_url_is_refused(nats_tls: TlsBroker) -> None:
    """Credentials come from the vault, never from the URL."""
    url = nats_tls.url.replace("interlock@", "interlock:secret@")
    with pytest.raises(BrokerError, match="password"):
        run(NatsBroker.connect(url, tls=nats_tls.tls(), password=nats_tls.password))


def test_a_node_keeps_its_secrets_private_and_cleans_up(
    nats_tls: TlsBroker, tmp_path: Path
) -> None:
    """Config and keys are 0600; the password is not in the repr; on exit the server and store go."""
    with nats_node.started(tmp_path) as node:
        assert node.password is not None
        modes = {
            name: stat.S_IMODE((tmp_path / name).stat().st_mode)
            for name in ("nats-server.conf", "server.key", "client.key")
        }
        assert modes == dict.fromkeys(modes, 0o600)
        shown = node.password in repr(node)
        assert not shown, "the password is in the repr"
        assert (tmp_path / "jetstream").is_dir()
        port = int(node.url.rsplit(":", 1)[1])
        assert node.url != nats_tls.url
    assert not (tmp_path / "jetstream").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- publish and consume -------------------------------------------------------------


def test_a_message_round_trips_with_its_headers_id_and_content_type(nats_tls: TlsBroker) -> None:
    """Opaque bytes arrive unchanged, with the producer's headers, the id and the media type."""
    body = bytes(range(256)) * 3
    message = outgoing(body)
    received: list[Delivery] = []

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)
        await broker.publish(wanted, message)
        consumption = await broker.consume(wanted, "billing", collecting(received))
        await eventually(lambda: len(received) == 1)
        await consumption.stop()
        await broker.close()

    run(scenario())
    (delivery,) = received
    assert delivery.body == body
    assert delivery.message_id == message.message_id
    assert delivery.content_type == "application/jose"
    assert delivery.headers == {HEADER_INTEGRATION: "orders"}
    assert (delivery.redelivered, delivery.delivery_count) == (False, 1)


def test_the_same_message_id_twice_is_stored_once(nats_tls: TlsBroker) -> None:
    """Within the duplicate window JetStream keeps the first copy of the same bytes (the
    PubAck says duplicate); other bytes under that id are another message, stored too."""
    message = outgoing()
    received: list[Delivery] = []

    async def scenario() -> tuple[bool, bool, bool, int]:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)
        first = await broker.publish_acked(wanted, message)
        again = await broker.publish_acked(wanted, message)
        other = await broker.publish_acked(wanted, outgoing(b"another body", message.message_id))
        stored = (await broker._js.stream_info(stream_name(wanted))).state.messages
        consumption = await broker.consume(wanted, "billing", collecting(received))
        await eventually(lambda: len(received) >= 2)
        await asyncio.sleep(0.5)
        await consumption.stop()
        await broker.close()
        same = again.duplicate and again.sequence == first.sequence
        return first.duplicate, same, other.duplicate, stored

    assert run(scenario()) == (False, True, False, 2)
    assert [delivery.body for delivery in received] == [b"sealed", b"another body"]
    assert {delivery.message_id for delivery in received} == {message.message_id}


def test_a_dead_message_goes_unchanged_to_the_dead_letters_and_leaves_its_stream(
    nats_tls: TlsBroker,
) -> None:
    """Settle.DEAD: the body, with reason, consumer and time, in the DLQ; the original acked."""
    message = outgoing(b"\x00refused\xff")

    async def scenario() -> tuple[Any, ...]:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)
        received: list[Delivery] = []
        consumption = await broker.consume(
            wanted, "billing", collecting(received, lambda _: Decision(Settle.DEAD, "schema"))
        )
        await broker.publish(wanted, message)
        await eventually(lambda: len(received) == 1)
        letters = await dead_letters(broker, wanted, 1)
        await asyncio.sleep(1.5)  # past ack_wait: an unacked message would be back
        await consumption.stop()
        raw = await broker._js.get_msg(dead_letter_stream_name(wanted), seq=1)
        left = (await broker._js.stream_info(stream_name(wanted))).state.messages
        await broker.close()
        return letters, raw.headers, left, len(received)

    before = datetime.now(UTC)
    letters, headers, left, deliveries = run(scenario())
    (letter,) = letters
    assert letter.body == b"\x00refused\xff"
    assert letter.message_id == message.message_id
    assert (letter.reason, letter.consumer, letter.content_type) == (
        "schema",
        "billing",
        "application/jose",
    )
    assert letter.dead_at is not None
    assert before - timedelta(seconds=5) <= letter.dead_at <= datetime.now(UTC)
    assert headers[HEADER_REASON] == "schema"
    assert headers[HEADER_CONSUMER] == "billing"
    assert HEADER_DEAD_AT in headers
    assert headers[HEADER_INTEGRATION] == "orders"
    assert (left, deliveries) == (0, 1)


def test_retry_redelivers_after_the_delay(nats_tls: TlsBroker) -> None:
    """Settle.RETRY: the same message comes back, no sooner than retry_after."""
    arrivals: list[tuple[float, Delivery]] = []

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)
        loop = asyncio.get_running_loop()

        async def handler(delivery: Delivery) -> Decision:
            arrivals.append((loop.time(), delivery))
            if len(arrivals) == 1:
                return Decision(Settle.RETRY, retry_after=timedelta(milliseconds=700))
            return Decision(Settle.ACK)

        consumption = await broker.consume(wanted, "billing", handler)
        await broker.publish(wanted, outgoing())
        await eventually(lambda: len(arrivals) == 2)
        await consumption.stop()
        await broker.close()

    run(scenario())
    (first_at, first), (second_at, second) = arrivals
    assert second.message_id == first.message_id
    assert second_at - first_at >= 0.65
    assert (second.redelivered, second.delivery_count) == (True, 2)


def test_a_handler_that_raises_gets_the_message_again(nats_tls: TlsBroker) -> None:
    """No ack on an exception: the message is delivered again."""
    seen: list[Delivery] = []

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)

        async def handler(delivery: Delivery) -> Decision:
            seen.append(delivery)
            if len(seen) == 1:
                raise RuntimeError("the database is down")
            return Decision(Settle.ACK)

        consumption = await broker.consume(wanted, "billing", handler)
        await broker.publish(wanted, outgoing())
        await eventually(lambda: len(seen) == 2)
        await consumption.stop()
        await broker.close()

    run(scenario())
    assert seen[0].message_id == seen[1].message_id
    assert seen[1].redelivered


def test_at_the_delivery_limit_a_failing_message_is_dead_lettered(nats_tls: TlsBroker) -> None:
    """JetStream would not deliver it again: the adapter keeps it in the DLQ instead."""
    seen: list[Delivery] = []

    async def scenario() -> list[DeadLetter]:
        broker = await connect(nats_tls, NatsSettings(ack_wait=timedelta(seconds=1), max_deliver=2))
        wanted = topology()
        await broker.apply(wanted)

        async def handler(delivery: Delivery) -> Decision:
            seen.append(delivery)
            raise RuntimeError("always")

        consumption = await broker.consume(wanted, "billing", handler)
        await broker.publish(wanted, outgoing(b"poison"))
        await eventually(lambda: len(seen) == 2)
        letters = await dead_letters(broker, wanted, 1)
        await consumption.stop()
        await broker.close()
        return letters

    (letter,) = run(scenario())
    assert (letter.body, letter.reason) == (b"poison", "delivery_limit")
    assert [delivery.delivery_count for delivery in seen] == [1, 2]


def test_messages_older_than_the_ttl_are_gone(nats_tls: TlsBroker) -> None:
    """The stream's max_age is the integration's ttl: an untaken message leaves with it."""
    received: list[Delivery] = []

    async def scenario() -> tuple[int, int]:
        broker = await connect(nats_tls)
        wanted = topology(ttl=timedelta(seconds=1))
        await broker.apply(wanted)
        await broker.publish(wanted, outgoing())
        stored = (await broker._js.stream_info(stream_name(wanted))).state.messages
        await asyncio.sleep(2.5)
        left = (await broker._js.stream_info(stream_name(wanted))).state.messages
        consumption = await broker.consume(wanted, "billing", collecting(received))
        await asyncio.sleep(1)
        await consumption.stop()
        await broker.close()
        return stored, left

    assert run(scenario()) == (1, 0)
    assert received == []


# -- dead letters --------------------------------------------------------------------


def test_dead_letters_are_listed_taken_and_purged(nats_tls: TlsBroker) -> None:
    """Listing leaves them; take removes one (once); purge removes the rest and counts them."""

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        await broker.apply(wanted)
        received: list[Delivery] = []
        consumption = await broker.consume(
            wanted, "billing", collecting(received, lambda _: Decision(Settle.DEAD, "expired"))
        )
        bodies = [f"letter {n}".encode() for n in range(4)]
        for body in bodies:
            await broker.publish(wanted, outgoing(body))
        await eventually(lambda: len(received) == 4)
        listed = await dead_letters(broker, wanted, 4)
        await consumption.stop()

        assert sorted(letter.body for letter in listed) == sorted(bodies)
        assert len(await broker.dead_letters(wanted)) == 4
        assert len(await broker.dead_letters(wanted, limit=2)) == 2

        taken = await broker.take_dead_letter(wanted, listed[1].ref)
        assert taken is not None
        assert taken.body == listed[1].body
        assert await broker.take_dead_letter(wanted, listed[1].ref) is None
        assert await broker.take_dead_letter(wanted, "not-a-sequence") is None
        assert [letter.ref for letter in await broker.dead_letters(wanted)] == [
            listed[0].ref,
            listed[2].ref,
            listed[3].ref,
        ]

        assert await broker.purge_dead_letters(wanted) == 3
        assert await broker.dead_letters(wanted) == []
        assert await broker.purge_dead_letters(wanted) == 0
        await broker.close()

    run(scenario())


def test_a_replayed_dead_letter_reaches_only_the_consumer_that_refused_it(
    nats_tls: TlsBroker,
) -> None:
    """Replay: the same body and id, at once (no duplicate window), to billing alone."""
    message = outgoing(b"refused by billing")
    billing: list[Delivery] = []
    shipping: list[Delivery] = []

    def refuse_first(delivery: Delivery) -> Decision:
        return Decision(Settle.DEAD, "schema") if len(billing) == 1 else Decision(Settle.ACK)

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology(("billing", "shipping"))
        await broker.apply(wanted)
        first = await broker.consume(wanted, "billing", collecting(billing, refuse_first))
        second = await broker.consume(wanted, "shipping", collecting(shipping))
        await broker.publish(wanted, message)
        (letter,) = await dead_letters(broker, wanted, 1)
        assert await broker.replay_dead_letter(wanted, letter.ref) == message.message_id
        await eventually(lambda: len(billing) == 2)
        await asyncio.sleep(0.5)
        assert await broker.dead_letters(wanted) == []
        assert await broker.replay_dead_letter(wanted, letter.ref) is None
        await first.stop()
        await second.stop()
        left = (await broker._js.stream_info(stream_name(wanted))).state.messages
        assert left == 0
        await broker.close()

    run(scenario())
    assert [d.body for d in billing] == [b"refused by billing"] * 2
    assert billing[1].message_id == message.message_id
    assert billing[1].headers == {HEADER_INTEGRATION: "orders"}
    assert [d.message_id for d in shipping] == [message.message_id]


# -- plan and apply ------------------------------------------------------------------


def test_plan_apply_plan_on_an_empty_server(nats_tls: TlsBroker) -> None:
    """Plan lists creates and changes nothing; apply creates; plan afterwards is all ok."""

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology(("billing", "shipping"))
        planned = await broker.plan(wanted)
        assert [(c.action, c.kind) for c in planned] == [
            ("create", "stream"),
            ("create", "stream"),
            ("create", "consumer"),
            ("create", "consumer"),
        ]
        assert [c.action for c in await broker.plan(wanted)] == ["create"] * 4
        assert await broker.apply(wanted) == planned
        after = await broker.plan(wanted)
        assert [c.action for c in after] == ["ok"] * 4
        assert {c.name for c in after} == {
            stream_name(wanted),
            dead_letter_stream_name(wanted),
            f"{stream_name(wanted)}/billing",
            f"{stream_name(wanted)}/shipping",
        }
        config = (await broker._js.stream_info(stream_name(wanted))).config
        assert config.subjects == [wanted.destination, f"{wanted.destination}.replay.*"]
        assert config.max_age == 600
        assert config.max_msgs == 1000
        assert config.retention == RetentionPolicy.INTEREST
        dead = (await broker._js.stream_info(dead_letter_stream_name(wanted))).config
        assert (dead.subjects, dead.max_age, dead.max_msgs) == (
            [wanted.dead_letter_queue],
            86400,
            1000,
        )
        await broker.close()

    run(scenario())


def test_a_stream_made_by_hand_with_another_max_age_is_updated(nats_tls: TlsBroker) -> None:
    """max_age can change in place: plan says update (with both values), apply sets it."""

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        name = stream_name(wanted)
        await broker._js.add_stream(
            StreamConfig(
                name=name,
                subjects=[wanted.destination, f"{wanted.destination}.replay.*"],
                retention=RetentionPolicy.INTEREST,
                storage=StorageType.FILE,
                max_age=3600,
            )
        )
        (stream, *_) = await broker.plan(wanted)
        assert (stream.action, stream.name) == ("update", name)
        assert "max_age 3600s (manifest: 600s)" in stream.detail
        (applied, *_) = await broker.apply(wanted)
        assert applied.action == "update"
        assert (await broker._js.stream_info(name)).config.max_age == 600
        assert [c.action for c in await broker.plan(wanted)] == ["ok"] * 3
        await broker.close()

    run(scenario())


def test_what_jetstream_cannot_change_is_drift_and_left_alone(nats_tls: TlsBroker) -> None:
    """Other retention or subjects are drift (apply keeps them); so is an unknown consumer."""

    async def scenario() -> None:
        broker = await connect(nats_tls)
        wanted = topology()
        name = stream_name(wanted)
        subjects = [wanted.destination, f"{wanted.destination}.more"]
        await broker._js.add_stream(StreamConfig(name=name, subjects=subjects, max_age=600))
        await broker._js.add_consumer(name, durable_name="forgotten")
        changes = await broker.apply(wanted)
        by_name = {c.name: c for c in changes}
        assert by_name[name].action == "drift"
        assert "retention limits (manifest: interest)" in by_name[name].detail
        assert "subjects" in by_name[name].detail
        assert by_name[f"{name}/forgotten"].action == "drift"
        assert by_name[f"{name}/billing"].action == "create"
        info = await broker._js.stream_info(name)
        assert (info.config.retention, info.config.subjects) == (RetentionPolicy.LIMITS, subjects)
        assert {c.name for c in await broker._js.consumers_info(name)} == {"forgotten", "billing"}
        await broker.close()

    run(scenario())


def test_a_consumer_with_another_ack_wait_is_updated(nats_tls: TlsBroker) -> None:
    """ack_wait is editable on a durable consumer: update, then ok."""

    async def scenario() -> None:
        broker = await connect(nats_tls, NatsSettings(ack_wait=timedelta(seconds=30)))
        wanted = topology()
        await broker.apply(wanted)
        await broker.close()
        broker = await connect(nats_tls, NatsSettings(ack_wait=timedelta(seconds=5)))
        changes = {c.name: c for c in await broker.apply(wanted)}
        consumer = changes[f"{stream_name(wanted)}/billing"]
        assert consumer.action == "update"
        assert "ack_wait 30s (manifest: 5s)" in consumer.detail
        info = await broker._js.consumer_info(stream_name(wanted), "billing")
        assert info.config.ack_wait == 5
        assert all(c.action == "ok" for c in await broker.plan(wanted))
        await broker.close()

    run(scenario())


def test_consuming_without_apply_is_refused(nats_tls: TlsBroker) -> None:
    """No durable consumer on the server: the adapter says to apply, it creates nothing."""

    async def scenario() -> None:
        broker = await connect(nats_tls)
        try:
            with pytest.raises(BrokerError, match="messaging apply"):
                await broker.consume(topology(), "billing", collecting([]))
            with pytest.raises(BrokerError, match="not a consumer"):
                await broker.consume(topology(), "stranger", collecting([]))
        finally:
            await broker.close()

    run(scenario())


# -- consumers and replicas ----------------------------------------------------------


def test_each_consumer_name_gets_every_message(nats_tls: TlsBroker) -> None:
    """Two consumers of the integration: each receives all messages."""
    billing: list[Delivery] = []
    shipping: list[Delivery] = []

    async def scenario() -> list[str]:
        broker = await connect(nats_tls)
        wanted = topology(("billing", "shipping"))
        await broker.apply(wanted)
        ids = []
        for n in range(10):
            message = outgoing(f"m{n}".encode())
            ids.append(message.message_id)
            await broker.publish(wanted, message)
        first = await broker.consume(wanted, "billing", collecting(billing))
        second = await broker.consume(wanted, "shipping", collecting(shipping))
        await eventually(lambda: len(billing) == 10 and len(shipping) == 10)
        await first.stop()
        await second.stop()
        await broker.close()
        return ids

    ids = run(scenario())
    assert sorted(d.message_id or "" for d in billing) == sorted(ids)
    assert sorted(d.message_id or "" for d in shipping) == sorted(ids)


def test_replicas_of_one_consumer_share_its_messages(nats_tls: TlsBroker) -> None:
    """Two replicas of one consumer name: each message goes to exactly one of them."""
    one: list[Delivery] = []
    two: list[Delivery] = []

    def slow(into: list[Delivery]) -> Callable[[Delivery], Awaitable[Decision]]:
        async def handler(delivery: Delivery) -> Decision:
            into.append(delivery)
            await asyncio.sleep(0.05)
            return Decision(Settle.ACK)

        return handler

    async def scenario() -> list[str]:
        first, second = await connect(nats_tls), await connect(nats_tls)
        wanted = topology()
        await first.apply(wanted)
        a = await first.consume(wanted, "billing", slow(one), prefetch=1)
        b = await second.consume(wanted, "billing", slow(two), prefetch=1)
        ids = []
        for n in range(20):
            message = outgoing(f"m{n}".encode())
            ids.append(message.message_id)
            await first.publish(wanted, message)
        await eventually(lambda: len(one) + len(two) >= 20)
        await asyncio.sleep(0.3)
        await a.stop()
        await b.stop()
        await first.close()
        await second.close()
        return ids

    ids = run(scenario())
    assert sorted(d.message_id or "" for d in one + two) == sorted(ids)
    assert one
    assert two


def test_a_replica_killed_mid_batch_loses_nothing(nats_tls: TlsBroker) -> None:
    """Unacked messages of a dead replica go to the other one after ack_wait; acked ones do not.

    While the first replica's handlers run (longer than ack_wait), its
    progress acks keep the messages from the second replica.
    """
    acked_by_first: list[str] = []
    second_got: list[Delivery] = []
    in_hand: list[str] = []

    async def scenario() -> tuple[list[str], int]:
        first, second = await connect(nats_tls), await connect(nats_tls)
        wanted = topology()
        await first.apply(wanted)
        never = asyncio.Event()

        async def stuck_after_two(delivery: Delivery) -> Decision:
            in_hand.append(delivery.message_id or "")
            if delivery.body in {b"m0", b"m1"}:
                acked_by_first.append(delivery.message_id or "")
                return Decision(Settle.ACK)
            await never.wait()  # the replica dies before this returns
            return Decision(Settle.ACK)

        ids = []
        for n in range(5):
            message = outgoing(f"m{n}".encode())
            ids.append(message.message_id)
            await first.publish(wanted, message)
        await first.consume(wanted, "billing", stuck_after_two, prefetch=5)
        await eventually(lambda: len(in_hand) == 5)
        late = await second.consume(wanted, "billing", collecting(second_got))
        await asyncio.sleep(2)  # twice ack_wait: progress acks hold the messages
        held = len(second_got)
        await first.close()  # killed: no ack, no nak
        await eventually(lambda: len(second_got) >= 3, within=15)
        await asyncio.sleep(1.5)
        await late.stop()
        await second.close()
        return ids, held

    ids, held_while_alive = run(scenario())
    assert held_while_alive == 0
    got = sorted(d.message_id or "" for d in second_got)
    assert got == sorted(set(ids) - set(acked_by_first))
    assert all(d.redelivered for d in second_got)


def test_a_message_id_taken_first_by_other_bytes_does_not_drop_the_genuine_message(
    nats_tls: TlsBroker, tmp_path: Path
) -> None:
    """Someone who can publish on the subject sends junk first under a producer-chosen id:
    the genuine message is still stored and delivered, so the success audited is true (with
    the id alone as Nats-Msg-Id JetStream dropped it, and the publish was confirmed all the
    same); the same bytes sent again are stored once."""
    destination = f"t{secrets.token_hex(4)}"
    received: list[Delivery] = []
    with rig_for(tmp_path, broker=("nats", nats_tls.url), destination=destination) as rig:

        async def scenario() -> bytes:
            broker = await connect(nats_tls)
            try:
                producer = Producer(
                    rig.manifest, INTEGRATION, keys=rig.keys, broker=broker, audit=rig.audit
                )
                await broker.apply(rig.topology)
                await broker.publish(rig.topology, outgoing(b"junk", "A-1001"))
                genuine = producer.seal(PAYLOAD, message_id="A-1001")
                await producer.send(genuine)
                await producer.send(genuine)  # a retry: the same bytes
                consumption = await broker.consume(rig.topology, CRM, collecting(received))
                await eventually(lambda: len(received) >= 2)
                await asyncio.sleep(0.5)
                await consumption.stop()
                return genuine.body
            finally:
                await broker.close()

        genuine = run(scenario())
        assert [delivery.body for delivery in received] == [b"junk", genuine]
        assert [(e.details["message_id"], e.outcome.result) for e in rig.audit.entries] == [
            ("A-1001", "success"),
            ("A-1001", "success"),
        ]
