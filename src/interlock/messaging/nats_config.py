"""What a messaging integration needs on NATS JetStream: names, stream and consumer configs, drift.

The mapping from a :class:`~interlock.messaging.model.Topology` (one
integration) to JetStream:

* **main stream** ``<DESTINATION>`` (the destination upper-cased, ``.`` made
  ``_``: stream names may not hold dots) holding the subject
  ``<destination>``, where producers publish, and ``<destination>.replay.*``,
  where a dead letter is replayed to the one consumer that refused it
  (``<destination>.replay.<consumer>``: the other consumers acknowledge it
  unseen). File storage, one replica.
  Retention **interest**: a message leaves as soon as every consumer of the
  integration acknowledged it, so sealed messages do not linger after use;
  ``max_age`` = the integration's ``ttl`` (a message no consumer took in time
  is removed), ``max_msgs`` = ``max_length``, ``max_msg_size`` =
  ``max_message`` plus :data:`HEADER_ROOM` (JetStream counts headers),
  discard **new** (a full stream refuses the publish — the producer gets
  :class:`~interlock.messaging.model.PublishError` — instead of silently
  dropping the oldest), ``duplicate_window`` = the adapter's window
  (default 2 minutes, at most ``ttl``: JetStream requires it) for the
  ``Nats-Msg-Id`` de-duplication of producer retries.
* **dead-letter stream** ``<DESTINATION>_DEAD_LETTER`` holding exactly the
  subject ``<destination>.dead-letter``
  (:attr:`~interlock.messaging.model.Topology.dead_letter_queue`); retention
  limits, ``max_age`` = ``dead_letter.retention``, ``max_msgs`` =
  ``dead_letter.max_length``, discard new (a full dead-letter stream makes
  refusing fail, so the message stays in its stream: nothing vanishes).
* **one durable pull consumer per consumer name** on the main stream, named
  like the consumer (a manifest name: ``[a-z][a-z0-9-]*``, valid as is):
  deliver all, explicit acks, ``ack_wait``, ``max_deliver``,
  ``max_ack_pending`` from the adapter. Replicas of one consumer share it
  (each message goes to one of them); each consumer name gets every message.

Plan and apply compare the configs the server reports with these. What
JetStream lets an existing stream or consumer change (limits, windows,
ack wait, deliveries) is an **update**; what it does not (retention,
storage, ack and deliver policy, push instead of pull, mirrors) is
**drift**, and so are other subjects (the stream is probably another
integration's whose destination maps to the same name, like ``a.b`` and
``a_b``): reported, never changed or deleted by Interlock. A consumer on
the stream that the manifest does not name is drift too (with interest
retention it holds messages until they expire).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    ReplayPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from interlock.messaging.model import Topology

__all__ = [
    "DEAD_LETTER_SUFFIX",
    "HEADER_ROOM",
    "Differences",
    "NatsSettings",
    "consumer_differences",
    "dead_letter_stream_name",
    "replay_subject",
    "stream_differences",
    "stream_name",
    "wanted_consumer",
    "wanted_dead_letter_stream",
    "wanted_stream",
]

DEAD_LETTER_SUFFIX: Final = "_DEAD_LETTER"

#: JetStream's max_msg_size counts headers too (measured on nats-server 2.9): room
#: for ours (message id, content type, integration; on a dead letter the reason,
#: consumer, time and original id) on top of the manifest's max_message body.
HEADER_ROOM: Final = 4096


@dataclass(frozen=True)
class NatsSettings:
    """The adapter's JetStream settings that the manifest does not carry.

    ``ack_wait``: how long a delivered, unacknowledged message stays with one
    consumer replica before JetStream gives it to another (a running handler
    extends it with progress acks, so this bounds only a dead replica's hold).
    ``max_deliver``: deliveries before the adapter dead-letters the message
    (reason ``delivery_limit``) instead of retrying; a ``RETRY`` decision
    counts as a delivery too, so keep ``max_deliver`` times the retry delay
    above the replay store's lease. ``duplicate_window``:
    the ``Nats-Msg-Id`` window of the main stream (capped at the ttl).
    """

    ack_wait: timedelta = timedelta(seconds=30)
    max_deliver: int = 20
    max_ack_pending: int = 1000
    duplicate_window: timedelta = timedelta(minutes=2)
    dead_letter_duplicate_window: timedelta = timedelta(minutes=2)


def stream_name(topology: Topology) -> str:
    """The main stream's name: the destination upper-cased, dots as underscores."""
    return topology.destination.upper().replace(".", "_")


def replay_subject(topology: Topology, consumer: str) -> str:
    """Where a dead letter is replayed to ``consumer`` alone."""
    return f"{topology.destination}.replay.{consumer}"


def dead_letter_stream_name(topology: Topology) -> str:
    """The dead-letter stream's name."""
    return stream_name(topology) + DEAD_LETTER_SUFFIX


def wanted_stream(topology: Topology, settings: NatsSettings) -> StreamConfig:
    """The main stream's configuration."""
    return StreamConfig(
        name=stream_name(topology),
        subjects=[topology.destination, replay_subject(topology, "*")],
        retention=RetentionPolicy.INTEREST,
        storage=StorageType.FILE,
        num_replicas=1,
        discard=DiscardPolicy.NEW,
        max_age=topology.ttl.total_seconds(),
        max_msgs=topology.max_length,
        max_msg_size=topology.max_message + HEADER_ROOM,
        duplicate_window=min(settings.duplicate_window, topology.ttl).total_seconds(),
    )


def wanted_dead_letter_stream(topology: Topology, settings: NatsSettings) -> StreamConfig:
    """The dead-letter stream's configuration."""
    window = min(settings.dead_letter_duplicate_window, topology.dead_letter_retention)
    return StreamConfig(
        name=dead_letter_stream_name(topology),
        subjects=[topology.dead_letter_queue],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=1,
        discard=DiscardPolicy.NEW,
        max_age=topology.dead_letter_retention.total_seconds(),
        max_msgs=topology.dead_letter_max_length,
        max_msg_size=topology.max_message + HEADER_ROOM,
        duplicate_window=window.total_seconds(),
    )


def wanted_consumer(consumer: str, settings: NatsSettings) -> ConsumerConfig:
    """The durable pull consumer of ``consumer`` (a manifest name, valid as a durable name)."""
    return ConsumerConfig(
        durable_name=consumer,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        replay_policy=ReplayPolicy.INSTANT,
        ack_wait=settings.ack_wait.total_seconds(),
        max_deliver=settings.max_deliver,
        max_ack_pending=settings.max_ack_pending,
    )


@dataclass(frozen=True)
class Differences:
    """How an existing config differs: what JetStream can update, what it cannot."""

    updatable: tuple[str, ...]
    fixed: tuple[str, ...]

    @property
    def detail(self) -> str:
        """Every difference, for a :class:`~interlock.messaging.model.Change`."""
        return "; ".join(self.fixed + self.updatable)


def _seconds(value: float | None) -> str:
    return "unlimited" if not value else f"{value:g}s"


def _same_time(have: float | None, want: float | None) -> bool:
    return round((have or 0) * 1e9) == round((want or 0) * 1e9)


def _value(value: Any) -> str:
    return str(getattr(value, "value", value))


# (field, updatable by JetStream, how to print a value)
_STREAM_FIELDS: Final[tuple[tuple[str, bool, Callable[[Any], str]], ...]] = (
    ("retention", False, _value),
    ("storage", False, _value),
    # Another stream's subjects: most likely another integration's stream whose
    # destination maps to the same name (a.b and a_b): never rewritten.
    ("subjects", False, str),
    ("num_replicas", True, str),
    ("discard", True, _value),
    ("max_age", True, _seconds),
    ("max_msgs", True, str),
    ("max_msg_size", True, str),
    ("duplicate_window", True, _seconds),
)

_CONSUMER_FIELDS: Final[tuple[tuple[str, bool, Callable[[Any], str]], ...]] = (
    ("deliver_policy", False, _value),
    ("ack_policy", False, _value),
    ("replay_policy", False, _value),
    ("filter_subject", False, str),
    ("deliver_subject", False, str),
    ("ack_wait", True, _seconds),
    ("max_deliver", True, str),
    ("max_ack_pending", True, str),
    ("backoff", True, str),
)

_TIME_FIELDS: Final = frozenset({"max_age", "duplicate_window", "ack_wait"})


def _differences(
    have: Any, want: Any, fields: tuple[tuple[str, bool, Callable[[Any], str]], ...]
) -> Differences:
    updatable: list[str] = []
    fixed: list[str] = []
    for name, can_update, show in fields:
        existing, wanted = getattr(have, name), getattr(want, name)
        if name in _TIME_FIELDS:
            same = _same_time(existing, wanted)
        elif name in {"retention", "storage", "discard", "deliver_policy", "ack_policy"}:
            same = _value(existing) == _value(wanted)
        else:
            same = existing == wanted or (not existing and not wanted)
        if not same:
            line = f"{name} {show(existing)} (manifest: {show(wanted)})"
            (updatable if can_update else fixed).append(line)
    return Differences(tuple(updatable), tuple(fixed))


def stream_differences(have: StreamConfig, want: StreamConfig) -> Differences:
    """How stream config ``have`` (from the server) differs from ``want``."""
    found = _differences(have, want, _STREAM_FIELDS)
    extra = []
    if have.mirror is not None or have.sources:
        extra.append("the stream mirrors or sources other streams")
    if have.sealed or have.deny_delete or have.deny_purge:
        extra.append("the stream is sealed or denies deletes or purges")
    return Differences(found.updatable, found.fixed + tuple(extra))


def consumer_differences(have: ConsumerConfig, want: ConsumerConfig) -> Differences:
    """How consumer config ``have`` (from the server) differs from ``want``."""
    return _differences(have, want, _CONSUMER_FIELDS)
