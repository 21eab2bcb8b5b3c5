"""The NATS JetStream broker adapter (nats-py): TLS only, de-duplicated publishes, explicit acks.

:class:`NatsBroker` implements
:class:`~interlock.messaging.model.BrokerAdapter`. How an integration maps to
streams and consumers is in :mod:`interlock.messaging.nats_config`; the
consuming loop is :mod:`interlock.messaging.nats_consume`.

* **TLS only.** The URL is ``tls://[USER@]HOST[:PORT]``; ``nats://`` is
  refused before anything is sent. The :class:`ssl.SSLContext` is the
  caller's and must verify certificates and host names. nats-py upgrades to
  TLS only when the server's plaintext INFO line asks for it, so a man in
  the middle could answer without asking, and on a reconnect nats-py would
  then send CONNECT, replay the subscriptions and flush buffered messages
  in the clear before any callback of ours runs. The client is therefore
  :class:`_TlsOnlyClient`: on every connect and reconnect, a link that is
  not TLS by the time CONNECT is due is closed with nothing sent, and the
  attempt fails (a reconnect tries again, over TLS or not at all).
* **Publishing** sets ``Nats-Msg-Id`` to the message id and the SHA-256 of
  the body (the id alone travels in ``interlock-message-id``), so a retried
  publish of the same bytes within the stream's duplicate window is stored
  once (the PubAck says ``duplicate``), and names the expected stream; the
  PubAck is awaited and checked: no answer in time, an error or another
  stream raise :class:`~interlock.messaging.model.PublishError`. With the id
  alone, anyone who can publish on the subject and knows a producer-chosen
  id could take it first: JetStream would drop the genuine message as a
  duplicate, and the publish would be confirmed (and audited) all the same.
  With the digest a duplicate is these very bytes, stored already (even if
  consumed since, when it could no longer be read back to compare); other
  bytes under the id are stored too, and the consumers tell them apart.
* **Consuming**: durable pull consumers with explicit acks; see
  :mod:`interlock.messaging.nats_consume`.
* **Dead letters** go to the integration's dead-letter stream, body
  unchanged, with the reason, consumer, time and original message id as
  headers; a dead letter's ``ref`` is its stream sequence.
  :meth:`NatsBroker.replay_dead_letter` (beyond the protocol) sends one back
  to the consumer that refused it only, past the duplicate window; a plain
  :meth:`~NatsBroker.publish` of the same message would reach every consumer,
  and within the window JetStream would drop it as a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Self
from urllib.parse import unquote, urlsplit

import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import RawStreamMsg
from nats.js.errors import APIError, NoStreamResponseError, NotFoundError

from interlock.clock import Clock, utc_now
from interlock.logs import get_logger
from interlock.messaging.model import (
    HEADER_CONSUMER,
    HEADER_DEAD_AT,
    HEADER_REASON,
    BrokerError,
    Change,
    Consumption,
    DeadLetter,
    Handler,
    Outgoing,
    PublishError,
    Topology,
)
from interlock.messaging.nats_config import (
    NatsSettings,
    dead_letter_stream_name,
    replay_subject,
    stream_name,
    wanted_consumer,
)
from interlock.messaging.nats_consume import (
    CONTENT_TYPE,
    HEADER_MESSAGE_ID,
    MESSAGE_ID,
    NatsConsumption,
    application_headers,
    message_id_of,
)
from interlock.messaging.nats_plan import reconcile

__all__ = ["HEADER_MESSAGE_ID", "NatsBroker", "Published"]

_DEFAULT_PORT: Final = 4222

_log = get_logger("interlock.messaging")


class _PlaintextRefused(nats.errors.Error):
    """The server did not switch to TLS: nothing is sent."""

    def __str__(self) -> str:
        return "the connection to the NATS server is not TLS; nothing was sent"


@dataclass(frozen=True)
class Published:
    """JetStream's acknowledgement of a publish: where it was stored, or that it was a duplicate."""

    stream: str
    sequence: int
    duplicate: bool


def _is_tls(client: Client) -> bool:
    # nats-py keeps the stream writer in its transport; the SSL object is there
    # only once the TLS handshake completed. Anything unexpected: not TLS.
    transport = getattr(client, "_transport", None)
    writer = getattr(transport, "_io_writer", None)
    get_extra = getattr(writer, "get_extra_info", None)
    return callable(get_extra) and get_extra("ssl_object") is not None


def _settle_tls_protocol(client: Client) -> None:
    """Tell the stream protocol under nats-py's TLS link that its transport is TLS.

    nats-py upgrades the socket with ``loop.start_tls()`` onto a fresh
    :class:`asyncio.StreamReaderProtocol`, and ``start_tls`` never calls that
    protocol's ``connection_made()``. The protocol so believes it is on plain
    TCP and, when the server closes, answers EOF with True (keep half open),
    which asyncio's SSL layer logs as a warning, "returning true from
    eof_received() has no effect when using ssl", after every command
    (nats-io/nats.py#574, #727). ``connection_made()`` with the TLS transport
    is the fix proposed there (and httpcore's for the same bug); it is done
    only while the protocol still says it is not over TLS, so a nats-py that
    does it itself is left alone.
    """
    transport = getattr(client, "_transport", None)
    writer = getattr(transport, "_io_writer", None)
    link = getattr(writer, "transport", None)
    if not isinstance(link, asyncio.Transport) or link.get_extra_info("sslcontext") is None:
        return
    protocol = link.get_protocol()
    if isinstance(protocol, asyncio.StreamReaderProtocol) and not getattr(
        protocol, "_over_ssl", True
    ):
        protocol.connection_made(link)


class _TlsOnlyClient(Client):
    """A nats-py client that sends nothing over a link that is not TLS.

    nats-py writes its first byte on a link, CONNECT, only after reading the
    server's INFO and upgrading to TLS if INFO asked for it; on a reconnect
    the replayed subscriptions and the buffered messages follow CONNECT, and
    ``reconnected_cb`` runs last. Building CONNECT is therefore the one point
    where every (re)connect can be stopped before anything leaves: a link
    without TLS there (a man in the middle whose INFO left ``tls_required``
    out) is closed and the attempt fails. ``tls_handshake_first`` would
    avoid the plaintext INFO altogether but needs nats-server 2.10.4 or
    later configured with ``handshake_first``.
    """

    def _connect_command(self) -> bytes:
        if not _is_tls(self):
            if self._transport is not None:
                self._transport.close()  # type: ignore[no-untyped-call]  # nats-py: untyped
            raise _PlaintextRefused
        return super()._connect_command()


def _check_context(tls: ssl.SSLContext) -> None:
    if tls.verify_mode != ssl.CERT_REQUIRED or not tls.check_hostname:
        raise BrokerError(
            "the TLS context for a NATS broker must verify the certificate and host name"
        )


def _server(url: str) -> tuple[str, str | None]:
    """The server URL without user information, and the user name."""
    parts = urlsplit(url)
    if parts.scheme != "tls":
        raise BrokerError(
            f"a NATS broker is reached over TLS only: tls://HOST:PORT, not {parts.scheme}://"
        )
    if parts.password is not None:
        raise BrokerError("the NATS url must not carry a password")
    if not parts.hostname or parts.path not in {"", "/"} or parts.query or parts.fragment:
        raise BrokerError("a NATS url is tls://[USER@]HOST[:PORT]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    user = unquote(parts.username) if parts.username else None
    return f"tls://{host}:{parts.port or _DEFAULT_PORT}", user


class NatsBroker:
    """One connection to a NATS server with JetStream; see the module's notes."""

    kind = "nats"

    def __init__(
        self,
        client: Client,
        *,
        settings: NatsSettings,
        now: Clock,
        answer_within: timedelta,
        error_delay: timedelta,
    ) -> None:
        """Wrap a connected client; use :meth:`connect`."""
        self._client = client
        self._js = client.jetstream(timeout=answer_within.total_seconds())
        self._settings = settings
        self._now = now
        self._timeout = answer_within.total_seconds()
        self._error_delay = error_delay
        self._consumptions: list[NatsConsumption] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        tls: ssl.SSLContext,
        password: str | None,
        settings: NatsSettings | None = None,
        now: Clock = utc_now,
        answer_within: timedelta = timedelta(seconds=5),
        error_delay: timedelta = timedelta(seconds=1),
    ) -> Self:
        """Connect to ``url`` (``tls://[USER@]HOST[:PORT]``) with ``password`` for its user.

        ``settings`` are the JetStream settings the manifest does not carry
        (ack wait, deliveries, windows); ``answer_within`` bounds the connection,
        each JetStream request and each publish confirmation; ``error_delay``
        is how long a message whose handler raised waits before redelivery.
        Raises :class:`~interlock.messaging.model.BrokerError` when the
        server cannot be reached, its certificate does not verify, it refuses
        our certificate or credentials, or the link is not TLS.
        """
        server, user = _server(url)
        _check_context(tls)
        if password is not None and user is None:
            raise BrokerError("a NATS password needs the user in the url: tls://USER@HOST:PORT")
        client = _TlsOnlyClient()

        async def on_reconnect() -> None:
            if not _is_tls(client):  # not reached while _TlsOnlyClient guards CONNECT
                await client.close()
                return
            _settle_tls_protocol(client)

        async def on_error(error: Exception) -> None:
            # Errors of the first connect are raised by connect() below.
            if client.is_connected or client.is_reconnecting:
                _log.warning("nats_connection_error", error=type(error).__name__)

        try:
            await client.connect(
                servers=[server],
                tls=tls,
                user=user if password is not None else None,
                password=password,
                name="interlock",
                allow_reconnect=False,
                connect_timeout=max(1, round(answer_within.total_seconds())),
                reconnected_cb=on_reconnect,
                error_cb=on_error,
            )
        except (OSError, TimeoutError, nats.errors.Error) as exc:
            await _discard(client, exc)
            raise BrokerError(f"cannot connect to the NATS server: {_reason(exc)}") from exc
        if not _is_tls(client):
            await client.close()
            raise BrokerError("the connection to the NATS server is not TLS")
        _settle_tls_protocol(client)
        # Fail fast at the first connect (a wrong certificate or password is not
        # transient); once connected, ride out server restarts.
        client.options["allow_reconnect"] = True
        return cls(
            client,
            settings=settings or NatsSettings(),
            now=now,
            answer_within=answer_within,
            error_delay=error_delay,
        )

    async def publish(self, topology: Topology, message: Outgoing) -> None:
        """Publish to the integration's stream; raises PublishError unless JetStream stored it."""
        await self.publish_acked(topology, message)

    async def publish_acked(self, topology: Topology, message: Outgoing) -> Published:
        """Publish like :meth:`publish`, and say where it was stored or that it was a duplicate."""
        headers = dict(message.headers)
        if any(name.lower().startswith("nats-") or name == CONTENT_TYPE for name in headers):
            raise PublishError("message headers may not set NATS's own headers")
        # The body's digest in the de-duplication id: JetStream then drops as a
        # duplicate only these very bytes, never another message under the id.
        headers[MESSAGE_ID] = f"{message.message_id}:{hashlib.sha256(message.body).hexdigest()}"
        headers[HEADER_MESSAGE_ID] = message.message_id
        headers[CONTENT_TYPE] = message.content_type
        return await self._publish(
            stream_name(topology), topology.destination, message.body, headers
        )

    async def _publish(
        self, stream: str, subject: str, body: bytes, headers: dict[str, str]
    ) -> Published:
        try:
            ack = await self._js.publish(
                subject, body, timeout=self._timeout, stream=stream, headers=headers
            )
        except nats.errors.TimeoutError as exc:
            raise PublishError("JetStream did not confirm the message in time") from exc
        except NoStreamResponseError as exc:
            raise PublishError(
                f"no JetStream stream takes {subject!r}: run interlock messaging apply"
            ) from exc
        except APIError as exc:
            raise PublishError(f"JetStream refused the message: {exc.description}") from exc
        except nats.errors.Error as exc:
            raise PublishError(f"the message was not sent: {_reason(exc)}") from exc
        if ack.stream != stream:
            raise PublishError(f"JetStream stored the message in {ack.stream!r}, not {stream!r}")
        return Published(ack.stream, ack.seq, bool(ack.duplicate))

    async def consume(
        self, topology: Topology, consumer: str, handler: Handler, *, prefetch: int = 32
    ) -> Consumption:
        """Deliver ``consumer``'s messages to ``handler``, at least once (its durable consumer)."""
        if consumer not in topology.consumers:
            raise BrokerError(f"{consumer!r} is not a consumer of {topology.integration!r}")
        stream = stream_name(topology)
        try:
            info = await self._js.consumer_info(stream, consumer)
        except NotFoundError as exc:
            raise BrokerError(
                f"no JetStream consumer {consumer!r} on stream {stream!r}: "
                "run interlock messaging apply"
            ) from exc
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot read consumer {consumer!r}: {_reason(exc)}") from exc
        if info.config.deliver_subject:
            raise BrokerError(f"JetStream consumer {consumer!r} is a push consumer, not pull")
        subscription = await self._js.pull_subscribe_bind(consumer=consumer, stream=stream)
        wanted = wanted_consumer(consumer, self._settings)
        ack_wait = info.config.ack_wait or wanted.ack_wait or 30.0

        async def dead_letter(msg: Msg, reason: str) -> None:
            await self._dead_letter(topology, consumer, msg, reason)

        replays, own = replay_subject(topology, ""), replay_subject(topology, consumer)

        def unseen(subject: str) -> bool:
            return subject.startswith(replays) and subject != own

        consumption = NatsConsumption(
            subscription,
            handler,
            dead_letter,
            prefetch=prefetch,
            unseen=unseen,
            ack_wait=timedelta(seconds=ack_wait),
            max_deliver=info.config.max_deliver or 0,
            error_delay=self._error_delay,
        )
        consumption.start()
        self._consumptions.append(consumption)
        return consumption

    async def _dead_letter(self, topology: Topology, consumer: str, msg: Msg, reason: str) -> None:
        original = msg.headers or {}
        headers = application_headers(original)
        if CONTENT_TYPE in original:
            headers[CONTENT_TYPE] = original[CONTENT_TYPE]
        headers[HEADER_REASON] = reason
        headers[HEADER_CONSUMER] = consumer
        headers[HEADER_DEAD_AT] = self._now().isoformat()
        headers[HEADER_MESSAGE_ID] = message_id_of(original) or ""
        # Unique per stored message and consumer: a crash between this publish and
        # the ack redelivers the message, and dead-lettering it again is a no-op.
        meta = msg.metadata
        headers[MESSAGE_ID] = f"{meta.stream}:{meta.sequence.stream}:{consumer}"
        await self._publish(
            dead_letter_stream_name(topology), topology.dead_letter_queue, msg.data, headers
        )

    async def dead_letters(self, topology: Topology, *, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters, oldest first, without removing them."""
        stream, subject = dead_letter_stream_name(topology), topology.dead_letter_queue
        letters: list[DeadLetter] = []
        sequence = 1
        while len(letters) < limit:
            try:
                raw = await self._js.get_msg(stream, seq=sequence, subject=subject, next=True)
            except NotFoundError:
                break
            except nats.errors.Error as exc:
                raise BrokerError(f"cannot read the dead letters: {_reason(exc)}") from exc
            letters.append(_dead_letter_of(raw))
            sequence = (raw.seq or sequence) + 1
        return letters

    async def _letter(self, topology: Topology, ref: str) -> RawStreamMsg | None:
        """Dead letter ``ref`` (a sequence of the dead-letter stream), or None."""
        if not ref.isdigit():
            return None
        try:
            raw = await self._js.get_msg(dead_letter_stream_name(topology), seq=int(ref))
        except NotFoundError:
            return None
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot read the dead letter: {_reason(exc)}") from exc
        return raw if raw.subject == topology.dead_letter_queue else None

    async def _remove(self, topology: Topology, ref: str) -> bool:
        try:
            return await self._js.delete_msg(dead_letter_stream_name(topology), int(ref))
        except NotFoundError:
            return False
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot remove the dead letter: {_reason(exc)}") from exc

    async def take_dead_letter(self, topology: Topology, ref: str) -> DeadLetter | None:
        """Remove the dead letter ``ref`` (its stream sequence) and return it; None if absent."""
        raw = await self._letter(topology, ref)
        if raw is None or not await self._remove(topology, ref):
            return None
        return _dead_letter_of(raw)

    async def replay_dead_letter(self, topology: Topology, ref: str) -> str | None:
        """Publish dead letter ``ref`` again, unchanged, to the consumer that refused it alone.

        It goes to ``<destination>.replay.<consumer>`` with a de-duplication
        id of its own (so the stream's duplicate window does not swallow it),
        keeping its message id; then it leaves the dead letters. Returns the
        message id; None when there is no such dead letter. A failure between
        the two steps leaves it in the dead letters (replayed at least once).
        """
        raw = await self._letter(topology, ref)
        if raw is None:
            return None
        original = raw.headers or {}
        consumer = original.get(HEADER_CONSUMER, "")
        if consumer not in topology.consumers:
            raise BrokerError(f"dead letter {ref} is not of a consumer of {topology.integration!r}")
        headers = {
            name: value
            for name, value in application_headers(original).items()
            if name not in {HEADER_REASON, HEADER_CONSUMER, HEADER_DEAD_AT}
        }
        if CONTENT_TYPE in original:
            headers[CONTENT_TYPE] = original[CONTENT_TYPE]
        message_id = str(original.get(HEADER_MESSAGE_ID, ""))
        headers[HEADER_MESSAGE_ID] = message_id
        headers[MESSAGE_ID] = f"replay:{dead_letter_stream_name(topology)}:{ref}"
        await self._publish(
            stream_name(topology), replay_subject(topology, consumer), raw.data or b"", headers
        )
        await self._remove(topology, ref)  # False: taken meanwhile, replayed all the same
        return message_id

    async def purge_dead_letters(self, topology: Topology) -> int:
        """Remove every dead letter stored so far; how many were removed."""
        stream = dead_letter_stream_name(topology)
        try:
            state = (await self._js.stream_info(stream)).state
            if state.messages:
                # Up to the last sequence counted: a letter arriving meanwhile stays.
                await self._js.purge_stream(stream, seq=state.last_seq + 1)
        except NotFoundError:
            return 0
        except nats.errors.Error as exc:
            raise BrokerError(f"cannot purge the dead letters: {_reason(exc)}") from exc
        return state.messages

    async def plan(self, topology: Topology) -> list[Change]:
        """Streams and consumers to create or update, and drift, without changing anything."""
        return await reconcile(self._js, topology, self._settings, apply=False)

    async def apply(self, topology: Topology) -> list[Change]:
        """Create what is missing and update what JetStream can update; report drift."""
        return await reconcile(self._js, topology, self._settings, apply=True)

    async def close(self) -> None:
        """Abandon running consumers (their unacknowledged messages come back), then close."""
        for consumption in self._consumptions:
            await consumption.abandon()
        self._consumptions.clear()
        with contextlib.suppress(nats.errors.Error):
            await self._client.close()


async def _discard(client: Client, failure: BaseException) -> None:
    """Release a client whose first connect failed."""
    if isinstance(failure, ssl.SSLCertVerificationError):
        # asyncio closed the socket when the handshake failed, and nats-py's
        # close() would wait forever for the plain stream it had replaced.
        return
    with contextlib.suppress(Exception):
        await asyncio.wait_for(client.close(), timeout=2)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def _dead_letter_of(raw: RawStreamMsg) -> DeadLetter:
    headers = raw.headers or {}
    dead_at: datetime | None = None
    with contextlib.suppress(ValueError, TypeError):
        dead_at = datetime.fromisoformat(headers.get(HEADER_DEAD_AT, ""))
    return DeadLetter(
        message_id=headers.get(HEADER_MESSAGE_ID, ""),
        body=raw.data or b"",
        content_type=headers.get(CONTENT_TYPE) or None,
        reason=headers.get(HEADER_REASON, ""),
        consumer=headers.get(HEADER_CONSUMER) or None,
        dead_at=dead_at,
        ref=str(raw.seq),
    )
