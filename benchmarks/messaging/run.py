"""Sealed vs plain messages on the same broker: RabbitMQ and NATS JetStream, 1 KiB payloads.

What each side does per message, on the same broker node, the same adapter
(:mod:`interlock.messaging.rabbitmq` / :mod:`interlock.messaging.nats`), the
same TLS connection settings and the same number of messages in flight:

* **plain** — serialise the payload to JSON and publish the bytes with the
  broker's confirmation, then consume them: parse the JSON, acknowledge;
* **sealed** — :class:`~interlock.messaging.producer.Producer.publish` (schema
  check, JWS signed with ES256 nested in a JWE to the consumer's
  ECDH-ES+A256KW key, confirmation, audit entry) then
  :class:`~interlock.messaging.consumer.Consumer` (verify, decrypt, expiry,
  de-duplication claim and completion, schema, minimisation, audit entry,
  acknowledge).

The audit entries go to an in-memory sink and de-duplication to the in-process
store on the sealed side, so the figure is the cost of the envelope and the
gate, not of a database the plain side does not use (the durable audit log's
own cost is measured in benchmarks/audit). The sink encodes each entry as the
durable log's sink does on the caller's side (:class:`EncodingSink`: from the
entry's fields, :func:`~interlock.audit.entry.encode_decision`, and its search
row's key) and keeps the bytes instead of handing them to the writer. The
brokers are started here from this machine's ``rabbitmq-server`` and ``nats-server`` (TLS only, mutual TLS),
as the tests start them. Phases alternate plain/sealed ``--repeat`` times and
the medians are reported; the headline ratio is end-to-end messages/s
(publish all, then consume all). The payloads (Python dicts) are built
before each phase is timed, on both sides.

Run: ``.venv/bin/python benchmarks/messaging/run.py [--messages 2000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.common import sandbox
from benchmarks.results import report as report_figure
from benchmarks.results import skip
from interlock.audit.entry import Decision as AuditDecision
from interlock.audit.entry import encode_decision
from interlock.audit.search_index import search_head
from interlock.audit.sink import MemorySink
from interlock.clock import utc_now
from interlock.config.loader import load_manifest
from interlock.config.manifest import Manifest
from interlock.messaging.consumer import Consumer, Message
from interlock.messaging.keys import MessagingKeys
from interlock.messaging.model import (
    BrokerAdapter,
    Decision,
    Delivery,
    Outgoing,
    Settle,
    topology_of,
)
from interlock.messaging.producer import Producer
from interlock.replay.idempotency import MemoryIdempotency
from interlock.testing import nats_node, rabbitmq_node
from interlock.testing.brokers import TlsBroker

TARGET = 0.5
SCHEMA = {
    "type": "object",
    "required": ["id", "customer", "lines"],
    "properties": {
        "id": {"type": "string"},
        "customer": {
            "type": "object",
            "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
        },
        "lines": {"type": "array", "items": {"type": "object"}},
        "note": {"type": "string"},
    },
}


def payload(number: int) -> dict[str, Any]:
    """An order of about 1 KiB as JSON."""
    lines = [{"sku": f"SKU-{number}-{i}", "quantity": i + 1, "price": "19.90"} for i in range(12)]
    order = {
        "id": f"A-{number}",
        "customer": {"id": f"C-{number % 97}", "email": f"buyer{number % 97}@example.com"},
        "lines": lines,
        "note": "",
    }
    size = len(json.dumps(order))
    order["note"] = "x" * max(0, 1024 - size - 2)
    return order


def payloads(count: int) -> list[dict[str, Any]]:
    """``count`` orders, built before a phase is timed (both sides alike)."""
    return [payload(number) for number in range(count)]


def manifest_text(kind: str, url: str) -> str:
    """Two messaging integrations on one broker: one sealed, one only routed (plain)."""
    flows = [
        f"""\
  {name}:
    type: messaging
    source: erp
    target: crm
    client: producer
    purpose: Benchmark of the messaging envelope
    legal_basis: contract
    data_categories: [user.contact.email]
    data_subjects: [customer]
    retention: P1D
    messaging:
      broker: bus
      destination: bench-{name}-{uuid.uuid4().hex[:8]}
      consumers: [consumer]
      schema: {json.dumps(SCHEMA)}
      fields: [id, customer.email, lines]
      max_message: 65536
      dead_letter: {{role: dlq}}
"""
        for name in ("sealed", "plain")
    ]
    return f"""\
version: 1
organisation:
  controller: {{name: Bench, contact: bench@example.com}}
systems:
  erp: {{url: "https://erp.example", location: DE}}
  crm: {{url: "https://crm.example", location: DE}}
brokers:
  bus: {{kind: {kind}, url: "{url}", location: DE}}
roles:
  dlq: {{scopes: [messaging.dead_letters]}}
clients:
  producer: {{auth: [mtls]}}
  consumer: {{auth: [mtls]}}
integrations:
{"".join(flows)}"""


class EncodingSink(MemorySink):
    """In memory, each message's entry encoded as :class:`~interlock.audit.service.DurableSink` does.

    The durable sink's ``record_decision_async`` encodes an entry from its
    fields on the caller's side (no validating model), makes its search row's
    key, and hands both to the group-commit writer; here the bytes are kept
    in memory instead. Entries the encoder declines take the model's path, as
    there (:func:`~interlock.audit.sink.record_decision`).
    """

    async def record_decision_async(self, decision: AuditDecision) -> int | None:
        """The entry's index once kept; None (nothing kept) for the model's path."""
        body = encode_decision(decision, self._pseudonymiser)
        if body is None:
            return None
        search_head(decision.actor, decision.action, decision.correlation_id)
        await asyncio.sleep(0)
        with self._lock:
            self.encoded.append(body)
            return len(self.encoded) - 1


@dataclass
class Phase:
    """Messages/s of one phase."""

    publish: float
    consume: float
    end_to_end: float


async def _drain(
    start: Callable[[Callable[[], None]], Awaitable[Any]], count: int, within: float
) -> float:
    """Start a consumer that calls ``done()`` per message; seconds until ``count`` were seen."""
    seen = 0
    finished = asyncio.Event()

    def done() -> None:
        nonlocal seen
        seen += 1
        if seen >= count:
            finished.set()

    began = time.perf_counter()
    running = await start(done)
    try:
        await asyncio.wait_for(finished.wait(), within)
    finally:
        await running.stop()
    return time.perf_counter() - began


async def _in_flight(calls: list[Callable[[], Awaitable[Any]]], window: int) -> float:
    """Run ``calls`` with at most ``window`` in flight; seconds taken."""
    began = time.perf_counter()
    for offset in range(0, len(calls), window):
        await asyncio.gather(*(call() for call in calls[offset : offset + window]))
    return time.perf_counter() - began


async def plain_phase(broker: BrokerAdapter, manifest: Manifest, count: int, window: int) -> Phase:
    """Publish JSON bytes with confirmation; consume, parse and acknowledge them."""
    topology = topology_of(manifest, "plain")
    now = utc_now()

    def publish(order: dict[str, Any]) -> Callable[[], Awaitable[None]]:
        async def send() -> None:
            body = json.dumps(order).encode()  # a producer serialises what it sends
            message = Outgoing(body, "application/json", uuid.uuid4().hex, expires)
            await broker.publish(topology, message)

        return send

    expires = now + timedelta(hours=1)
    published = await _in_flight([publish(order) for order in payloads(count)], window)

    async def start(done: Callable[[], None]) -> Any:
        async def handle(delivery: Delivery) -> Decision:
            json.loads(delivery.body)
            done()
            return Decision(Settle.ACK)

        return await broker.consume(topology, "consumer", handle, prefetch=window)

    consumed = await _drain(start, count, within=120)
    return Phase(count / published, count / consumed, count / (published + consumed))


async def sealed_phase(
    broker: BrokerAdapter, manifest: Manifest, keys: MessagingKeys, count: int, window: int
) -> Phase:
    """Producer.publish, then the Consumer's gate to a handler."""
    producer = Producer(manifest, "sealed", keys=keys, broker=broker, audit=EncodingSink())
    published = await _in_flight(
        [lambda order=order: producer.publish(order) for order in payloads(count)], window
    )
    consumer = Consumer(
        manifest,
        "sealed",
        "consumer",
        keys=keys,
        broker=broker,
        dedup=MemoryIdempotency(),
        audit=EncodingSink(),
    )

    async def start(done: Callable[[], None]) -> Any:
        async def handle(message: Message) -> None:
            done()

        return await consumer.start(handle, prefetch=window)

    consumed = await _drain(start, count, within=120)
    return Phase(count / published, count / consumed, count / (published + consumed))


@asynccontextmanager
async def connected(node: TlsBroker) -> AsyncIterator[BrokerAdapter]:
    """The adapter of the node's kind, connected with its TLS context and password."""
    adapter: BrokerAdapter
    if node.kind == "rabbitmq":
        from interlock.messaging.rabbitmq import RabbitMqBroker

        adapter = await RabbitMqBroker.connect(node.url, tls=node.tls(), password=node.password)
    else:
        from interlock.messaging.nats import NatsBroker

        adapter = await NatsBroker.connect(node.url, tls=node.tls(), password=node.password)
    try:
        yield adapter
    finally:
        await adapter.close()


async def measure(
    node: TlsBroker, manifest: Manifest, keys: MessagingKeys, args: argparse.Namespace
) -> tuple[list[Phase], list[Phase]]:
    """Alternate plain and sealed phases ``args.repeat`` times after one warm-up each."""
    plain: list[Phase] = []
    sealed: list[Phase] = []
    async with connected(node) as broker:
        for name in ("plain", "sealed"):
            await broker.apply(topology_of(manifest, name))
        await plain_phase(broker, manifest, 200, args.window)
        await sealed_phase(broker, manifest, keys, 200, args.window)
        for _ in range(args.repeat):
            plain.append(await plain_phase(broker, manifest, args.messages, args.window))
            sealed.append(await sealed_phase(broker, manifest, keys, args.messages, args.window))
    return plain, sealed


def _median(phases: list[Phase], field: str) -> float:
    return statistics.median(getattr(p, field) for p in phases)


def report(kind: str, plain: list[Phase], sealed: list[Phase]) -> None:
    """Messages/s per phase and side, the ratios, and whether the target is met."""
    for field in ("publish", "consume", "end_to_end"):
        ours, peer = _median(sealed, field), _median(plain, field)
        print(
            f"{kind:8} {field:10} sealed {ours:9.0f} msg/s   plain {peer:9.0f} msg/s   "
            f"ratio {ours / peer:.2f}"
        )
    report_figure(
        "messaging",
        f"messaging-sealed-vs-plain-{kind}",
        _median(sealed, "end_to_end") / _median(plain, "end_to_end"),
        target=TARGET,
        peer=f"{kind} plain publish/consume of the JSON bytes, same adapter, same TLS node",
        note="end-to-end messages/s (publish all, then consume all), median of alternating runs",
    )


def unavailable(kind: str) -> str | None:
    """Why a broker of ``kind`` cannot be started here, or None."""
    return (rabbitmq_node if kind == "rabbitmq" else nats_node).unavailable()


@contextmanager
def node(kind: str, directory: Path) -> Iterator[TlsBroker]:
    """A TLS broker node of ``kind`` for this run."""
    module = rabbitmq_node if kind == "rabbitmq" else nats_node
    with module.started(directory) as started:
        yield started


def main() -> None:
    """Both brokers unless --broker names one."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--broker", choices=("rabbitmq", "nats"), action="append")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=64, help="messages in flight")
    args = parser.parse_args()
    print(
        f"{args.messages} messages of ~1 KiB, {args.window} in flight, median of "
        f"{args.repeat} alternating runs"
    )
    missing: list[str] = []
    for kind in args.broker or ["rabbitmq", "nats"]:
        reason = unavailable(kind)
        if reason is not None:
            print(f"{kind}: {reason}")
            missing.append(f"{kind}: {reason}")
            continue
        with ExitStack() as stack:
            box = stack.enter_context(sandbox())
            started = stack.enter_context(node(kind, Path(tempfile.mkdtemp(dir=box.work))))
            path = box.work / "interlock.yaml"
            path.write_text(manifest_text(kind, started.url))
            manifest = load_manifest(path)
            keys = MessagingKeys(box.deployment.engine, box.deployment.keyring)
            keys.ensure(manifest)
            plain, sealed = asyncio.run(measure(started, manifest, keys, args))
            report(kind, plain, sealed)
    if missing:  # after the brokers that could run: their figures are kept
        skip("messaging", "; ".join(missing))


if __name__ == "__main__":
    main()
