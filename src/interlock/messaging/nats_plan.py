"""Plan and apply an integration's JetStream streams and consumers (configuration as code).

Compares what the server has with :mod:`interlock.messaging.nats_config`:
missing streams and consumers are **create**; differences JetStream can
change in place are **update** (``apply`` changes them: e.g. a stream made by
hand with another ``max_age`` gets the manifest's); differences it cannot
change are **drift**, left as they are, never deleted; a consumer on the
integration's stream that the manifest does not name is drift as well.
"""

from __future__ import annotations

from typing import Any

import nats.errors
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from interlock.messaging.model import BrokerError, Change, Topology
from interlock.messaging.nats_config import (
    NatsSettings,
    consumer_differences,
    stream_differences,
    stream_name,
    wanted_consumer,
    wanted_dead_letter_stream,
    wanted_stream,
)

__all__ = ["reconcile"]

_STREAM_UPDATABLE = (
    "num_replicas",
    "discard",
    "max_age",
    "max_msgs",
    "max_msg_size",
    "duplicate_window",
)
_CONSUMER_UPDATABLE = ("ack_wait", "max_deliver", "max_ack_pending", "backoff")


async def reconcile(
    js: JetStreamContext, topology: Topology, settings: NatsSettings, *, apply: bool
) -> list[Change]:
    """The changes for ``topology``; made when ``apply``."""
    try:
        changes = [
            await _stream(js, wanted_stream(topology, settings), apply=apply),
            await _stream(js, wanted_dead_letter_stream(topology, settings), apply=apply),
        ]
        stream = stream_name(topology)
        for consumer in topology.consumers:
            wanted = wanted_consumer(consumer, settings)
            changes.append(await _consumer(js, stream, wanted, apply=apply))
        changes.extend(await _unknown_consumers(js, stream, topology.consumers))
    except nats.errors.Error as exc:
        raise BrokerError(f"JetStream refused: {_describe(exc)}") from exc
    return changes


def _describe(exc: nats.errors.Error) -> str:
    return str(getattr(exc, "description", None) or type(exc).__name__)


def _stream_summary(config: StreamConfig) -> str:
    return (
        f"subjects {','.join(config.subjects or [])}; retention "
        f"{getattr(config.retention, 'value', config.retention)}; max_age {config.max_age:g}s; "
        f"max_msgs {config.max_msgs}; max_msg_size {config.max_msg_size}"
    )


async def _stream(js: JetStreamContext, want: StreamConfig, *, apply: bool) -> Change:
    name = want.name or ""
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        if apply:
            await js.add_stream(want)
        return Change("create", "stream", name, _stream_summary(want))
    differences = stream_differences(info.config, want)
    if differences.fixed:
        return Change("drift", "stream", name, differences.detail)
    if differences.updatable:
        if apply:
            await js.update_stream(info.config.evolve(**_fields(want, _STREAM_UPDATABLE)))
        return Change("update", "stream", name, differences.detail)
    return Change("ok", "stream", name)


async def _consumer(
    js: JetStreamContext, stream: str, want: ConsumerConfig, *, apply: bool
) -> Change:
    name = want.durable_name or ""
    label = f"{stream}/{name}"
    try:
        info = await js.consumer_info(stream, name)
    except NotFoundError:
        if apply:
            await js.add_consumer(stream, want)
        return Change(
            "create",
            "consumer",
            label,
            f"durable pull; ack explicit, ack_wait {want.ack_wait:g}s, "
            f"max_deliver {want.max_deliver}",
        )
    differences = consumer_differences(info.config, want)
    if differences.fixed:
        return Change("drift", "consumer", label, differences.detail)
    if differences.updatable:
        if apply:
            await js.add_consumer(stream, info.config.evolve(**_fields(want, _CONSUMER_UPDATABLE)))
        return Change("update", "consumer", label, differences.detail)
    return Change("ok", "consumer", label)


async def _unknown_consumers(
    js: JetStreamContext, stream: str, consumers: tuple[str, ...]
) -> list[Change]:
    try:
        present = await js.consumers_info(stream)
    except NotFoundError:
        return []
    return [
        Change(
            "drift",
            "consumer",
            f"{stream}/{info.name}",
            "not in the manifest (left in place: it holds messages until they expire)",
        )
        for info in present
        if info.name not in consumers
    ]


def _fields(config: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(config, name) for name in names}
